<?php
header('Content-Type: application/json');
echo json_encode(['post' => $_POST, 'input' => file_get_contents('php://input'),
                  'method' => $_SERVER['REQUEST_METHOD'],
                  'content_type' => $_SERVER['CONTENT_TYPE'] ?? null,
                  'content_length' => $_SERVER['CONTENT_LENGTH'] ?? null]);
