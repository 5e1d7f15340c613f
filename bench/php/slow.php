<?php
// bench/run's "slow" scenarios: 20 ms of waiting (a remote call, a slow query).
usleep(20000);
echo "slow ok";
