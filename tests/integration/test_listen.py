"""listen.owner / listen.group / listen.mode and listen.acl_users /
listen.acl_groups (POSIX ACL) on a unix socket and listen.allowed_clients on
TCP, as php-fpm applies them."""

import grp
import os
import pwd
import shutil
import socket
import stat
import struct
import subprocess
import tempfile
import unittest

import fcgi
import harness
import phpserver


def start_fails(test, opts):
    """A ringfpm whose unix-socket pool (opts) must fail to start; returns it."""
    pool = {"listen": "unix"}
    pool.update(opts)
    server = harness.RingFpm(pools={"www": pool})
    test.addCleanup(server.cleanup)
    with test.assertRaises(harness.HarnessError):
        server.start()
    return server


class ListenOwnerTest(unittest.TestCase):
    def test_owner_group_and_mode_of_the_unix_socket(self):
        if os.geteuid() != 0:
            raise unittest.SkipTest("chown of the socket needs root")
        server = harness.RingFpm(pools={"www": {
            "listen": "unix", "listen.owner": "nobody", "listen.group": "nogroup",
            "listen.mode": "0660"}})
        server.start()
        self.addCleanup(server.cleanup)
        st = os.stat(server.address)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(st.st_uid, pwd.getpwnam("nobody").pw_uid)
        self.assertEqual(st.st_gid, grp.getgrnam("nogroup").gr_gid)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        self.assertEqual(fcgi.simple_request(server.address, "/hello").status_code(), 200)
        server.stop()

    def test_owner_alone_takes_the_owners_group(self):
        if os.geteuid() != 0:
            raise unittest.SkipTest("chown of the socket needs root")
        server = harness.RingFpm(pools={"www": {"listen": "unix", "listen.owner": "nobody"}})
        server.start()
        self.addCleanup(server.cleanup)
        st = os.stat(server.address)
        self.assertEqual(st.st_uid, pwd.getpwnam("nobody").pw_uid)
        self.assertEqual(st.st_gid, pwd.getpwnam("nobody").pw_gid)
        server.stop()

    def test_unknown_owner_is_a_start_up_error(self):
        server = start_fails(self, {"listen.owner": "no-such-user-rf"})
        self.assertIn("cannot get uid for user 'no-such-user-rf'", server.log() + server.output())


ACL_XATTR = "system.posix_acl_access"
ACL_USER, ACL_GROUP, ACL_MASK = 0x02, 0x08, 0x10
SYSTEM_PYTHON = "/usr/bin/python3"  # ours may live where other users cannot run it

CONNECT = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except PermissionError:
    sys.exit(13)
"""


def acl_entries(path):
    """The file's POSIX access ACL as [(tag, perm, id)]."""
    raw = os.getxattr(path, ACL_XATTR)
    version, = struct.unpack_from("<I", raw)
    assert version == 2, version
    return [struct.unpack_from("<HHI", raw, off) for off in range(4, len(raw), 8)]


def can_connect(path, user):
    """Can `user` (with only its own primary group) connect to the socket?"""
    pw = pwd.getpwnam(user)
    rc = subprocess.run([SYSTEM_PYTHON, "-c", CONNECT, path], user=pw.pw_uid, group=pw.pw_gid,
                        extra_groups=[], timeout=10).returncode
    if rc not in (0, 13):
        raise AssertionError("connect as %s failed oddly (exit %d)" % (user, rc))
    return rc == 0


class ListenAclTest(unittest.TestCase):
    """listen.acl_*: rw for the listed users and groups on top of
    listen.mode; listen.owner / listen.group are then ignored (php-fpm's
    WARNING); a name that does not exist stops the start-up (78)."""

    def setUp(self):
        if os.geteuid() != 0:
            raise unittest.SkipTest("switching users to try the socket needs root")
        if not os.access(SYSTEM_PYTHON, os.X_OK):
            raise unittest.SkipTest("%s (runnable by other users) is not installed" % SYSTEM_PYTHON)

    def start(self, opts):
        pool = {"listen": "unix"}
        pool.update(opts)
        server = harness.RingFpm(pools={"www": pool})
        self.addCleanup(server.cleanup)
        # Other users must reach the socket through the temp dir.
        os.chmod(server.tmpdir, 0o755)
        server.start()
        return server

    def test_acl_users_lets_the_user_in_and_no_one_else(self):
        server = self.start({"listen.acl_users": "nobody", "listen.owner": "daemon"})
        path = server.address
        nobody = pwd.getpwnam("nobody").pw_uid
        entries = acl_entries(path)
        self.assertIn((ACL_USER, 6, nobody), entries)
        self.assertIn((ACL_MASK, 6, 0xffffffff), entries)
        st = os.stat(path)
        self.assertEqual(st.st_uid, 0, "listen.owner must be ignored with an ACL")
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        self.assertTrue(can_connect(path, "nobody"))
        self.assertFalse(can_connect(path, "daemon"))
        self.assertIn("WARNING: [pool www] ACL set, listen.owner = 'daemon' is ignored",
                      server.log())
        self.assertEqual(fcgi.simple_request(path, "/hello").status_code(), 200)
        self.assertEqual(server.stop(), 0)

    def test_acl_groups_lets_the_group_in(self):
        server = self.start({"listen.acl_groups": "daemon,nogroup", "listen.mode": "0600"})
        path = server.address
        entries = acl_entries(path)
        self.assertIn((ACL_GROUP, 6, grp.getgrnam("daemon").gr_gid), entries)
        self.assertIn((ACL_GROUP, 6, grp.getgrnam("nogroup").gr_gid), entries)
        self.assertTrue(can_connect(path, "daemon"))
        self.assertTrue(can_connect(path, "nobody"))  # primary group nogroup
        self.assertFalse(can_connect(path, "www-data"))
        self.assertEqual(server.stop(), 0)

    def test_unknown_acl_user_is_a_start_up_error(self):
        server = start_fails(self, {"listen.acl_users": "nobody,no-such-user-rf"})
        # A sanitizer build exits 1 here: LeakSanitizer reports what the
        # master's early return does not free (as for listen.owner).
        if not phpserver.sanitizer_build():
            self.assertEqual(server.returncode, 78)
        self.assertIn("ERROR: [pool www] cannot get uid for user 'no-such-user-rf': Success (0)",
                      server.log())
        self.assertFalse(os.path.exists(server.address))


