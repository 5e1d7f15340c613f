"""End-to-end tests of ringfpm's responder with its built-in handler.

Each test starts its own ringfpm (harness.RingFpm), talks raw FastCGI to it
(fcgi.py) the way a web server would, or the way a broken or hostile one
would, and checks both the bytes that come back and the status counters.
Every test class whose behaviour lives in the I/O layer runs twice, once per
io.backend (epoll and io_uring), through subclasses at the end of the file.

Built-in routes (on SCRIPT_NAME): ping.path -> "pong"; /echo -> params as
"NAME=VALUE\\n" in received order, "\\n", then the body; /bytes?n=N -> N x's;
/stderr -> "hello stderr" on FCGI_STDERR and "ok"; the status path with
"json" -> counters; anything else -> "Hello, World!".
"""

import os
import random
import re
import socket
import stat
import time
import unittest

import fcgi
import harness

PING_PATH = "/ping"
STATUS_PATH = "/status"

STATUS_KEYS = (
    "accepted conn", "active connections", "requests", "protocol errors", "limit params",
    "limit body", "limit connections", "limit multiplex", "timeouts read", "timeouts idle",
    "aborted requests", "records ignored", "io backend", "responder threads",
)


def echo_params(body=b"", extra=None, query=""):
    """Params for /echo, in the order they are sent (and echoed back)."""
    pairs = [
        ("SCRIPT_NAME", "/echo"),
        ("REQUEST_METHOD", "POST" if body else "GET"),
        ("QUERY_STRING", query),
        ("CONTENT_LENGTH", str(len(body))),
    ]
    if extra:
        pairs.extend(extra.items() if isinstance(extra, dict) else extra)
    return pairs


def echo_expected(params, body=b""):
    """The exact /echo body for params (sequence of pairs) and body."""
    out = bytearray()
    for name, value in params:
        out += fcgi._as_bytes(name) + b"=" + fcgi._as_bytes(value) + b"\n"
    return bytes(out) + b"\n" + bytes(body)


def route_params(script_name, query=""):
    return [("SCRIPT_NAME", script_name), ("REQUEST_METHOD", "GET"), ("QUERY_STRING", query)]


class EngineCase:
    """Mixin: one fresh ringfpm per test, stopped (and checked) afterwards.

    Subclasses set io_backend and may extend global_opts / pool_opts, or
    override make_pools() for several listeners.
    """

    io_backend = "epoll"
    responder_threads = 2
    global_opts = {}
    pool_opts = {}

    def make_pools(self):
        opts = {"listen": None}
        opts.update(self.pool_opts)
        return {"www": opts}

    def base_pool_opts(self):
        return {
            "pm": "static",
            "pm.max_children": "2",
            "ping.path": PING_PATH,
            "pm.status_path": STATUS_PATH,
        }

    def setUp(self):
        if self.io_backend == "io_uring" and not harness.io_uring_available():
            self.skipTest("io_uring is not available on this machine")
        global_opts = {
            "io.backend": self.io_backend,
            "responder.threads": str(self.responder_threads),
            "responder.max_connections": "256",
            "responder.idle_timeout": "30s",
        }
        global_opts.update(self.global_opts)
        pools = {}
        for name, opts in self.make_pools().items():
            merged = self.base_pool_opts()
            merged.update(opts)
            pools[name] = merged
        self.server = harness.RingFpm(global_opts, pools)
        self.addCleanup(self.server.cleanup)
        self.server.start()

    def tearDown(self):
        status = self.server.stop()
        self.assertEqual(status, 0, "ringfpm should exit 0 on SIGTERM\n" + self.server.diagnostics())

    # -- helpers
    def connect(self, pool=None, timeout=10.0):
        conn = self.server.connect(pool, timeout)
        self.addCleanup(conn.close)
        return conn

    def status(self, pool=None):
        counters = self.server.status(pool)
        missing = [k for k in STATUS_KEYS if k not in counters]
        self.assertFalse(missing, "status lacks keys %s: %r" % (missing, counters))
        return counters

    def wait_counter(self, keys, before, delta, timeout=3.0):
        """Poll status until counter keys (a name or a tuple summed) grew by delta; assert exactly delta.

        Counters live in several responder threads, so a change may show a moment late.
        """
        if isinstance(keys, str):
            keys = (keys,)

        def total(counters):
            return sum(counters[k] for k in keys)

        deadline = time.monotonic() + timeout
        while True:
            now = self.status()
            if total(now) - total(before) >= delta or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(total(now) - total(before), delta, "counter %s: before %r, now %r"
                         % (" + ".join(keys), {k: before[k] for k in keys}, {k: now[k] for k in keys}))
        return now

    def assert_ping(self, conn, request_id=1):
        response = conn.request(route_params(PING_PATH), request_id=request_id)
        self.assertEqual(response.protocol_status, fcgi.REQUEST_COMPLETE, response)
        self.assertEqual(response.body, b"pong", response)
        return response

    def assert_echo(self, conn, body=b"", extra=None, request_id=1, **kw):
        params = echo_params(body, extra)
        response = conn.request(params, body, request_id=request_id, **kw)
        self.assertEqual(response.protocol_status, fcgi.REQUEST_COMPLETE, response)
        self.assertEqual(response.body, echo_expected(params, body))
        return response

    def assert_closed(self, conn, timeout=3.0, msg=""):
        self.assertTrue(conn.wait_closed(timeout),
                        "connection should have been closed %s(pending %r)" % (msg, conn.pending))

    def fresh_ping(self, pool=None):
        with self.server.connect(pool) as conn:
            self.assert_ping(conn)


