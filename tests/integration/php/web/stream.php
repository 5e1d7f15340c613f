<?php
// Two chunks half a second apart; nginx is told not to buffer.
header('X-Accel-Buffering: no');
header('Content-Type: text/plain');
while (ob_get_level()) {
    ob_end_flush();
}
echo "FIRST-CHUNK\n";
flush();
usleep(500000);
echo "SECOND-CHUNK\n";
