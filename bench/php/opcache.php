<?php echo opcache_get_status() !== false ? "opcache:on" : "opcache:off", " sapi:", PHP_SAPI, " php:", PHP_VERSION;