# ---------------------------------------------------------------------------
# Core protocol behaviour.


class CoreCases(EngineCase):
    pool_opts = {
        "request.max_params_bytes": "16384",
        "request.max_params": "64",
        "request.buffer_memory": "65536",
        "request.read_timeout": "10s",
        "request.max_per_connection": "0",
        "request.max_multiplex": "64",
    }

    def test_ping_answers_pong(self):
        response = fcgi.simple_request(self.server.address, PING_PATH)
        self.assertEqual(response.protocol_status, fcgi.REQUEST_COMPLETE)
        self.assertEqual(response.body, b"pong")
        self.assertTrue(response.header("Content-Type", "").startswith("text/plain"), response.headers)

    def test_default_route_says_hello(self):
        response = fcgi.simple_request(self.server.address, "/index.php")
        self.assertEqual(response.body, b"Hello, World!")
        self.assertEqual(response.header("Content-Type"), "text/html; charset=UTF-8")
        self.assertEqual(response.app_status, 0)
        self.assertEqual(response.protocol_status, fcgi.REQUEST_COMPLETE)
        self.assertEqual(response.stderr, b"")

    def test_echo_returns_params_in_order_and_body(self):
        with self.connect() as conn:
            response = self.assert_echo(conn, b"some body\0with a NUL", {"X_ONE": "1", "X_TWO": ""})
            self.assertTrue(response.header("Content-Type", "").startswith("text/plain"))

    def test_stderr_route_uses_stderr_records(self):
        response = fcgi.simple_request(self.server.address, "/stderr")
        self.assertEqual(response.stderr, b"hello stderr")
        self.assertEqual(response.body, b"ok")
        types = [r.type for r in response.records]
        self.assertLess(types.index(fcgi.STDERR), types.index(fcgi.END_REQUEST))

    def test_bytes_route_large_response_framing(self):
        size = 300001
        response = fcgi.simple_request(self.server.address, "/bytes", "n=%d" % size)
        self.assertEqual(response.protocol_status, fcgi.REQUEST_COMPLETE)
        self.assertEqual(len(response.body), size)
        self.assertEqual(response.body, b"x" * size)
        self.assertEqual(response.records[-1].type, fcgi.END_REQUEST)
        # Like php-fpm: END_REQUEST ends stdout, no empty STDOUT record before it.
        self.assertFalse([r for r in response.records if r.type == fcgi.STDOUT and not r.content])
        self.assertEqual({r.request_id for r in response.records}, {1})

    def test_bytes_route_zero(self):
        response = fcgi.simple_request(self.server.address, "/bytes", "n=0")
        self.assertEqual(response.protocol_status, fcgi.REQUEST_COMPLETE)
        self.assertEqual(response.body, b"")

    def test_keep_conn_100_sequential_requests(self):
        before = self.status()
        with self.connect() as conn:
            for i in range(100):
                self.assert_echo(conn, extra={"SEQ": str(i)}, request_id=1 + i % 3)
            self.assertTrue(conn.is_open(), "keep-alive connection closed after 100 requests")
            self.assert_ping(conn)
        after = self.status()
        # 101 requests on the connection; the status request itself may count.
        self.assertIn(after["requests"] - before["requests"], (101, 102))

    def test_without_keep_conn_server_closes_after_end_request(self):
        with self.connect() as conn:
            params = echo_params(b"abc")
            response = conn.request(params, b"abc", keep_conn=False)
            self.assertEqual(response.body, echo_expected(params, b"abc"))
            self.assert_closed(conn, msg="after END_REQUEST without FCGI_KEEP_CONN ")
            self.assertEqual(conn.pending, [], "records after END_REQUEST")

    def test_pipelined_requests_on_keep_alive_connection(self):
        with self.connect() as conn:
            expected = {}
            records = []
            for rid in range(1, 11):
                body = (b"pipelined-%d;" % rid) * rid
                params = echo_params(body, {"PIPE": str(rid)})
                expected[rid] = echo_expected(params, body)
                records += fcgi.build_request(rid, params, body)
            conn.send(records)
            responses = conn.read_responses(expected)
            for rid, body in expected.items():
                self.assertEqual(responses[rid].body, body, "request id %d" % rid)
            self.assertTrue(conn.is_open())
            self.assert_ping(conn, request_id=11)

    def test_64_request_ids_multiplexed(self):
        ids = list(range(1, 64)) + [65535]
        expected = {}
        per_request = []
        for rid in ids:
            body = (b"body of %d|" % rid) * (rid % 17 + 1)
            params = echo_params(body, {"RF_ID": "id-%d" % rid})
            expected[rid] = echo_expected(params, body)
            per_request.append(fcgi.build_request(rid, params, body, params_chunk=16, stdin_chunk=13))
        with self.connect() as conn:
            before = self.status()
            conn.send(fcgi.interleave(*per_request))
            responses = conn.read_responses(ids, timeout=15)
            for rid in ids:
                self.assertEqual(responses[rid].protocol_status, fcgi.REQUEST_COMPLETE, responses[rid])
                self.assertEqual(responses[rid].body, expected[rid], "request id %d" % rid)
            self.assertEqual(conn.pending, [])
            self.assert_ping(conn)
        after = self.status()
        self.assertEqual(after["limit multiplex"], before["limit multiplex"])

    def test_get_values(self):
        with self.connect() as conn:
            values = conn.get_values(["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS",
                                      "NO_SUCH_NAME"])
            self.assertEqual(values.get("FCGI_MPXS_CONNS"), "1", values)
            for name in ("FCGI_MAX_CONNS", "FCGI_MAX_REQS"):
                self.assertRegex(values.get(name, ""), r"^[1-9][0-9]*$", name)
            self.assertNotIn("NO_SUCH_NAME", values)
            self.assert_ping(conn)

    def test_unknown_management_type_gets_unknown_type(self):
        with self.connect() as conn:
            conn.send(fcgi.encode_record(42, 0, b"whatever"))
            record = conn.read_management(fcgi.UNKNOWN_TYPE)
            self.assertEqual(len(record.content), 8, record)
            self.assertEqual(record.content[0], 42)
            self.assertEqual(record.content[1:], b"\0" * 7)
            self.assert_ping(conn)

    def test_unknown_role_ends_with_unknown_role(self):
        with self.connect() as conn:
            conn.send(fcgi.build_request(1, route_params("/index.php"), role=7))
            response = conn.read_response(1)
            self.assertEqual(response.protocol_status, fcgi.UNKNOWN_ROLE)
            self.assertEqual(response.stdout, b"")
            # The PARAMS/STDIN that followed belong to no request: ignored.
            self.assert_ping(conn, request_id=2)
            self.assertEqual(conn.pending, [])

    def test_abort_request_with_incomplete_stdin(self):
        with self.connect() as conn:
            before = self.status()
            declared = b"y" * 100
            records = fcgi.build_request(1, echo_params(declared), declared[:50], terminate_stdin=False)
            conn.send(records)
            ping = fcgi.build_request(2, route_params(PING_PATH))
            conn.send(ping[:-1])  # id 2 started too, its STDIN not yet ended
            conn.abort(1)
            response = conn.read_response(1)
            self.assertTrue(response.complete)
            self.assertEqual(response.protocol_status, fcgi.REQUEST_COMPLETE)
            # id 2 is still alive on the same connection and can finish.
            conn.send(ping[-1:])
            self.assertEqual(conn.read_response(2).body, b"pong")
            # id 1 may be reused.
            self.assert_echo(conn, b"after abort", request_id=1)
            self.wait_counter("aborted requests", before, 1)

    def test_abort_of_inactive_id_is_ignored(self):
        with self.connect() as conn:
            conn.abort(9)
            self.assert_ping(conn, request_id=1)
            self.assertEqual(conn.pending, [], "no record expected for the aborted inactive id")

    def test_records_for_inactive_id_are_ignored(self):
        with self.connect() as conn:
            before = self.status()
            conn.send(fcgi.encode_record(fcgi.PARAMS, 9, fcgi.encode_params({"A": "b"})),
                      fcgi.encode_record(fcgi.STDIN, 9, b"orphan body"),
                      fcgi.encode_record(fcgi.STDIN, 9, b""))
            self.assert_echo(conn, b"still fine", request_id=1)
            self.assertEqual(conn.pending, [])
            self.wait_counter("records ignored", before, 3)

    def test_garbage_closes_only_that_connection(self):
        healthy = self.connect()
        self.assert_ping(healthy)
        before = self.status()
        bad = self.connect()
        bad.send(fcgi.encode_record(fcgi.BEGIN_REQUEST, 1, b"\0\1\1\0\0\0\0\0", version=2)
                 + os.urandom(64))
        self.assert_closed(bad, msg="after a record with version 2 ")
        self.assert_ping(healthy, request_id=2)
        self.fresh_ping()
        self.wait_counter("protocol errors", before, 1)

    def test_malformed_input_variants_close_the_connection(self):
        begin_body = b"\0\1\1\0\0\0\0\0"
        variants = {
            "version 0": fcgi.encode_record(fcgi.BEGIN_REQUEST, 1, begin_body, version=0),
            "version 255": fcgi.encode_record(fcgi.BEGIN_REQUEST, 1, begin_body, version=255),
            "http request": b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
            "begin with id 0": fcgi.encode_record(fcgi.BEGIN_REQUEST, 0, begin_body),
            "begin of length 16": fcgi.encode_record(fcgi.BEGIN_REQUEST, 1, begin_body * 2),
            "begin of length 0": fcgi.encode_record(fcgi.BEGIN_REQUEST, 1, b""),
            "params with id 0": fcgi.begin_request(1) + fcgi.encode_record(
                fcgi.PARAMS, 0, fcgi.encode_params({"A": "B"})),
            "truncated name-value pair": fcgi.begin_request(1) + fcgi.encode_record(
                fcgi.PARAMS, 1, b"\x05\x05abc") + fcgi.encode_record(fcgi.PARAMS, 1, b""),
        }
        healthy = self.connect()
        self.assert_ping(healthy)
        before = self.status()
        for name, data in variants.items():
            with self.subTest(variant=name):
                with self.server.connect() as bad:
                    bad.try_send(data)
                    self.assert_closed(bad, msg="after %s " % name)
                    self.assertFalse([r for r in bad.pending if r.type == fcgi.STDOUT],
                                     "no response expected for %s" % name)
        self.assert_ping(healthy, request_id=3)
        self.wait_counter("protocol errors", before, len(variants))

    def test_duplicate_begin_for_active_id_closes_connection(self):
        before = self.status()
        with self.connect() as conn:
            conn.send(fcgi.begin_request(1), fcgi.params_records(1, echo_params(b"abc"), terminate=False))
            conn.send(fcgi.begin_request(1))
            self.assert_closed(conn, msg="after a second BEGIN_REQUEST for id 1 ")
        self.fresh_ping()
        self.wait_counter("protocol errors", before, 1)

    def test_params_split_one_byte_per_record(self):
        with self.connect() as conn:
            self.assert_echo(conn, b"tiny records", {"SPLIT": "across many records"},
                             params_chunk=1, stdin_chunk=1)

    def test_padded_records(self):
        with self.connect() as conn:
            for padding in (0, 1, 7, 255):
                with self.subTest(padding=padding):
                    self.assert_echo(conn, b"padded body", {"PAD": str(padding)}, padding=padding)

    def test_four_byte_name_value_lengths(self):
        long_name = "N" * 200
        long_value = "v" * 3000
        extra = [(long_name, "short"), ("LONGV", long_value), (long_name + "2", long_value)]
        with self.connect() as conn:
            self.assert_echo(conn, b"", extra)
            # 4-byte form used for short lengths too (legal, if unusual).
            params = echo_params(b"", {"SHORT4": "yes"})
            raw = b"".join(fcgi.encode_nv(n, v, True, True) for n, v in params)
            conn.send(fcgi.begin_request(2), fcgi.stream_records(fcgi.PARAMS, 2, raw),
                      fcgi.stdin_records(2))
            self.assertEqual(conn.read_response(2).body, echo_expected(params))

    def test_body_larger_than_buffer_memory_is_spilled_and_echoed(self):
        rng = random.Random(20261122)
        with self.connect() as conn:
            for size in (65535, 65536, 65537, 1 << 20):
                with self.subTest(size=size):
                    body = rng.randbytes(size)
                    params = echo_params(body)
                    response = conn.request(params, body, stdin_chunk=65535 if size > 65536 else 4000,
                                            timeout=20)
                    self.assertEqual(response.protocol_status, fcgi.REQUEST_COMPLETE)
                    expected = echo_expected(params, body)
                    self.assertEqual(len(response.body), len(expected))
                    self.assertTrue(response.body == expected, "echoed body differs at size %d" % size)

    def test_max_multiplex_exceeded_answers_overloaded(self):
        ids = list(range(1, 65))
        declared = b"0123456789"
        with self.connect() as conn:
            before = self.status()
            for rid in ids:  # 64 requests in flight, each waiting for the rest of its body
                conn.send(fcgi.build_request(rid, echo_params(declared, {"ID": str(rid)}), declared[:4],
                                             terminate_stdin=False))
            conn.send(fcgi.build_request(100, route_params(PING_PATH)))
            extra = conn.read_response(100)
            self.assertEqual(extra.protocol_status, fcgi.OVERLOADED, extra)
            records = []
            for rid in ids:
                records += fcgi.stdin_records(rid, declared[4:])
            conn.send(records)
            responses = conn.read_responses(ids)
            for rid in ids:
                params = echo_params(declared, {"ID": str(rid)})
                self.assertEqual(responses[rid].body, echo_expected(params, declared), "id %d" % rid)
            self.assert_ping(conn, request_id=100)
            self.wait_counter("limit multiplex", before, 1)

    def test_connections_are_released(self):
        conns = [self.server.connect() for _ in range(10)]
        try:
            for conn in conns:
                self.assert_ping(conn)
            during = self.status()
            self.assertGreaterEqual(during["active connections"], 10)
        finally:
            for conn in conns:
                conn.close()
        deadline = time.monotonic() + 3
        while True:
            active = self.status()["active connections"]
            if active <= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertLessEqual(active, 1, "connections still counted active after close")

    def test_status_counters_and_backend(self):
        counters = self.status()
        for key in STATUS_KEYS:
            if key != "io backend":
                self.assertIsInstance(counters[key], int, key)
                self.assertGreaterEqual(counters[key], 0, key)
        self.assertEqual(counters["io backend"], self.io_backend)
        self.assertEqual(counters["responder threads"], self.responder_threads)
        before = counters
        fcgi.simple_request(self.server.address, PING_PATH)
        after = self.status()
        self.assertGreaterEqual(after["accepted conn"] - before["accepted conn"], 2)
        self.assertGreaterEqual(after["requests"] - before["requests"], 2)

    def test_log_names_the_io_backend(self):
        self.assertIsNotNone(self.server.wait_log(r"\b%s\b" % re.escape(self.io_backend)),
                             "log does not say which io backend runs:\n" + self.server.log())


