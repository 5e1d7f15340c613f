"""Real PHP behind a real nginx: ringfpm must serve it exactly as php-fpm 8.2.

The server is phpserver.start_php_server(): ringfpm with PHP executors by
default, Debian's php-fpm8.2 with RF_PEER=php-fpm (the reference every test
here passes against). In front of it runs Debian's nginx (nginx.py) with a
site as Debian ships it: the PHP location includes the stock
snippets/fastcgi-php.conf (fastcgi_split_path_info, try_files, fastcgi.conf
with SCRIPT_FILENAME) and a /direct/ location passes any URI straight to the
server with the stock fastcgi.conf and no try_files, so the server itself
decides about missing scripts and forbidden extensions. The document root is
tests/integration/php/web/, its scripts are the tests' fixtures. The
php.ini is Debian's for FPM (display_errors Off, log_errors On, no error_log:
PHP errors go to FCGI_STDERR, which nginx logs as `FastCGI sent in stderr`).

One server and one nginx per class (setUpClass) keep the file fast: the
behaviour tests run with upstream keepalive (fastcgi_keep_conn on) and
without, over TCP and a unix socket; request_terminate_timeout has a class of
its own. Every socket has a timeout; nginx's error log must show no errors
but those a test expects.

Where ringfpm is allowed to do better than php-fpm, the assert is chosen by
peer (PEER) and says so.

    RF_PEER=php-fpm python3 tests/integration/run.py test_php_nginx   # the reference
    python3 tests/integration/run.py test_php_nginx                   # ringfpm
"""

import hashlib
import http.client
import json
import os
import random
import re
import signal
import socket
import threading
import time
import unittest
import uuid

import harness
import nginx
import phpserver

PEER = phpserver.peer()
WEBROOT = os.path.join(harness.PHP_SCRIPTS, "web")
HTTP_TIMEOUT = 15.0
FPM_INI = "/etc/php/8.2/fpm/php.ini"

# Debian's stock include files, linked into nginx's prefix: the snippet's
# `include fastcgi.conf;` is relative to the config file's directory.
STOCK_LINKS = {
    "fastcgi.conf": "/etc/nginx/fastcgi.conf",
    "fastcgi_params": "/etc/nginx/fastcgi_params",
    "snippets": "/etc/nginx/snippets",
}

SITE = """\
{user}daemon on;
master_process on;
# One worker: with upstream keepalive, php-fpm parks a child on every idle
# cached connection, and several nginx workers could hold all of them.
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log notice;

events {{
    worker_connections 256;
}}

http {{
    access_log {prefix}/logs/access.log;
    default_type application/octet-stream;
    client_body_temp_path {prefix}/temp/client_body;
    fastcgi_temp_path {prefix}/temp/fastcgi;
    proxy_temp_path {prefix}/temp/proxy;
    uwsgi_temp_path {prefix}/temp/uwsgi;
    scgi_temp_path {prefix}/temp/scgi;
    client_max_body_size 64m;
    fastcgi_read_timeout 30s;

    upstream php {{
        server {upstream};
{keepalive_line}    }}

    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root {webroot};
        index index.php;

        # As in Debian's sites-available/default, PHP section.
        location ~ [^/]\\.php(/|$) {{
            include snippets/fastcgi-php.conf;
            fastcgi_pass php;
            fastcgi_keep_conn {keep_conn};
        }}

        # Everything to the FastCGI server, unchecked: /direct/x -> /x.
        location ^~ /direct/ {{
            rewrite ^/direct(/.*)$ $1 break;
            include fastcgi.conf;
            fastcgi_pass php;
            fastcgi_keep_conn {keep_conn};
        }}
    }}
}}
"""


def render_site(prefix, port, upstream, keepalive):
    return SITE.format(user=nginx.user_line(), prefix=prefix, port=port, upstream=upstream,
                       webroot=WEBROOT, keep_conn="on" if keepalive else "off",
                       keepalive_line="        keepalive 8;\n" if keepalive else "")


