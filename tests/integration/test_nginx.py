"""ringfpm behind a real nginx (Debian's /usr/sbin/nginx).

Each test starts its own ringfpm (harness.RingFpm) and its own nginx, on a
free 127.0.0.1 port in a temp prefix, from examples/nginx-demo.conf.in with
the placeholders filled in (nginx.py starts and stops it), and talks HTTP/1.1 to nginx with
http.client. nginx does what it does in production: buffers request bodies
(to a temp file past 16k) and sends them as STDIN, buffers large responses
to its own temp files, and with `keepalive` + `fastcgi_keep_conn on` reuses
FastCGI connections. The classes at the end run every case against a TCP and
a unix socket upstream, each with upstream keepalive on and off (io.backend
auto, so io_uring where the kernel allows it), and two of those again on the
epoll backend.

A missing nginx fails these tests (scripts/setup installs it); they are
never skipped. nginx's error log must stay free of errors: a reset or a
malformed response from ringfpm shows up there before anywhere else.
"""

import http.client
import json
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

import harness
from nginx import NGINX, Nginx, render_template, upstream_for

HTTP_TIMEOUT = 30.0

PING_PATH = "/ping"
STATUS_PATH = "/status"
HELLO = b"Hello, World!"


class NginxCase:
    """Mixin: one ringfpm and one nginx per test. Subclasses set listen and keepalive."""

    listen = None       # harness: None = a free 127.0.0.1 port, "unix" = a socket
    keepalive = True
    io_backend = "auto"

    def setUp(self):
        pool = {
            "listen": self.listen,
            "pm": "static",
            "pm.max_children": "2",
            "ping.path": PING_PATH,
            "pm.status_path": STATUS_PATH,
            # Small, so the 2 MB body goes to a temp file.
            "request.buffer_memory": "256k",
        }
        global_opts = {"io.backend": self.io_backend, "responder.threads": "2"}
        self.server = harness.RingFpm(global_opts, {"www": pool})
        self.addCleanup(self.server.cleanup)
        self.server.start()
        self.nginx = Nginx(upstream_for(self.server.address), self.keepalive)
        self.addCleanup(self.nginx.cleanup)
        self.nginx.start()

    def tearDown(self):
        # nginx first: it closes its upstream connections as it goes.
        self.nginx.stop()
        errors = self.nginx.unexpected_errors()
        status = self.server.stop()
        self.assertEqual(status, 0, "ringfpm should exit 0 on SIGTERM\n" + self.server.diagnostics())
        self.assertFalse(errors, "nginx logged errors:\n%s\n%s"
                         % ("\n".join(errors[:20]), self.server.diagnostics()))

    # -- helpers
    def diagnostics(self):
        return "%s\n%s" % (self.nginx.diagnostics(), self.server.diagnostics())

    def http(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.nginx.port, timeout=HTTP_TIMEOUT)
        self.addCleanup(conn.close)
        return conn

    def fetch(self, path, method="GET", body=None, headers=None, conn=None):
        """(status, headers message, body) for one request (on conn, or a new connection)."""
        conn = conn or self.http()
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()

    def assert_ok(self, path, expected_body=None, conn=None, **kw):
        status, headers, body = self.fetch(path, conn=conn, **kw)
        self.assertEqual(status, 200, "%s: %r\n%s" % (path, body[:300], self.diagnostics()))
        if expected_body is not None:
            self.assertEqual(body, expected_body, path)
        return headers, body

    def counters(self):
        """ringfpm's status counters, fetched over FastCGI directly (one connection)."""
        return self.server.status()

    # -- the routes through nginx
    def test_root_says_hello_as_html(self):
        headers, _ = self.assert_ok("/", HELLO)
        self.assertEqual(headers.get("Content-Type"), "text/html; charset=UTF-8")

    def test_any_script_says_hello(self):
        self.assert_ok("/index.php?a=1", HELLO)

    def test_ping_answers_pong(self):
        headers, _ = self.assert_ok(PING_PATH, b"pong")
        self.assertTrue(headers.get("Content-Type", "").startswith("text/plain"), headers)

    def test_status_json_has_counters(self):
        headers, body = self.assert_ok(STATUS_PATH + "?json")
        counters = json.loads(body.decode("utf-8"))
        self.assertIn("accepted conn", counters)
        self.assertIsInstance(counters["accepted conn"], int)
        self.assertGreaterEqual(counters["accepted conn"], 1)
        self.assertIn("json", headers.get("Content-Type", ""), headers)

    def test_stderr_route_reaches_nginx_log(self):
        self.assert_ok("/stderr", b"ok")
        deadline = time.monotonic() + 3.0
        while "hello stderr" not in self.nginx.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn("FastCGI sent in stderr: \"hello stderr\"", self.nginx.log())

    def test_post_2mb_body_is_echoed_exactly(self):
        body = random.Random(7).randbytes(2 << 20)
        before = self.counters()
        _, echoed = self.assert_ok("/echo", method="POST", body=body,
                                   headers={"Content-Type": "application/octet-stream"})
        self.assertTrue(echoed.endswith(body), "the body came back changed")
        params = self.echo_params(echoed, len(body))
        self.assertEqual(params.get("REQUEST_METHOD"), "POST")
        self.assertEqual(params.get("CONTENT_LENGTH"), str(len(body)))
        self.assertEqual(params.get("SCRIPT_NAME"), "/echo")
        self.assertEqual(params.get("SCRIPT_FILENAME"), self.nginx.prefix + "/html/echo")
        after = self.counters()
        self.assertEqual(after["spilled bodies"] - before["spilled bodies"], 1,
                         "a 2 MB body should go past request.buffer_memory (256k) to a file")

    def test_chunked_post_is_buffered_and_echoed(self):
        # nginx reassembles a chunked request body and sends CONTENT_LENGTH.
        body = random.Random(8).randbytes(300000)

        def chunks():
            for i in range(0, len(body), 65536):
                yield body[i:i + 65536]

        conn = self.http()
        conn.request("POST", "/echo", body=chunks(), encode_chunked=True,
                     headers={"Transfer-Encoding": "chunked"})
        response = conn.getresponse()
        echoed = response.read()
        self.assertEqual(response.status, 200, echoed[:300])
        self.assertTrue(echoed.endswith(body), "the body came back changed")
        self.assertEqual(self.echo_params(echoed, len(body)).get("CONTENT_LENGTH"),
                         str(len(body)))

    def test_bytes_10mb_response(self):
        size = 10 << 20
        _, body = self.assert_ok("/bytes?n=%d" % size)
        self.assertEqual(len(body), size)
        self.assertEqual(body, b"x" * size)

    def test_200_sequential_requests(self):
        before = self.counters()
        conn = self.http()
        for i in range(200):
            if i % 2:
                self.assert_ok("/?seq=%d" % i, HELLO, conn=conn)
            else:
                self.assert_ok(PING_PATH, b"pong", conn=conn)
        after = self.counters()
        # Our own status request accounts for one connection.
        accepted = after["accepted conn"] - before["accepted conn"] - 1
        self.assertGreaterEqual(after["requests"] - before["requests"], 200)
        if self.keepalive:
            self.assertLessEqual(accepted, 10, "nginx should reuse its FastCGI connections "
                                 "(keepalive + fastcgi_keep_conn on): %d accepted for 200 "
                                 "requests" % accepted)
        else:
            self.assertGreaterEqual(accepted, 200, "one FastCGI connection per request "
                                    "expected without keepalive: %d accepted" % accepted)
            self.assertLessEqual(accepted, 201)

    def test_50_concurrent_requests(self):
        count = 50
        barrier = threading.Barrier(count)
        results = [None] * count

        def client(i):
            conn = http.client.HTTPConnection("127.0.0.1", self.nginx.port, timeout=HTTP_TIMEOUT)
            try:
                barrier.wait(10)
                if i % 5 == 4:
                    body = b"%d" % i * 1000
                    conn.request("POST", "/echo", body=body)
                    expect = body
                else:
                    conn.request("GET", "/?client=%d" % i)
                    expect = HELLO
                response = conn.getresponse()
                data = response.read()
                ok = response.status == 200 and data.endswith(expect)
                results[i] = True if ok else (response.status, data[-200:])
            except Exception as e:  # noqa: BLE001 - reported below
                results[i] = repr(e)
            finally:
                conn.close()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(HTTP_TIMEOUT + 15)
        failed = {i: r for i, r in enumerate(results) if r is not True}
        self.assertFalse(failed, "%d of %d concurrent requests failed: %r\n%s"
                         % (len(failed), count, dict(list(failed.items())[:5]),
                            self.diagnostics()))
        # Still serving afterwards.
        self.assert_ok(PING_PATH, b"pong")

    # -- /echo output: "NAME=VALUE\n" per param, "\n", then the body
    def echo_head(self, echoed, body_len):
        head = echoed[:len(echoed) - body_len]
        self.assertTrue(head.endswith(b"\n\n"), head[-200:])
        return head

    def echo_params(self, echoed, body_len):
        params = {}
        for line in self.echo_head(echoed, body_len)[:-2].split(b"\n"):
            name, _, value = line.partition(b"=")
            params.setdefault(name.decode(), value.decode("latin-1"))
        return params


