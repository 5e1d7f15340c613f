<?php
// ?mb=64: more than the 16M memory_limit set here (a runtime size, so
// opcache cannot fold the allocation into the compiled script).
ini_set('memory_limit', '16M');
echo "allocating\n";
$s = str_repeat('x', (int)($_GET['mb'] ?? 64) << 20);
echo "allocated ", strlen($s), "\n";
