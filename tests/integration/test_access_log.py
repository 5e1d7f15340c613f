"""access.log / access.format / access.suppress_path[] with real PHP.

ringfpm and php-fpm8.2 get the same pool (static, one worker, the same
access.log settings) and the same requests over raw FastCGI; their lines
must agree field by field, except what differs by nature: pids, times,
durations, cpu and the queue wait (ringfpm's own %w). Then what ringfpm
does beyond php-fpm: lines longer than php-fpm's 1024-byte buffer are
written whole, the log is reopened after a rotation, and %w.

Skipped where phpserver says PHP cannot run (a sanitizer build); the
comparison also without php-fpm8.2. Every test is bounded well under 10 s.
"""

import os
import shutil
import tempfile
import time
import unittest

import fcgi
import harness
import phpserver

SEP = "|"
# Fields of FORMAT, in order; the ones named in LOOSE may differ.
FIELDS = [
    ("R", "%R"), ("u", "%u"), ("m", "%m"), ("r", "%r"), ("q", "%q"), ("Q", "%Q"),
    ("s", "%s"), ("f", "%f"), ("l", "%l"), ("n", "%n"), ("xcustom", "%{X-Custom}o"),
    ("ctype", "%{Content-Type}o"), ("none_o", "%{X-None}o"), ("e_method", "%{REQUEST_METHOD}e"),
    ("e_sf", "%{SCRIPT_FILENAME}e"), ("e_none", "%{NOPE}e"), ("pct", "%%"),
    ("M_mega", "%{mega}M"), ("p", "%p"), ("P", "%P"), ("d", "%d"), ("d_ms", "%{milli}d"),
    ("d_us", "%{micro}d"), ("C", "%C"), ("C_user", "%{user}C"), ("C_sys", "%{system}C"),
    ("t", "%t"), ("T", "%{%s}T"), ("M", "%M"), ("M_kilo", "%{kilo}M"),
]
FORMAT = SEP.join(token for _, token in FIELDS)
LOOSE = {"p", "P", "d", "d_ms", "d_us", "C", "C_user", "C_sys", "t", "T", "M", "M_kilo"}


def setUpModule():
    reason = phpserver.missing_reason("ringfpm")
    if reason:
        raise unittest.SkipTest(reason)


def params(script, query="", method="GET", extra=()):
    uri = "/" + script + ("?" + query if query else "")
    return [
        ("SCRIPT_NAME", "/" + script),
        ("SCRIPT_FILENAME", os.path.join(harness.PHP_SCRIPTS, script)),
        ("REQUEST_METHOD", method),
        ("REQUEST_URI", uri),
        ("QUERY_STRING", query),
        ("REMOTE_ADDR", "127.0.0.1"),
    ] + list(extra)


# (script, query, method, extra params, body)
REQUESTS = [
    ("hello.php", "", "GET", (), b""),                       # suppressed (see SUPPRESS)
    ("hello.php", "a=1&b=2", "GET", (("HTTP_AUTHORIZATION", "Basic dXNlcjpwdw=="),), b""),
    ("headers.php", "mode=cookie", "GET", (), b""),
    ("headers.php", "", "HEAD", (), b""),                     # 404: not suppressed
    ("nope.php", "", "GET", (), b""),                         # Primary script unknown
    ("post.php", "", "POST", (("CONTENT_TYPE", "application/x-www-form-urlencoded"),
                              ("CONTENT_LENGTH", "7")), b"x=1&y=2"),
    ("hello.php", "", "HEAD", (), b""),                       # suppressed too
    ("pid.php", "", "GET", (), b""),
]
SUPPRESS = "/hello.php"


def start(kind, log_path, fmt=FORMAT, extra=None):
    opts = {"listen": None, "pm": "static", "pm.max_children": "1",
            "access.log": log_path, "access.format": '"%s"' % fmt.replace('"', '\\"'),
            "access.suppress_path[]": SUPPRESS}
    opts.update(extra or {})
    if kind == "php-fpm":
        server = phpserver.PhpFpm(None, {"www": opts})
    else:
        server = phpserver.RingFpmPhp(None, {"www": dict({"executor.type": "php"}, **opts)})
    try:
        server.start()
    except BaseException:
        server.cleanup()
        raise
    return server


def send(server, script, query="", method="GET", extra=(), body=b""):
    conn = server.connect(timeout=8.0)
    try:
        conn.send(fcgi.build_request(1, params(script, query, method, extra), body,
                                     keep_conn=False))
        return conn.read_response(1)
    finally:
        conn.close()


def read_lines(path, n, timeout=5.0):
    """The first n lines of path once it has them (the line is written after
    the response, so it may lag a little)."""
    def have():
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            return None
        lines = text.splitlines()
        return lines if len(lines) >= n else None
    lines = harness.wait_until(have, timeout)
    if not lines:
        try:
            with open(path) as f:
                got = f.read()
        except OSError as e:
            got = str(e)
        raise AssertionError("expected %d lines in %s, got:\n%s" % (n, path, got))
    return lines


def run_requests(kind, tmpdir):
    log_path = os.path.join(tmpdir, "%s.access.log" % kind)
    server = start(kind, log_path)
    try:
        for script, query, method, extra, body in REQUESTS:
            send(server, script, query, method, extra, body)
        expected = len(REQUESTS) - 2  # two suppressed
        lines = read_lines(log_path, expected)
        time.sleep(0.2)  # nothing more may come
        lines = read_lines(log_path, expected)
        return lines, server.pids()
    finally:
        server.stop()
        server.cleanup()


