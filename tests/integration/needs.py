"""What a test needs from the machine, and what happens when it is not there.

A missing tool or right is a skip on a developer's machine and a failure in CI (the CI
variable set, as .ci/run does): scripts/install-deps.sh installs every tool a test uses and
CI runs as root, so a skip there would hide a test that never ran while CTest counted it.
Some things can never exist on these machines; ENVIRONMENTAL lists them with the reason
(reviewed): those skip everywhere, and CTest reports them as skipped, never as passed.

Standard library only.
"""

import functools
import os
import shutil
import unittest

# Reviewed environmental skips: the only reasons a test may skip in CI.
ENVIRONMENTAL = {
    "nofile": "the hard RLIMIT_NOFILE of the machine is below what the test opens",
    "port-offset": "no block of free ports was found for smtpsd dev --port-offset",
    "syncfs": "the test directory's file system is not one whose syncfs smtpsd trusts as a "
              "sync (ext2/3/4, XFS, Btrfs, F2FS on Linux 5.8 or later): Maildir fsyncs each "
              "copy there, so there is no batch syncfs to test",
}


def missing(what):
    """Called by a test that found something it needs missing: a skip, or in CI a failure."""
    if os.environ.get("CI"):
        raise AssertionError(f"{what}: CI must run every test (scripts/install-deps.sh "
                             f"installs every tool; CI runs as root)")
    raise unittest.SkipTest(what)


def _decorate(check):
    """A decorator for a test method or a whole TestCase class that runs check() first."""
    def decorate(target):
        if isinstance(target, type):
            original = target.setUp

            @functools.wraps(original)
            def setUp(self, *args, **kwargs):
                check()
                original(self, *args, **kwargs)

            target.setUp = setUp
            return target

        @functools.wraps(target)
        def run(*args, **kwargs):
            check()
            return target(*args, **kwargs)

        return run
    return decorate


def tools(*names):
    """The test runs these programs (found on PATH)."""
    def check():
        absent = [name for name in names if not shutil.which(name)]
        if absent:
            missing(", ".join(absent) + " not installed")
    return _decorate(check)


def require(*names):
    """The same as tools(), called from inside a test."""
    absent = [name for name in names if not shutil.which(name)]
    if absent:
        missing(", ".join(absent) + " not installed")


def condition(ok, what):
    """The test needs ok to be true (root, a program at a fixed path); what says why not."""
    def check():
        if not (ok() if callable(ok) else ok):
            missing(what)
    return _decorate(check)


def environmental(test, key, detail=""):
    """Skips test (a TestCase) for one of the reviewed ENVIRONMENTAL reasons, even in CI."""
    test.skipTest(ENVIRONMENTAL[key] + (f" ({detail})" if detail else ""))
