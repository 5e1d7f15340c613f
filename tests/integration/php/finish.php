<?php
echo "sent before finish";
$first = fastcgi_finish_request();
$second = fastcgi_finish_request();
echo "dropped after finish";
error_log("after finish: first=" . var_export($first, true) . " second=" . var_export($second, true));
