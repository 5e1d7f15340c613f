<?php
$st = function_exists('opcache_get_status') ? opcache_get_status(false) : false;
echo json_encode([
    'sapi' => PHP_SAPI,
    'sapi_name' => php_sapi_name(),
    'opcache' => is_array($st) ? ($st['opcache_enabled'] ?? false) : false,
    'headers' => function_exists('getallheaders') ? getallheaders() : null,
    'fpm_get_status' => function_exists('fpm_get_status'),
    'getenv' => getenv('HTTP_X_TEST'),
]);
