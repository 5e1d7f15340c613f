"""What php-fpm applies to its processes from the config, seen from outside:
process.priority (the master's and the executors' nice values), the
master's rlimit_core, and a pool's relative paths resolved under its
prefix (listen socket, access.log, chdir) on a running ringfpm."""

import os
import unittest

import fcgi
import harness
import phpserver


def setUpModule():
    reason = phpserver.missing_reason("ringfpm")
    if reason:
        raise unittest.SkipTest(reason)


def nice_of(pid):
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    return int(stat[stat.rindex(")") + 2:].split()[16])


def php_pool(**opts):
    pool = {"executor.type": "php", "pm": "static", "pm.max_children": "1"}
    pool.update(opts)
    return pool


def hello(server):
    return fcgi.simple_request(server.address, "/hello.php", extra={
        "SCRIPT_FILENAME": os.path.join(harness.PHP_SCRIPTS, "hello.php")}, timeout=8.0)


class PriorityTest(unittest.TestCase):
    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("process.priority acts only as root")

    def start(self, global_opts=None, pools=None):
        server = harness.RingFpm(global_opts=global_opts, pools=pools)
        self.addCleanup(server.cleanup)
        server.start()
        return server

    def executors(self, server, n=1):
        pids = harness.wait_until(lambda: server.pids() if len(server.pids()) >= n else None, 5)
        self.assertTrue(pids, server.diagnostics())
        return pids

    def test_pool_priority_is_the_executors_nice_value(self):
        server = self.start(pools={"www": php_pool(**{"process.priority": "7"})})
        for pid in self.executors(server):
            self.assertEqual(nice_of(pid), 7)
        self.assertEqual(nice_of(server.proc.pid), nice_of(os.getpid()))  # master untouched
        self.assertEqual(hello(server).status_code(), 200)

    def test_global_priority_is_the_masters_and_inherited(self):
        server = self.start(global_opts={"process.priority": "3"},
                            pools={"a": php_pool(), "b": php_pool(**{"process.priority": "9"})})
        self.assertEqual(nice_of(server.proc.pid), 3)
        pids = self.executors(server, 2)
        self.assertEqual(sorted(nice_of(pid) for pid in pids), [3, 9])


class MasterRlimitCoreTest(unittest.TestCase):
    def limits(self, pid):
        with open("/proc/%d/limits" % pid) as f:
            for line in f:
                if line.startswith("Max core file size"):
                    return line.split()[4:6]
        return None

    def test_global_rlimit_core_is_the_masters(self):
        for value, want in (("12345", ["12345", "12345"]), ("unlimited", ["unlimited"] * 2)):
            server = harness.RingFpm(global_opts={"rlimit_core": value})
            server.start()
            try:
                self.assertEqual(self.limits(server.proc.pid), want, value)
                self.assertNotIn("not implemented by ringfpm yet", server.log())
            finally:
                server.stop()
                server.cleanup()


class RelativePathsTest(unittest.TestCase):
    def test_listen_access_log_and_chdir_under_the_pool_prefix(self):
        server = harness.RingFpm(pools={"www": php_pool(**{"listen": "unix"})})
        self.addCleanup(server.cleanup)
        os.mkdir(os.path.join(server.tmpdir, "wd"))
        os.mkdir(os.path.join(server.tmpdir, "log"))
        sock = os.path.join(server.tmpdir, "www.sock")
        server.pools["www"].update({"prefix": server.tmpdir, "listen": "www.sock",
                                    "access.log": "log/$pool.acc", "access.format": "%r",
                                    "chdir": "wd"})
        server.addresses["www"] = server.address = sock
        server.start()
        self.assertEqual(hello(server).status_code(), 200)
        acc = os.path.join(server.tmpdir, "log", "www.acc")
        lines = harness.wait_until(lambda: open(acc).read() if os.path.exists(acc) else "", 5)
        self.assertEqual(lines, "/hello.php\n")
        for pid in server.pids():
            self.assertEqual(os.readlink("/proc/%d/cwd" % pid),
                             os.path.join(server.tmpdir, "wd"))


if __name__ == "__main__":
    unittest.main()
