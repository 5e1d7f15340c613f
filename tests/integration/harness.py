"""Start and stop a real ringfpm for one integration test.

A RingFpm object writes a php-fpm style config into a private temp dir, runs
`<build>/pm/ringfpm -F -y <conf>` in its own process group, waits until every
pool's listen socket accepts, and on stop sends SIGTERM and insists on a clean
exit within 5 s. It keeps the error log and the process's stdout/stderr so a
failing test can show them, and it scans them for sanitizer reports so an
ASan/UBSan build fails the test that triggered the report.

The process handling (temp dir and config, start in its own process group,
SIGTERM stop, group reaping, logs) lives in ServerProcess, which RingFpm and
phpserver.PhpFpm (Debian's php-fpm8.2, the reference peer) both extend.

The build dir is $RINGFPM_BUILD, else <repo>/build. A missing binary makes
start() raise: such a test errors (counted as failed), it is never skipped.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import fcgi

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

START_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0

# Text that sanitizers print when they find something.
SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "ERROR: ThreadSanitizer",
    "WARNING: ThreadSanitizer",
)


# Every RingFpm started and not yet stopped, so kill_all() can clean up when
# the test run itself is interrupted (run.py calls it on SIGTERM/SIGINT).
_live = set()


def kill_all():
    """SIGKILL the process groups of every ringfpm still running."""
    for server in list(_live):
        server.kill()


class HarnessError(AssertionError):
    """ringfpm could not be started or stopped as a test expects."""


def build_dir():
    """The meson build dir whose binaries the tests run."""
    return os.path.abspath(os.environ.get("RINGFPM_BUILD") or os.path.join(REPO_ROOT, "build"))


def binary_path():
    return os.path.join(build_dir(), "pm", "ringfpm")


def built_binary(*relpaths):
    """The first of relpaths (relative to the build dir) that is an
    executable there, or None."""
    for rel in relpaths:
        path = os.path.join(build_dir(), rel)
        if os.access(path, os.X_OK):
            return path
    return None


PHP_SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "php")


def skip_if_php_cannot_start(driver):
    """Skip the calling test class when driver (a program that starts PHP)
    runs in a sanitizer build: Debian's libphp dlopens extensions (opcache)
    with RTLD_DEEPBIND, which the sanitizer runtime refuses, so PHP cannot
    start at all there. The plain build runs these tests."""
    if driver is None:
        return
    probe = subprocess.run([driver, os.path.join(PHP_SCRIPTS, "hello.php")],
                           capture_output=True, timeout=30)
    if b"RTLD_DEEPBIND" in probe.stderr:
        raise unittest.SkipTest("sanitizer build: libphp loads extensions with RTLD_DEEPBIND, "
                                "which ASan refuses")


def root_flags():
    """["-R"] when the tests run as root: like php-fpm, ringfpm refuses a PHP
    pool that would run as root (no `user`) without it, and most test pools
    name no user. The tests of that refusal start ringfpm themselves."""
    return ["-R"] if os.geteuid() == 0 else []


def wait_until(predicate, timeout, interval=0.02):
    """Poll predicate until it returns something true or timeout passes;
    returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def free_tcp_port(host="127.0.0.1"):
    """A TCP port that was free on host a moment ago (the kernel picked it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host.strip("[]"), 0))
        return sock.getsockname()[1]


def ipv6_loopback_available():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def io_uring_available():
    """True if this kernel lets us create an io_uring (not disabled, not blocked by seccomp)."""
    try:
        with open("/proc/sys/kernel/io_uring_disabled") as f:
            if f.read().strip() == "2":
                return False
    except OSError:
        pass
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(120)  # struct io_uring_params
    fd = libc.syscall(425, 4, params)  # __NR_io_uring_setup on x86_64 and aarch64
    if fd < 0:
        return False
    os.close(fd)
    return True


def parse_listen(value):
    """A listen directive's value as a fcgi.connect() address."""
    if value.startswith("/"):
        return value
    if value.startswith("["):
        host, _, port = value[1:].partition("]:")
        return (host, int(port))
    if value.isdigit():
        return ("127.0.0.1", int(value))
    host, _, port = value.rpartition(":")
    return (host, int(port))


def format_config(global_opts, pools):
    """INI text: [global] from a dict, then one section per pool (name -> dict)."""
    lines = ["[global]"]
    lines += ["%s = %s" % (k, v) for k, v in global_opts.items()]
    for name, opts in pools.items():
        lines.append("")
        lines.append("[%s]" % name)
        lines += ["%s = %s" % (k, v) for k, v in opts.items()]
    return "\n".join(lines) + "\n"