# ---------------------------------------------------------------------------
# Request limits.


class LimitCases(EngineCase):
    max_params_bytes = 4096
    max_params = 10
    pool_opts = {
        "request.max_params_bytes": str(max_params_bytes),
        "request.max_params": str(max_params),
        "request.buffer_memory": "65536",
        "request.max_per_connection": "3",
        "request.read_timeout": "10s",
    }

    def params_of_size(self, total):
        """echo params whose encoded size is exactly total bytes (needs total >= 200)."""
        params = echo_params(b"", {"FILL": ""})
        base = len(fcgi.encode_params(params))
        # "FILL" value length moves from 1 to 4 length bytes at 128.
        fill = total - base
        if fill >= 128:
            fill -= 3
        params[-1] = ("FILL", "f" * fill)
        self.assertEqual(len(fcgi.encode_params(params)), total)
        return params

    def assert_rejected_431(self, params, log_pattern):
        log_offset = len(self.server.log())
        before = self.status()
        with self.connect() as conn:
            conn.send(fcgi.build_request(1, params, params_chunk=1000))
            response = conn.read_response(1)
            self.assertEqual(response.status_code(), 431, response)
            self.assertEqual(response.protocol_status, fcgi.REQUEST_COMPLETE)
            self.assert_closed(conn, msg="after a 431 ")
        self.fresh_ping()
        self.wait_counter("limit params", before, 1)
        self.assertIsNotNone(self.server.wait_log(log_pattern, start=log_offset),
                             "log should name the limit (%s):\n%s" % (log_pattern, self.server.log()))

    def test_params_bytes_at_limit_accepted(self):
        params = self.params_of_size(self.max_params_bytes)
        with self.connect() as conn:
            response = conn.request(params, params_chunk=1000)
            self.assertEqual(response.body, echo_expected(params))

    def test_params_bytes_over_limit_rejected_431(self):
        self.assert_rejected_431(self.params_of_size(self.max_params_bytes + 1), r"max_params_bytes")

    def test_oversized_params_5000_bytes_rejected_431(self):
        params = echo_params(b"", {"BIG": "b" * 5000})
        self.assert_rejected_431(params, r"max_params_bytes")

    def test_max_params_count_at_limit_accepted(self):
        params = echo_params(b"", [("P%d" % i, str(i)) for i in range(self.max_params - 4)])
        self.assertEqual(len(params), self.max_params)
        with self.connect() as conn:
            self.assertEqual(conn.request(params).body, echo_expected(params))

    def test_too_many_params_rejected_431(self):
        params = echo_params(b"", [("P%d" % i, str(i)) for i in range(self.max_params - 3)])
        self.assertEqual(len(params), self.max_params + 1)
        self.assert_rejected_431(params, r"max_params\b")

    def test_rejection_leaves_other_connections_alone(self):
        healthy = self.connect()
        self.assert_ping(healthy)
        with self.connect() as bad:
            bad.send(fcgi.build_request(1, echo_params(b"", {"BIG": "b" * 5000})))
            self.assertEqual(bad.read_response(1).status_code(), 431)
            self.assert_closed(bad)
        self.assert_ping(healthy, request_id=2)

    def test_max_per_connection_closes_after_third_response(self):
        with self.connect() as conn:
            for i in range(1, 4):
                self.assertTrue(conn.is_open(), "closed before request %d" % i)
                self.assert_echo(conn, b"req %d" % i, request_id=i)
            self.assert_closed(conn, msg="after request.max_per_connection = 3 responses ")


