<?php
header('Content-Type: application/json');
echo json_encode(['get' => $_GET, 'query_string' => $_SERVER['QUERY_STRING'],
                  'method' => $_SERVER['REQUEST_METHOD'], 'request_uri' => $_SERVER['REQUEST_URI']]);