class AllowedClientsTest(unittest.TestCase):
    def test_listed_address_is_served(self):
        server = harness.RingFpm(pools={"www": {"listen.allowed_clients": "10.9.9.9, 127.0.0.1"}})
        server.start()
        self.addCleanup(server.cleanup)
        self.assertEqual(fcgi.simple_request(server.address, "/hello").status_code(), 200)
        server.stop()

    def test_other_address_is_dropped_and_logged(self):
        port = harness.free_tcp_port()
        # listen on every address; only 127.0.0.1 may talk
        server = harness.RingFpm(pools={"www": {"listen": "%d" % port,
                                                "listen.allowed_clients": "127.0.0.1"}})
        server.start()
        self.addCleanup(server.cleanup)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(sock.close)
        sock.bind(("127.0.0.3", 0))  # a source address not on the list
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
        try:
            sock.sendall(b"x")
            data = sock.recv(100)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        self.assertEqual(data, b"")
        self.assertIsNotNone(server.wait_log(
            r"Connection disallowed: IP address '127\.0\.0\.3' has been dropped\."), server.log())
        # the listed address is still served
        self.assertEqual(fcgi.simple_request(("127.0.0.1", port), "/hello").status_code(), 200)
        server.stop()

    def test_ipv6_and_v4_mapped(self):
        if not harness.ipv6_loopback_available():
            raise unittest.SkipTest("no IPv6 loopback")
        port = harness.free_tcp_port("::1")
        server = harness.RingFpm(pools={"www": {"listen": "[::]:%d" % port,
                                                "listen.allowed_clients": "::1,127.0.0.1"}})
        server.addresses = {"www": ("::1", port)}
        server.address = ("::1", port)
        server.start()
        self.addCleanup(server.cleanup)
        self.assertEqual(fcgi.simple_request(("::1", port), "/hello").status_code(), 200)
        # an IPv4 client on the dual-stack socket arrives v4-mapped
        self.assertEqual(fcgi.simple_request(("127.0.0.1", port), "/hello").status_code(), 200)
        server.stop()


class FpmSocketsTest(unittest.TestCase):
    """A supervisor hands ringfpm a bound socket (FPM_SOCKETS, php-fpm's
    format): ringfpm listens on it instead of binding the address again
    (which, without SO_REUSEPORT on the handed socket, would fail). The
    built-in handler serves, so this runs in the sanitizer build too."""

    def test_inherited_socket_is_used(self):
        held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(held.close)
        held.bind(("127.0.0.1", 0))
        held.listen(16)
        port = held.getsockname()[1]
        tmp = tempfile.mkdtemp(prefix="ringfpm-fpmsockets-")
        self.addCleanup(shutil.rmtree, tmp, True)
        conf = os.path.join(tmp, "ringfpm.conf")
        with open(conf, "w") as f:
            f.write("[global]\nerror_log = %s/error.log\n[www]\nexecutor.type = builtin\n"
                    "listen = 127.0.0.1:%d\n" % (tmp, port))
        env = dict(os.environ, FPM_SOCKETS="127.0.0.1:%d=%d" % (port, held.fileno()))
        proc = subprocess.Popen([harness.binary_path(), "-F", "-y", conf],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=env, pass_fds=[held.fileno()])

        def stop():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(5)
        self.addCleanup(stop)

        def log():
            with open(os.path.join(tmp, "error.log")) as f:
                return f.read()
        self.assertTrue(harness.wait_until(lambda: os.path.exists(os.path.join(tmp, "error.log"))
                                   and "ready to handle connections" in log(), 5.0),
                        "exit %s" % proc.poll())
        held.close()  # ours goes; ringfpm has its own
        for _ in range(3):
            with fcgi.Connection(("127.0.0.1", port), 5) as conn:
                response = conn.request(fcgi.default_params(), keep_conn=False, timeout=5)
            self.assertEqual(response.status_code(), 200, log())
        proc.terminate()
        self.assertEqual(proc.wait(5), 0, log())


if __name__ == "__main__":
    unittest.main()
