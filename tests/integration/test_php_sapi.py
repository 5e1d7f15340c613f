"""The fpm-fcgi SAPI (pm/sapi/rf_php.c) through its test driver rf-php-run.

Each test runs `rf-php-run SCRIPT_FILENAME NAME=VALUE... < body` from the
build dir in $RINGFPM_BUILD (default: the repo's build/, as harness.py; the binary is looked up as
<build>/pm/sapi/rf-php-run, then <build>/rf-php-run) and checks the raw CGI
output (header block + body) on stdout, the log lines (what php-fpm sends in
FCGI_STDERR) on stderr, and the exit status against what php-fpm 8.2 does.
A missing driver or a missing libphp8.2 fails: scripts/setup installs both.
"""

import json
import os
import subprocess
import unittest

import harness

PHP_DIR = harness.PHP_SCRIPTS

BUILD = harness.build_dir()


def _driver():
    return harness.built_binary("pm/sapi/rf-php-run", "rf-php-run")


class Result:
    def __init__(self, proc):
        self.status = proc.returncode
        out = proc.stdout
        head, sep, body = out.partition(b"\r\n\r\n")
        if not sep:
            head, body = out, b""
        self.raw = out
        self.header_lines = head.decode("latin-1").split("\r\n") if head else []
        self.body = body
        self.log = proc.stderr.decode("utf-8", "replace").splitlines()

    def header(self, name):
        name = name.lower() + ":"
        for line in self.header_lines:
            if line.lower().startswith(name):
                return line.split(":", 1)[1].strip()
        return None

    def json(self):
        return json.loads(self.body.decode("utf-8"))


class PhpSapiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.skip_if_php_cannot_start(_driver())

    def run_php(self, script, *params, body=b"", opts=(), env=None):
        driver = _driver()
        self.assertIsNotNone(driver, "rf-php-run not built in %s" % BUILD)
        raw = script.startswith("/") or script == "-" or "://" in script
        path = script if raw else os.path.join(PHP_DIR, script)
        proc = subprocess.run([driver, *opts, path, *params], input=body,
                              capture_output=True, timeout=60, env=env)
        return Result(proc)

    def test_sapi_name_is_fpm_fcgi(self):
        r = self.run_php("sapi.php")
        self.assertEqual(r.status, 0, r.log)
        data = r.json()
        self.assertEqual(data["sapi"], "fpm-fcgi")
        self.assertEqual(data["sapi_name"], "fpm-fcgi")
        self.assertTrue(data["fpm_get_status"])

    def test_hello(self):
        r = self.run_php("hello.php")
        self.assertEqual(r.status, 0)
        # 200 with no explicit status: no Status line at all, as php-fpm
        self.assertEqual(r.header_lines, ["Content-type: text/html; charset=UTF-8"])
        self.assertEqual(r.body, b"Hello, World!")
        self.assertEqual(r.raw, b"Content-type: text/html; charset=UTF-8\r\n\r\nHello, World!")

    def test_http_response_code_404_gives_status_line(self):
        r = self.run_php("headers.php", "QUERY_STRING=mode=404")
        self.assertEqual(r.header_lines[0], "Status: 404 Not Found")
        self.assertEqual(r.body, b"not here")

    def test_location_gives_302(self):
        r = self.run_php("headers.php", "QUERY_STRING=mode=redirect")
        self.assertEqual(r.header_lines[0], "Status: 302 Found")
        self.assertEqual(r.header("Location"), "/elsewhere")

    def test_script_status_header_wins(self):
        r = self.run_php("headers.php", "QUERY_STRING=mode=status")
        self.assertEqual(r.header_lines[0], "Status: 299 Custom")
        self.assertEqual(sum(1 for h in r.header_lines if h.startswith("Status:")), 1)

    def test_http_status_line_translated(self):
        r = self.run_php("headers.php", "QUERY_STRING=mode=statusline")
        self.assertEqual(r.header_lines[0], "Status: 503 Service Unavailable")

    def test_304_drops_content_type(self):
        r = self.run_php("headers.php", "QUERY_STRING=mode=304")
        self.assertEqual(r.header_lines, ["Status: 304 Not Modified"])

    def test_set_cookie(self):
        r = self.run_php("headers.php", "QUERY_STRING=mode=cookie")
        self.assertEqual(r.header("Set-Cookie"), "sid=abc123; path=/; HttpOnly")
        self.assertEqual(r.header("X-Custom"), "yes")
        self.assertIsNone(r.header("Status"))

    def test_server_keys_from_params(self):
        r = self.run_php("server.php", "DOCUMENT_ROOT=" + PHP_DIR, "SCRIPT_NAME=/server.php",
                         "REQUEST_URI=/server.php?x=1", "QUERY_STRING=x=1",
                         "HTTP_HOST=example.test", "HTTP_X_CUSTOM=abc", "SERVER_PORT=8080",
                         "HTTP_AUTHORIZATION=Basic dXNlcjpwYXNz")
        s = r.json()
        self.assertEqual(s["SCRIPT_FILENAME"], os.path.join(PHP_DIR, "server.php"))
        self.assertEqual(s["HTTP_HOST"], "example.test")
        self.assertEqual(s["HTTP_X_CUSTOM"], "abc")
        self.assertEqual(s["SERVER_PORT"], "8080")
        self.assertEqual(s["QUERY_STRING"], "x=1")
        self.assertEqual(s["REQUEST_METHOD"], "GET")
        self.assertEqual(s["PHP_SELF"], "/server.php")
        self.assertEqual(s["FCGI_ROLE"], "RESPONDER")
        self.assertEqual(s["PHP_AUTH_USER"], "user")
        self.assertEqual(s["PHP_AUTH_PW"], "pass")
        self.assertIsInstance(s["REQUEST_TIME_FLOAT"], float)
        self.assertIn("REQUEST_TIME", s)
        # the process environment is under the params, as in php-fpm
        self.assertIn("PATH", s)
        # params are iterated newest first, like php-fpm's fcgi_hash
        keys = list(s)
        self.assertLess(keys.index("HTTP_AUTHORIZATION"), keys.index("SCRIPT_FILENAME"))
        self.assertLess(keys.index("SCRIPT_FILENAME"), keys.index("FCGI_ROLE"))

    def test_many_repeated_and_large_params(self):
        # php-fpm's fcgi_hash: a repeated name keeps its first place and
        # takes the last value; hundreds of names share 128 buckets; a
        # value larger than the table's 16 KiB string chunks.
        many = ["HTTP_X_N%d=v%d" % (i, i) for i in range(400)]
        big = "b" * 40000
        r = self.run_php("server.php", "HTTP_X_DUP=first", *many, "HTTP_X_BIG=" + big,
                         "HTTP_X_DUP=last", opts=("-r", "2"))
        self.assertEqual(r.log.count("exit_status=0"), 2, r.log)
        s, _ = json.JSONDecoder().raw_decode(r.body.decode())
        for i in range(400):
            self.assertEqual(s["HTTP_X_N%d" % i], "v%d" % i)
        self.assertEqual(s["HTTP_X_BIG"], big)
        self.assertEqual(s["HTTP_X_DUP"], "last")
        keys = list(s)
        self.assertGreater(keys.index("HTTP_X_DUP"), keys.index("HTTP_X_N0"),
                           "newest first: the repeated name stays where it first came")
        # the second request (same process) sees the same table, rebuilt
        self.assertEqual(r.raw.count(big.encode()), 2)

    def test_path_info_split_from_script_filename(self):
        full = os.path.join(PHP_DIR, "server.php/extra/more")
        # Apache-style: PATH_INFO carries the script too; php-fpm trims it
        r = self.run_php(full, "DOCUMENT_ROOT=" + PHP_DIR, "SCRIPT_NAME=/server.php/extra/more",
                         "PATH_INFO=/server.php/extra/more")
        s = r.json()
        self.assertEqual(s["ORIG_PATH_INFO"], "/server.php/extra/more")
        self.assertEqual(s["SCRIPT_FILENAME"], os.path.join(PHP_DIR, "server.php"))
        self.assertEqual(s["ORIG_SCRIPT_FILENAME"], full)
        self.assertEqual(s["PATH_INFO"], "/extra/more")
        self.assertEqual(s["SCRIPT_NAME"], "/server.php")
        self.assertEqual(s["ORIG_SCRIPT_NAME"], "/server.php/extra/more")
        self.assertEqual(s["PATH_TRANSLATED"], PHP_DIR + "/extra/more")
        self.assertEqual(s["PHP_SELF"], "/server.php/extra/more")

    def test_path_info_without_param_keeps_php_self(self):
        # php-fpm [observed]: /docroot/info.php/foo/bar => PHP_SELF=/info.php/foo/bar
        full = os.path.join(PHP_DIR, "server.php/foo/bar")
        r = self.run_php(full, "DOCUMENT_ROOT=" + PHP_DIR, "SCRIPT_NAME=/server.php/foo/bar")
        s = r.json()
        self.assertEqual(s["SCRIPT_FILENAME"], os.path.join(PHP_DIR, "server.php"))
        self.assertEqual(s["ORIG_SCRIPT_FILENAME"], full)
        self.assertEqual(s["PHP_SELF"], "/server.php/foo/bar")

    def test_nginx_style_split_unchanged(self):
        r = self.run_php("server.php", "DOCUMENT_ROOT=" + PHP_DIR, "SCRIPT_NAME=/server.php",
                         "PATH_INFO=/extra")
        s = r.json()
        self.assertEqual(s["PHP_SELF"], "/server.php/extra")
        self.assertEqual(s["PATH_INFO"], "/extra")
        self.assertNotIn("ORIG_SCRIPT_FILENAME", s)

    def test_apache_proxy_script_filename(self):
        r = self.run_php("proxy:fcgi://127.0.0.1:9000" + PHP_DIR + "/server.php/pi?x=1",
                         "SCRIPT_NAME=/server.php/pi")
        s = r.json()
        self.assertEqual(s["SCRIPT_FILENAME"], os.path.join(PHP_DIR, "server.php"))
        self.assertEqual(s["PATH_INFO"], "/pi")
        self.assertEqual(s["SCRIPT_NAME"], "/server.php")

    def test_missing_script_404(self):
        r = self.run_php("does-not-exist.php")
        self.assertEqual(r.header_lines[0], "Status: 404 Not Found")
        self.assertEqual(r.header("Content-type"), "text/html; charset=UTF-8")
        self.assertEqual(r.body, b"File not found.\n")
        self.assertIn("Primary script unknown", r.log)
        self.assertEqual(r.status, 0)

    def test_no_script_filename_404(self):
        r = self.run_php("-")
        self.assertEqual(r.header_lines[0], "Status: 404 Not Found")
        self.assertEqual(r.body, b"File not found.\n")

    def test_dotdot_path_404(self):
        r = self.run_php(PHP_DIR + "/../php/hello.php")
        self.assertEqual(r.header_lines[0], "Status: 404 Not Found")
        self.assertEqual(r.body, b"File not found.\n")

    def test_limit_extensions_403(self):
        r = self.run_php("notphp.txt")
        self.assertEqual(r.header_lines[0], "Status: 403 Forbidden")
        self.assertEqual(r.body, b"Access denied.\n")
        self.assertTrue(any("has been denied (see security.limit_extensions)" in l
                            for l in r.log), r.log)

    def test_limit_extensions_empty_allows_all(self):
        r = self.run_php("notphp.txt", opts=("-x", ""))
        self.assertIsNone(r.header("Status"))
        self.assertEqual(r.body, b"not php\n")

    def test_post_form_fields(self):
        body = b"a=1&b=hello+world&c%5B%5D=x"
        r = self.run_php("post.php", "REQUEST_METHOD=POST",
                         "CONTENT_TYPE=application/x-www-form-urlencoded",
                         "CONTENT_LENGTH=%d" % len(body), "HTTP_COOKIE=c1=v1; c2=v2", body=body)
        data = r.json()
        self.assertEqual(data["post"], {"a": "1", "b": "hello world", "c": ["x"]})
        self.assertEqual(data["input"], body.decode())
        self.assertEqual(data["cookie"], {"c1": "v1", "c2": "v2"})

    def test_multipart_upload(self):
        b = b"XyZ"
        body = (b"--" + b + b"\r\nContent-Disposition: form-data; name=\"f\"; filename=\"t.txt\"\r\n"
                b"Content-Type: text/plain\r\n\r\nfile body\r\n--" + b +
                b"\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\nv\r\n--" + b + b"--\r\n")
        r = self.run_php("post.php", "REQUEST_METHOD=POST",
                         "CONTENT_TYPE=multipart/form-data; boundary=XyZ",
                         "CONTENT_LENGTH=%d" % len(body), body=body)
        data = r.json()
        self.assertEqual(data["post"], {"k": "v"})
        self.assertEqual(data["files"]["f"]["name"], "t.txt")
        self.assertEqual(data["files"]["f"]["size"], 9)

    def test_fatal_error_exit_255_and_log(self):
        r = self.run_php("fatal.php")
        self.assertEqual(r.status, 255)
        self.assertTrue(any(l.startswith("PHP message: PHP Fatal error:") for l in r.log), r.log)
        # headers not sent yet (output_buffering) => PHP answers 500, as php-fpm
        self.assertEqual(r.header_lines[0], "Status: 500 Internal Server Error")

    def test_exit_status(self):
        r = self.run_php("exit.php")
        self.assertEqual(r.status, 3)
        self.assertEqual(r.body, b"bye")
        self.assertIn("exit_status=3", r.log)

    def test_fastcgi_finish_request(self):
        r = self.run_php("finish.php")
        self.assertEqual(r.body, b"sent before finish")
        self.assertIn("fastcgi_finish_request", r.log)
        self.assertIn("PHP message: after finish: first=true second=false", r.log)

    def test_opcache_enabled(self):
        # Debian's fpm conf.d loads opcache; opcache.enable=1 applies to fpm-fcgi
        r = self.run_php("sapi.php")
        self.assertIs(r.json()["opcache"], True)
        r = self.run_php("sapi.php", opts=("-d", "opcache.enable=0"))
        self.assertIs(r.json()["opcache"], False)

    def test_getallheaders_and_getenv(self):
        r = self.run_php("sapi.php", "HTTP_X_TEST=yo", "HTTP_ACCEPT_LANGUAGE=en",
                         "CONTENT_TYPE=text/plain")
        data = r.json()
        self.assertEqual(data["headers"],
                         {"Content-Type": "text/plain", "Accept-Language": "en", "X-Test": "yo"})
        self.assertEqual(data["getenv"], "yo")

    def test_php_value_and_admin_value(self):
        r = self.run_php("ini.php", "PHP_VALUE=memory_limit=99M",
                         "PHP_ADMIN_VALUE=precision=5", opts=("-d", "precision=7"))
        lines = r.body.decode().splitlines()
        self.assertEqual(lines[0], "5")
        self.assertEqual(lines[1], "99M")
        # PHP_VALUE is not admin: ini_set still works (returns the old value)
        self.assertEqual(lines[2], 'string(3) "99M"')

    def test_php_value_rejects_sections(self):
        r = self.run_php("ini.php", "PHP_VALUE=[sec]\nprecision=3")
        self.assertIn("Passing INI directive through FastCGI: only classic entries are allowed",
                      r.log)

    def test_no_ini(self):
        r = self.run_php("sapi.php", opts=("-n",))
        data = r.json()
        self.assertEqual(data["sapi"], "fpm-fcgi")
        self.assertIs(data["opcache"], False)  # no conf.d => no opcache

    def test_no_request_method_headers_only(self):
        r = self.run_php("hello.php", "REQUEST_METHOD=")
        # an empty method is still a method; only a missing one is special
        self.assertEqual(r.body, b"Hello, World!")

    def test_requests_repeat_in_one_process(self):
        # an executor runs many requests; the second hello comes from opcache
        r = self.run_php("hello.php", opts=("-r", "3"))
        self.assertEqual(r.raw.count(b"Hello, World!"), 3)
        self.assertEqual(r.log.count("exit_status=0"), 3)
        r = self.run_php("fatal.php", opts=("-r", "2"))
        self.assertEqual(r.log.count("exit_status=255"), 2)

    def test_working_directory_as_php_fpm(self):
        # php-fpm: the script runs in its own directory; shutdown functions
        # run where the process was, even after the script chdir()s away,
        # and the next request starts over the same way.
        import tempfile
        home = tempfile.mkdtemp(prefix="rf-cwd-")
        try:
            driver = _driver()
            proc = subprocess.run([driver, "-r", "3", os.path.join(PHP_DIR, "sub", "cwd.php")],
                                  capture_output=True, timeout=60, cwd=home)
            r = Result(proc)
            self.assertEqual(r.log.count("exit_status=0"), 3, r.log)
            want = "%s\n%s\n" % (os.path.join(PHP_DIR, "sub"), os.path.realpath(home))
            self.assertEqual(r.raw.decode().count(want), 3, r.raw)
        finally:
            os.rmdir(home)

    def test_php_admin_value_locks_ini_set(self):
        r = self.run_php("ini.php", "PHP_ADMIN_VALUE=memory_limit=77M")
        self.assertEqual(r.body.decode().splitlines()[1:], ["77M", "bool(false)"])


if __name__ == "__main__":
    unittest.main()
