<?php
session_start();
$_SESSION['count'] = ($_SESSION['count'] ?? 0) + 1;
header('Content-Type: application/json');
echo json_encode(['count' => $_SESSION['count'], 'id' => session_id(), 'name' => session_name(),
                  'cookie' => $_COOKIE, 'save_path' => session_save_path()]);
