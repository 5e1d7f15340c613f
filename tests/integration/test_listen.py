"""listen.owner / listen.group / listen.mode on a unix socket and
listen.allowed_clients on TCP, as php-fpm applies them."""

import grp
import os
import pwd
import socket
import stat
import unittest

import fcgi
import harness


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
        server = harness.RingFpm(pools={"www": {"listen": "unix",
                                                "listen.owner": "no-such-user-rf"}})
        self.addCleanup(server.cleanup)
        with self.assertRaises(harness.HarnessError):
            server.start()
        self.assertIn("cannot get uid for user 'no-such-user-rf'", server.log() + server.output())


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


if __name__ == "__main__":
    unittest.main()
