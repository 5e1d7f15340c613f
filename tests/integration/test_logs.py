"""The error log: error_log = syslog, log_limit and catch_workers_output.

    syslog           ringfpm with error_log = syslog, syslog.ident and
                     syslog.facility sends "<PRI>Mmm dd hh:mm:ss ident[pid]:
                     [LEVEL] text" datagrams. php-fpm can only write to
                     /dev/log (openlog); ringfpm does too unless the
                     environment names another socket in
                     RINGFPM_SYSLOG_SOCKET, which is what this test does (a
                     unix datagram socket of its own).
    workers output   catch_workers_output = yes with a PHP script writing to
                     php://stderr and php://stdout: the master logs
                     `WARNING: [pool www] child N said into stderr: "text"`;
                     decorate_workers_output = no gives the bare text; a
                     line longer than log_limit wraps as php-fpm's does.
                     The lines are compared with php-fpm8.2's own (times
                     and pids masked) when it is installed.

PHP tests are skipped where phpserver says PHP cannot run (a sanitizer
build); the syslog test uses the built-in handler and runs everywhere.
"""

import os
import re
import socket
import tempfile
import time
import unittest

import fcgi
import harness
import phpserver

SCRIPT = r"""<?php
$n = (int)($_GET['n'] ?? 0);
$err = fopen('php://stderr', 'w');
fwrite($err, "to stderr\n");
fwrite($err, "two\nlines\n");
if ($n > 0) {
    fwrite($err, 'L' . str_repeat('x', $n - 2) . "R\n");
}
fclose($err);
$out = fopen('php://stdout', 'w');
fwrite($out, "to stdout\n");
fclose($out);
echo "done";
"""

TIME = re.compile(r"^\[\d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d\] ")
CHILD = re.compile(r"child \d+ said")


def said_lines(log, marker):
    """The log lines around the worker output that holds marker, times and
    pids masked, in order: php-fpm and ringfpm must agree on each."""
    out = []
    for line in log.splitlines():
        if "said into" in line or marker in line:
            line = CHILD.sub("child N said", TIME.sub("[T] ", line))
            out.append(line)
    return out


class SyslogTest(unittest.TestCase):
    def setUp(self):
        if not os.access(harness.binary_path(), os.X_OK):
            self.skipTest("ringfpm not built: %s" % harness.binary_path())
        self.dir = tempfile.mkdtemp(prefix="ringfpm-syslog-")
        self.path = os.path.join(self.dir, "log")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.addCleanup(self.sock.close)

    def recv_all(self, until, timeout=5.0):
        got = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got.append(self.sock.recv(65536).decode("utf-8", "replace"))
            except socket.timeout:
                pass
            if any(until in g for g in got):
                break
        return got

    def start(self, global_opts):
        old = os.environ.get("RINGFPM_SYSLOG_SOCKET")
        os.environ["RINGFPM_SYSLOG_SOCKET"] = self.path
        try:
            server = harness.RingFpm(global_opts=global_opts,
                                     pools={"www": {"ping.path": "/ping"}})
            server.start()
        finally:
            if old is None:
                del os.environ["RINGFPM_SYSLOG_SOCKET"]
            else:
                os.environ["RINGFPM_SYSLOG_SOCKET"] = old
        self.addCleanup(server.cleanup)
        return server

    def test_ident_facility_and_level(self):
        server = self.start({"error_log": "syslog", "syslog.ident": "myfpm",
                             "syslog.facility": "LOCAL3", "log_level": "notice"})
        got = self.recv_all("ready to handle connections")
        pid = server.proc.pid
        # LOCAL3 (19 << 3) | LOG_NOTICE (5) = 157, as glibc's syslog() frames it
        head = re.compile(r"^<157>[A-Z][a-z]{2} [ 1-3]\d \d\d:\d\d:\d\d myfpm\[%d\]: " % pid)
        ready = [g for g in got if g.endswith("[NOTICE] ready to handle connections")]
        self.assertEqual(len(ready), 1, got)
        self.assertRegex(ready[0], head)
        # nothing went to the file or stderr
        self.assertNotIn("ready to handle connections", server.log())
        self.assertNotIn("ready to handle connections", server.output())
        server.stop()
        bye = self.recv_all("exiting, bye-bye!")
        self.assertTrue(any(g.endswith("[NOTICE] exiting, bye-bye!") for g in bye), bye)

    def test_defaults_are_php_fpms(self):
        server = self.start({"error_log": "syslog", "log_level": "notice"})
        got = self.recv_all("ready to handle connections")
        # ident php-fpm, facility daemon (3 << 3) | notice = 29
        self.assertTrue(any(re.match(r"^<29>.{15} php-fpm\[%d\]: \[NOTICE\] ready" % server.proc.pid,
                                     g) for g in got), got)


