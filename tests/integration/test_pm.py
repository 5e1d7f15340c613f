"""The process manager and the dispatcher with real PHP executors.

Each test starts its own ringfpm (phpserver.RingFpmPhp: harness.RingFpm with
`executor.type = php`) and watches it from outside: the status page
(pm.status_path?json, answered by the responder even when every executor is
busy) and the executor processes (children of the master whose command line
starts with "ringfpm: pool"). Requests go over raw FastCGI (fcgi.py) to the
scripts in tests/integration/php/: sleep.php?ms=N, pid.php, append.php?file=.

    pm = static     max_children executors, a killed one replaced
    pm = dynamic    start_servers, spawns under a burst up to max_children,
                    retires idle executors above max_spare one a second
    pm = ondemand   none at start, one per need, retired after
                    pm.process_idle_timeout
    pm.max_requests an executor is replaced after that many requests
    the queue       request.queue_max (503 / FCGI_OVERLOADED),
                    request.queue_timeout, a client gone while queued
    failures        an executor killed under a request (502),
                    request_terminate_timeout (502 and php-fpm's log line)

ringfpm only (RF_PEER is ignored): the queue and most status fields are
ringfpm's. Skipped where phpserver says PHP cannot run (a sanitizer build).
Every test is bounded well under 10 s.
"""

import hashlib
import os
import random
import re
import shutil
import signal
import tempfile
import threading
import time
import unittest

import fcgi
import harness
import phpserver

STATUS_PATH = "/status"
PING_PATH = "/ping"


def setUpModule():
    reason = phpserver.missing_reason("ringfpm")
    if reason:
        raise unittest.SkipTest(reason)


def params(script, query=""):
    """What a web server sends for GET /script?query (script in php/)."""
    uri = "/" + script + ("?" + query if query else "")
    return [
        ("SCRIPT_NAME", "/" + script),
        ("SCRIPT_FILENAME", os.path.join(harness.PHP_SCRIPTS, script)),
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", uri),
        ("QUERY_STRING", query),
    ]


wait_until = harness.wait_until


