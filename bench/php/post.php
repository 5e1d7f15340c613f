<?php
// bench/run's "post1m" scenario: read the whole request body.
$body = file_get_contents('php://input');
echo "received ", strlen($body), " md5 ", md5($body);
