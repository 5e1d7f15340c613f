<?php
header('Content-Type: application/json');
echo json_encode(['post' => $_POST, 'input' => file_get_contents('php://input'),
                  'files' => $_FILES, 'cookie' => $_COOKIE]);
