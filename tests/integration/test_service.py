"""Service integration: systemd's readiness protocol on $NOTIFY_SOCKET."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import harness


class NotifyCase(unittest.TestCase):
    """ringfpm started with $NOTIFY_SOCKET on a socket the test reads."""

    def run_notified(self, global_lines, env):
        tmp = tempfile.mkdtemp(prefix="ringfpm-notify-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "notify")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(listener.close)
        listener.bind(path)
        listener.settimeout(5)
        conf = os.path.join(tmp, "ringfpm.conf")
        with open(conf, "w") as f:
            f.write("[global]\nerror_log = %s/error.log\n%s[www]\nexecutor.type = builtin\n"
                    "listen = 127.0.0.1:%d\n" % (tmp, global_lines, harness.free_tcp_port()))
        proc = subprocess.Popen([harness.binary_path(), "-F", "-y", conf],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL,
                                env=dict(os.environ, NOTIFY_SOCKET=path, **env))

        def stop():
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        self.addCleanup(stop)
        self.ready = listener.recv(512).decode().split("\n")
        self.assertIn("READY=1", self.ready)
        return proc, listener, tmp


class SdNotifyTest(NotifyCase):
    def test_ready_then_stopping(self):
        proc, listener, _ = self.run_notified("", {})
        self.assertIn("MAINPID=%d" % proc.pid, self.ready)
        self.assertIn("STATUS=Ready to handle connections", self.ready)
        proc.terminate()
        self.assertEqual(listener.recv(512).decode(), "STOPPING=1")
        self.assertEqual(proc.wait(5), 0)


class HeartbeatTest(NotifyCase):
    """systemd_interval: STATUS= every interval; WATCHDOG=1 with $WATCHDOG_USEC."""

    def test_status_every_systemd_interval(self):
        proc, listener, _ = self.run_notified("systemd_interval = 1\n", {})
        started = time.monotonic()
        beat = listener.recv(512).decode().split("\n")
        took = time.monotonic() - started
        self.assertIn("READY=1", beat)
        self.assertNotIn("WATCHDOG=1", beat)
        status = [line for line in beat if line.startswith("STATUS=")]
        self.assertEqual(len(status), 1, beat)
        self.assertRegex(status[0], r"^STATUS=Processes active: \d+, idle: \d+, Requests: \d+, "
                                    r"slow: \d+, Traffic: [0-9.e+-]+req/sec$")
        self.assertGreater(took, 0.5)
        self.assertLess(took, 2.5)

    def test_watchdog_at_half_its_timeout(self):
        proc, listener, tmp = self.run_notified("", {"WATCHDOG_USEC": "600000"})
        started = time.monotonic()
        beats = [listener.recv(512).decode().split("\n") for _ in range(2)]
        took = time.monotonic() - started
        for beat in beats:
            self.assertIn("WATCHDOG=1", beat)
        self.assertLess(took, 1.5)  # two beats at 0.3 s, not systemd_interval's 10 s
        with open(os.path.join(tmp, "error.log")) as f:
            self.assertIn("systemd watchdog configured to 0.3sec", f.read())

    def test_no_heartbeat_with_interval_zero(self):
        proc, listener, _ = self.run_notified("systemd_interval = 0\n", {})
        listener.settimeout(1.5)
        with self.assertRaises(socket.timeout):
            listener.recv(512)


if __name__ == "__main__":
    unittest.main()
