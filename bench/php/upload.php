<?php
// bench/run's "upload10m" scenario: a multipart/form-data file upload.
$f = $_FILES['file'] ?? null;
if ($f === null || $f['error'] !== UPLOAD_ERR_OK) {
    http_response_code(400);
    echo "upload failed: ", $f === null ? 'no file' : $f['error'];
    return;
}
echo "upload ok ", $f['size'], " ", filesize($f['tmp_name']);