class AccessLogAgainstPhpFpmTest(unittest.TestCase):

    def test_same_lines_as_php_fpm(self):
        reason = phpserver.missing_reason("php-fpm")
        if reason:
            self.skipTest(reason)
        tmp = tempfile.mkdtemp(prefix="access-log-test-")
        self.addCleanup(shutil.rmtree, tmp, True)
        ours, _ = run_requests("ringfpm", tmp)
        theirs, _ = run_requests("php-fpm", tmp)
        self.assertEqual(len(ours), len(theirs), "ringfpm:\n%s\nphp-fpm:\n%s"
                         % ("\n".join(ours), "\n".join(theirs)))
        for n, (a, b) in enumerate(zip(ours, theirs)):
            fa, fb = a.split(SEP), b.split(SEP)
            self.assertEqual(len(fa), len(FIELDS), a)
            self.assertEqual(len(fb), len(FIELDS), b)
            for (name, token), va, vb in zip(FIELDS, fa, fb):
                if name in LOOSE:
                    continue
                self.assertEqual(va, vb, "line %d, %s (%s)\nringfpm: %s\nphp-fpm: %s"
                                 % (n, token, name, a, b))
            values = dict(zip((name for name, _ in FIELDS), fa))
            other = dict(zip((name for name, _ in FIELDS), fb))
            # the loose ones still have php-fpm's shapes
            self.assertRegex(values["d"], r"^\d+\.\d{3}$")
            self.assertRegex(values["d_ms"], r"^\d+\.\d{3}$")
            self.assertRegex(values["d_us"], r"^\d+$")
            for k in ("C", "C_user", "C_sys"):
                self.assertRegex(values[k], r"^\d+\.\d{2}$")
            self.assertRegex(values["t"], r"^\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}$")
            self.assertLess(abs(int(values["T"]) - time.time()), 30)
            self.assertEqual(int(values["M"]) // 1024, int(values["M_kilo"]))
            self.assertEqual(values["M_mega"], other["M_mega"])


class AccessLogTest(unittest.TestCase):

    def setUp(self):
        self.server = None

    def tearDown(self):
        if self.server:
            self.server.stop()
            self.server.cleanup()

    def start(self, fmt, extra=None):
        tmp = tempfile.mkdtemp(prefix="access-log-test-")
        self.addCleanup(shutil.rmtree, tmp, True)
        self.log_path = os.path.join(tmp, "access.log")
        self.server = start("ringfpm", self.log_path, fmt, extra)
        return self.server

    def test_default_format(self):
        tmp = tempfile.mkdtemp(prefix="access-log-test-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "a.log")
        self.server = phpserver.RingFpmPhp(None, {"www": {
            "executor.type": "php", "listen": None, "pm": "static", "pm.max_children": "1",
            "access.log": path}})
        self.server.start()
        send(self.server, "hello.php")
        line = read_lines(path, 1)[0]
        # php-fpm: `127.0.0.1 -  22/Nov/2026:02:43:33 +0000 "GET /code.php" 200`
        self.assertRegex(line, r'^127\.0\.0\.1 -  \d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4} '
                               r'"GET /hello\.php" 200$')

    def test_long_line_is_not_truncated(self):
        self.start("%m %r?%q END")
        query = "k=" + "v" * 5000
        send(self.server, "hello.php", query)
        line = read_lines(self.log_path, 1)[0]
        self.assertEqual(line, "GET /hello.php?%s END" % query)

    def test_queue_wait_token(self):
        self.start("%w %{milli}w %{micro}w")
        send(self.server, "pid.php")  # hello.php is in access.suppress_path[]
        line = read_lines(self.log_path, 1)[0]
        self.assertRegex(line, r"^\d+\.\d{3} \d+\.\d{3} \d+$")
        # ringfpm stamps each request as it enters the queue: the wait is real
        self.assertLess(int(line.split()[2]), 5000000)

    def test_reopened_after_rotation(self):
        self.start("%r%Q%q")
        send(self.server, "hello.php", "n=1")
        read_lines(self.log_path, 1)
        os.rename(self.log_path, self.log_path + ".1")
        os.kill(self.server.proc.pid, 10)  # SIGUSR1, as logrotate sends it
        time.sleep(1.1)  # the executor looks at the path at most once a second
        send(self.server, "hello.php", "n=2")
        self.assertEqual(read_lines(self.log_path, 1), ["/hello.php?n=2"])
        with open(self.log_path + ".1") as f:
            self.assertEqual(f.read(), "/hello.php?n=1\n")

    def test_invalid_format_is_refused_at_config_test_and_start(self):
        # php-fpm checks access.format when it loads the config (so -t fails
        # too): a WARNING naming the token, then the error, exit 78.
        tmp = tempfile.mkdtemp(prefix="access-log-test-")
        self.addCleanup(shutil.rmtree, tmp, True)
        server = phpserver.RingFpmPhp(None, {"www": {
            "executor.type": "php", "listen": None, "pm": "static", "pm.max_children": "1",
            "access.log": os.path.join(tmp, "access.log"), "access.format": '"%Z %s"'}})
        self.addCleanup(server.cleanup)
        r = server.config_test()
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 78, out)
        self.assertIn("WARNING: Invalid token in the access.format (%Z)", out)
        self.assertIn("ERROR: [pool www] wrong format for access.format '%Z %s'", out)
        self.assertNotIn("test is successful", out)
        with self.assertRaises(harness.HarnessError):
            server.start()
        self.assertEqual(server.returncode, 78)
        self.assertIn("wrong format for access.format", server.log() + server.output())

    def test_format_is_not_checked_without_an_access_log(self):
        server = phpserver.RingFpmPhp(None, {"www": {
            "executor.type": "php", "listen": None, "pm": "static", "pm.max_children": "1",
            "access.format": '"%Z"'}})
        self.addCleanup(server.cleanup)
        r = server.config_test()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
