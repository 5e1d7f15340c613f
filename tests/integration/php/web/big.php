<?php
// ?n=BYTES (a multiple of 1024): block k is sprintf("%08d", k) then 1016 times chr(ord('a') + k % 26)
header('Content-Type: application/octet-stream');
$n = (int)$_GET['n'];
for ($k = 0; $k < $n / 1024; $k++) {
    echo sprintf('%08d', $k), str_repeat(chr(97 + $k % 26), 1016);
}