# ---------------------------------------------------------------------------
# Timeouts.


class TimeoutCases(EngineCase):
    global_opts = {"responder.idle_timeout": "1s"}
    pool_opts = {"request.read_timeout": "1s"}
    low, high = 0.8, 3.5  # accepted window for a 1 s timeout (loaded and sanitizer builds)

    def wait_close_while_serving(self, conn, start, feed=None):
        """Wait for conn to close, pinging on a separate keep-alive connection meanwhile.

        feed() is called every round (to trickle bytes). Returns seconds from start.
        """
        other = self.connect()
        rid = 1
        while time.monotonic() - start < self.high + 1:
            if feed is not None:
                feed()
            if conn.wait_closed(0.2):
                return time.monotonic() - start
            self.assert_ping(other, request_id=rid)
            rid += 1
        self.fail("connection was not closed within %.1f s" % (self.high + 1))

    def test_slowloris_half_header_is_closed_after_read_timeout(self):
        before = self.status()
        slow = self.connect()
        start = time.monotonic()
        slow.send(fcgi.begin_request(1), fcgi.encode_record(fcgi.PARAMS, 1, b"x" * 16)[:4])
        elapsed = self.wait_close_while_serving(slow, start)
        self.assertGreaterEqual(elapsed, self.low, "closed too early")
        self.assertLessEqual(elapsed, self.high)
        self.wait_counter("timeouts read", before, 1)

    def test_trickling_request_is_closed_after_read_timeout(self):
        before = self.status()
        slow = self.connect()
        start = time.monotonic()
        slow.send(fcgi.begin_request(1))
        trickle = iter(b"".join(fcgi.params_records(1, echo_params(b"", {"PAD": "p" * 200}))))

        def feed():
            slow.try_send(bytes([next(trickle, 0)]))

        elapsed = self.wait_close_while_serving(slow, start, feed)
        self.assertGreaterEqual(elapsed, self.low, "closed too early")
        self.assertLessEqual(elapsed, self.high, "deadline must run from BEGIN_REQUEST, not per byte")
        self.wait_counter("timeouts read", before, 1)

    def test_silent_new_connection_is_closed(self):
        before = self.status()
        silent = self.connect()
        start = time.monotonic()
        elapsed = self.wait_close_while_serving(silent, start)
        self.assertGreaterEqual(elapsed, self.low, "closed too early")
        self.assertLessEqual(elapsed, self.high)
        self.wait_counter(("timeouts read", "timeouts idle"), before, 1)

    def test_idle_keep_alive_connection_is_closed(self):
        before = self.status()
        idle = self.connect()
        self.assert_ping(idle)
        start = time.monotonic()
        elapsed = self.wait_close_while_serving(idle, start)
        self.assertGreaterEqual(elapsed, self.low, "closed too early")
        self.assertLessEqual(elapsed, self.high)
        self.wait_counter("timeouts idle", before, 1)

    def test_busy_keep_alive_connection_outlives_the_timeouts(self):
        conn = self.connect()
        start = time.monotonic()
        rid = 0
        while time.monotonic() - start < 3.0:
            rid += 1
            self.assert_echo(conn, b"busy %d" % rid, request_id=rid)
            time.sleep(0.4)
        self.assertTrue(conn.is_open())

    def test_request_completed_within_read_timeout_is_served(self):
        with self.connect() as conn:
            records = fcgi.build_request(1, echo_params(b"abcdef"), b"abcdef", stdin_chunk=1)
            for record in records:  # spread over ~0.5 s, inside the 1 s deadline
                conn.send(record)
                time.sleep(0.5 / len(records))
            self.assertEqual(conn.read_response(1).body, echo_expected(echo_params(b"abcdef"), b"abcdef"))


