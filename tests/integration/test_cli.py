"""The ringfpm command itself: logging to an inherited stderr."""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import unittest

import harness
import phpserver


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
    """php-fpm directives ringfpm parsed without acting on them were named in
    one startup warning per pool. Every one is acted on now: a configuration
    that sets the last of them draws no such line."""

    def test_no_php_fpm_directive_is_left_pending(self):
        server = harness.RingFpm({"events.mechanism": "epoll"}, {"www": {
            "pm": "dynamic", "pm.max_children": "5", "pm.start_servers": "2",
            "pm.min_spare_servers": "1", "pm.max_spare_servers": "3",
            "access.format": '"%R %s"', "env[APP]": "x", "prefix": "/tmp",
            "access.log": "/tmp/ringfpm-access.log", "listen.allowed_clients": "127.0.0.1",
            "request_terminate_timeout_track_finished": "yes", "process.priority": "0",
            "pm.status_listen": "127.0.0.1:%d" % harness.free_tcp_port(),
            "apparmor_hat": "x",
        }})
        server.start()
        self.addCleanup(server.cleanup)
        self.assertIsNotNone(server.wait_log(r"ready to handle connections"), server.log())
        self.assertNotIn("not implemented by ringfpm", server.log())

    def test_events_mechanism_checked_as_php_fpm(self):
        # A Linux php-fpm takes epoll, poll or select (any case) and fails
        # the start on anything else, -t included.
        tmp = tempfile.mkdtemp(prefix="ringfpm-ev-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "x.conf")
        for value, rc in (("Poll", 0), ("select", 0), ("kqueue", 78), ("foo", 78)):
            with open(path, "w") as f:
                f.write("[global]\nerror_log = /proc/self/fd/2\nevents.mechanism = %s\n"
                        "[www]\nlisten = 127.0.0.1:%d\npm = static\npm.max_children = 1\n"
                        "executor.type = builtin\n" % (value, harness.free_tcp_port()))
            r = run_ringfpm("-t", "-y", path)
            self.assertEqual(r.returncode, rc, value + r.stderr)
            if rc:
                self.assertIn("ERROR: event mechanism '%s' is not available on this system\n"
                              % value, r.stderr)
                self.assertIn("ERROR: failed to post process the configuration", r.stderr)
            else:
                r = run_ringfpm("-tt", "-y", path)
                self.assertIn("events.mechanism = %s\n" % value.lower(), r.stderr)

    def test_no_warning_when_nothing_is_pending(self):
        server = harness.RingFpm(pools={"www": {"ping.path": "/ping"}})
        server.start()
        self.addCleanup(server.cleanup)
        self.assertIsNotNone(server.wait_log(r"ready to handle connections"))
        self.assertNotIn("not implemented by ringfpm yet", server.log())



def run_ringfpm(*args, timeout=30):
    return subprocess.run([harness.binary_path()] + list(args), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


class InfoModulesTest(unittest.TestCase):
    """-m and -i start PHP as the executors get it (-c, -n, -d) and print
    what php-fpm8.2 prints."""

    def setUp(self):
        reason = phpserver.missing_reason("ringfpm")
        if reason:
            self.skipTest(reason)

    def test_m_lists_php_and_zend_modules(self):
        r = run_ringfpm("-m")
        self.assertEqual(r.returncode, 0, r.stderr)
        php, _, zend = r.stdout.partition("\n\n[Zend Modules]\n")
        self.assertTrue(php.startswith("[PHP Modules]\n"), r.stdout)
        modules = php.splitlines()[1:]
        for name in ("cgi-fcgi", "Core", "date", "SPL", "standard"):
            self.assertIn(name, modules)
        self.assertEqual(modules, sorted(modules, key=str.lower))
        self.assertEqual(zend, "Zend OPcache\n\n")  # Debian's conf.d loads it

    def test_m_acts_on_the_options_before_it_only(self):
        bare = run_ringfpm("-n", "-m")
        self.assertEqual(bare.returncode, 0, bare.stderr)
        self.assertNotIn("Zend OPcache", bare.stdout)
        self.assertTrue(bare.stdout.endswith("[Zend Modules]\n\n"), bare.stdout)
        late = run_ringfpm("-m", "-n")  # php-fpm prints at -m: the -n comes too late
        self.assertIn("Zend OPcache", late.stdout)

    def test_m_matches_php_fpm(self):
        if phpserver.missing_reason("php-fpm"):
            self.skipTest("php-fpm8.2 not installed")
        for args in (["-m"], ["-n", "-m"]):
            ours = run_ringfpm(*args).stdout.splitlines()
            theirs = subprocess.run([phpserver.PHP_FPM] + args, capture_output=True, text=True,
                                    timeout=30).stdout.splitlines()
            # Debian's libphp (embed) has pcntl built in, php-fpm8.2 has not
            self.assertEqual([m for m in ours if m != "pcntl"], theirs, args)

    def test_i_prints_phpinfo_as_text(self):
        r = run_ringfpm("-i")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith("phpinfo()\nPHP Version => 8.2."), r.stdout[:200])
        for line in ("Server API => FPM/FastCGI",
                     "Loaded Configuration File => /etc/php/8.2/fpm/php.ini",
                     "php-fpm => active",
                     "cgi.fix_pathinfo => On => On",
                     "cgi.force_redirect => On => On",
                     "cgi.redirect_status_env => no value => no value",
                     "fpm.config => no value => no value"):
            self.assertIn("\n" + line + "\n", r.stdout)
        self.assertNotIn("fastcgi.script_path_encoded", r.stdout)  # not php-fpm 8.2's
        self.assertNotIn("<table", r.stdout)
        self.assertRegex(r.stdout, r"\$_SERVER\['REQUEST_TIME'\] => [1-9]\d+\n")

    def test_i_honours_n_and_d_after_it_and_ignores_arguments(self):
        # regression: -n still loaded the default php.ini
        r = run_ringfpm("-i", "-n", "-d", "memory_limit=77M", "extra")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("\nLoaded Configuration File => (none)\n", r.stdout)
        self.assertIn("\nmemory_limit => 77M => 77M\n", r.stdout)
        self.assertIn("\nAdditional .ini files parsed => (none)\n", r.stdout)


class RunAsRootTest(unittest.TestCase):
    """As root, php-fpm refuses a PHP pool with no user (also at -t), and at
    start-up one whose user or group is root, unless -R."""

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("needs root")
        self.tmp = tempfile.mkdtemp(prefix="ringfpm-root-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def conf(self, pool):
        path = os.path.join(self.tmp, "x.conf")
        with open(path, "w") as f:
            f.write("[global]\nerror_log = /proc/self/fd/2\n[www]\n"
                    "listen = 127.0.0.1:%d\npm = static\npm.max_children = 1\n%s"
                    % (harness.free_tcp_port(), pool))
        return path

    def test_pool_without_user_is_refused_without_R(self):
        conf = self.conf("")
        for args in (["-t"], ["-F"]):
            r = run_ringfpm(*args, "-y", conf, timeout=10)
            self.assertEqual(r.returncode, 78, r.stderr)
            self.assertIn("ALERT: [pool www] user has not been defined", r.stderr)
            self.assertIn("ERROR: failed to post process the configuration", r.stderr)
            self.assertIn("ERROR: FPM initialization failed", r.stderr)
        r = run_ringfpm("-t", "-R", "-y", conf)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run_ringfpm("-t", "--allow-to-run-as-root", "-y", conf)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_root_user_or_group_is_refused_at_start_not_at_t(self):
        for pool in ("user = root\n", "user = 0\n", "user = www-data\ngroup = root\n",
                     "user =\n"):
            conf = self.conf(pool)
            r = run_ringfpm("-t", "-y", conf)
            self.assertEqual(r.returncode, 0, pool + r.stderr)  # as php-fpm's -t
            r = run_ringfpm("-F", "-y", conf, timeout=10)
            self.assertEqual(r.returncode, 78, pool + r.stderr)
            self.assertIn("ERROR: [pool www] please specify user and group other than root",
                          r.stderr)

    def test_unknown_user_is_refused_at_start(self):
        r = run_ringfpm("-F", "-y", self.conf("user = no-such-user-rf\n"), timeout=10)
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn("ERROR: [pool www] cannot get uid for user 'no-such-user-rf'", r.stderr)

    def test_a_builtin_pool_needs_no_user(self):
        # it runs no PHP: nothing runs as the pool's user
        r = run_ringfpm("-t", "-y", self.conf("executor.type = builtin\n"))
        self.assertEqual(r.returncode, 0, r.stderr)


class ConfigTestChecksTest(unittest.TestCase):
    """What -t refuses, with php-fpm's texts and exit 78."""

    def check(self, pool, expect, global_opts=None):
        server = harness.RingFpm(global_opts=global_opts, pools={"www": pool})
        self.addCleanup(server.cleanup)
        r = server.config_test()
        out = r.stdout + r.stderr + server.log()
        self.assertEqual(r.returncode, 78, out)
        self.assertIn(expect, out)

    def test_process_priority_range(self):
        self.check({"process.priority": "21"},
                   "[pool www] process.priority must be included into [-19,20]")
        self.check({}, "ERROR: process.priority must be included into [-19,20]",
                   {"process.priority": "-20"})

    def test_relative_paths_resolve_under_the_pool_prefix(self):
        server = harness.RingFpm(pools={"www": {"executor.type": "php", "pm": "static",
                                                 "pm.max_children": "1"}})
        self.addCleanup(server.cleanup)
        os.mkdir(os.path.join(server.tmpdir, "wd"))
        server.pools["www"].update({"prefix": server.tmpdir, "access.log": "log/$pool.acc",
                                    "slowlog": "slow.log", "chdir": "wd",
                                    "php_admin_value[error_log]": "php.err"})
        server.write_config()
        r = subprocess.run([harness.binary_path(), "-tt", "-y", server.conf_path]
                           + harness.root_flags(), capture_output=True, text=True, timeout=10)
        out = r.stdout + r.stderr + server.log()
        self.assertEqual(r.returncode, 0, out)
        for line in ("prefix = %s", "access.log = %s/log/www.acc", "slowlog = %s/slow.log",
                     "chdir = %s/wd", "php_admin_value[error_log] = %s/php.err"):
            self.assertIn("\t" + line % server.tmpdir + "\n", out)

    def test_missing_prefix_or_chdir(self):
        self.check({"prefix": "/nonexistent-rf"},
                   "[pool www] the prefix '/nonexistent-rf' does not exist or is not a directory")
        self.check({"chdir": "/nonexistent-rf"},
                   "[pool www] the chdir path '/nonexistent-rf' does not exist or is not a "
                   "directory")


if __name__ == "__main__":
    unittest.main()