def big_body(n):
    """What big.php?n=n prints."""
    return b"".join(b"%08d" % k + bytes([97 + k % 26]) * 1016 for k in range(n // 1024))


def dechunk(data):
    """The payload of a chunked HTTP/1.1 body."""
    out = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return out
        out += data[:size]
        data = data[size + 2:]


class PhpNginxCase:
    """Mixin: one PHP server and one nginx for the whole class, and helpers."""

    keepalive = True
    listen = None          # None: a free 127.0.0.1 port; "unix": a socket
    workers = 4
    pool_opts = {
        # Debian's php.ini allows 2M uploads and 8M posts; the upload test sends 20 MB.
        "php_admin_value[upload_max_filesize]": "32M",
        "php_admin_value[post_max_size]": "64M",
    }

    @classmethod
    def setUpClass(cls):
        if not nginx.available():
            raise unittest.SkipTest("%s not installed" % nginx.NGINX)
        reason = phpserver.missing_reason()
        if reason:
            raise unittest.SkipTest(reason)
        opts = dict(cls.pool_opts, listen=cls.listen)
        cls.server = phpserver.start_php_server(opts, workers=cls.workers)
        cls.nginx = nginx.Nginx(nginx.upstream_for(cls.server.address), cls.keepalive,
                                render=render_site, links=STOCK_LINKS)
        try:
            cls.nginx.start()
        except BaseException:
            cls.nginx.cleanup()
            cls.server.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.nginx.stop()
            cls.server.stop()
        finally:
            cls.nginx.cleanup()
            cls.server.cleanup()

    def setUp(self):
        self.nginx_mark = len(self.nginx.log())
        self.server_mark = len(self.server.log())
        # Substrings of nginx [error] lines this test expects (FCGI_STDERR, 502s).
        self.expected_errors = []

    def tearDown(self):
        bad = self.nginx.unexpected_errors(self.expected_errors, self.nginx_mark)
        self.assertFalse(bad, "nginx logged errors this test does not expect:\n%s\n%s"
                         % ("\n".join(bad[:20]), self.diagnostics()))

    # -- helpers
    def diagnostics(self):
        return "%s\n%s" % (self.nginx.diagnostics(), self.server.diagnostics())

    def nginx_log(self):
        """nginx's error log since this test began."""
        return self.nginx.log()[self.nginx_mark:]

    def wait_nginx_log(self, text, timeout=3.0):
        deadline = time.monotonic() + timeout
        while text not in self.nginx_log() and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.nginx_log()

    def fetch(self, path, method="GET", body=None, headers=None, timeout=HTTP_TIMEOUT):
        """One request on a fresh connection: (response, body). The
        response's .status, .reason and .headers (an email.message) are set."""
        conn = http.client.HTTPConnection("127.0.0.1", self.nginx.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response, response.read()
        finally:
            conn.close()

    def fetch_ok(self, path, **kw):
        response, body = self.fetch(path, **kw)
        self.assertEqual(response.status, 200, "%s: %r\n%s" % (path, body[:500],
                                                                 self.diagnostics()))
        return response, body

    def fetch_json(self, path, **kw):
        response, body = self.fetch_ok(path, **kw)
        self.assertEqual(response.headers.get("Content-Type"), "application/json", path)
        return response, json.loads(body.decode("utf-8"))

    def wait_file(self, path, timeout):
        """The content of a file a script writes, once it is there and not
        empty (file_put_contents() creates, then writes); None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with open(path) as f:
                    content = f.read()
                if content:
                    return content
            except FileNotFoundError:
                pass
            if time.monotonic() > deadline:
                return None
            time.sleep(0.02)

    def wait_workers(self, gone=(), timeout=5.0):
        """Wait until the server has its full set of workers again, none of
        them in gone; returns the pids (possibly short on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.server.pids()
            if len(pids) == self.workers and not set(pids) & set(gone):
                return pids
            if time.monotonic() > deadline:
                return pids
            time.sleep(0.05)


class BehaviourCase(PhpNginxCase):
    """Mixin: what a PHP site does, request by request."""

    # -- the PHP environment
    def test_php_runs_as_fpm_with_debians_fpm_ini(self):
        _, data = self.fetch_json("/env.php")
        self.assertEqual(data["sapi"], "fpm-fcgi")
        self.assertTrue(data["version"].startswith("8.2."), data)
        self.assertEqual(data["ini"], FPM_INI)
        self.assertTrue(data["opcache"], "opcache should be enabled, as Debian's php-fpm has it")
        self.assertIn(data["pid"], self.server.pids(), "the script ran in a pool worker")

    # -- requests
    def test_get_with_query_string(self):
        query = "a=1&b%5B%5D=x&b%5B%5D=y&c=%C3%A9t%C3%A9&d&e=a+b%26c"
        _, data = self.fetch_json("/query.php?" + query)
        self.assertEqual(data["get"], {"a": "1", "b": ["x", "y"], "c": "\u00e9t\u00e9", "d": "",
                                       "e": "a b&c"})
        self.assertEqual(data["query_string"], query)
        self.assertEqual(data["method"], "GET")
        self.assertEqual(data["request_uri"], "/query.php?" + query)

    def test_post_form(self):
        body = "name=J%C3%BCrgen&list%5B%5D=1&list%5B%5D=2&empty=&plus=1+2"
        _, data = self.fetch_json("/form.php", method="POST", body=body, headers={
            "Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(data["post"], {"name": "J\u00fcrgen", "list": ["1", "2"], "empty": "",
                                        "plus": "1 2"})
        self.assertEqual(data["input"], body)
        self.assertEqual(data["method"], "POST")
        self.assertEqual(data["content_type"], "application/x-www-form-urlencoded")
        self.assertEqual(data["content_length"], str(len(body)))

    def test_large_bodies_of_changing_sizes_read_back_exactly(self):
        # Bodies above 64 KiB reach the executor as a memfd the responder
        # reuses (one above 1 MiB takes a memfd of its own): shrinking and
        # growing from one request to the next, each must come back exactly.
        rng = random.Random(3)
        for size in (1 << 20, 100 << 10, (64 << 10) + 1, 700 << 10, (1 << 20) + 1, 300 << 10,
                     1 << 20, 70 << 10):
            with self.subTest(size=size):
                body = "".join(rng.choice("abcdefghij") for _ in range(size // 64)) * 64
                body += "z" * (size - len(body))
                _, data = self.fetch_json("/form.php", method="POST", body=body, headers={
                    "Content-Type": "text/plain"}, timeout=30)
                self.assertEqual(data["content_length"], str(size))
                self.assertEqual(len(data["input"]), size)
                self.assertTrue(data["input"] == body, "php://input differs at size %d" % size)

    def test_multipart_upload_20mb(self):
        payload = random.Random(20).randbytes(20 << 20)
        boundary = "----ringfpm-" + uuid.uuid4().hex
        body = b"".join([
            b"--%s\r\n" % boundary.encode(),
            b'Content-Disposition: form-data; name="note"\r\n\r\n',
            b"twenty megabytes\r\n",
            b"--%s\r\n" % boundary.encode(),
            b'Content-Disposition: form-data; name="file"; filename="big.bin"\r\n',
            b"Content-Type: application/octet-stream\r\n\r\n",
            payload, b"\r\n",
            b"--%s--\r\n" % boundary.encode(),
        ])
        _, data = self.fetch_json("/upload.php", method="POST", body=body, headers={
            "Content-Type": "multipart/form-data; boundary=" + boundary}, timeout=30)
        self.assertEqual(data["post"], {"note": "twenty megabytes"})
        self.assertEqual(data["files"], {"file": {
            "name": "big.bin", "type": "application/octet-stream", "size": len(payload),
            "error": 0, "uploaded": True, "md5": hashlib.md5(payload).hexdigest()}})

    def test_cookies_are_parsed_and_set(self):
        response, body = self.fetch_ok("/cookies.php", headers={
            "Cookie": "a=1; b=hello%20world; c=x+y"})
        # Cookie values are rawurldecode()d: %20 is a space, "+" stays "+".
        self.assertEqual(json.loads(body), {"a": "1", "b": "hello world", "c": "x+y"})
        self.assertEqual(response.headers.get_all("Set-Cookie"),
                         ["flavour=chocolate%20chip; path=/; HttpOnly"])

    def test_session_counter_follows_the_cookie(self):
        response, data = self.fetch_json("/session.php")
        self.assertEqual(data["count"], 1)
        self.assertEqual(data["name"], "PHPSESSID")
        self.assertEqual(data["save_path"], self.server.state_dir)
        sid = data["id"]
        self.assertEqual(response.headers.get_all("Set-Cookie"), ["PHPSESSID=%s; path=/" % sid])
        # Debian's php.ini: session.cache_limiter = nocache
        self.assertEqual(response.headers.get("Expires"), "Thu, 19 Nov 1981 08:52:00 GMT")
        self.assertEqual(response.headers.get("Cache-Control"),
                         "no-store, no-cache, must-revalidate")
        self.assertEqual(response.headers.get("Pragma"), "no-cache")
        self.assertTrue(os.path.exists(os.path.join(self.server.state_dir, "sess_" + sid)))
        for expected in (2, 3, 4):
            response, data = self.fetch_json("/session.php",
                                             headers={"Cookie": "PHPSESSID=" + sid})
            self.assertEqual((data["count"], data["id"]), (expected, sid))
            self.assertIsNone(response.headers.get("Set-Cookie"),
                              "no new cookie for a known session")
        # Without the cookie: a new session.
        _, data = self.fetch_json("/session.php")
        self.assertEqual(data["count"], 1)
        self.assertNotEqual(data["id"], sid)

    # -- status codes and headers
    def test_location_header_redirects_with_302(self):
        response, body = self.fetch("/redirect.php")
        self.assertEqual((response.status, response.reason), (302, "Found"))
        self.assertEqual(response.headers.get("Location"), "http://localhost/target?from=redirect")
        self.assertEqual(body, b"moved")

    def test_http_response_code_418(self):
        response, body = self.fetch("/status.php?code=418")
        # PHP's status map has no 418: it sends "Status: 418" and nginx adds no reason.
        self.assertEqual((response.status, response.reason), (418, ""))
        self.assertEqual(body, b"teapot")

    def test_status_header_451(self):
        response, body = self.fetch("/status.php?legal=1")
        self.assertEqual((response.status, response.reason),
                         (451, "Unavailable For Legal Reasons"))
        self.assertEqual(body, b"legal")

    def test_getallheaders_returns_the_clients_headers(self):
        _, data = self.fetch_json("/headers.php", headers={
            "X-Custom-Header": "custom value", "X-Another-One": "2",
            "User-Agent": "ringfpm-tests/1.0", "Accept-Language": "de-CH, en;q=0.5"})
        self.assertEqual(data.get("X-Custom-Header"), "custom value")
        self.assertEqual(data.get("X-Another-One"), "2")
        self.assertEqual(data.get("User-Agent"), "ringfpm-tests/1.0")
        self.assertEqual(data.get("Accept-Language"), "de-CH, en;q=0.5")
        # Debian's fastcgi_params sends HTTP_HOST = $host (no port), and nginx
        # then passes the client's Host header too, as a second HTTP_HOST:
        # the later one wins.
        self.assertEqual(data.get("Host"), "127.0.0.1:%d" % self.nginx.port)
        # fastcgi_params always sends CONTENT_TYPE and CONTENT_LENGTH (empty on a GET).
        self.assertEqual(data.get("Content-Type"), "")
        self.assertEqual(data.get("Content-Length"), "")

    def test_request_time_float_is_now(self):
        before = time.time()
        _, data = self.fetch_json("/time.php")
        after = time.time()
        self.assertIsInstance(data["float"], float)
        self.assertIsInstance(data["int"], int)
        self.assertEqual(data["int"], int(data["float"]))
        self.assertGreaterEqual(data["float"], before - 0.5)
        self.assertLessEqual(data["float"], after + 0.5)
        self.assertLessEqual(data["float"], data["now"])

    # -- responses
    def test_10mb_response(self):
        size = 10 << 20
        response, body = self.fetch_ok("/big.php?n=%d" % size, timeout=30)
        self.assertEqual(response.headers.get("Content-Type"), "application/octet-stream")
        self.assertEqual(len(body), size)
        self.assertTrue(body == big_body(size), "the 10 MB body came back changed")

    def test_flush_streams_incrementally(self):
        sock = socket.create_connection(("127.0.0.1", self.nginx.port), timeout=HTTP_TIMEOUT)
        try:
            sock.sendall(b"GET /stream.php HTTP/1.1\r\nHost: localhost\r\n"
                         b"Connection: close\r\n\r\n")
            start = time.monotonic()
            data = b""
            seen = {}
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                for marker in (b"FIRST-CHUNK", b"SECOND-CHUNK"):
                    if marker in data and marker not in seen:
                        seen[marker] = time.monotonic() - start
        finally:
            sock.close()
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        self.assertNotIn(b"x-accel-buffering", head.lower(), "nginx consumes X-Accel-*")
        self.assertIn(b"\r\nTransfer-Encoding: chunked", head)
        self.assertEqual(dechunk(body), b"FIRST-CHUNK\nSECOND-CHUNK\n")
        self.assertEqual(sorted(seen), [b"FIRST-CHUNK", b"SECOND-CHUNK"], data)
        first, second = seen[b"FIRST-CHUNK"], seen[b"SECOND-CHUNK"]
        self.assertLess(first, 0.4, "the first chunk should arrive at once (flush())")
        self.assertGreaterEqual(second - first, 0.3,
                                "the first chunk came %.3f s, the second %.3f s after the "
                                "request: not streamed" % (first, second))

    def test_fastcgi_finish_request_ends_the_response(self):
        token = uuid.uuid4().hex
        marker = os.path.join(self.server.state_dir, "finished-" + token)
        start = time.monotonic()
        response, body = self.fetch_ok("/finish.php?token=" + token)
        took = time.monotonic() - start
        self.assertEqual(body, b"sent before finish\n")
        self.assertLess(took, 1.5, "the response should end at fastcgi_finish_request(), "
                        "not when the script does (2 s later)")
        # The script went on: after its 2 s sleep it leaves the marker.
        content = self.wait_file(marker, 6.0)
        self.assertIsNotNone(content, "the script did not finish after fastcgi_finish_request()")
        self.assertGreaterEqual(time.monotonic() - start, 1.9)
        result = json.loads(content)
        self.assertTrue(result["first"], "the first fastcgi_finish_request() returns true")
        if PEER == "php-fpm":
            # php-fpm answers "is the connection closed?": on a kept-alive
            # connection (fastcgi_keep_conn on) it is not, so a second call
            # returns true again (and sends nothing more).
            self.assertEqual(result["second"], self.keepalive)
        else:
            # ringfpm: false on every later call, as documented (FPM-REFERENCE §6),
            # whatever nginx does with the connection.
            self.assertFalse(result["second"])

    def test_path_info(self):
        _, data = self.fetch_json("/info.php/a/b?x=1")
        self.assertEqual(data["PATH_INFO"], "/a/b")
        self.assertEqual(data["SCRIPT_NAME"], "/info.php")
        self.assertEqual(data["PHP_SELF"], "/info.php/a/b")
        self.assertEqual(data["SCRIPT_FILENAME"], os.path.join(WEBROOT, "info.php"))
        self.assertEqual(data["QUERY_STRING"], "x=1")
        self.assertEqual(data["REQUEST_URI"], "/info.php/a/b?x=1")
        # The snippet's try_files $fastcgi_script_name changed $uri.
        self.assertEqual(data["DOCUMENT_URI"], "/info.php")
        self.assertEqual(data["DOCUMENT_ROOT"], WEBROOT)
        # nginx split the path, so nothing was rewritten: no ORIG_* and no PATH_TRANSLATED.
        for key in ("ORIG_PATH_INFO", "ORIG_SCRIPT_NAME", "ORIG_SCRIPT_FILENAME",
                    "ORIG_PATH_TRANSLATED", "PATH_TRANSLATED"):
            self.assertIsNone(data[key], key)
        self.assertEqual(data["file"], os.path.join(WEBROOT, "info.php"))
        self.assertEqual(data["cwd"], WEBROOT, "PHP chdir()s to the script's dir")

    def test_path_info_not_split_by_nginx(self):
        # No split in nginx: SCRIPT_FILENAME=<root>/info.php/c/d and no
        # PATH_INFO param. cgi.fix_pathinfo=1 (Debian's default) makes php-fpm
        # find info.php, but with no PATH_INFO to take the tail from it sets
        # none, leaves SCRIPT_NAME untrimmed and PATH_TRANSLATED = DOCUMENT_ROOT.
        _, data = self.fetch_json("/direct/info.php/c/d?y=2")
        self.assertEqual(data["SCRIPT_FILENAME"], os.path.join(WEBROOT, "info.php"))
        self.assertEqual(data["ORIG_SCRIPT_FILENAME"], os.path.join(WEBROOT, "info.php/c/d"))
        self.assertIsNone(data["PATH_INFO"])
        self.assertEqual(data["PATH_TRANSLATED"], WEBROOT)
        self.assertEqual(data["SCRIPT_NAME"], "/info.php/c/d")
        self.assertEqual(data["PHP_SELF"], "/info.php/c/d")
        self.assertEqual(data["DOCUMENT_URI"], "/info.php/c/d")
        self.assertEqual(data["REQUEST_URI"], "/direct/info.php/c/d?y=2")
        self.assertEqual(data["QUERY_STRING"], "y=2")
        for key in ("ORIG_PATH_INFO", "ORIG_SCRIPT_NAME", "ORIG_PATH_TRANSLATED"):
            self.assertIsNone(data[key], key)
        self.assertEqual(data["file"], os.path.join(WEBROOT, "info.php"))

    # -- errors
    def test_missing_script_is_404_file_not_found(self):
        self.expected_errors = ["Primary script unknown"]
        response, body = self.fetch("/direct/missing.php")
        self.assertEqual(response.status, 404, body)
        self.assertEqual(body, b"File not found.\n")
        self.assertEqual(response.headers.get("Content-Type"), "text/html; charset=UTF-8")
        log = self.wait_nginx_log("Primary script unknown")
        self.assertIn('FastCGI sent in stderr: "Primary script unknown"', log)

    def test_missing_script_behind_try_files_is_nginxs_404(self):
        # The stock snippet's try_files answers before PHP is asked.
        response, body = self.fetch("/missing.php")
        self.assertEqual(response.status, 404)
        self.assertIn(b"<center>nginx", body)

    def test_txt_script_is_403_access_denied(self):
        self.expected_errors = ["has been denied (see security.limit_extensions)"]
        response, body = self.fetch("/direct/notphp.txt")
        self.assertEqual(response.status, 403, body)
        self.assertEqual(body, b"Access denied.\n")
        self.assertEqual(response.headers.get("Content-Type"), "text/html; charset=UTF-8")
        log = self.wait_nginx_log("security.limit_extensions")
        self.assertIn("FastCGI sent in stderr: \"Access to the script '%s' has been denied "
                      "(see security.limit_extensions)\"" % os.path.join(WEBROOT, "notphp.txt"),
                      log)

    def test_fatal_error_is_500_and_logged(self):
        self.expected_errors = ["PHP message: PHP Fatal error"]
        response, body = self.fetch("/fatal.php")
        self.assertEqual(response.status, 500, body)
        self.assertEqual(body, b"before the error\n")
        log = self.wait_nginx_log("PHP Fatal error")
        self.assertRegex(log, r'FastCGI sent in stderr: "PHP message: PHP Fatal error:  Uncaught '
                         r"Error: Call to undefined function undefined_function_xyz\(\) in "
                         + re.escape(os.path.join(WEBROOT, "fatal.php")) + r":3")

    def test_exit_mid_output(self):
        response, body = self.fetch("/exit.php")
        self.assertEqual(response.status, 200)
        self.assertEqual(body, b"output before exit\n")

    def test_memory_limit_exceeded_is_500_and_logged(self):
        self.expected_errors = ["Allowed memory size"]
        response, body = self.fetch("/memory.php")
        self.assertEqual(response.status, 500, body)
        # PHP drops its output buffer when a request dies of memory exhaustion.
        self.assertEqual(body, b"")
        log = self.wait_nginx_log("Allowed memory size")
        self.assertRegex(log, r"PHP message: PHP Fatal error:  Allowed memory size of 16777216 "
                         r"bytes exhausted \(tried to allocate 67112960 bytes\) in "
                         + re.escape(os.path.join(WEBROOT, "memory.php")) + " on line 6")
        # The worker survives its fatal error and serves the next request.
        self.fetch_json("/env.php")

    def test_worker_killed_mid_request(self):
        # php-fpm: nginx logs the broken upstream connection as an error.
        self.expected_errors = ["upstream prematurely closed", "Connection reset by peer"]
        if PEER != "php-fpm":
            # ringfpm: the responder survives, answers, and says why in FCGI_STDERR.
            self.expected_errors.append("FastCGI sent in stderr")
        token = uuid.uuid4().hex
        pid_file = os.path.join(self.server.state_dir, "pid-" + token)
        before = self.wait_workers()
        self.assertEqual(len(before), self.workers, "workers before: %r" % before)
        result = {}

        def client():
            try:
                start = time.monotonic()
                # POST: nginx never replays it. A GET whose cached (keepalive)
                # upstream connection breaks is sent again on a new one, and
                # would sleep in another worker.
                response, body = self.fetch("/sleep.php?token=" + token, method="POST",
                                            body=b"", headers={"Content-Length": "0"})
                result["answer"] = (response.status, body, time.monotonic() - start)
            except Exception as e:  # noqa: BLE001 - reported below
                result["answer"] = e

        thread = threading.Thread(target=client, daemon=True)
        thread.start()
        pid = self.wait_file(pid_file, 5.0)
        self.assertIsNotNone(pid, "sleep.php did not start\n" + self.diagnostics())
        pid = int(pid)
        self.assertIn(pid, self.server.pids(), "the script's pid is not a pool worker")
        os.kill(pid, signal.SIGKILL)
        thread.join(HTTP_TIMEOUT + 2)
        self.assertFalse(thread.is_alive(), "no answer after the worker was killed")
        answer = result["answer"]
        self.assertIsInstance(answer, tuple, "the client got %r" % (answer,))
        status, body, took = answer
        if PEER == "php-fpm":
            self.assertEqual(status, 502, body)
        else:
            # ringfpm: the responder survives its executor and may answer any 5xx itself.
            self.assertGreaterEqual(status, 500, body)
        self.assertLess(took, 8.0)
        self.assertIsNotNone(self.server.wait_log(
            r"\[pool www\] child %d exited on signal 9 \(SIGKILL\) after \d+\.\d+ seconds "
            r"from start" % pid, timeout=3.0, start=self.server_mark),
            "the master should log the SIGKILLed worker\n" + self.server.diagnostics())
        after = self.wait_workers(gone=[pid])
        self.assertNotIn(pid, after)
        self.assertEqual(len(after), self.workers,
                         "no replacement worker: %r\n%s" % (after, self.diagnostics()))
        for _ in range(2 * self.workers):
            self.fetch_json("/env.php")


class TcpKeepaliveTest(BehaviourCase, unittest.TestCase):
    listen = None
    keepalive = True


class TcpNoKeepaliveTest(BehaviourCase, unittest.TestCase):
    listen = None
    keepalive = False


class UnixKeepaliveTest(BehaviourCase, unittest.TestCase):
    listen = "unix"
    keepalive = True


class TerminateTimeoutTest(PhpNginxCase, unittest.TestCase):
    """request_terminate_timeout = 2s ends an endless script.

    Without upstream keepalive: php-fpm also terminates workers parked on an
    idle keep-alive connection once the timeout passes."""

    listen = None
    keepalive = False
    workers = 2
    pool_opts = {"request_terminate_timeout": "2s"}

    def test_endless_loop_is_terminated(self):
        self.expected_errors = ["upstream prematurely closed", "Connection reset by peer"]
        if PEER != "php-fpm":
            # ringfpm answers the request itself and says why in FCGI_STDERR.
            self.expected_errors.append("FastCGI sent in stderr")
        before = self.wait_workers()
        start = time.monotonic()
        response, body = self.fetch("/loop.php", timeout=10)
        took = time.monotonic() - start
        if PEER == "php-fpm":
            self.assertEqual(response.status, 502, body)
        else:
            # ringfpm may answer the timeout itself (any 5xx) instead of dropping the connection.
            self.assertGreaterEqual(response.status, 500, body)
        self.assertGreaterEqual(took, 1.9, "terminated before request_terminate_timeout")
        self.assertLess(took, 4.0, "request_terminate_timeout = 2s took %.2f s" % took)
        match = self.server.wait_log(
            r"\[pool www\] (?:child|executor) (\d+), script '([^']*)' \(request: \"GET "
            r"/loop\.php\"\) execution timed out \(\d+\.\d+ sec\), terminating",
            timeout=3.0, start=self.server_mark)
        self.assertIsNotNone(match, "no php-fpm style line `[pool www] child N, script '...' "
                             "(request: \"GET /loop.php\") execution timed out (S sec), "
                             "terminating` in the log\n" + self.server.diagnostics())
        pid = int(match.group(1))
        self.assertIn(pid, before)
        self.assertEqual(match.group(2), os.path.join(WEBROOT, "loop.php"))
        after = self.wait_workers(gone=[pid])
        self.assertEqual(len(after), self.workers, "no replacement: %r" % after)
        self.assertNotIn(pid, after)
        # The next requests are served.
        for _ in range(2 * self.workers):
            self.fetch_json("/env.php")

    def test_quick_requests_are_not_affected(self):
        _, data = self.fetch_json("/query.php?t=1")
        self.assertEqual(data["get"], {"t": "1"})


if __name__ == "__main__":
    unittest.main()
