<?php
// The response ends at fastcgi_finish_request(); the script goes on for
// 2 s, then leaves a marker file (?token=) in the session dir.
echo "sent before finish\n";
$first = fastcgi_finish_request();
$second = fastcgi_finish_request();
echo "dropped after finish\n";
sleep(2);
file_put_contents(session_save_path() . '/finished-' . basename($_GET['token']),
                  json_encode(['first' => $first, 'second' => $second]));
