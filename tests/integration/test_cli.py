"""The ringfpm command itself: logging to an inherited stderr."""

import os
import socket
import subprocess
import tempfile
import unittest

import harness


class InheritedStderrLogTest(unittest.TestCase):
    def test_error_log_proc_self_fd_2_when_stderr_is_a_socket(self):
        # Regression: open("/proc/self/fd/2") fails with ENXIO when stderr is
        # a socket (systemd's journal); ringfpm must log there all the same.
        tmp = tempfile.mkdtemp(prefix="ringfpm-cli-")
        conf = os.path.join(tmp, "x.conf")
        with open(conf, "w") as f:
            f.write("[global]\nerror_log = /proc/self/fd/2\n[www]\nlisten = 127.0.0.1:%d\n"
                    % harness.free_tcp_port())
        ours, theirs = socket.socketpair()
        self.addCleanup(ours.close)
        proc = subprocess.Popen([harness.binary_path(), "-F", "-y", conf],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=theirs.fileno())
        theirs.close()
        ours.settimeout(5)
        got = b""
        try:
            while b"ready to handle connections" not in got:
                chunk = ours.recv(4096)
                if not chunk:
                    break
                got += chunk
        finally:
            proc.terminate()
            proc.wait(5)
        self.assertIn(b"ready to handle connections", got)
        self.assertEqual(proc.returncode, 0)


if __name__ == "__main__":
    unittest.main()
