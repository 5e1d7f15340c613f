<?php
// ?ms=N: sleeps N milliseconds, then prints its pid.
usleep(max(0, (int)($_GET['ms'] ?? 0)) * 1000);
echo getmypid();
