<?php
// Describes every uploaded file, with the md5 of the temp file PHP wrote.
header('Content-Type: application/json');
$files = [];
foreach ($_FILES as $field => $f) {
    $files[$field] = [
        'name' => $f['name'], 'type' => $f['type'], 'size' => $f['size'], 'error' => $f['error'],
        'uploaded' => is_uploaded_file($f['tmp_name']),
        'md5' => $f['error'] === UPLOAD_ERR_OK ? md5_file($f['tmp_name']) : null,
    ];
}
echo json_encode(['post' => $_POST, 'files' => $files]);
