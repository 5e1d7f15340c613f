<?php
echo "bye";
exit(3);
