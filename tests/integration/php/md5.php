<?php
// The request body as PHP reads it: its length and md5.
$b = file_get_contents('php://input');
echo strlen($b), " ", md5($b);
