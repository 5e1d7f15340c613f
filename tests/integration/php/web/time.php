<?php
header('Content-Type: application/json');
echo json_encode(['float' => $_SERVER['REQUEST_TIME_FLOAT'], 'int' => $_SERVER['REQUEST_TIME'],
                  'now' => microtime(true)]);