class Pending:
    """A request sent on its own connection whose response is read later
    (request() in a thread, so many can wait at once)."""

    def __init__(self, server, script, query="", timeout=8.0):
        self.conn = server.connect(timeout=timeout)
        self.sent_at = time.monotonic()
        self.response = None
        self.error = None
        self.took = None
        self.conn.send(fcgi.build_request(1, params(script, query), keep_conn=False))
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        try:
            self.response = self.conn.read_response(1)
        except Exception as e:  # reported by result()
            self.error = e
        self.took = time.monotonic() - self.sent_at
        self.conn.close()

    def done(self):
        return not self._thread.is_alive()

    def result(self, timeout=8.0):
        """The Response; raises what reading it raised."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError("no response within %.1f s" % timeout)
        if self.error:
            raise self.error
        return self.response

    def close(self):
        self.conn.close()


class PmCase(unittest.TestCase):
    """One ringfpm per test; helpers to look at it."""

    def start(self, pool, global_opts=None):
        """Start ringfpm with one PHP pool "www" (pool: its directives),
        stopped and removed when the test ends."""
        opts = {"listen": None, "executor.type": "php", "pm.status_path": STATUS_PATH,
                "ping.path": PING_PATH}
        opts.update(pool)
        self.server = phpserver.RingFpmPhp(global_opts, {"www": opts})
        self.addCleanup(self.server.cleanup)
        self.server.start()
        self.addCleanup(self._stop)
        return self.server

    def _stop(self):
        if self.server.proc is not None:
            self.server.stop()

    def status(self):
        return self.server.status(timeout=3.0)

    def pids(self):
        return self.server.pids()

    def get(self, script, query="", timeout=8.0):
        """One request on a fresh connection; returns the Response."""
        with self.server.connect(timeout=timeout) as conn:
            return conn.request(params(script, query), keep_conn=False, timeout=timeout)

    def get_ok(self, script, query="", timeout=8.0):
        response = self.get(script, query, timeout)
        self.assertOk(response, script)
        return response

    def assertOk(self, response, what=""):
        self.assertEqual(response.protocol_status, fcgi.REQUEST_COMPLETE,
                         "%s: %r\n%s" % (what, response, self.server.diagnostics()))
        self.assertEqual(response.status_code(), 200,
                         "%s: %r\n%s" % (what, response, self.server.diagnostics()))
        self.assertEqual(response.app_status, 0, "%s: %r" % (what, response))

    def wait_status(self, key, value, timeout=3.0):
        """Wait until status[key] == value; returns the last status."""
        last = {}

        def check():
            last.update(self.status())
            return last.get(key) == value
        wait_until(check, timeout, 0.05)
        return last

    def wait_total(self, n, timeout=3.0):
        """Wait until the status says n (> 0) executors and n are alive;
        returns their pids."""
        def check():
            pids = self.pids()
            return len(pids) == n and self.status()["total processes"] == n and pids
        pids = wait_until(check, timeout, 0.05)
        self.assertTrue(pids, "expected %d executors, have %r, status %r\n%s"
                        % (n, self.pids(), self.status(), self.server.diagnostics()))
        return pids

    def pending(self, script, query="", timeout=8.0):
        p = Pending(self.server, script, query, timeout)
        self.addCleanup(p.close)
        return p


class ProcessMaxTest(PmCase):
    def test_process_max_caps_executors_over_all_pools(self):
        self.start({"pm": "static", "pm.max_children": "3"}, {"process.max": "2"})
        pids = self.wait_total(2)
        self.assertIsNotNone(self.server.wait_log(
            r"WARNING: The maximum number of processes has been reached\. Please review your "
            r"configuration and consider raising 'process\.max'", timeout=3),
            self.server.diagnostics())
        time.sleep(0.3)
        self.assertEqual(len(self.pids()), 2)
        # a dead one is still replaced, within the cap
        os.kill(pids[0], signal.SIGKILL)
        replaced = wait_until(lambda: len(self.pids()) == 2 and pids[0] not in self.pids(), 3.0)
        self.assertTrue(replaced, "%r\n%s" % (self.pids(), self.server.diagnostics()))
        self.get_ok("pid.php")

    def test_negative_process_max_is_refused(self):
        server = phpserver.RingFpmPhp({"process.max": "-1"},
                                      {"www": {"executor.type": "php", "pm": "static",
                                               "pm.max_children": "1"}})
        self.addCleanup(server.cleanup)
        out = server.config_test()
        self.assertEqual(out.returncode, 78, out.stderr)
        self.assertIn("process_max can't be negative", out.stderr + out.stdout)


class StatusListenTest(PmCase):
    """pm.status_listen: a socket of its own for the pool's status and ping
    (php-fpm's hidden "<pool>_status" pool), answered while every executor
    is busy; anything else there is a 404."""

    def test_status_and_ping_on_their_own_socket(self):
        port = harness.free_tcp_port()
        self.start({"pm": "static", "pm.max_children": "1",
                    "pm.status_listen": "127.0.0.1:%d" % port})
        self.wait_total(1)
        address = ("127.0.0.1", port)
        busy = self.pending("sleep.php", "ms=1500")
        self.assertTrue(wait_until(lambda: self.status()["active processes"] == 1, 2.0))
        status = harness.fetch_status(address, STATUS_PATH, timeout=2)
        self.assertEqual(status["pool"], "www")
        self.assertEqual(status["active processes"], 1)
        self.assertEqual(status["total processes"], 1)
        full = fcgi.simple_request(address, STATUS_PATH, "json&full", timeout=2)
        self.assertEqual(full.status_code(), 200)
        self.assertIn(b'"script":', full.body)
        ping = fcgi.simple_request(address, PING_PATH, "", timeout=2)
        self.assertEqual(ping.body, b"pong")
        other = fcgi.simple_request(address, "/pid.php", "", timeout=2)
        self.assertEqual(other.status_code(), 404)
        self.assertEqual(other.body, b"File not found.\n")
        self.assertOk(busy.result(), "the request that kept the executor busy")
        # both listeners count towards the pool's "accepted conn"
        before = self.status()["accepted conn"]
        harness.fetch_status(address, STATUS_PATH)
        self.assertGreater(self.status()["accepted conn"], before + 1)


class AppArmorTest(PmCase):
    def test_a_hat_that_cannot_be_entered_is_said(self):
        # AppArmor off (this machine): the query fails; on: the change to
        # the hat "a" that no profile has fails. Either way the executor
        # says why before it ends (php-fpm's children end silently).
        self.start({"pm": "static", "pm.max_children": "1", "apparmor_hat": "a"})
        line = self.server.wait_log(
            r"ERROR: \[pool www\] failed to (query apparmor confinement\. Please check if "
            r"\"/proc/\*/attr/current\" is read and writeable\.|change to new confinement "
            r"\(\S+//a\))", timeout=3)
        self.assertIsNotNone(line, self.server.diagnostics())
        self.assertNotIn("not implemented", self.server.log())
        self.assertTrue(self.server.alive())


class FinishRequestTest(PmCase):
    """After fastcgi_finish_request() the client has its answer, but the
    executor is still running the script: it is busy (status), gets no new
    request until the script returns, and request_terminate_timeout applies
    there only with request_terminate_timeout_track_finished."""

    def test_an_executor_still_running_after_finish_gets_no_request(self):
        self.start({"pm": "static", "pm.max_children": "2"})
        self.wait_total(2)
        began = time.monotonic()
        first = self.get_ok("finish_then_work.php", "ms=1500")
        self.assertLess(time.monotonic() - began, 1.0, "the answer waited for the script")
        busy_pid = int(first.body)
        status = self.wait_status("active processes", 1, timeout=1.0)
        self.assertEqual(status["active processes"], 1, status)
        # the other executor answers at once, and every time
        for _ in range(5):
            began = time.monotonic()
            r = self.get_ok("pid.php")
            self.assertLess(time.monotonic() - began, 0.5)
            self.assertNotEqual(int(r.body), busy_pid, "sent to the executor still working")
        # once the script has returned, it is idle again
        self.wait_status("active processes", 0, timeout=3.0)
        self.assertEqual(self.status()["idle processes"], 2)

    def test_terminate_timeout_after_finish_only_when_tracked(self):
        self.start({"pm": "static", "pm.max_children": "1", "request_terminate_timeout": "1s"})
        pid = self.wait_total(1)[0]
        self.get_ok("finish_then_work.php", "ms=1800")
        time.sleep(1.5)
        self.assertEqual(self.pids(), [pid], "killed although the request had finished")
        self.get_ok("pid.php", timeout=5)

    def test_terminate_timeout_after_finish_when_tracked(self):
        self.start({"pm": "static", "pm.max_children": "1", "request_terminate_timeout": "1s",
                    "request_terminate_timeout_track_finished": "yes"})
        pid = self.wait_total(1)[0]
        mark = len(self.server.log())
        self.get_ok("finish_then_work.php", "ms=5000")
        self.assertIsNotNone(self.server.wait_log(
            r"\[pool www\] child %d, script of a finished request \(fastcgi_finish_request\) "
            r"execution timed out" % pid, timeout=3, start=mark), self.server.diagnostics())
        replaced = wait_until(lambda: len(self.pids()) == 1 and pid not in self.pids(), 3.0)
        self.assertTrue(replaced, self.server.diagnostics())
        self.get_ok("pid.php")


class StaticTest(PmCase):
    def test_max_children_executors_and_a_killed_one_is_replaced(self):
        self.start({"pm": "static", "pm.max_children": "3"})
        pids = self.wait_total(3)
        time.sleep(0.3)
        self.assertEqual(sorted(self.pids()), sorted(pids), "static pool changed by itself")
        status = self.status()
        self.assertEqual((status["total processes"], status["idle processes"],
                          status["active processes"]), (3, 3, 0), status)

        victim = pids[0]
        mark = len(self.server.log())
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()

        def replacement():
            now = self.pids()
            return len(now) == 3 and victim not in now and now
        replaced = wait_until(replacement, 1.0)
        took = time.monotonic() - killed_at
        self.assertTrue(replaced, "executor %d not replaced within 1 s: %r\n%s"
                        % (victim, self.pids(), self.server.diagnostics()))
        self.assertLessEqual(took, 1.0)
        self.assertEqual(len(set(replaced) - set(pids)), 1, replaced)
        status = self.wait_status("total processes", 3, timeout=1.0)
        self.assertEqual(status["total processes"], 3, status)
        self.assertIsNotNone(self.server.wait_log(
            r"\[pool www\] child %d exited on signal 9 \(SIGKILL\)" % victim, start=mark),
            self.server.diagnostics())
        # All three serve: three requests at once need three executors
        # (sleep.php prints its pid).
        burst = [self.pending("sleep.php", "ms=300") for _ in range(3)]
        seen = set()
        for p in burst:
            response = p.result()
            self.assertOk(response, "concurrent request")
            seen.add(int(response.body.split()[-1]))
        self.assertEqual(seen, set(self.pids()))

    def test_one_executor_serves_every_responder_thread(self):
        # Each responder thread owns the executors the master hands it; a
        # static pool with fewer executors than threads leaves a thread
        # without any. Requests accepted there must still be served.
        self.start({"pm": "static", "pm.max_children": "1", "request.queue_timeout": "2s"},
                   {"responder.threads": "2"})
        self.wait_total(1)
        for i in range(16):
            start = time.monotonic()
            response = self.get("pid.php", timeout=5.0)
            self.assertEqual(response.status_code(), 200,
                             "request %d on a fresh connection: %r after %.2f s\n%s"
                             % (i, response, time.monotonic() - start,
                                self.server.diagnostics()))


class BodyTest(PmCase):
    def test_large_bodies_pipelined_on_one_executor(self):
        # Bodies above 64 KiB reach the executor as a memfd; the dispatcher
        # reuses one per request the executor's channel holds. With one
        # executor and every request sent at once, a body is written while
        # the executor still reads the one before: each must come whole.
        self.start({"pm": "static", "pm.max_children": "1"})
        self.wait_total(1)
        rng = random.Random(11)
        sizes = [1 << 20, 100 << 10, (1 << 20) + 1, 70 << 10, 700 << 10, 1 << 20, 65 << 10]
        bodies = {i + 1: rng.randbytes(n) for i, n in enumerate(sizes)}
        records = []
        for rid, body in bodies.items():
            p = params("md5.php") + [("REQUEST_METHOD", "POST"),
                                     ("CONTENT_TYPE", "application/octet-stream"),
                                     ("CONTENT_LENGTH", str(len(body)))]
            p = [kv for kv in p if kv != ("REQUEST_METHOD", "GET")]
            records += fcgi.build_request(rid, p, body)
        with self.server.connect(timeout=20) as conn:
            conn.send(records)
            responses = conn.read_responses(list(bodies), timeout=20)
        for rid, body in bodies.items():
            self.assertOk(responses[rid], "request %d" % rid)
            self.assertEqual(responses[rid].body.decode(),
                             "%d %s" % (len(body), hashlib.md5(body).hexdigest()), rid)


    def test_executor_cannot_shrink_the_body_memfd(self):
        # The responder copies bodies into a mapping of the memfd; a script
        # that could truncate it would crash the responder (SIGBUS) on the
        # next body. The seal refuses it.
        self.start({"pm": "static", "pm.max_children": "1"})
        self.wait_total(1)
        body = random.Random(5).randbytes(200 << 10)
        with self.server.connect(timeout=20) as conn:
            for rid, script in ((1, "shrink_body.php"), (2, "md5.php"), (3, "md5.php")):
                p = [kv for kv in params(script) if kv[0] != "REQUEST_METHOD"]
                p += [("REQUEST_METHOD", "POST"), ("CONTENT_TYPE", "application/octet-stream"),
                      ("CONTENT_LENGTH", str(len(body)))]
                response = conn.request(p, body, request_id=rid, timeout=20)
                self.assertOk(response, script)
                want = ("found 1 shrunk 0" if script == "shrink_body.php" else
                        "%d %s" % (len(body), hashlib.md5(body).hexdigest()))
                self.assertEqual(response.body.decode(), want)
        self.assertEqual(self.status()["executor failures"], 0)


class DynamicTest(PmCase):
    def test_spawns_under_a_burst_and_retires_one_idle_a_second(self):
        self.start({"pm": "dynamic", "pm.max_children": "4", "pm.start_servers": "2",
                    "pm.min_spare_servers": "1", "pm.max_spare_servers": "2"})
        self.wait_total(2)
        time.sleep(0.3)
        self.assertEqual(len(self.pids()), 2, "dynamic pool grew while idle")

        burst = [self.pending("sleep.php", "ms=500") for _ in range(10)]
        most_total, most_pids = 0, 0
        while not all(p.done() for p in burst):
            most_total = max(most_total, self.status()["total processes"])
            most_pids = max(most_pids, len(self.pids()))
            time.sleep(0.05)
        for p in burst:
            self.assertOk(p.result(), "burst request")
        status = self.status()
        self.assertEqual(most_total, 4, "total processes peaked at %d\n%s"
                         % (most_total, self.server.diagnostics()))
        self.assertLessEqual(most_pids, 4)
        self.assertEqual(status["max active processes"], 4, status)
        self.assertGreater(status["max children reached"], 0, status)

        # Idle above max_spare (2): one retired at once, the next a second later.
        t0 = time.monotonic()
        self.wait_status("total processes", 3, timeout=1.5)
        at3 = time.monotonic() - t0
        status = self.wait_status("total processes", 2, timeout=2.0)
        at2 = time.monotonic() - t0
        self.assertEqual(status["total processes"], 2, status)
        self.assertGreaterEqual(at2 - at3, 0.8, "two retired %.2f s apart" % (at2 - at3))
        self.assertLessEqual(at2, 2.5)
        time.sleep(1.2)
        self.assertEqual(self.status()["total processes"], 2, "retired below max_spare")
        self.assertEqual(len(self.pids()), 2, self.pids())


    def test_start_servers_without_churn(self):
        # Idle executors == start_servers, between min_spare and max_spare:
        # php-fpm forks start_servers children and leaves them alone.
        self.start({"pm": "dynamic", "pm.max_children": "4", "pm.start_servers": "2",
                    "pm.min_spare_servers": "1", "pm.max_spare_servers": "2"})
        pids = self.wait_total(2)
        time.sleep(1.5)
        self.assertEqual(sorted(self.pids()), sorted(pids))
        log = self.server.log()
        started = re.findall(r"\[pool www\] child (\d+) started", log)
        self.assertEqual(len(started), 2, "expected start_servers (2) executors started and "
                         "nothing else:\n%s" % self.server.diagnostics())
        self.assertNotIn("exited", log, self.server.diagnostics())

    def test_max_children_warning(self):
        # php-fpm: WARNING: [pool www] server reached pm.max_children setting
        # (N), consider raising it -- when the pool wants more than N.
        self.start({"pm": "dynamic", "pm.max_children": "2", "pm.start_servers": "1",
                    "pm.min_spare_servers": "1", "pm.max_spare_servers": "1"})
        self.wait_total(1)
        burst = [self.pending("sleep.php", "ms=300") for _ in range(6)]
        for p in burst:
            self.assertOk(p.result(), "burst request")
        self.assertGreater(self.status()["max children reached"], 0)
        self.assertIsNotNone(self.server.wait_log(
            r"WARNING: \[pool www\] server reached pm\.max_children setting \(2\), "
            r"consider raising it", timeout=1.0), self.server.diagnostics())


class OndemandTest(PmCase):
    def test_spawns_on_request_and_retires_after_idle_timeout(self):
        self.start({"pm": "ondemand", "pm.max_children": "2",
                    "pm.process_idle_timeout": "1s"})
        time.sleep(0.5)
        self.assertEqual(self.pids(), [])
        self.assertEqual(self.status()["total processes"], 0)

        response = self.get_ok("pid.php")
        served_at = time.monotonic()
        pid = int(response.body)
        self.assertEqual(self.pids(), [pid])
        self.assertEqual(self.status()["total processes"], 1)

        status = self.wait_status("total processes", 0, timeout=3.0)
        gone_after = time.monotonic() - served_at
        self.assertEqual(status["total processes"], 0, status)
        self.assertGreaterEqual(gone_after, 0.9, "retired before pm.process_idle_timeout")
        self.assertLess(gone_after, 2.0)
        self.assertEqual(wait_until(lambda: not self.pids(), 1.0), True, self.pids())
        # And on demand again.
        self.assertNotEqual(int(self.get_ok("pid.php").body), pid)


class MaxRequestsTest(PmCase):
    def test_executor_replaced_after_max_requests(self):
        self.start({"pm": "static", "pm.max_children": "1", "pm.max_requests": "5"})
        self.wait_total(1)
        served = []
        for i in range(12):
            response = self.get("pid.php")
            self.assertOk(response, "request %d (pids so far %r)" % (i + 1, served))
            served.append(int(response.body))
        changes = sum(1 for a, b in zip(served, served[1:]) if a != b)
        self.assertGreaterEqual(changes, 2, served)
        # 5 requests each (no jitter below 9).
        self.assertEqual(served[:5], [served[0]] * 5, served)
        self.assertEqual(self.status()["executor failures"], 0)

    def test_request_queued_behind_the_last_one_is_served(self):
        # The executor's 3rd request (its last) runs while another waits in
        # the queue: when its END arrives the executor is about to exit, so
        # the waiting request must go to its replacement, not to it.
        self.start({"pm": "static", "pm.max_children": "1", "pm.max_requests": "3"})
        (pid,) = self.wait_total(1)
        for _ in range(2):
            self.assertEqual(int(self.get_ok("pid.php").body), pid)
        last = self.pending("sleep.php", "ms=300")
        self.wait_status("active processes", 1)
        time.sleep(0.05)  # past the dispatcher's pipelining window (2 ms)
        waiting = self.pending("pid.php")
        status = self.wait_status("listen queue", 1)
        self.assertEqual(status["listen queue"], 1, status)
        self.assertEqual(int(last.result().body), pid)
        response = waiting.result()
        self.assertOk(response, "the request queued behind the executor's last one")
        self.assertNotEqual(int(response.body), pid)


class QueueTest(PmCase):
    def fill(self, queued=2, ms=1500):
        """One slow request running on the only executor and `queued`
        requests waiting behind it; returns (running, [queued])."""
        self.wait_total(1)
        running = self.pending("sleep.php", "ms=%d" % ms)
        status = self.wait_status("active processes", 1)
        self.assertEqual(status["active processes"], 1, status)
        time.sleep(0.05)  # past the dispatcher's pipelining window (2 ms)
        waiting = []
        for _ in range(queued):
            waiting.append(self.pending("pid.php"))
        status = self.wait_status("listen queue", queued)
        self.assertEqual(status["listen queue"], queued, status)
        return running, waiting

    def test_full_queue_answers_503(self):
        self.start({"pm": "static", "pm.max_children": "1", "request.queue_max": "2"})
        running, waiting = self.fill()
        start = time.monotonic()
        response = self.get("pid.php", timeout=3.0)
        self.assertLess(time.monotonic() - start, 0.5, "the refusal waited")
        self.assertEqual(response.protocol_status, fcgi.REQUEST_COMPLETE, response)
        self.assertIn(b"Status: 503", response.stdout, response)
        self.assertEqual(response.status_code(), 503)
        status = self.status()
        self.assertEqual(status["queue full"], 1, status)
        self.assertEqual(status["listen queue len"], 2, status)
        self.assertOk(running.result(), "running request")
        for p in waiting:
            self.assertOk(p.result(), "queued request")
        self.assertEqual(self.status()["max listen queue"], 2)

    def test_full_queue_answers_overloaded(self):
        self.start({"pm": "static", "pm.max_children": "1", "request.queue_max": "2",
                    "request.overload": "overloaded"})
        running, waiting = self.fill()
        response = self.get("pid.php", timeout=3.0)
        self.assertEqual(response.protocol_status, fcgi.OVERLOADED, response)
        self.assertNotIn(b"Status:", response.stdout, response)
        self.assertOk(running.result(), "running request")
        for p in waiting:
            self.assertOk(p.result(), "queued request")

    def test_queue_timeout_answers_503(self):
        self.start({"pm": "static", "pm.max_children": "1", "request.queue_timeout": "300ms"})
        running, (late,) = self.fill(queued=1, ms=1000)
        response = late.result(3.0)
        self.assertIn(b"Status: 503", response.stdout, response)
        self.assertGreaterEqual(late.took, 0.28, "refused before request.queue_timeout")
        self.assertLess(late.took, 0.7, "request.queue_timeout = 300ms took %.2f s" % late.took)
        self.assertFalse(running.done(), "the running request is not affected")
        self.assertOk(running.result(), "running request")
        status = self.status()
        self.assertEqual(status["queue timeouts"], 1, status)

    def test_client_gone_while_queued_never_runs(self):
        self.start({"pm": "static", "pm.max_children": "1"})
        marker = os.path.join(self.server.tmpdir, "appended")
        self.wait_total(1)
        running = self.pending("sleep.php", "ms=800")
        self.wait_status("active processes", 1)
        time.sleep(0.05)
        conn = self.server.connect(timeout=3.0)
        conn.send(fcgi.build_request(1, params("append.php", "file=" + marker), keep_conn=False))
        status = self.wait_status("listen queue", 1)
        self.assertEqual(status["listen queue"], 1, status)
        conn.close()
        status = self.wait_status("queue aborted", 1)
        self.assertEqual(status["queue aborted"], 1, status)
        self.assertEqual(status["listen queue"], 0, status)
        self.assertOk(running.result(), "running request")
        time.sleep(0.3)
        self.assertFalse(os.path.exists(marker), "the abandoned request ran")
        # The script does write when its client stays.
        self.get_ok("append.php", "file=" + marker)
        with open(marker) as f:
            self.assertEqual(len(f.read().splitlines()), 1)


class BusyTest(PmCase):
    def test_status_and_ping_answered_while_every_executor_is_busy(self):
        self.start({"pm": "static", "pm.max_children": "2"})
        self.wait_total(2)
        sleepers = [self.pending("sleep.php", "ms=2000") for _ in range(2)]
        status = self.wait_status("active processes", 2)
        self.assertEqual((status["active processes"], status["idle processes"]), (2, 0), status)
        start = time.monotonic()
        pong = fcgi.simple_request(self.server.address, PING_PATH, timeout=1.0)
        self.assertEqual(pong.body, b"pong", pong)
        status = self.status()
        self.assertLess(time.monotonic() - start, 0.5)
        self.assertEqual(status["active processes"], 2, status)
        self.assertTrue(all(not p.done() for p in sleepers), "the sleepers ended early")
        for p in sleepers:
            self.assertOk(p.result(), "sleeping request")


class FailureTest(PmCase):
    def test_executor_killed_mid_request_gets_502(self):
        self.start({"pm": "static", "pm.max_children": "1"})
        (pid,) = self.wait_total(1)
        victim = self.pending("sleep.php", "ms=5000")
        self.wait_status("active processes", 1)
        os.kill(pid, signal.SIGKILL)
        response = victim.result(2.0)
        self.assertLess(victim.took, 1.5)
        self.assertEqual(response.protocol_status, fcgi.REQUEST_COMPLETE, response)
        self.assertIn(b"Status: 502", response.stdout, response)
        self.assertIn(b"(pid %d) serving this request exited" % pid, response.stderr, response)
        for _ in range(3):
            self.assertNotEqual(int(self.get_ok("pid.php").body), pid)
        self.assertEqual(self.status()["executor failures"], 1)

    def test_request_terminate_timeout(self):
        self.start({"pm": "static", "pm.max_children": "1",
                    "request_terminate_timeout": "1s"})
        (pid,) = self.wait_total(1)
        start = time.monotonic()
        response = self.get("web/loop.php", timeout=5.0)
        took = time.monotonic() - start
        self.assertIn(b"Status: 502", response.stdout, response)
        self.assertGreaterEqual(took, 0.95, "terminated before request_terminate_timeout")
        self.assertLess(took, 2.0, "request_terminate_timeout = 1s took %.2f s" % took)
        match = self.server.wait_log(
            r"WARNING: \[pool www\] child (\d+), script '([^']*)' \(request: \"GET "
            r"/web/loop\.php\"\) execution timed out \(\d+\.\d+ sec\), terminating")
        self.assertIsNotNone(match, self.server.diagnostics())
        self.assertEqual(int(match.group(1)), pid)
        self.assertEqual(match.group(2), os.path.join(harness.PHP_SCRIPTS, "web", "loop.php"))
        self.assertEqual(self.status()["terminated requests"], 1)
        self.assertNotEqual(int(self.get_ok("pid.php").body), pid)


class SlowlogTest(PmCase):
    def test_slow_request_writes_its_php_backtrace(self):
        slowlog = os.path.join(tempfile.mkdtemp(prefix="ringfpm-slow-"), "www.slow.log")
        self.addCleanup(shutil.rmtree, os.path.dirname(slowlog), True)
        self.start({"pm": "static", "pm.max_children": "1", "slowlog": slowlog,
                    "request_slowlog_timeout": "1s"})
        pid = self.wait_total(1)[0]
        self.get_ok("sleep.php", "ms=1600")
        text = open(slowlog).read() if os.path.exists(slowlog) else ""
        # php-fpm's format: a header, the script, one line per frame
        self.assertRegex(text, r"\n\[\d\d-\w{3}-\d{4} \d\d:\d\d:\d\d\]  \[pool www\] pid %d\n"
                         % pid, text)
        self.assertIn("script_filename = %s" % os.path.join(harness.PHP_SCRIPTS, "sleep.php"),
                      text)
        self.assertRegex(text, r"\[0x[0-9a-f]{16}\] usleep\(\) \S*sleep\.php:3\n")
        self.assertEqual(text.count("script_filename"), 1, text)  # once per slow request
        self.assertEqual(self.wait_status("slow requests", 1)["slow requests"], 1)
        # a quick request is not slow
        self.get_ok("sleep.php", "ms=1")
        self.assertEqual(open(slowlog).read().count("script_filename"), 1)


if __name__ == "__main__":
    unittest.main()
