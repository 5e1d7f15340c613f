"""The executor loop (pm/exec/rf_exec.c) over a real rf_chan channel.

Each test runs <build>/pm/exec/rf-exec-pair, which starts PHP, creates a
channel, forks an executor running rf_exec_main and plays the responder in
the parent: it sends N requests for the given script(s) and reads the
STDOUT/STDERR/END records back. With -A every response is printed framed as
"=== <i> app=<status> proto=<status> out=<n> err=<n>\\n" + stdout bytes +
"\\n=== stderr\\n" + stderr bytes + "\\n"; a summary line
"requests=N errors=E mismatches=M ..." always ends stderr.
"""

import os
import re
import subprocess
import unittest

import harness

PHP_DIR = harness.PHP_SCRIPTS

BUILD = harness.build_dir()


def _driver():
    return harness.built_binary("pm/exec/rf-exec-pair", "rf-exec-pair")


def _script(name):
    return os.path.join(PHP_DIR, name)


class Run:
    FRAME = re.compile(rb"=== (\d+) app=(\d+) proto=(\d+) out=(\d+) err=(\d+)\n")

    def __init__(self, proc):
        self.status = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr.decode("utf-8", "replace")
        self.summary = {}
        for line in self.stderr.splitlines():
            if line.startswith("requests="):
                self.summary = dict(kv.split("=", 1) for kv in line.split())

    def num(self, key):
        return float(self.summary[key])

    def responses(self):
        """[(app, proto, stdout, stderr)] from -A output."""
        out, pos, data = [], 0, self.stdout
        while pos < len(data):
            m = self.FRAME.match(data, pos)
            if not m:
                raise AssertionError("bad frame at %d: %r" % (pos, data[pos:pos + 80]))
            app, proto, no, ne = (int(g) for g in m.groups()[1:])
            pos = m.end()
            body = data[pos:pos + no]
            pos += no
            sep = b"\n=== stderr\n"
            assert data[pos:pos + len(sep)] == sep
            pos += len(sep)
            err = data[pos:pos + ne]
            pos += ne + 1
            out.append((app, proto, body, err))
        return out


class ExecTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.skip_if_php_cannot_start(_driver())

    def run_pair(self, *args, timeout=120):
        driver = _driver()
        self.assertIsNotNone(driver, "rf-exec-pair not built in %s" % BUILD)
        proc = subprocess.run([driver, *args], capture_output=True, timeout=timeout)
        r = Run(proc)
        self.assertTrue(r.summary, r.stderr)
        return r

    def test_hello_1000(self):
        r = self.run_pair("-n", "1000", _script("hello.php"))
        self.assertEqual(r.status, 0, r.stderr)
        self.assertEqual(r.stdout, b"Content-type: text/html; charset=UTF-8\r\n\r\nHello, World!")
        self.assertEqual(r.summary["requests"], "1000")
        self.assertEqual(r.summary["errors"], "0")
        self.assertEqual(r.summary["mismatches"], "0")
        # an executor fed back to back takes queued requests without a
        # doorbell: far less than one sleep per request with a queue
        r = self.run_pair("-n", "1000", "-q", "4", _script("hello.php"))
        self.assertEqual(r.summary["errors"], "0")
        self.assertEqual(r.summary["mismatches"], "0")
        self.assertLess(r.num("exec_waits_per_req"), 0.5, r.stderr)

    def test_sapi_is_fpm_fcgi(self):
        import json
        r = self.run_pair(_script("sapi.php"))
        self.assertEqual(r.status, 0, r.stderr)
        body = r.stdout.partition(b"\r\n\r\n")[2]
        data = json.loads(body.decode())
        self.assertEqual(data["sapi"], "fpm-fcgi")
        self.assertEqual(data["sapi_name"], "fpm-fcgi")

    def test_fatal_255_then_next_request_works(self):
        r = self.run_pair("-A", "-n", "4", _script("fatal.php"), _script("hello.php"))
        self.assertEqual(r.summary["errors"], "0", r.stderr)
        resp = r.responses()
        self.assertEqual(len(resp), 4)
        for i in (0, 2):
            app, proto, out, err = resp[i]
            self.assertEqual(app, 255)
            self.assertEqual(proto, 0)
            self.assertTrue(out.startswith(b"Status: 500 Internal Server Error\r\n"), out)
            self.assertTrue(err.startswith(b"PHP message: PHP Fatal error:"), err)
        for i in (1, 3):
            app, proto, out, err = resp[i]
            self.assertEqual(app, 0)
            self.assertTrue(out.endswith(b"\r\n\r\nHello, World!"), out)
            self.assertEqual(err, b"")

    def test_finish_request(self):
        r = self.run_pair("-A", "-n", "2", _script("finish.php"))
        self.assertEqual(r.summary["errors"], "0", r.stderr)
        resp = r.responses()
        self.assertEqual(len(resp), 2)
        for app, proto, out, err in resp:
            self.assertEqual((app, proto), (0, 0))
            self.assertEqual(out.partition(b"\r\n\r\n")[2], b"sent before finish")
            self.assertNotIn(b"dropped", out)
        # the request had ended: the later log line goes to the executor's stderr
        self.assertIn("PHP message: after finish: first=true second=false", r.stderr)

    def test_post_body_inline(self):
        import json
        body = "a=1&b=two"
        r = self.run_pair("-b", body, _script("post.php"),
                          "CONTENT_TYPE=application/x-www-form-urlencoded")
        self.assertEqual(r.summary["errors"], "0", r.stderr)
        data = json.loads(r.stdout.partition(b"\r\n\r\n")[2].decode())
        self.assertEqual(data["post"], {"a": "1", "b": "two"})
        self.assertEqual(data["input"], body)

    def test_max_requests_exits_cleanly(self):
        r = self.run_pair("-n", "5", "-m", "5", _script("hello.php"))
        self.assertEqual(r.summary["errors"], "0", r.stderr)
        self.assertEqual(r.summary["executor_exit"], "0")


if __name__ == "__main__":
    unittest.main()
