<?php
header('Content-Type: application/json');
$keys = ['PATH_INFO', 'PATH_TRANSLATED', 'SCRIPT_NAME', 'PHP_SELF', 'SCRIPT_FILENAME',
         'DOCUMENT_ROOT', 'DOCUMENT_URI', 'REQUEST_URI', 'QUERY_STRING', 'ORIG_PATH_INFO',
         'ORIG_SCRIPT_NAME', 'ORIG_SCRIPT_FILENAME', 'ORIG_PATH_TRANSLATED'];
$out = [];
foreach ($keys as $k) {
    $out[$k] = $_SERVER[$k] ?? null;
}
$out['php_self_global'] = $_SERVER['PHP_SELF'];
$out['file'] = __FILE__;
$out['cwd'] = getcwd();
echo json_encode($out);