class TcpKeepaliveTest(NginxCase, unittest.TestCase):
    listen = None
    keepalive = True


class TcpNoKeepaliveTest(NginxCase, unittest.TestCase):
    listen = None
    keepalive = False


class UnixKeepaliveTest(NginxCase, unittest.TestCase):
    listen = "unix"
    keepalive = True


class UnixNoKeepaliveTest(NginxCase, unittest.TestCase):
    listen = "unix"
    keepalive = False


class TcpKeepaliveEpollTest(NginxCase, unittest.TestCase):
    listen = None
    keepalive = True
    io_backend = "epoll"


class UnixNoKeepaliveEpollTest(NginxCase, unittest.TestCase):
    listen = "unix"
    keepalive = False
    io_backend = "epoll"


class TemplateTest(unittest.TestCase):
    """The template itself: every placeholder filled, and nginx -t accepts it."""

    def test_nginx_accepts_filled_template(self):
        if not os.access(NGINX, os.X_OK):
            self.fail("%s not found (scripts/setup installs it)" % NGINX)
        for keepalive in (True, False):
            for upstream in ("127.0.0.1:9", "unix:/nonexistent/ringfpm.sock"):
                with self.subTest(keepalive=keepalive, upstream=upstream):
                    prefix = tempfile.mkdtemp(prefix="ringfpm-nginx-t-")
                    self.addCleanup(shutil.rmtree, prefix, True)
                    for sub in ("logs", "temp", "html"):
                        os.mkdir(os.path.join(prefix, sub))
                    conf = os.path.join(prefix, "nginx.conf")
                    with open(conf, "w") as f:
                        f.write(render_template(prefix, 8080, upstream, keepalive))
                    proc = subprocess.run([NGINX, "-t", "-p", prefix, "-c", conf],
                                          stdin=subprocess.DEVNULL, capture_output=True,
                                          text=True, timeout=10)
                    self.assertEqual(proc.returncode, 0, proc.stderr)
                    self.assertIn("test is successful", proc.stderr)


if __name__ == "__main__":
    unittest.main()
