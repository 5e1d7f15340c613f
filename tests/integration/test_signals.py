"""The master's signals with real PHP (FPM-REFERENCE §3.1).

    SIGQUIT   graceful stop: "Finishing ...", no new connection is accepted,
              idle keep-alive connections are closed, every request already
              received runs to the end and its response is written (also one
              queued behind a busy executor), then exit 0 - bounded by
              process_control_timeout
    SIGTERM   fast stop: running requests are cut, exit 0 at once
    SIGUSR1   error_log and access.log re-opened after a rotation (rename)

Each test starts its own ringfpm (phpserver.RingFpmPhp) and sends the signal
to the master; requests go over raw FastCGI to tests/integration/php/. The
graceful-stop tests run on both backends (io_uring where available, epoll).
ringfpm only (RF_PEER is ignored): php-fpm cuts running requests on QUIT when
process_control_timeout is 0. The PHP tests are skipped where PHP cannot run
(a sanitizer build); EngineQuit* use the built-in handler and run there too.
"""

import os
import pwd
import shutil
import signal
import socket
import stat
import tempfile
import time
import unittest

import fcgi
import harness
import phpserver
from test_pm import Pending, params


class SignalCase(unittest.TestCase):
    io_backend = "auto"

    def setUp(self):
        reason = phpserver.missing_reason("ringfpm")
        if reason:
            self.skipTest(reason)
        if self.io_backend == "io_uring" and not harness.io_uring_available():
            self.skipTest("io_uring is not available on this machine")

    def start(self, pool=None, global_opts=None):
        opts = {"listen": None, "executor.type": "php", "pm": "static", "pm.max_children": "2"}
        opts.update(pool or {})
        g = {"io.backend": self.io_backend}
        g.update(global_opts or {})
        self.server = phpserver.RingFpmPhp(g, {"www": opts})
        self.addCleanup(self.server.cleanup)
        self.server.start()
        return self.server

    def send_signal(self, sig):
        self.server.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """The master's exit status; fails when it is still running."""
        try:
            return self.server.proc.wait(timeout)
        except Exception:
            self.fail("the master did not exit within %.1f s\n%s"
                      % (timeout, self.server.diagnostics()))

    def assert_term_stops_at_once(self, running):
        t0 = time.monotonic()
        self.send_signal(signal.SIGTERM)
        self.assertEqual(self.wait_exit(3.0), 0, self.server.diagnostics())
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertIn("Terminating ...", self.server.log())
        self.assert_cut(running)

    def assert_cut(self, pending):
        """The request did not complete: the connection closed under it, or
        the responder answered it with an error as it stopped."""
        try:
            response = pending.result()
        except fcgi.FcgiError:
            return
        self.assertNotEqual(response.status_code(), 200, response.body)

    def assert_refused(self):
        with self.assertRaises(OSError, msg="a connection after the stop was accepted"):
            conn = fcgi.connect(self.server.address, timeout=1.0)
            # A connection the kernel completed but nobody will serve is no
            # better: it must see EOF or a reset, never an answer.
            try:
                conn.sendall(b"".join(fcgi.build_request(1, params("hello.php"))))
                data = conn.recv(100)
            finally:
                conn.close()
            if not data:
                raise ConnectionResetError("closed")


