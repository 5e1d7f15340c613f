"""fpm_get_status(): php-fpm's array from the scoreboard (core/rf_board.c).

PHP calls fpm_get_status() in tests/integration/php/fpm_status.php, which
prints the array, the PHP type of every value and its own pid. The server is
phpserver.start_php_server(): ringfpm with PHP executors by default, Debian's
php-fpm8.2 with RF_PEER=php-fpm, and every test here passes against both:

    RF_PEER=php-fpm python3 tests/integration/run.py test_fpm_status   # the reference
    python3 tests/integration/run.py test_fpm_status                   # ringfpm

What is checked: the keys, their order and their PHP types; the calling
process listed as Running with its own request (method, URI without the
query, query, length, auth user, script); another executor seen Running
with its request and Idle afterwards with its last request's memory; the
pool's counters agreeing with the status page's JSON, and `?full` on the
status page (json and plain) listing the same processes; executors that are
killed or replaced (pm.max_requests) leaving no stale entry behind.
"""

import json
import os
import signal
import threading
import time
import unittest

import fcgi
import harness
import phpserver

SCRIPT = "fpm_status.php"
STATUS_PATH = "/status"
WORKERS = 2
TIMEOUT = 8.0

# php-fpm 8.2, sapi/fpm/fpm/fpm_status.c fpm_status_export_to_zval: keys in
# order with their PHP types.
POOL_TYPES = [
    ("pool", "string"),
    ("process-manager", "string"),
    ("start-time", "integer"),
    ("start-since", "integer"),
    ("accepted-conn", "integer"),
    ("listen-queue", "integer"),
    ("max-listen-queue", "integer"),
    ("listen-queue-len", "integer"),
    ("idle-processes", "integer"),
    ("active-processes", "integer"),
    ("total-processes", "integer"),
    ("max-active-processes", "integer"),
    ("max-children-reached", "integer"),
    ("slow-requests", "integer"),
    ("procs", "array"),
]
PROC_TYPES = [
    ("pid", "integer"),
    ("state", "string"),
    ("start-time", "integer"),
    ("start-since", "integer"),
    ("requests", "integer"),
    ("request-duration", "integer"),
    ("request-method", "string"),
    ("request-uri", "string"),
    ("query-string", "string"),
    ("request-length", "integer"),
    ("user", "string"),
    ("script", "string"),
    ("last-request-cpu", "double"),
    ("last-request-memory", "integer"),
]
# The status page's JSON `full` keys (php-fpm's, with spaces).
PAGE_PROC_KEYS = ["pid", "state", "start time", "start since", "requests", "request duration",
                  "request method", "request uri", "content length", "user", "script",
                  "last request cpu", "last request memory"]


def setUpModule():
    reason = phpserver.missing_reason()
    if reason:
        raise unittest.SkipTest(reason)


def params(script, query="", method="GET", body=b"", extra=()):
    """What a web server sends for METHOD /script?query (script in php/)."""
    pairs = [
        ("SCRIPT_NAME", "/" + script),
        ("SCRIPT_FILENAME", os.path.join(harness.PHP_SCRIPTS, script)),
        ("REQUEST_METHOD", method),
        ("REQUEST_URI", "/" + script + ("?" + query if query else "")),
        ("QUERY_STRING", query),
    ]
    if body or method == "POST":
        pairs += [("CONTENT_LENGTH", str(len(body))), ("CONTENT_TYPE", "text/plain")]
    return pairs + list(extra)


wait_until = harness.wait_until


class StatusCase(unittest.TestCase):
    pool_opts = {}

    @classmethod
    def setUpClass(cls):
        opts = {"pm.status_path": STATUS_PATH}
        opts.update(cls.pool_opts)
        cls.server = phpserver.start_php_server(opts, workers=WORKERS)
        # The listen socket answers before every worker has forked (PHP
        # starts in between: slower with more extensions installed); the
        # tests count on WORKERS of them, so wait for them.
        harness.wait_until(lambda: len(cls.server.pids()) == WORKERS, 10.0)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.stop()
        finally:
            cls.server.cleanup()

    def request(self, script, query="", method="GET", body=b"", extra=()):
        with self.server.connect(timeout=TIMEOUT) as conn:
            response = conn.request(params(script, query, method, body, extra), body,
                                    keep_conn=False, timeout=TIMEOUT)
        self.assertEqual(response.protocol_status, fcgi.REQUEST_COMPLETE)
        return response

    def fpm_status(self, query="", method="GET", body=b"", extra=()):
        """fpm_status.php's output: {pid, status, types, proc_types}."""
        response = self.request(SCRIPT, query, method, body, extra)
        try:
            out = json.loads(response.body.decode("utf-8"))
        except ValueError:
            self.fail("fpm_status.php: %r\n%s" % (response.stdout[:600], response.stderr[:600]))
        self.assertIsInstance(out["status"], dict, "fpm_get_status() returned false")
        return out

    def page(self, query="json"):
        response = fcgi.simple_request(self.server.address, STATUS_PATH, query, timeout=TIMEOUT)
        self.assertEqual(response.protocol_status, fcgi.REQUEST_COMPLETE)
        return response.body.decode("utf-8")

    @staticmethod
    def proc(status, pid):
        for p in status["procs"]:
            if p["pid"] == pid:
                return p
        return None


