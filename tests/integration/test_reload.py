"""Reload (SIGUSR2 / SIGHUP) with real PHP executors.

The master re-executes itself and keeps its pid; the responder keeps its
listen sockets and connections; a new generation of executors starts, the
old one finishes what it runs and exits. Watched from outside: the master's
pid, the executor pids (processes titled "ringfpm: pool"), the error log and
the responses of clients that never stop sending.

    under load       USR2 and HUP while clients send requests on kept and
                     new connections: every request answered 200
    in flight        a request running in an old executor completes; a new
                     request does not wait for it
    settings         php_admin_value and pm.max_children changes apply
    bad config       the running configuration and executors stay, the log
                     says why
    listen change    needs a new responder: served on the new address

ringfpm only. Skipped where phpserver says PHP cannot run (a sanitizer
build). Every test is bounded well under 15 s.
"""

import os
import signal
import threading
import time
import unittest

import fcgi
import harness
import phpserver
from test_pm import PmCase, params

wait_until = harness.wait_until


class Load:
    """Clients that keep sending pid.php until stopped: `kept` of them on
    one keep-alive connection each, `fresh` with a new connection per
    request. Every outcome is counted; a failure keeps its reason."""

    def __init__(self, server, kept=2, fresh=2, request=None, check=None):
        self.server = server
        self.request = request or params("pid.php")
        self.check = check or (lambda body: body.isdigit())
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.failures = []
        self.pids = set()
        self.threads = [threading.Thread(target=self._kept, daemon=True) for _ in range(kept)]
        self.threads += [threading.Thread(target=self._fresh, daemon=True) for _ in range(fresh)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(10)

    def _count(self, response=None, error=None):
        with self.lock:
            if error is None and response.status_code() == 200 and self.check(response.body):
                self.ok += 1
                if response.body.isdigit():
                    self.pids.add(int(response.body))
            else:
                self.failures.append(error or response)

    def _kept(self):
        conn = None
        while not self.stop_flag.is_set():
            try:
                if conn is None:
                    conn = self.server.connect(timeout=8)
                self._count(conn.request(self.request, keep_conn=True, timeout=8))
            except Exception as e:  # counted, the client carries on
                self._count(error=e)
                conn = None
        if conn is not None:
            conn.close()

    def _fresh(self):
        while not self.stop_flag.is_set():
            try:
                with self.server.connect(timeout=8) as conn:
                    self._count(conn.request(self.request, keep_conn=False, timeout=8))
            except Exception as e:
                self._count(error=e)


class ReloadCase(PmCase):
    def setUp(self):
        reason = phpserver.missing_reason("ringfpm")
        if reason:
            self.skipTest(reason)
    def reload(self, sig=signal.SIGUSR2):
        """Send sig to the master and wait for the new generation's
        "ready" line; returns the log offset before the signal."""
        mark = len(self.server.log())
        os.kill(self.server.proc.pid, sig)
        self.assertIsNotNone(self.server.wait_log(r"ready to handle connections", timeout=8,
                                                  start=mark), self.server.diagnostics())
        return mark

    def rewrite(self, **changes):
        """Change the pool's directives in the configuration file."""
        self.server.pools["www"].update(changes)
        self.server.write_config()


class ReloadTest(ReloadCase):
    def test_reload_under_load_loses_no_request(self):
        self.start({"pm": "static", "pm.max_children": "3"})
        first = set(self.wait_total(3))
        master = self.server.proc.pid
        load = Load(self.server).start()
        self.addCleanup(load.stop)
        time.sleep(0.5)
        generations = [first]
        for sig in (signal.SIGUSR2, signal.SIGHUP, signal.SIGUSR2):
            self.reload(sig)
            time.sleep(0.6)
            pids = set(self.wait_total(3, timeout=5))
            self.assertFalse(pids & generations[-1], "old executors still running: %r -> %r"
                             % (generations[-1], pids))
            generations.append(pids)
        time.sleep(0.3)
        load.stop()
        self.assertTrue(self.server.alive())
        self.assertEqual(self.server.proc.pid, master)
        self.assertEqual(load.failures, [], "%d ok, %d failed\n%s"
                         % (load.ok, len(load.failures), self.server.diagnostics()))
        self.assertGreater(load.ok, 50)
        # every generation served
        for g in generations:
            self.assertTrue(load.pids & g, "generation %r served nothing" % (g,))
        log = self.server.log()
        self.assertEqual(log.count("Reloading in progress"), 3, log)
        self.assertNotIn("WARNING", log.replace("not implemented by ringfpm yet", ""), log)

    def test_running_request_completes_and_does_not_hold_new_ones(self):
        self.start({"pm": "static", "pm.max_children": "2"})
        old = set(self.wait_total(2))
        slow = self.pending("sleep.php", "ms=1500")
        time.sleep(0.2)
        self.reload()
        began = time.monotonic()
        response = self.get_ok("pid.php")
        self.assertLess(time.monotonic() - began, 1.0, "a new request waited for the old one")
        self.assertNotIn(int(response.body), old)
        done = slow.result(timeout=5)
        self.assertOk(done, "the request running during the reload")
        self.assertIn(int(done.body), old, "it ran in an old executor")
        # the old generation is gone once its last request ended
        self.assertTrue(wait_until(lambda: not (set(self.pids()) & old), 3.0),
                        "old executors left: %r" % self.pids())

    def test_max_children_holds_across_generations(self):
        # php-fpm never runs more than pm.max_children workers of a pool. A
        # reload overlaps generations here, so an old executor still in a
        # request keeps its place until the request ends; the new generation
        # fills the rest at once and the owed place after.
        self.start({"pm": "static", "pm.max_children": "2"})
        old = set(self.wait_total(2))
        slow = self.pending("sleep.php", "ms=2500")
        time.sleep(0.2)
        self.reload()
        time.sleep(0.3)  # the idle old executor is retired at once
        response = self.get_ok("pid.php")
        self.assertNotIn(int(response.body), old, "served by the new generation")
        peak, seen = 0, []
        end = time.monotonic() + 1.2
        while time.monotonic() < end:
            pids = self.pids()
            seen.append(pids)
            peak = max(peak, len(pids))
            time.sleep(0.02)
        self.assertLessEqual(peak, 2, "more than pm.max_children executors: %r" % seen[-5:])
        done = slow.result(timeout=5)
        self.assertOk(done, "the request running during the reload")
        self.assertIn(int(done.body), old)
        new = set(self.wait_total(2, timeout=5))
        self.assertFalse(new & old, "the owed executor came once the old one ended")

    def test_changed_settings_apply(self):
        self.start({"pm": "static", "pm.max_children": "2",
                    "php_admin_value[memory_limit]": "64M"})
        self.wait_total(2)
        self.assertEqual(self.get_ok("ini.php").body.split(b"\n")[1], b"64M")
        self.rewrite(**{"pm.max_children": "3", "php_admin_value[memory_limit]": "96M"})
        self.reload()
        self.wait_total(3, timeout=5)
        self.assertEqual(self.get_ok("ini.php").body.split(b"\n")[1], b"96M")
        status = self.status()
        self.assertEqual(status["total processes"], 3, status)

    def test_status_shows_the_new_process_manager(self):
        # php-fpm's status page names the pool's pm as configured now.
        self.start({"pm": "static", "pm.max_children": "2"})
        self.wait_total(2)
        self.assertEqual(self.status()["process manager"], "static")
        self.rewrite(**{"pm": "dynamic", "pm.max_children": "3", "pm.start_servers": "1",
                        "pm.min_spare_servers": "1", "pm.max_spare_servers": "2"})
        self.reload()
        status = self.wait_status("process manager", "dynamic")
        self.assertEqual(status.get("process manager"), "dynamic", status)

    def test_bad_config_keeps_everything_running(self):
        self.start({"pm": "static", "pm.max_children": "2"})
        pids = sorted(self.wait_total(2))
        with open(self.server.conf_path, "a") as f:
            f.write("pm.max_children = lots\n")
        mark = len(self.server.log())
        os.kill(self.server.proc.pid, signal.SIGUSR2)
        self.assertIsNotNone(self.server.wait_log(
            r"reload: the new configuration does not load: the running configuration and "
            r"executors stay", timeout=8, start=mark), self.server.diagnostics())
        log = self.server.log()[mark:]
        self.assertIn("'lots' is not a valid number for 'pm.max_children'", log)
        self.assertTrue(self.server.alive())
        self.assertEqual(sorted(self.pids()), pids)
        self.get_ok("pid.php")
        # fixed: the next reload goes through
        self.server.write_config()
        self.reload()
        self.assertTrue(wait_until(lambda: not set(self.pids()) & set(pids), 5.0),
                        self.server.diagnostics())
        self.get_ok("pid.php")

    def test_listen_change_restarts_the_responder_on_the_same_sockets(self):
        # Two pools: "www" on a unix socket stays, "api" moves to another port.
        opts = {"executor.type": "php", "pm": "static", "pm.max_children": "1",
                "pm.status_path": "/status"}
        self.server = phpserver.RingFpmPhp(None, {"www": dict(opts, listen="unix"),
                                                  "api": dict(opts, listen=None)})
        self.addCleanup(self.server.cleanup)
        self.server.start()
        self.addCleanup(self._stop)
        sock_path = self.server.pools["www"]["listen"]
        inode = os.stat(sock_path).st_ino
        old_api = self.server.addresses["api"]
        # a request running in the old responder when the reload comes
        slow = self.pending("sleep.php", "ms=700")
        time.sleep(0.2)
        # clients of "www" never see the socket closed
        load = Load(self.server, kept=0, fresh=2).start()
        self.addCleanup(load.stop)
        port = harness.free_tcp_port()
        self.server.pools["api"]["listen"] = "127.0.0.1:%d" % port
        self.server.write_config()
        mark = self.reload()
        self.assertIn("starting a new responder on the sockets still configured",
                      self.server.log()[mark:])
        self.assertOk(slow.result(timeout=5), "the request the old responder was running")
        time.sleep(0.5)
        load.stop()
        self.assertEqual(load.failures, [], "%d ok\n%s" % (load.ok, self.server.diagnostics()))
        self.assertGreater(load.ok, 5)
        self.assertEqual(os.stat(sock_path).st_ino, inode, "the unix socket was bound again")
        self.server.addresses["api"] = ("127.0.0.1", port)
        with fcgi.Connection(("127.0.0.1", port), 5) as conn:
            self.assertOk(conn.request(params("pid.php"), keep_conn=False, timeout=5))
        with self.assertRaises(OSError):
            fcgi.connect(old_api, timeout=1).close()
        self.assertTrue(self.server.alive())
        # at exit for good, the unix socket's path goes
        self.server.stop()
        self.assertFalse(os.path.exists(sock_path))

    def test_dynamic_pool_reload_keeps_queue_moving(self):
        self.start({"pm": "dynamic", "pm.max_children": "4", "pm.start_servers": "1",
                    "pm.min_spare_servers": "1", "pm.max_spare_servers": "2"})
        self.wait_total(1)
        slow = [self.pending("sleep.php", "ms=800") for _ in range(3)]
        time.sleep(0.2)
        self.reload()
        fast = [self.pending("sleep.php", "ms=10") for _ in range(3)]
        for p in slow + fast:
            self.assertOk(p.result(timeout=8), "request across the reload")
        self.assertTrue(self.server.alive())


class EmergencyRestartTest(ReloadCase):
    def test_segfaults_within_the_interval_reload(self):
        self.start({"pm": "static", "pm.max_children": "2"},
                   {"emergency_restart_threshold": "2", "emergency_restart_interval": "10s"})
        first = self.wait_total(2)
        mark = len(self.server.log())
        os.kill(first[0], signal.SIGSEGV)
        time.sleep(0.3)
        self.assertNotIn("Reloading in progress", self.server.log()[mark:])
        os.kill(first[1], signal.SIGSEGV)
        self.assertIsNotNone(self.server.wait_log(
            r"failed processes threshold \(2 in 10 sec\) is reached, initiating reload",
            timeout=5, start=mark), self.server.diagnostics())
        self.assertIsNotNone(self.server.wait_log(r"Reloading in progress", timeout=5,
                                                  start=mark))
        self.assertIsNotNone(self.server.wait_log(r"generation 2 starts", timeout=5, start=mark),
                             self.server.diagnostics())
        self.wait_total(2, timeout=5)
        self.get_ok("pid.php")

    def test_off_by_default(self):
        self.start({"pm": "static", "pm.max_children": "2"})
        pids = self.wait_total(2)
        mark = len(self.server.log())
        for pid in pids:
            os.kill(pid, signal.SIGSEGV)
        self.wait_total(2, timeout=5)
        time.sleep(0.3)
        self.assertNotIn("Reloading in progress", self.server.log()[mark:])


class EngineReloadTest(unittest.TestCase):
    """The master's half of a reload (the handoff, adopting the responder,
    FPM_SOCKETS) with built-in pools only: no PHP, so this runs in the
    sanitizer build too."""

    def start(self, pools):
        self.server = harness.RingFpm({}, pools)
        self.addCleanup(self.server.cleanup)
        self.server.start()
        return self.server

    def reload(self):
        mark = len(self.server.log())
        os.kill(self.server.proc.pid, signal.SIGUSR2)
        self.assertIsNotNone(self.server.wait_log(r"ready to handle connections", timeout=8,
                                                  start=mark), self.server.diagnostics())
        return mark

    def test_reload_adopts_the_responder_and_loses_nothing(self):
        self.start({"www": {"listen": None}, "api": {"listen": "unix"}})
        master = self.server.proc.pid
        load = Load(self.server, kept=2, fresh=1, request=fcgi.default_params(),
                    check=lambda body: body == b"Hello, World!").start()
        self.addCleanup(load.stop)
        for _ in range(2):
            time.sleep(0.3)
            mark = self.reload()
            self.assertIn("carry on while generation", self.server.log()[mark:])
        time.sleep(0.3)
        load.stop()
        self.assertEqual(load.failures, [], "%d ok\n%s" % (load.ok, self.server.diagnostics()))
        self.assertGreater(load.ok, 20)
        self.assertEqual(self.server.proc.pid, master)
        self.server.stop()
        self.assertIsNone(self.server.sanitizer_report(), self.server.sanitizer_report())

    def test_new_responder_on_the_same_sockets(self):
        self.start({"www": {"listen": "unix"}, "api": {"listen": None}})
        path = self.server.address
        inode = os.stat(path).st_ino
        load = Load(self.server, kept=0, fresh=2, request=fcgi.default_params(),
                    check=lambda body: body == b"Hello, World!").start()
        self.addCleanup(load.stop)
        port = harness.free_tcp_port()
        self.server.pools["api"]["listen"] = "127.0.0.1:%d" % port
        self.server.write_config()
        time.sleep(0.2)
        mark = self.reload()
        self.assertIn("starting a new responder", self.server.log()[mark:])
        time.sleep(0.3)
        load.stop()
        self.assertEqual(load.failures, [], "%d ok\n%s" % (load.ok, self.server.diagnostics()))
        self.assertEqual(os.stat(path).st_ino, inode)
        r = fcgi.simple_request(("127.0.0.1", port), timeout=5)
        self.assertEqual(r.body, b"Hello, World!")
        self.server.stop()
        self.assertFalse(os.path.exists(path))
        self.assertIsNone(self.server.sanitizer_report(), self.server.sanitizer_report())


if __name__ == "__main__":
    unittest.main()
