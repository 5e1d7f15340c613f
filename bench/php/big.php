<?php
// bench/run's "big1m" scenario: a 1 MiB response written as 1024 echos of 1 KiB
// (as a template would), then a 10-byte end marker.
header('Content-Type: text/plain');
$line = str_repeat('0123456789abcdef', 63) . "0123456789abcde\n";   // 1024 bytes
for ($i = 0; $i < 1024; $i++) {
    echo $line;
}
echo "END-OF-1MB";
