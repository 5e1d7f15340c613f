<?php
echo "before the error\n";
undefined_function_xyz();
echo "after the error\n";
