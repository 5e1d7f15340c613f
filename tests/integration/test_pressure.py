"""Receive-buffer pressure: requests half received on many connections must
not hold every receive buffer and wedge the responder.

With a tiny ring (8 buffers of 1 KiB per thread) and 20 connections that
each send their params and part of the body, then stall, the half-received
requests would hold all buffers; the remaining bytes could then never be
received. The responder copies such requests into their arenas when buffers
run low (rf_thread_relieve), so every request completes. Runs per backend.
"""

import time
import unittest

import fcgi
import harness
from test_engine import echo_expected, echo_params

CONNECTIONS = 20


class PressureCases:
    backend = None

    def setUp(self):
        self.server = harness.RingFpm(
            {
                "io.backend": self.backend,
                "responder.threads": "1",
                "responder.recv_buffers": "8",
                "responder.recv_buffer_size": "1k",
            },
            {"www": {"request.read_timeout": "20s", "pm.status_path": "/status"}},
        )
        self.server.start()
        self.addCleanup(self.server.cleanup)

    def test_half_received_requests_do_not_starve_the_ring(self):
        bodies = [bytes([65 + i % 26]) * (3000 + 37 * i) for i in range(CONNECTIONS)]
        conns, records = [], []
        for i, body in enumerate(bodies):
            params = echo_params(body, extra=[("CONN", str(i))])
            recs = b"".join(fcgi.begin_request(1) for _ in range(1))
            recs += b"".join(fcgi.params_records(1, params))
            stdin = b"".join(fcgi.stdin_records(1, body, chunk=512))
            half = len(recs) + len(stdin) // 2
            data = recs + stdin
            c = fcgi.Connection(self.server.address, timeout=10)
            self.addCleanup(c.close)
            c.send(data[:half])
            conns.append(c)
            records.append((data[half:], params, body))
        time.sleep(0.3)  # let the responder receive (and hold) the first halves
        for c, (rest, _, _) in zip(conns, records):
            c.send(rest)
        for c, (_, params, body) in zip(conns, records):
            resp = c.read_response(1, timeout=10)
            self.assertEqual(resp.body, echo_expected(params, body))
        status = self.server.status()
        self.assertEqual(status["protocol errors"], 0)
        self.assertGreaterEqual(status["receive buffer shortages"], 1)


class PressureEpollTest(PressureCases, unittest.TestCase):
    backend = "epoll"


class PressureIoUringTest(PressureCases, unittest.TestCase):
    backend = "io_uring"


if __name__ == "__main__":
    unittest.main()
