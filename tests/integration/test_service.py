"""Service integration: systemd's readiness protocol on $NOTIFY_SOCKET."""

import os
import shutil
import socket
import subprocess
import tempfile
import unittest

import harness


class SdNotifyTest(unittest.TestCase):
    def test_ready_then_stopping(self):
        tmp = tempfile.mkdtemp(prefix="ringfpm-notify-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "notify")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(listener.close)
        listener.bind(path)
        listener.settimeout(10)
        conf = os.path.join(tmp, "ringfpm.conf")
        with open(conf, "w") as f:
            f.write("[global]\nerror_log = %s/error.log\n[www]\nexecutor.type = builtin\n"
                    "listen = 127.0.0.1:%d\n" % (tmp, harness.free_tcp_port()))
        proc = subprocess.Popen([harness.binary_path(), "-F", "-y", conf],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL,
                                env=dict(os.environ, NOTIFY_SOCKET=path))
        try:
            ready = listener.recv(512).decode()
            self.assertIn("READY=1", ready.split("\n"))
            self.assertIn("MAINPID=%d" % proc.pid, ready.split("\n"))
            self.assertIn("STATUS=Ready to handle connections", ready.split("\n"))
            proc.terminate()
            self.assertEqual(listener.recv(512).decode(), "STOPPING=1")
            self.assertEqual(proc.wait(5), 0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)


if __name__ == "__main__":
    unittest.main()
