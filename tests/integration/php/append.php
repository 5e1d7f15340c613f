<?php
// ?file=PATH: appends this executor's pid and a newline to PATH.
file_put_contents($_GET['file'], getmypid() . "\n", FILE_APPEND);
echo "appended";