class FpmGetStatusTest(StatusCase):

    def test_keys_types_and_order_are_php_fpm_s(self):
        out = self.fpm_status()
        self.assertEqual(list(out["types"].items()), POOL_TYPES)
        self.assertTrue(out["proc_types"], "no process listed")
        for types in out["proc_types"]:
            self.assertEqual(list(types.items()), PROC_TYPES)
        status = out["status"]
        self.assertEqual(status["pool"], "www")
        self.assertEqual(status["process-manager"], "static")
        self.assertLessEqual(abs(status["start-time"] + status["start-since"] - time.time()), 2)
        self.assertEqual(status["total-processes"],
                         status["idle-processes"] + status["active-processes"])

    def test_the_caller_is_running_with_its_own_request(self):
        out = self.fpm_status("a=1&b=%20x", "POST", b"abc",
                              [("HTTP_AUTHORIZATION", "Basic dXNlcjE6cHc=")])  # user1:pw
        me = self.proc(out["status"], out["pid"])
        self.assertIsNotNone(me, "the calling process is not in procs: %r" % out["status"])
        self.assertEqual(me["state"], "Running")
        self.assertEqual(me["request-method"], "POST")
        self.assertEqual(me["request-uri"], "/" + SCRIPT)
        self.assertEqual(me["query-string"], "a=1&b=%20x")
        self.assertEqual(me["request-length"], 3)
        self.assertEqual(me["user"], "user1")
        self.assertEqual(me["script"], os.path.join(harness.PHP_SCRIPTS, SCRIPT))
        self.assertGreaterEqual(me["requests"], 1)
        self.assertGreaterEqual(me["request-duration"], 0)
        self.assertLess(me["request-duration"], 5 * 10**6)
        # php-fpm shows the last request's cpu and memory only when Idle
        self.assertEqual((me["last-request-cpu"], me["last-request-memory"]), (0, 0))
        self.assertGreaterEqual(out["status"]["active-processes"], 1)

    def test_another_running_request_then_idle_with_its_last_request(self):
        slow = {}

        def run():
            slow["out"] = self.fpm_status("sleep_ms=1000")

        thread = threading.Thread(target=run, daemon=True)
        thread.start()

        def seen_running():
            out = self.fpm_status("poll=1")
            for p in out["status"]["procs"]:
                if p["pid"] != out["pid"] and p["query-string"] == "sleep_ms=1000" \
                        and p["state"] == "Running":
                    return p
            return None

        running = wait_until(seen_running, 3.0)
        self.assertTrue(running, "the sleeping request was never seen Running")
        self.assertEqual(running["request-uri"], "/" + SCRIPT)
        self.assertEqual(running["request-method"], "GET")
        self.assertEqual(running["user"], "-")
        self.assertGreater(running["request-duration"], 0)
        thread.join(TIMEOUT)
        self.assertIn("out", slow)

        # Which executor takes the next request is the server's choice
        # (ringfpm: the most recently idle one, the sleeper; php-fpm: the
        # kernel's): whichever other one is Idle shows its last request,
        # the sleeping one or a poll.
        def seen_idle():
            out = self.fpm_status()
            for p in out["status"]["procs"]:
                if p["pid"] != out["pid"] and p["state"] == "Idle" and p["requests"]:
                    return p
            return None

        idle = wait_until(seen_idle, 3.0)
        self.assertTrue(idle, "no other executor showed Idle with a request served")
        self.assertIn(idle["query-string"], ("sleep_ms=1000", "poll=1"),
                      "Idle keeps the last request: %r" % idle)
        self.assertEqual(idle["request-uri"], "/" + SCRIPT)
        self.assertEqual(idle["request-method"], "GET")
        if idle["query-string"] == "sleep_ms=1000":
            self.assertGreaterEqual(idle["request-duration"], 900 * 1000)
        self.assertGreater(idle["request-duration"], 0)
        self.assertGreater(idle["last-request-memory"], 0)
        self.assertGreaterEqual(idle["last-request-cpu"], 0)

    def test_counters_agree_with_the_status_page(self):
        out = self.fpm_status()
        fpm = out["status"]
        page = json.loads(self.page("json"))
        self.assertEqual(page["pool"], fpm["pool"])
        self.assertEqual(page["start time"], fpm["start-time"])
        self.assertEqual(page["listen queue len"], fpm["listen-queue-len"])
        self.assertEqual(page["total processes"], fpm["total-processes"])
        self.assertEqual(page["total processes"],
                         page["idle processes"] + page["active processes"])
        self.assertEqual(page["slow requests"], fpm["slow-requests"])
        self.assertEqual(page["max children reached"], fpm["max-children-reached"])
        # the page is read later: monotonic counters may only have grown
        self.assertGreaterEqual(page["accepted conn"], fpm["accepted-conn"])
        self.assertGreaterEqual(page["max active processes"], fpm["max-active-processes"])
        self.assertGreaterEqual(page["max listen queue"], fpm["max-listen-queue"])

    def test_status_page_full_lists_the_same_processes(self):
        fpm = self.fpm_status("full_check=1")
        pids = sorted(p["pid"] for p in fpm["status"]["procs"])
        self.assertEqual(len(pids), WORKERS)

        page = json.loads(self.page("json&full"))
        self.assertEqual(sorted(p["pid"] for p in page["processes"]), pids)
        for p in page["processes"]:
            self.assertEqual(list(p), PAGE_PROC_KEYS)
        done = [p for p in page["processes"] if p["pid"] == fpm["pid"]]
        if done and done[0]["state"] == "Idle":
            # the page's "request uri" carries the query
            self.assertEqual(done[0]["request uri"], "/%s?full_check=1" % SCRIPT)

        text = self.page("full")
        blocks = text.split("************************\n")[1:]
        self.assertEqual(len(blocks), WORKERS, text)
        for block in blocks:
            names = [line.split(":", 1)[0] for line in block.splitlines() if line]
            self.assertEqual(names, ["pid", "state", "start time", "start since", "requests",
                                     "request duration", "request method", "request URI",
                                     "content length", "user", "script", "last request cpu",
                                     "last request memory"], block)
        self.assertEqual(sorted(int(b.split("\n", 1)[0].split()[1]) for b in blocks), pids)


