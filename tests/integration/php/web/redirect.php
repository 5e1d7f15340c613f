<?php
header('Location: http://localhost/target?from=redirect');
echo "moved";
