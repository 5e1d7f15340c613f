"""A FastCGI server that runs real PHP: ringfpm (default) or php-fpm 8.2.

    server = start_php_server(pool_opts, global_opts, workers=2, pm="static")
    server.address   # for fcgi.py, or nginx.upstream_for(server.address)
    server.kind      # "ringfpm" or "php-fpm"
    server.pids()    # the PHP workers (executors / children) now alive
    server.log()     # the master's error log so far
    server.stop()    # SIGTERM, clean exit within 5 s (raises otherwise)
    server.cleanup() # kill if still running, remove the temp dir

The peer is chosen by the environment: RF_PEER=php-fpm runs Debian's
/usr/sbin/php-fpm8.2 (`-F -O -y conf`, plus `-R` as root, workers then run
as root too), anything else (default: ringfpm) runs <build>/pm/ringfpm
through harness.RingFpm with the pool option `executor.type = php`. The
same test then proves ringfpm does what php-fpm does.

Both get the same pool: `listen` on a free 127.0.0.1 port (pool_opts may
say "unix" for a socket in the temp dir), the given pm and worker count,
php_admin_value[session.save_path] = a private state dir (server.state_dir:
scripts also drop pid and marker files there), and Debian's default php.ini
for FPM (/etc/php/8.2/fpm/php.ini, opcache on): neither is given -c, so a
drop-in ringfpm must find it where php-fpm8.2 does.
"""

import os

import harness

PHP_FPM = "/usr/sbin/php-fpm8.2"
FPM_PHP_INI = "/etc/php/8.2/fpm/php.ini"

START_TIMEOUT = 10.0   # PHP start-up (opcache, extensions) is slower than the engine's


def peer():
    """"php-fpm" when RF_PEER says so, else "ringfpm"."""
    return "php-fpm" if os.environ.get("RF_PEER", "").strip() in ("php-fpm", "php-fpm8.2") \
        else "ringfpm"


def sanitizer_build():
    """The build dir's b_sanitize option when it is not 'none' (such a
    ringfpm cannot start PHP: libphp dlopens extensions with RTLD_DEEPBIND,
    which the sanitizer runtime refuses), else None."""
    import json
    path = os.path.join(harness.build_dir(), "meson-info", "intro-buildoptions.json")
    try:
        with open(path) as f:
            options = json.load(f)
    except (OSError, ValueError):
        return None
    for option in options:
        if option.get("name") == "b_sanitize":
            value = option.get("value")
            return None if value in (None, "none", "") else value
    return None


def missing_reason(kind=None):
    """Why the server kind ("ringfpm" or "php-fpm"; default: the selected
    peer) cannot run here (a reason to skip), or None."""
    if (kind or peer()) == "php-fpm":
        if not os.access(PHP_FPM, os.X_OK):
            return "%s not installed" % PHP_FPM
        return None
    if not os.access(harness.binary_path(), os.X_OK):
        return "ringfpm binary not built: %s" % harness.binary_path()
    sanitize = sanitizer_build()
    if sanitize:
        return ("sanitizer build (b_sanitize=%s): libphp loads extensions with RTLD_DEEPBIND, "
                "which the sanitizer runtime refuses" % sanitize)
    return None


def pool_config(pool_opts, workers, pm):
    """The pool directives both peers get (listen still to be resolved)."""
    opts = {"listen": None, "pm": pm, "pm.max_children": str(workers)}
    if pm == "dynamic":
        opts.update({"pm.start_servers": str(workers), "pm.min_spare_servers": "1",
                     "pm.max_spare_servers": str(workers)})
    opts.update(pool_opts or {})
    return opts


class RingFpmPhp(harness.RingFpm):
    """harness.RingFpm running PHP executors (pids(): the processes titled
    'ringfpm: pool ...')."""

    kind = "ringfpm"


class PhpFpm(harness.ServerProcess):
    """One php-fpm8.2 for one test class, with RingFpm's interface."""

    kind = "php-fpm"
    name = "php-fpm"
    tmp_prefix = "php-fpm-test-"
    conf_name = "php-fpm.conf"
    worker_prefix = "php-fpm: pool"
    start_timeout = START_TIMEOUT

    def default_global_opts(self):
        opts = super().default_global_opts()
        opts["pid"] = os.path.join(self.tmpdir, "php-fpm.pid")
        return opts

    def argv(self):
        if not os.access(PHP_FPM, os.X_OK):
            raise harness.HarnessError("%s not installed" % PHP_FPM)
        argv = [PHP_FPM, "-F", "-O", "-y", self.conf_path]
        if os.geteuid() == 0:
            argv.append("-R")
        return argv

    def log(self):
        """The master's log: with -O php-fpm writes it to stderr (captured in
        out_path), not to error_log."""
        return harness._read_text(self.out_path)

    def diagnostics(self):
        return ("--- config %s\n%s--- log (stdout/stderr)\n%s"
                % (self.conf_path, harness._read_text(self.conf_path),
                   harness._tail(self.output())))


def start_php_server(pool_opts=None, global_opts=None, workers=2, pm="static"):
    """Start the selected peer with one pool "www" running PHP; returns it
    started (on failure it is cleaned up and HarnessError raised)."""
    opts = pool_config(pool_opts, workers, pm)
    if peer() == "php-fpm":
        server = PhpFpm(global_opts, {"www": opts})
    else:
        server = RingFpmPhp(global_opts, {"www": dict({"executor.type": "php"}, **opts)})
    try:
        # Inside the server's temp dir, so cleanup() removes it too.
        server.state_dir = os.path.join(server.tmpdir, "state")
        os.mkdir(server.state_dir)
        server.pools["www"].setdefault("php_admin_value[session.save_path]", server.state_dir)
        server.start()
    except BaseException:
        server.cleanup()
        raise
    return server
