#!/usr/bin/env python3
"""Run the integration tests and count them precisely.

Discovers test_*.py beside this file (or runs the names given on the command
line, e.g. `test_engine.CoreEpollTest.test_ping_answers_pong`), prints one
line per test, and ends with exactly `N passed, M failed`. A test counts once:
failed if it or any of its subtests failed or errored (including errors in
setUp/tearDown), skipped if it was skipped, passed otherwise. Errors outside
any test (import errors, setUpClass) count as one failed each. Exit status is
0 only if nothing failed and at least one test passed.
"""

import os
import signal
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


class CountingResult(unittest.TestResult):
    """Keeps one outcome per test id and prints a line as each test ends."""

    def __init__(self, stream, verbose):
        super().__init__()
        self.stream = stream
        self.verbose = verbose
        self.outcomes = {}   # test id -> "pass" | "fail" | "skip"
        self.details = {}    # test id -> list of failure texts
        self._started = {}

    def _mark(self, test, outcome, detail=None):
        tid = test.id()
        previous = self.outcomes.get(tid)
        if previous != "fail":
            self.outcomes[tid] = outcome
        if detail:
            self.details.setdefault(tid, []).append(detail)

    def startTest(self, test):
        super().startTest(test)
        self._started[test.id()] = time.monotonic()

    def stopTest(self, test):
        super().stopTest(test)
        tid = test.id()
        outcome = self.outcomes.setdefault(tid, "pass")
        took = time.monotonic() - self._started.pop(tid, time.monotonic())
        label = {"pass": "ok", "fail": "FAIL", "skip": "skip"}[outcome]
        self.stream.write("%-4s %s (%.2fs)\n" % (label, tid, took))
        if outcome == "fail" and self.verbose:
            for text in self.details.get(tid, []):
                self.stream.write(_indent(text))
        self.stream.flush()

    def addSuccess(self, test):
        super().addSuccess(test)
        self._mark(test, "pass")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._mark(test, "fail", self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        if isinstance(test, unittest.case._SubTest):
            test = test.test_case
        if not hasattr(test, "_testMethodName"):
            # setUpClass/module failures and import errors: no single test to blame.
            tid = "error: %s" % test.id() if hasattr(test, "id") else "error: %r" % test
            self.outcomes[tid] = "fail"
            self.stream.write("FAIL %s\n" % tid)
            self.stream.write(_indent(self._exc_info_to_string(err, test)))
            return
        self._mark(test, "fail", self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._mark(test, "skip")

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._mark(test, "pass")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._mark(test, "fail", "unexpected success")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._mark(test, "fail", "%s\n%s" % (subtest.id(), self._exc_info_to_string(err, test)))


def _indent(text):
    return "".join("    " + line + "\n" for line in text.rstrip("\n").split("\n"))


def main(argv):
    verbose = "-q" not in argv
    names = [a for a in argv if not a.startswith("-")]
    sys.path.insert(0, HERE)
    loader = unittest.defaultTestLoader
    if names:
        suite = loader.loadTestsFromNames(names)
    else:
        suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    import harness

    def interrupted(signum, frame):
        harness.kill_all()
        sys.stdout.write("\ninterrupted by signal %d\n" % signum)
        sys.stdout.flush()
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    result = CountingResult(sys.stdout, verbose)
    suite.run(result)
    passed = sum(1 for o in result.outcomes.values() if o == "pass")
    failed = sum(1 for o in result.outcomes.values() if o == "fail")
    skipped = sum(1 for o in result.outcomes.values() if o == "skip")
    if skipped:
        print("%d skipped" % skipped)
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