class FpmStatusReplacedExecutorsTest(StatusCase):
    """Executors that die or are replaced free their slot: procs lists the
    live ones only, and the newcomers get a clean record."""

    pool_opts = {"pm.max_requests": "3"}

    def live_pids(self):
        return sorted(self.server.pids())

    def assert_procs_are_the_live_executors(self):
        def settled():
            out = self.fpm_status()
            got = sorted(p["pid"] for p in out["status"]["procs"])
            live = self.live_pids()
            return (got, out) if got == live and len(live) == WORKERS else None

        result = wait_until(settled, 5.0, 0.05)
        self.assertTrue(result, "procs %r vs live executors %r"
                        % (sorted(p["pid"] for p in self.fpm_status()["status"]["procs"]),
                           self.live_pids()))
        return result[1]

    def test_max_requests_replacements_leave_no_stale_slot(self):
        first = set(self.live_pids())
        for i in range(4 * WORKERS * 3):
            self.request("pid.php")
        out = self.assert_procs_are_the_live_executors()
        # 24 requests at 3 per executor need at least 8 of them
        self.assertNotEqual({p["pid"] for p in out["status"]["procs"]}, first)
        for p in out["status"]["procs"]:
            self.assertLessEqual(p["requests"], 3, p)

    def test_a_killed_executor_is_replaced_in_procs(self):
        pids = wait_until(lambda: len(self.live_pids()) == WORKERS and self.live_pids(), 5.0)
        self.assertTrue(pids)
        victim = pids[0]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: victim not in self.live_pids() and len(self.live_pids()) == WORKERS,
                   5.0)
        out = self.assert_procs_are_the_live_executors()
        self.assertIsNone(self.proc(out["status"], victim))


if __name__ == "__main__":
    unittest.main()
