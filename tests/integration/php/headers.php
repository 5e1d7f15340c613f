<?php
// ?mode=404 | redirect | cookie | status | 304
$mode = $_GET['mode'] ?? '404';
switch ($mode) {
case '404':
    http_response_code(404);
    echo "not here";
    break;
case 'redirect':
    header('Location: /elsewhere');
    break;
case 'cookie':
    setcookie('sid', 'abc123', ['path' => '/', 'httponly' => true]);
    header('X-Custom: yes');
    echo "cookie set";
    break;
case 'status':
    http_response_code(418);
    header('Status: 299 Custom');
    break;
case 'statusline':
    header('HTTP/1.1 503 Service Unavailable');
    break;
case '304':
    header('Content-Type: text/plain');
    http_response_code(304);
    break;
}