# ---------------------------------------------------------------------------
# Listeners.


class ListenerCases(EngineCase):
    listen = None

    def make_pools(self):
        return {"www": {"listen": self.listen}}

    def exercise(self, pool=None):
        with self.connect(pool) as conn:
            self.assert_ping(conn)
            self.assert_echo(conn, b"over %r" % (self.server.addresses[pool or "www"],), request_id=2)


class UnixListenerCases(ListenerCases):
    listen = "unix"

    def test_unix_socket(self):
        path = self.server.address
        self.assertTrue(os.path.exists(path))
        self.assertTrue(stat.S_ISSOCK(os.stat(path).st_mode))
        self.exercise()


class Ipv4ListenerCases(ListenerCases):
    listen = None

    def test_ipv4_loopback(self):
        self.assertEqual(self.server.address[0], "127.0.0.1")
        self.exercise()


class Ipv6ListenerCases(ListenerCases):
    listen = "ipv6"

    def setUp(self):
        if not harness.ipv6_loopback_available():
            self.skipTest("no IPv6 loopback on this machine")
        super().setUp()

    def test_ipv6_loopback(self):
        self.assertEqual(self.server.address[0], "::1")
        with socket.create_connection(self.server.address, timeout=5) as sock:
            self.assertEqual(sock.family, socket.AF_INET6)
        self.exercise()


