<?php
// Leaves its worker's pid in the session dir (?token=), then sleeps.
file_put_contents(session_save_path() . '/pid-' . basename($_GET['token']), getmypid());
sleep(20);
echo "woke up\n";