class QuitUringTest(SignalCase):
    io_backend = "io_uring"

    def test_quit_finishes_the_running_request_and_refuses_new_ones(self):
        self.start(global_opts={"process_control_timeout": "10s"})
        # An idle keep-alive connection: closed by the graceful stop.
        idle = self.server.connect(timeout=5.0)
        self.assertEqual(idle.request(params("hello.php")).status_code(), 200)
        running = Pending(self.server, "sleep.php", "ms=1000")
        time.sleep(0.3)  # the script is running
        t0 = time.monotonic()
        self.send_signal(signal.SIGQUIT)
        self.assertIsNotNone(self.server.wait_log(r"NOTICE: Finishing \.\.\."), self.server.log())
        # The idle connection is closed at once, long before the script ends.
        with self.assertRaises(fcgi.PeerClosed):
            idle.read_record(timeout=0.8)
        idle.close()
        self.assertTrue(self.server.alive(), "the master exited before the request ended")
        self.assert_refused()
        response = running.result()
        self.assertEqual(response.status_code(), 200, self.server.diagnostics())
        self.assertTrue(response.body.strip().isdigit(), response.body)
        self.assertEqual(self.wait_exit(5.0), 0, self.server.diagnostics())
        self.assertLess(time.monotonic() - t0, 5.0)
        log = self.server.log()
        self.assertIn("exiting, bye-bye!", log)
        self.assertNotIn("exited on signal", log)  # executors left cleanly (SIGQUIT)
        self.assertNotIn("ALERT", log)

    def test_quit_answers_a_request_queued_behind_a_busy_executor(self):
        self.start(pool={"pm.max_children": "1"},
                   global_opts={"process_control_timeout": "10s"})
        first = Pending(self.server, "sleep.php", "ms=800")
        time.sleep(0.2)
        second = Pending(self.server, "sleep.php", "ms=300")
        time.sleep(0.2)  # queued: the only executor is busy
        self.send_signal(signal.SIGQUIT)
        for pending in (first, second):
            response = pending.result()
            self.assertEqual(response.status_code(), 200, self.server.diagnostics())
            self.assertTrue(response.body.strip().isdigit(), response.body)
        self.assertEqual(self.wait_exit(5.0), 0, self.server.diagnostics())

    def test_quit_is_bounded_by_process_control_timeout(self):
        self.start(global_opts={"process_control_timeout": "1s"})
        running = Pending(self.server, "sleep.php", "ms=8000", timeout=15.0)
        time.sleep(0.3)
        t0 = time.monotonic()
        self.send_signal(signal.SIGQUIT)
        self.assertEqual(self.wait_exit(6.0), 0, self.server.diagnostics())
        self.assertLess(time.monotonic() - t0, 5.0)
        self.assert_cut(running)

    def test_quit_with_nothing_running_exits_at_once(self):
        self.start()
        t0 = time.monotonic()
        self.send_signal(signal.SIGQUIT)
        self.assertEqual(self.wait_exit(4.0), 0, self.server.diagnostics())
        self.assertLess(time.monotonic() - t0, 2.5)

    def test_term_cuts_the_running_request(self):
        self.start(global_opts={"process_control_timeout": "10s"})
        running = Pending(self.server, "sleep.php", "ms=5000", timeout=15.0)
        time.sleep(0.3)
        self.assert_term_stops_at_once(running)

    def test_term_during_quit_stops_at_once(self):
        self.start(global_opts={"process_control_timeout": "20s"})
        running = Pending(self.server, "sleep.php", "ms=8000", timeout=15.0)
        time.sleep(0.3)
        self.send_signal(signal.SIGQUIT)
        self.assertIsNotNone(self.server.wait_log(r"Finishing \.\.\."), self.server.log())
        self.assert_term_stops_at_once(running)


class QuitEpollTest(QuitUringTest):
    io_backend = "epoll"


class EngineQuitUringTest(SignalCase):
    """The graceful stop with the built-in handler (no PHP: runs in the
    sanitizer build too): a request half received when QUIT comes is still
    answered once its last record arrives."""

    io_backend = "io_uring"

    def setUp(self):
        if self.io_backend == "io_uring" and not harness.io_uring_available():
            self.skipTest("io_uring is not available on this machine")

    def test_quit_answers_a_request_still_arriving(self):
        self.server = harness.RingFpm({"io.backend": self.io_backend,
                                       "process_control_timeout": "10s"},
                                      {"www": {"listen": None}})
        self.addCleanup(self.server.cleanup)
        self.server.start()
        idle = self.server.connect(timeout=5.0)
        self.assertEqual(idle.request(fcgi.default_params("/hello")).status_code(), 200)
        half = self.server.connect(timeout=5.0)
        half.send(fcgi.build_request(1, fcgi.default_params("/hello"), terminate_stdin=False))
        time.sleep(0.2)
        self.send_signal(signal.SIGQUIT)
        self.assertIsNotNone(self.server.wait_log(r"NOTICE: Finishing \.\.\."), self.server.log())
        with self.assertRaises(fcgi.PeerClosed):
            idle.read_record(timeout=1.0)
        idle.close()
        self.assert_refused()
        self.assertTrue(self.server.alive())
        half.send(fcgi.stdin_records(1))
        self.assertEqual(half.read_response(1).status_code(), 200)
        self.assertTrue(half.wait_closed(2.0), "the connection stayed open after the stop")
        half.close()
        self.assertEqual(self.wait_exit(3.0), 0, self.server.diagnostics())
        self.assertIsNone(self.server.sanitizer_report(), self.server.sanitizer_report())


class EngineQuitEpollTest(EngineQuitUringTest):
    io_backend = "epoll"


