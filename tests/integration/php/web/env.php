<?php
$st = function_exists('opcache_get_status') ? opcache_get_status(false) : false;
header('Content-Type: application/json');
echo json_encode(['sapi' => PHP_SAPI, 'version' => PHP_VERSION, 'ini' => php_ini_loaded_file(),
                  'opcache' => is_array($st) && !empty($st['opcache_enabled']),
                  'pid' => getmypid()]);
