"""The ringfpm command itself: logging to an inherited stderr."""

import os
import re
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
            f.write("[global]\nerror_log = /proc/self/fd/2\n[www]\nexecutor.type = builtin\n"
                    "listen = 127.0.0.1:%d\n"
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


class MissingPmTest(unittest.TestCase):
    def test_php_pool_without_pm_is_refused_as_php_fpm_does(self):
        server = harness.RingFpm(pools={"www": {"executor.type": "php"}})
        self.addCleanup(server.cleanup)
        r = server.config_test()
        self.assertEqual(r.returncode, 78, r.stdout + r.stderr)
        self.assertIn("[pool www] the process manager is missing (static, dynamic or ondemand)",
                      r.stdout + r.stderr)


class VersionTest(unittest.TestCase):
    def test_v_names_ringfpm_and_php(self):
        r = subprocess.run([harness.binary_path(), "-v"], capture_output=True, text=True,
                           timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^ringfpm \d+\.\d+\.\d+ \(fpm-fcgi\) with PHP 8\.\d+\.\d+\n")


class NotImplementedWarningTest(unittest.TestCase):
    """php-fpm directives ringfpm parses but does not act on yet are named
    in one startup warning per pool, never accepted silently."""

    def test_pending_directives_are_named(self):
        server = harness.RingFpm(pools={"www": {
            "pm": "dynamic", "pm.max_children": "5", "pm.start_servers": "2",
            "pm.min_spare_servers": "1", "pm.max_spare_servers": "3",
            "access.format": '"%R %s"', "env[APP]": "x", "prefix": "/tmp",
            "access.log": "/tmp/ringfpm-access.log", "listen.allowed_clients": "127.0.0.1",
        }})
        server.start()
        self.addCleanup(server.cleanup)
        match = server.wait_log(r"\[pool www\] not implemented by ringfpm yet[^\n]*")
        self.assertIsNotNone(match, server.log())
        line = match.group(0)
        for name in ("prefix",):
            self.assertRegex(line, r"(: |, )%s(,|$)" % re.escape(name))
        # implemented: never named
        for name in ("pm", "pm.max_children", "env", "listen.allowed_clients", "access.log",
                     "access.format"):
            self.assertNotRegex(line, r"(: |, )%s(,|$)" % re.escape(name))

    def test_no_warning_when_nothing_is_pending(self):
        server = harness.RingFpm(pools={"www": {"ping.path": "/ping"}})
        server.start()
        self.addCleanup(server.cleanup)
        self.assertIsNotNone(server.wait_log(r"ready to handle connections"))
        self.assertNotIn("not implemented by ringfpm yet", server.log())


if __name__ == "__main__":
    unittest.main()
