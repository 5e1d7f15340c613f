<?php
// Never ends on its own (max_execution_time counts CPU time: 30 s in Debian's php.ini).
$i = 0;
while (true) {
    $i++;
}
