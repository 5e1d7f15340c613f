"""A real nginx (Debian's /usr/sbin/nginx) for the integration tests.

An Nginx object runs one nginx in a private temp prefix (pid, logs, temp
files, config), listening on a free 127.0.0.1 port, in front of one FastCGI
upstream. The config is rendered by a function (prefix, port, upstream,
keepalive) -> nginx.conf text: by default examples/nginx-demo.conf.in with
its placeholders filled in (render_template); test_php_nginx.py passes its
own. start() waits until nginx accepts; stop() sends SIGQUIT (graceful) and
insists on an exit within 5 s.

Shared by test_nginx.py (ringfpm's built-in routes) and test_php_nginx.py
(real PHP scripts, against ringfpm or php-fpm).
"""

import http.client
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import harness

NGINX = "/usr/sbin/nginx"
TEMPLATE = os.path.join(harness.REPO_ROOT, "examples", "nginx-demo.conf.in")

START_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0

# nginx error log lines that do not point at the FastCGI server: the /stderr
# route's FCGI_STDERR text is logged by nginx at [error] level by design.
EXPECTED_NGINX_ERRORS = ("FastCGI sent in stderr",)


def available():
    return os.access(NGINX, os.X_OK)


def user_line():
    """The `user` directive for a generated config: root workers when the
    master is root (they can reach sockets in the harness's 0700 temp dirs
    and files under any checkout); none otherwise (a non-root master cannot
    switch users, nginx would only warn)."""
    return "user root;\n" if os.geteuid() == 0 else ""


def render_template(prefix, port, upstream, keepalive=True):
    """examples/nginx-demo.conf.in with its placeholders filled in.

    keepalive=False removes the upstream `keepalive` line and turns
    `fastcgi_keep_conn` off: one FastCGI connection per request, closed by
    the server after END_REQUEST (no FCGI_KEEP_CONN flag).
    """
    with open(TEMPLATE) as f:
        text = f.read()
    if os.geteuid() == 0:
        # Workers as root can reach a socket in the harness's 0700 temp dir.
        text = text.replace("@USER@", "root")
    else:
        # A non-root master cannot switch users; nginx would only warn.
        text = re.sub(r"(?m)^[^#\n]*@USER@.*\n", "", text)
    text = (text.replace("@PREFIX@", prefix).replace("@PORT@", str(port))
            .replace("@UPSTREAM@", upstream))
    if not keepalive:
        text, n = re.subn(r"(?m)^\s*keepalive\s+\d+;\n", "", text)
        if n != 1:
            raise AssertionError("template: expected one upstream keepalive line, found %d" % n)
        text, n = re.subn(r"fastcgi_keep_conn\s+on;", "fastcgi_keep_conn off;", text)
        if n != 1:
            raise AssertionError("template: expected one 'fastcgi_keep_conn on;', found %d" % n)
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise AssertionError("template: placeholders left unfilled: %s" % sorted(set(left)))
    return text


def upstream_for(address):
    """A harness address (tuple or unix path) as an nginx upstream server."""
    if isinstance(address, str):
        return "unix:" + address
    host, port = address
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def process_running(pid):
    """True if pid is a live process. A zombie has exited: where PID 1 does
    not reap, a daemonized nginx's zombie can linger indefinitely."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"


def children_of(pid):
    """Live pids whose parent is pid (nginx's workers)."""
    return [kid for kid, fields in harness.live_processes() if int(fields[1]) == pid]


class Nginx:
    """One nginx in a private prefix, in front of one FastCGI upstream.

    render(prefix, port, upstream, keepalive) returns the config text
    (default: render_template). links maps names inside the prefix to files
    or dirs to symlink there before start: a relative `include` in the config
    (Debian's snippets/fastcgi-php.conf includes `fastcgi.conf`) resolves
    against the config file's dir, which is the prefix.
    """

    def __init__(self, upstream, keepalive=True, render=None, links=None):
        self.prefix = tempfile.mkdtemp(prefix="ringfpm-nginx-")
        self.port = harness.free_tcp_port()
        self.upstream = upstream
        self.keepalive = keepalive
        self.render = render or render_template
        self.links = dict(links or {})
        self.conf_path = os.path.join(self.prefix, "nginx.conf")
        self.pid_path = os.path.join(self.prefix, "nginx.pid")
        self.log_path = os.path.join(self.prefix, "logs", "error.log")
        self.pid = None
        self.output = ""

    def start(self):
        if not available():
            raise harness.HarnessError("%s not found: these tests need Debian's nginx "
                                       "(scripts/setup installs it)" % NGINX)
        for sub in ("logs", "temp", "html"):
            os.makedirs(os.path.join(self.prefix, sub), exist_ok=True)
        for name, target in self.links.items():
            os.symlink(target, os.path.join(self.prefix, name))
        with open(self.conf_path, "w") as f:
            f.write(self.render(self.prefix, self.port, self.upstream, self.keepalive))
        # With `daemon on` the command returns once the master has forked off.
        proc = subprocess.run([NGINX, "-p", self.prefix, "-c", self.conf_path],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=START_TIMEOUT)
        self.output = proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise harness.HarnessError("nginx failed to start (status %d)\n%s"
                                       % (proc.returncode, self.diagnostics()))
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with open(self.pid_path) as f:
                    self.pid = int(f.read().strip())
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=0.5)
                conn.connect()
                conn.close()
                return self
            except (OSError, ValueError):
                if time.monotonic() > deadline:
                    raise harness.HarnessError("nginx did not accept on 127.0.0.1:%d within "
                                               "%.0f s\n%s" % (self.port, START_TIMEOUT,
                                                               self.diagnostics()))
                time.sleep(0.02)

    def stop(self):
        """SIGQUIT (graceful), then SIGTERM, then SIGKILL; raises if it took more than QUIT."""
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        workers = children_of(pid)
        for sig, wait in ((signal.SIGQUIT, STOP_TIMEOUT), (signal.SIGTERM, 2.0),
                          (signal.SIGKILL, 2.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
            if sig == signal.SIGKILL:
                for worker in workers:
                    try:
                        os.kill(worker, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            deadline = time.monotonic() + wait
            while process_running(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            if not process_running(pid):
                break
        if sig != signal.SIGQUIT:
            raise harness.HarnessError("nginx %d did not exit within %.0f s of SIGQUIT (sent %s)"
                                       "\n%s" % (pid, STOP_TIMEOUT, sig.name, self.diagnostics()))

    def cleanup(self):
        try:
            self.stop()
        except harness.HarnessError:
            pass
        if not os.environ.get("RINGFPM_KEEP_TMP"):
            shutil.rmtree(self.prefix, ignore_errors=True)

    def log(self):
        return harness._read_text(self.log_path)

    def unexpected_errors(self, expected=EXPECTED_NGINX_ERRORS, start=0):
        """nginx error log lines (from offset start) at [error] or worse
        that contain none of the expected texts."""
        bad = []
        for line in self.log()[start:].splitlines():
            if re.search(r"\[(error|crit|alert|emerg)\]", line) and \
                    not any(text in line for text in expected):
                bad.append(line)
        return bad

    def diagnostics(self):
        return ("--- nginx config %s\n%s--- nginx output\n%s\n--- nginx error log\n%s"
                % (self.conf_path, harness._read_text(self.conf_path), self.output,
                   harness._tail(self.log())))
