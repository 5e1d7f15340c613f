<?php
echo "output before exit\n";
exit();
echo "never printed\n";