class MultiPoolCases(EngineCase):
    def make_pools(self):
        pools = {"tcp4": {"listen": None}, "unix": {"listen": "unix"}}
        if harness.ipv6_loopback_available():
            pools["tcp6"] = {"listen": "ipv6"}
        return pools

    def test_every_pool_listener_serves(self):
        for pool in self.server.pools:
            with self.subTest(pool=pool):
                with self.connect(pool) as conn:
                    self.assert_ping(conn)
                    self.assert_echo(conn, b"pool " + pool.encode(), request_id=2)


# ---------------------------------------------------------------------------
# Backend-independent cases.


class AutoBackendTest(EngineCase, unittest.TestCase):
    io_backend = "auto"
    responder_threads = "auto"

    def test_auto_picks_a_backend_and_logs_it(self):
        counters = self.status()
        self.assertIn(counters["io backend"], ("io_uring", "epoll"))
        self.assertIsInstance(counters["responder threads"], int)
        self.assertGreaterEqual(counters["responder threads"], 1)
        self.assertIsNotNone(self.server.wait_log(r"\b%s\b" % counters["io backend"]),
                             "log does not say which io backend runs:\n" + self.server.log())
        self.fresh_ping()


class ConfigTestModeTest(unittest.TestCase):
    """`ringfpm -t -y FILE`: exit 0 for a good config, 78 and a message for a bad one."""

    def run_config_test(self, global_opts):
        server = harness.RingFpm(global_opts, {"www": {"pm": "static", "pm.max_children": "2"}})
        self.addCleanup(server.cleanup)
        return server.config_test()

    def test_good_config(self):
        result = self.run_config_test({"io.backend": "epoll"})
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_bad_io_backend(self):
        result = self.run_config_test({"io.backend": "carrier-pigeon"})
        self.assertEqual(result.returncode, 78, result.stdout + result.stderr)
        self.assertIn("io.backend", result.stderr)


