<?php
// The working directory while the script runs, after it chdir()s away, and
// in a shutdown function (php-fpm: back where the process was).
echo getcwd(), "\n";
register_shutdown_function(function () { echo getcwd(), "\n"; });
chdir('/');
