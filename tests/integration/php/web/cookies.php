<?php
setcookie('flavour', 'chocolate chip', ['path' => '/', 'httponly' => true]);
header('Content-Type: application/json');
echo json_encode($_COOKIE);
