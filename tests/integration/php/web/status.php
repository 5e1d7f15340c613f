<?php
// ?code=418: http_response_code; ?legal=1: a raw Status header
if (isset($_GET['legal'])) {
    header('Status: 451 Unavailable For Legal Reasons');
    echo "legal";
} else {
    http_response_code((int)($_GET['code'] ?? 418));
    echo "teapot";
}
