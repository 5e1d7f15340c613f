<?php
// ?ms=N: answers at once (fastcgi_finish_request), then keeps working N
// milliseconds, as an application's "terminate" work does.
echo getmypid();
fastcgi_finish_request();
usleep(max(0, (int)($_GET['ms'] ?? 0)) * 1000);