class ServerProcess:
    """A FastCGI server run for one test: a master process in its own
    process group, configured by a php-fpm style file in a private temp dir.

    global_opts and pools are dicts of directives; a pool whose "listen" is
    None gets a free 127.0.0.1 port, "unix" a socket path in the temp dir and
    "ipv6" a free [::1] port. error_log and log_level get defaults. After
    start(), self.addresses maps pool name -> address and self.address is the
    first pool's. Subclasses say what to run (argv()) and how it is called in
    messages (name); RingFpm and phpserver.PhpFpm are the two.
    """

    name = "server"
    tmp_prefix = "server-test-"
    conf_name = "server.conf"
    worker_prefix = None  # command line of the master's workers (pids())
    start_timeout = START_TIMEOUT
    stop_timeout = STOP_TIMEOUT

    def __init__(self, global_opts=None, pools=None):
        self.tmpdir = tempfile.mkdtemp(prefix=self.tmp_prefix)
        self.log_path = os.path.join(self.tmpdir, "error.log")
        self.conf_path = os.path.join(self.tmpdir, self.conf_name)
        self.out_path = os.path.join(self.tmpdir, "stdout-stderr.txt")
        self.global_opts = self.default_global_opts()
        self.global_opts.update(global_opts or {})
        self.pools = {}
        for name, opts in (pools or {"www": {}}).items():
            opts = self.pool_defaults(dict(opts))
            listen = opts.get("listen")
            if listen is None:
                opts["listen"] = "127.0.0.1:%d" % free_tcp_port()
            elif listen == "unix":
                opts["listen"] = os.path.join(self.tmpdir, "%s.sock" % name)
            elif listen == "ipv6":
                opts["listen"] = "[::1]:%d" % free_tcp_port("::1")
            self.pools[name] = opts
        self.addresses = {name: parse_listen(opts["listen"]) for name, opts in self.pools.items()}
        self.address = next(iter(self.addresses.values()))
        self.proc = None
        self.returncode = None
        self._out = None

    # -- what subclasses decide
    def default_global_opts(self):
        return {"error_log": self.log_path, "log_level": "notice"}

    def pool_defaults(self, opts):
        """A pool's directives with this server's defaults filled in."""
        return opts

    def argv(self):
        """The command line; raises HarnessError when it cannot run here."""
        raise NotImplementedError

    def check_stopped(self):
        """Called after a clean stop; raises HarnessError on what it finds."""

    # -- lifecycle
    def write_config(self):
        with open(self.conf_path, "w") as f:
            f.write(format_config(self.global_opts, self.pools))
        return self.conf_path

    def start(self):
        argv = self.argv()
        self.write_config()
        self._out = open(self.out_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=subprocess.STDOUT, cwd=self.tmpdir,
                                     start_new_session=True)
        _live.add(self)
        deadline = time.monotonic() + self.start_timeout
        for name, address in self.addresses.items():
            while True:
                if self.proc.poll() is not None:
                    self.returncode = self.proc.returncode
                    raise HarnessError("%s exited with status %s during start-up\n%s"
                                       % (self.name, self.proc.returncode, self.diagnostics()))
                try:
                    fcgi.connect(address, timeout=0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        self.kill()
                        raise HarnessError("pool %s did not accept on %r within %.0f s\n%s"
                                           % (name, address, self.start_timeout,
                                              self.diagnostics()))
                    time.sleep(0.02)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def pids(self):
        """The workers: children of the master whose command line starts
        with worker_prefix."""
        if self.proc is None or not self.worker_prefix:
            return []
        return children_titled(self.proc.pid, self.worker_prefix)

    def stop(self):
        """SIGTERM, wait up to 5 s; SIGKILL and raise if it does not exit.

        Returns the exit status. Also raises if the process had already died,
        if processes of its group outlive it, or if check_stopped() objects.
        """
        if self.proc is None:
            return None
        try:
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                raise HarnessError("%s died during the test (status %s)\n%s"
                                   % (self.name, self.returncode, self.diagnostics()))
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.returncode = self.proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise HarnessError("%s did not exit within %.0f s of SIGTERM\n%s"
                                   % (self.name, self.stop_timeout, self.diagnostics()))
            self._reap_group()
            self.check_stopped()
            return self.returncode
        finally:
            _live.discard(self)
            self.proc = None
            if self._out:
                self._out.close()
                self._out = None

    def kill(self):
        """SIGKILL the process group we started (master and whatever it forked)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.returncode = self.proc.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            pass

    def _reap_group(self):
        """After master exits, children it left behind in our group are killed."""
        deadline = time.monotonic() + 1.0
        while group_members(self.proc.pid):
            if time.monotonic() > deadline:
                leftovers = group_members(self.proc.pid)
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                raise HarnessError("processes %s of %s's group outlived the master\n%s"
                                   % (leftovers, self.name, self.diagnostics()))
            time.sleep(0.05)

    def cleanup(self, keep=False):
        """Kill if still running and remove the temp dir (unless keep)."""
        if self.proc is not None:
            self.kill()
            self.proc = None
        _live.discard(self)
        if self._out:
            self._out.close()
            self._out = None
        if not keep and not os.environ.get("RINGFPM_KEEP_TMP"):
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        try:
            if self.proc is not None:
                self.stop()
        finally:
            self.cleanup()

    # -- logs
    def log(self):
        """The error log's text so far ('' if none yet)."""
        return _read_text(self.log_path)

    def output(self):
        """What the process wrote on stdout/stderr so far."""
        return _read_text(self.out_path)

    def wait_log(self, pattern, timeout=3.0, start=0):
        """Wait until the log (from offset start) matches regex pattern; returns the match or None."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            match = regex.search(self.log()[start:])
            if match or time.monotonic() > deadline:
                return match
            time.sleep(0.05)

    def diagnostics(self):
        return ("--- config %s\n%s--- error log\n%s--- stdout/stderr\n%s"
                % (self.conf_path, _read_text(self.conf_path), _tail(self.log()),
                   _tail(self.output())))

    # -- requests
    def connect(self, pool=None, timeout=fcgi.DEFAULT_TIMEOUT):
        """A fcgi.Connection to a pool (default: the first)."""
        address = self.address if pool is None else self.addresses[pool]
        return fcgi.Connection(address, timeout)


class RingFpm(ServerProcess):
    """One ringfpm process for one test (see ServerProcess).

    A pool is served by the built-in handler unless it sets executor.type.
    stop() also fails the test when a sanitizer reported anything.
    """

    name = "ringfpm"
    tmp_prefix = "ringfpm-test-"
    conf_name = "ringfpm.conf"
    worker_prefix = "ringfpm: pool"

    def pool_defaults(self, opts):
        # The engine tests talk to the responder's built-in handler; PHP
        # tests ask for "executor.type": "php".
        opts.setdefault("executor.type", "builtin")
        return opts

    def argv(self):
        binary = binary_path()
        if not os.access(binary, os.X_OK):
            raise HarnessError("ringfpm binary not found or not executable: %s "
                               "(build it, or set RINGFPM_BUILD)" % binary)
        return [binary, "-F", "-y", self.conf_path] + root_flags()

    def check_stopped(self):
        report = self.sanitizer_report()
        if report:
            raise HarnessError("sanitizer report:\n%s" % report)

    def sanitizer_report(self):
        text = self.output() + "\n" + self.log()
        for marker in SANITIZER_MARKERS:
            pos = text.find(marker)
            if pos >= 0:
                return text[max(0, pos - 200):pos + 4000]
        return None

    def status(self, pool=None, timeout=5.0):
        """The status counters (dict) from pm.status_path?json on a fresh connection."""
        address = self.address if pool is None else self.addresses[pool]
        return fetch_status(address, self.pools[pool or next(iter(self.pools))].get(
            "pm.status_path", "/status"), timeout)

    def config_test(self):
        """Run `ringfpm -t -y conf`; returns CompletedProcess (text output)."""
        self.write_config()
        return subprocess.run([binary_path(), "-t", "-y", self.conf_path] + root_flags(),
                              stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=10, cwd=self.tmpdir)


def fetch_status(address, path="/status", timeout=5.0):
    """GET path?json over FastCGI and decode the JSON counters."""
    response = fcgi.simple_request(address, path, "json", timeout=timeout)
    if response.protocol_status != fcgi.REQUEST_COMPLETE:
        raise HarnessError("status request ended with protocol status %s" % response.protocol_status)
    try:
        return json.loads(response.body.decode("utf-8"))
    except ValueError as e:
        raise HarnessError("status is not JSON (%s): %r" % (e, response.stdout[:500]))


def live_processes():
    """(pid, stat fields after the command) of every live, non-zombie
    process: fields[0] is the state, [1] the parent pid, [2] the group."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z":
            yield int(entry), fields


def group_members(pgid):
    """Live (non-zombie) pids whose process group is pgid."""
    return [pid for pid, fields in live_processes() if int(fields[2]) == pgid]


def cmdline(pid):
    """The command line of pid, arguments joined by spaces ('' if gone)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def children_titled(parent, prefix):
    """Live children of parent whose command line starts with prefix, sorted."""
    return sorted(pid for pid, fields in live_processes()
                  if int(fields[1]) == parent and cmdline(pid).startswith(prefix))


def _read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def _tail(text, limit=6000):
    return text if len(text) <= limit else "...\n" + text[-limit:]