class BadValuesTest(unittest.TestCase):
    """php-fpm's texts for bad log directives."""

    def check(self, global_opts, text):
        server = harness.RingFpm(global_opts=global_opts)
        self.addCleanup(server.cleanup)
        with self.assertRaises(harness.HarnessError):
            server.start()
        self.assertIn(text, server.log() + server.output())

    def test_log_limit_minimum(self):
        self.check({"log_limit": "511"}, "ERROR: log_limit must be greater than 512")

    def test_log_limit_not_a_number(self):
        self.check({"log_limit": "1k"}, "unable to parse value for entry 'log_limit': is not a "
                   "valid number (greater or equal than zero)")

    def test_facility(self):
        self.check({"syslog.facility": "local9"},
                   "unable to parse value for entry 'syslog.facility': invalid value")

    def test_buffering(self):
        self.check({"log_buffering": "maybe"},
                   "unable to parse value for entry 'log_buffering': invalid boolean value")


class WorkersOutputTest(unittest.TestCase):
    """catch_workers_output against php-fpm8.2, line by line."""

    @classmethod
    def setUpClass(cls):
        reason = phpserver.missing_reason("ringfpm")
        if reason:
            raise unittest.SkipTest(reason)

    def run_peer(self, kind, pool_opts, global_opts, n):
        opts = phpserver.pool_config(dict(pool_opts), 1, "static")
        if kind == "php-fpm":
            server = phpserver.PhpFpm(global_opts, {"www": opts})
        else:
            server = phpserver.RingFpmPhp(global_opts,
                                          {"www": dict({"executor.type": "php"}, **opts)})
        self.addCleanup(server.cleanup)
        script = os.path.join(server.tmpdir, "say.php")
        with open(script, "w") as f:
            f.write(SCRIPT)
        server.start()
        params = fcgi.default_params("/say.php", "n=%d" % n)
        params = [(k, script if k == "SCRIPT_FILENAME" else v) for k, v in params]
        with fcgi.Connection(server.address) as conn:
            r = conn.request(params, b"", keep_conn=False)
        self.assertTrue(r.stdout.endswith(b"done"), r.stdout)
        # Both pipes are read by the master's loop: wait for the last line.
        self.assertTrue(harness.wait_until(lambda: "to stdout" in server.log(), 5.0),
                        server.log())
        time.sleep(0.2)
        return server.log()

    def compare(self, pool_opts, global_opts=None, n=0):
        self.raw = self.run_peer("ringfpm", pool_opts, global_opts, n)
        mine = said_lines(self.raw, "said into")
        if phpserver.missing_reason("php-fpm") is None:
            theirs = said_lines(self.run_peer("php-fpm", pool_opts, global_opts, n), "said into")
            # each pipe keeps its order; which pipe the master reads first may differ
            self.assertEqual(sorted(mine), sorted(theirs))
            self.assertEqual([l for l in mine if "stderr" in l or "stdout" not in l],
                             [l for l in theirs if "stderr" in l or "stdout" not in l])
        return mine

    def test_decorated(self):
        lines = self.compare({"catch_workers_output": "yes"})
        self.assertIn('[T] WARNING: [pool www] child N said into stderr: "to stderr"', lines)
        self.assertIn('[T] WARNING: [pool www] child N said into stderr: "two"', lines)
        self.assertIn('[T] WARNING: [pool www] child N said into stderr: "lines"', lines)
        self.assertIn('[T] WARNING: [pool www] child N said into stdout: "to stdout"', lines)

    def test_long_line_wraps_at_log_limit(self):
        lines = self.compare({"catch_workers_output": "yes"}, {"log_limit": "600"}, n=1500)
        raw = [l for l in self.raw.splitlines() if "said into stderr" in l]
        long = [l for l in raw if "x" in l]
        self.assertGreaterEqual(len(long), 3, lines)
        # every piece but the last: prefix, quote, text, quote: 600 bytes with the newline
        for l in long[:-1]:
            self.assertEqual(len(l.encode()) + 1, 600, l)
        self.assertLess(len(long[-1].encode()) + 1, 600)
        text = "".join(re.sub(r'^.*said into stderr: "', "", l)[:-1] for l in long)
        self.assertEqual(text, "L" + "x" * 1498 + "R")

    def test_undecorated_bare_text(self):
        server_lines = []
        for kind in ("ringfpm", "php-fpm"):
            if kind == "php-fpm" and phpserver.missing_reason("php-fpm"):
                continue
            opts = {"catch_workers_output": "yes", "decorate_workers_output": "no"}
            log = self.run_peer(kind, opts, None, 0)
            server_lines.append(sorted(l for l in log.splitlines()
                                       if l in ("to stderr", "two", "lines", "to stdout")))
        for got in server_lines:
            self.assertEqual(got, sorted(["to stderr", "two", "lines", "to stdout"]))


if __name__ == "__main__":
    unittest.main()
