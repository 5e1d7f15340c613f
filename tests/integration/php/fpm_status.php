<?php
// fpm_get_status() as JSON with the PHP type of every value (json_encode
// turns 0.0 into 0) and this process's pid, to find it in "procs".
// ?sleep_ms=N sleeps first, so another request can see this one Running.
usleep(max(0, (int)($_GET['sleep_ms'] ?? 0)) * 1000);
$status = fpm_get_status();
$types = function ($a) {
    return array_map('gettype', $a);
};
header('Content-Type: application/json');
echo json_encode([
    'pid' => getmypid(),
    'status' => $status,
    'types' => is_array($status) ? $types($status) : gettype($status),
    'proc_types' => is_array($status) ? array_map($types, $status['procs']) : null,
]);