# ---------------------------------------------------------------------------
# Every I/O-layer case under each backend.


class CoreEpollTest(CoreCases, unittest.TestCase):
    io_backend = "epoll"


class CoreIoUringTest(CoreCases, unittest.TestCase):
    io_backend = "io_uring"


class LimitsEpollTest(LimitCases, unittest.TestCase):
    io_backend = "epoll"


class LimitsIoUringTest(LimitCases, unittest.TestCase):
    io_backend = "io_uring"


class TimeoutsEpollTest(TimeoutCases, unittest.TestCase):
    io_backend = "epoll"


class TimeoutsIoUringTest(TimeoutCases, unittest.TestCase):
    io_backend = "io_uring"


class UnixListenerEpollTest(UnixListenerCases, unittest.TestCase):
    io_backend = "epoll"


class UnixListenerIoUringTest(UnixListenerCases, unittest.TestCase):
    io_backend = "io_uring"


class Ipv4ListenerEpollTest(Ipv4ListenerCases, unittest.TestCase):
    io_backend = "epoll"


class Ipv4ListenerIoUringTest(Ipv4ListenerCases, unittest.TestCase):
    io_backend = "io_uring"


class Ipv6ListenerEpollTest(Ipv6ListenerCases, unittest.TestCase):
    io_backend = "epoll"


class Ipv6ListenerIoUringTest(Ipv6ListenerCases, unittest.TestCase):
    io_backend = "io_uring"


class MultiPoolEpollTest(MultiPoolCases, unittest.TestCase):
    io_backend = "epoll"


class MultiPoolIoUringTest(MultiPoolCases, unittest.TestCase):
    io_backend = "io_uring"


if __name__ == "__main__":
    unittest.main()
