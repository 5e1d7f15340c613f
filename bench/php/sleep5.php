<?php
// bench/run's overload and pm phases: 5 ms of waiting, so the pool's capacity
// is known (pm.max_children / 5 ms) and the CPU is not what limits it.
usleep(5000);
echo "sleep ok";
