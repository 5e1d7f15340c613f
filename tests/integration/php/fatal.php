<?php
echo "before\n";
undefined_function_xyz();
echo "after\n";
