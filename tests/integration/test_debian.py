"""Debian's stock php-fpm configuration, unchanged.

`ringfpm -y /etc/php/8.2/fpm/php-fpm.conf` reads Debian's php-fpm.conf and
its pool.d/www.conf as they ship (pid /run/php/php8.2-fpm.pid, the pool
`www` as www-data on /run/php/php8.2-fpm.sock owned by www-data), and a real
nginx with Debian's snippets/fastcgi-php.conf passes PHP to that socket.
`-t` succeeds; a page is served by an executor running as www-data under
the SAPI name fpm-fcgi; a reload keeps serving; the pid file is written and
removed.

Needs root (the pool switches to www-data, the socket lives in /run/php)
and Debian's php8.2-fpm package (scripts/setup installs it); skipped
otherwise, and when another FPM already answers on the stock socket.
"""

import http.client
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import harness
import nginx
import phpserver

CONF = "/etc/php/8.2/fpm/php-fpm.conf"
SOCK = "/run/php/php8.2-fpm.sock"
PID = "/run/php/php8.2-fpm.pid"
PAGE = """<?php
echo php_sapi_name(), " ", posix_getpwuid(posix_geteuid())['name'], " ", getmypid();
"""

SITE = """\
{user}daemon on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log notice;
events {{
    worker_connections 64;
}}
http {{
    access_log {prefix}/logs/access.log;
    client_body_temp_path {prefix}/temp/client_body;
    fastcgi_temp_path {prefix}/temp/fastcgi;
    proxy_temp_path {prefix}/temp/proxy;
    uwsgi_temp_path {prefix}/temp/uwsgi;
    scgi_temp_path {prefix}/temp/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {webroot};
        # Debian's sites-available/default, PHP section, uncommented
        location ~ \\.php$ {{
            include snippets/fastcgi-php.conf;
            fastcgi_pass unix:/run/php/php8.2-fpm.sock;
        }}
    }}
}}
"""

LINKS = {
    "fastcgi.conf": "/etc/nginx/fastcgi.conf",
    "fastcgi_params": "/etc/nginx/fastcgi_params",
    "snippets": "/etc/nginx/snippets",
}


def skip_reason():
    if os.geteuid() != 0:
        return "needs root: the stock pool runs as www-data on a socket in /run/php"
    if not os.path.exists(CONF):
        return "%s missing (Debian's php8.2-fpm package; scripts/setup installs it)" % CONF
    reason = phpserver.missing_reason("ringfpm")
    if reason:
        return reason
    if not nginx.available():
        return "nginx missing"
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(SOCK)
        return "another FPM already answers on %s" % SOCK
    except OSError:
        return None
    finally:
        probe.close()


def setUpModule():
    reason = skip_reason()
    if reason:
        raise unittest.SkipTest(reason)


class StockDebianTest(unittest.TestCase):
    def test_config_test_succeeds(self):
        out = subprocess.run([harness.binary_path(), "-y", CONF, "-t"], capture_output=True,
                             text=True, timeout=20)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("configuration file %s test is successful" % CONF, out.stderr + out.stdout)

    def test_serves_nginx_through_the_stock_socket(self):
        os.makedirs("/run/php", exist_ok=True)  # Debian's service unit makes it
        webroot = tempfile.mkdtemp(prefix="ringfpm-debian-")
        self.addCleanup(shutil.rmtree, webroot, True)
        os.chmod(webroot, 0o755)
        with open(os.path.join(webroot, "who.php"), "w") as f:
            f.write(PAGE)
        os.chmod(os.path.join(webroot, "who.php"), 0o644)
        out_path = os.path.join(webroot, "ringfpm.out")
        with open(out_path, "wb") as out:
            proc = subprocess.Popen([harness.binary_path(), "-F", "-O", "-y", CONF],
                                    stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)

        def output():
            with open(out_path, errors="replace") as f:
                return f.read()

        def stop():
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        self.addCleanup(stop)
        ready = harness.wait_until(lambda: os.path.exists(SOCK) and proc.poll() is None
                                   and "ready to handle connections" in output(), 10.0)
        self.assertTrue(ready, output())
        st = os.stat(SOCK)
        self.assertEqual(pwd.getpwuid(st.st_uid).pw_name, "www-data")
        with open(PID) as f:
            self.assertEqual(int(f.read().strip()), proc.pid)

        web = nginx.Nginx(SOCK, render=lambda prefix, port, upstream, keepalive: SITE.format(
            user=nginx.user_line(), prefix=prefix, port=port, webroot=webroot), links=LINKS)
        self.addCleanup(web.cleanup)
        web.start()

        def get():
            conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
            conn.request("GET", "/who.php")
            r = conn.getresponse()
            body = r.read().decode()
            conn.close()
            return r.status, body

        status, body = get()
        self.assertEqual(status, 200, body + output() + web.diagnostics())
        sapi, user, pid = body.split()
        self.assertEqual((sapi, user), ("fpm-fcgi", "www-data"))

        os.kill(proc.pid, signal.SIGUSR2)
        self.assertTrue(harness.wait_until(
            lambda: output().count("ready to handle connections") == 2, 10.0), output())
        time.sleep(0.3)
        status, body = get()
        self.assertEqual(status, 200, body + output())
        self.assertNotEqual(body.split()[2], pid, "served by the old generation after a reload")

        proc.terminate()
        self.assertEqual(proc.wait(10), 0, output())
        self.assertFalse(os.path.exists(PID), "pid file left behind")
        self.assertFalse(os.path.exists(SOCK), "socket left behind")


if __name__ == "__main__":
    unittest.main()
