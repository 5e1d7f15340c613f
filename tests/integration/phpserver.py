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
import shutil
import signal
import subprocess
import tempfile
import time

import fcgi
import harness

PHP_FPM = "/usr/sbin/php-fpm8.2"
FPM_PHP_INI = "/etc/php/8.2/fpm/php.ini"

START_TIMEOUT = 10.0   # PHP start-up (opcache, extensions) is slower than the engine's
STOP_TIMEOUT = 5.0


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


def missing_reason():
    """Why the selected server cannot run here (a reason to skip), or None."""
    if peer() == "php-fpm":
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


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def worker_pids(master, prefix):
    """Live children of master whose command line starts with prefix."""
    return sorted(pid for pid, fields in harness.live_processes()
                  if int(fields[1]) == master and _cmdline(pid).startswith(prefix))


def pool_config(pool_opts, workers, pm):
    """The pool directives both peers get (listen still to be resolved)."""
    opts = {"listen": None, "pm": pm, "pm.max_children": str(workers)}
    if pm == "dynamic":
        opts.update({"pm.start_servers": str(workers), "pm.min_spare_servers": "1",
                     "pm.max_spare_servers": str(workers)})
    opts.update(pool_opts or {})
    return opts


class RingFpmPhp(harness.RingFpm):
    """harness.RingFpm running PHP executors."""

    kind = "ringfpm"
    worker_prefix = "ringfpm: pool"

    def pids(self):
        """The executor processes: children of the master titled 'ringfpm: pool ...'."""
        if self.proc is None:
            return []
        return worker_pids(self.proc.pid, self.worker_prefix)


class PhpFpm:
    """One php-fpm8.2 for one test class, with RingFpm's interface."""

    kind = "php-fpm"
    worker_prefix = "php-fpm: pool"

    def __init__(self, global_opts=None, pools=None):
        self.tmpdir = tempfile.mkdtemp(prefix="php-fpm-test-")
        self.log_path = os.path.join(self.tmpdir, "error.log")
        self.conf_path = os.path.join(self.tmpdir, "php-fpm.conf")
        self.out_path = os.path.join(self.tmpdir, "stdout-stderr.txt")
        self.global_opts = {"error_log": self.log_path, "log_level": "notice",
                            "pid": os.path.join(self.tmpdir, "php-fpm.pid")}
        self.global_opts.update(global_opts or {})
        self.pools = {}
        for name, opts in (pools or {"www": {}}).items():
            opts = dict(opts)
            listen = opts.get("listen")
            if listen is None:
                opts["listen"] = "127.0.0.1:%d" % harness.free_tcp_port()
            elif listen == "unix":
                opts["listen"] = os.path.join(self.tmpdir, "%s.sock" % name)
            self.pools[name] = opts
        self.addresses = {name: harness.parse_listen(opts["listen"])
                          for name, opts in self.pools.items()}
        self.address = next(iter(self.addresses.values()))
        self.proc = None
        self.returncode = None
        self._out = None

    def write_config(self):
        with open(self.conf_path, "w") as f:
            f.write(harness.format_config(self.global_opts, self.pools))
        return self.conf_path

    def start(self):
        if not os.access(PHP_FPM, os.X_OK):
            raise harness.HarnessError("%s not installed" % PHP_FPM)
        self.write_config()
        argv = [PHP_FPM, "-F", "-O", "-y", self.conf_path]
        if os.geteuid() == 0:
            argv.append("-R")
        self._out = open(self.out_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=subprocess.STDOUT, cwd=self.tmpdir,
                                     start_new_session=True)
        harness._live.add(self)
        deadline = time.monotonic() + START_TIMEOUT
        for name, address in self.addresses.items():
            while True:
                if self.proc.poll() is not None:
                    self.returncode = self.proc.returncode
                    raise harness.HarnessError("php-fpm exited with status %s during start-up\n%s"
                                               % (self.returncode, self.diagnostics()))
                try:
                    fcgi.connect(address, timeout=0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        self.kill()
                        raise harness.HarnessError("pool %s did not accept on %r within %.0f s\n%s"
                                                   % (name, address, START_TIMEOUT,
                                                      self.diagnostics()))
                    time.sleep(0.02)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def pids(self):
        """The pool's children: children of the master titled 'php-fpm: pool ...'."""
        if self.proc is None:
            return []
        return worker_pids(self.proc.pid, self.worker_prefix)

    def stop(self):
        """SIGTERM (php-fpm's fast shutdown), wait up to 5 s; raises if it
        had died before, or does not exit, or leaves processes behind."""
        if self.proc is None:
            return None
        try:
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                raise harness.HarnessError("php-fpm died during the test (status %s)\n%s"
                                           % (self.returncode, self.diagnostics()))
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.returncode = self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
                raise harness.HarnessError("php-fpm did not exit within %.0f s of SIGTERM\n%s"
                                           % (STOP_TIMEOUT, self.diagnostics()))
            deadline = time.monotonic() + 1.0
            while harness.group_members(self.proc.pid):
                if time.monotonic() > deadline:
                    leftovers = harness.group_members(self.proc.pid)
                    try:
                        os.killpg(self.proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    raise harness.HarnessError("processes %s of php-fpm's group outlived the "
                                               "master\n%s" % (leftovers, self.diagnostics()))
                time.sleep(0.05)
            return self.returncode
        finally:
            harness._live.discard(self)
            self.proc = None
            if self._out:
                self._out.close()
                self._out = None

    def kill(self):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.returncode = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass

    def cleanup(self, keep=False):
        if self.proc is not None:
            self.kill()
            self.proc = None
        harness._live.discard(self)
        if self._out:
            self._out.close()
            self._out = None
        if not keep and not os.environ.get("RINGFPM_KEEP_TMP"):
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def log(self):
        """The master's log: with -O php-fpm writes it to stderr (captured in
        out_path), not to error_log."""
        return harness._read_text(self.out_path)

    def output(self):
        return harness._read_text(self.out_path)

    def wait_log(self, pattern, timeout=3.0, start=0):
        return harness.RingFpm.wait_log(self, pattern, timeout, start)

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
