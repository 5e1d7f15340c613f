<?php
echo ini_get('precision'), "\n", ini_get('memory_limit'), "\n";
var_dump(ini_set('memory_limit', '64M'));