class QuitThenReloadTest(SignalCase):
    def test_reload_during_a_graceful_stop_is_ignored(self):
        """php-fpm's state machine: finishing is not overridden by reloading."""
        self.start(global_opts={"process_control_timeout": "10s"})
        running = Pending(self.server, "sleep.php", "ms=1000")
        time.sleep(0.3)
        self.send_signal(signal.SIGQUIT)
        self.assertIsNotNone(self.server.wait_log(r"Finishing \.\.\."), self.server.log())
        self.send_signal(signal.SIGUSR2)
        self.assertEqual(running.result().status_code(), 200, self.server.diagnostics())
        self.assertEqual(self.wait_exit(5.0), 0, self.server.diagnostics())
        self.assertNotIn("Reloading in progress", self.server.log())


class QuitUnixSocketTest(SignalCase):
    def test_quit_removes_the_socket_and_finishes_the_request(self):
        self.start(pool={"listen": "unix"}, global_opts={"process_control_timeout": "10s"})
        path = self.server.address
        running = Pending(self.server, "sleep.php", "ms=1000")
        time.sleep(0.3)
        self.send_signal(signal.SIGQUIT)
        self.assertIsNotNone(self.server.wait_log(r"Finishing \.\.\."), self.server.log())
        harness.wait_until(lambda: not os.path.exists(path), 1.0)
        self.assertFalse(os.path.exists(path), "the socket file is still there")
        self.assertTrue(self.server.alive())
        with self.assertRaises(OSError):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
            finally:
                s.close()
        self.assertEqual(running.result().status_code(), 200, self.server.diagnostics())
        self.assertEqual(self.wait_exit(5.0), 0, self.server.diagnostics())


class ReopenTest(SignalCase):
    def test_usr1_reopens_the_error_log(self):
        self.start()
        log_path = self.server.log_path
        self.assertIsNotNone(self.server.wait_log("ready to handle connections"))
        os.rename(log_path, log_path + ".1")
        self.send_signal(signal.SIGUSR1)
        harness.wait_until(lambda: os.path.exists(log_path), 2.0)
        self.assertIsNotNone(self.server.wait_log(r"NOTICE: error log file re-opened"),
                             self.server.diagnostics())
        # New lines go to the new file, none to the rotated one.
        pid = self.server.pids()[0]
        os.kill(pid, signal.SIGKILL)
        self.assertIsNotNone(self.server.wait_log(r"child %d exited on signal 9" % pid),
                             self.server.diagnostics())
        with open(log_path + ".1") as f:
            old = f.read()
        self.assertIn("ready to handle connections", old)
        self.assertNotIn("re-opened", old)
        self.assertNotIn("child %d exited" % pid, old)
        self.assertEqual(self.server.stop(), 0)
        self.assertIn("exiting, bye-bye!", self.server.log())

    def rotate_access_log(self, pool):
        """Serve a request, rename access.log away, SIGUSR1, serve another:
        the second line must be in a new file at the old path."""
        tmp = tempfile.mkdtemp(prefix="signals-test-")
        os.chmod(tmp, 0o755)  # root's, like /var/log: an executor cannot create files there
        self.addCleanup(shutil.rmtree, tmp, True)
        access = os.path.join(tmp, "access.log")
        opts = {"access.log": access, "access.format": "%r%Q%q", "pm.max_children": "1"}
        opts.update(pool)
        self.start(pool=opts)
        conn = self.server.connect(timeout=5.0)
        self.assertEqual(conn.request(params("hello.php")).status_code(), 200)
        harness.wait_until(lambda: os.path.exists(access) and os.path.getsize(access), 2.0)
        os.rename(access, access + ".1")
        self.send_signal(signal.SIGUSR1)
        self.assertIsNotNone(self.server.wait_log(r"NOTICE: access log file re-opened"),
                             self.server.diagnostics())
        time.sleep(1.1)  # the executor looks at the path at most once a second
        self.assertEqual(conn.request(params("hello.php", "n=2")).status_code(), 200)
        conn.close()
        harness.wait_until(lambda: os.path.exists(access) and os.path.getsize(access), 2.0)
        with open(access + ".1") as f:
            self.assertEqual(f.read(), "/hello.php\n")
        self.assertTrue(os.path.exists(access), "no new access.log")
        with open(access) as f:
            self.assertEqual(f.read(), "/hello.php?n=2\n")
        return access

    def test_usr1_reopens_the_access_log(self):
        self.rotate_access_log({})

    def test_usr1_reopens_the_access_log_of_a_pool_user(self):
        if os.geteuid() != 0:
            self.skipTest("a pool user needs root")
        # The executor runs as nobody: the master creates the new file for it.
        access = self.rotate_access_log({"user": "nobody"})
        st = os.stat(access)
        self.assertEqual(st.st_uid, pwd.getpwnam("nobody").pw_uid)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)


if __name__ == "__main__":
    unittest.main()
