"""A private SpamAssassin for tests and benchmarks: spamd on a unix socket and Debian's
spamass-milter on another, in a directory of the test, offline.

Debian's spamassassin, spamd, spamc and spamass-milter packages (scripts/install-deps.sh;
their system services stay disabled), started with options and files of our own:

  - spamd `--local` (Mail::SpamAssassin's local_tests_only: no DNS or network test runs),
    `--nouser-config`, one child, listening only on a unix socket (no port, no client name to
    look up), logging to a file of its own. Its rules are the ones Debian's package ships in
    /usr/share/spamassassin (`--configpath`; sa-update never runs, nothing is fetched); its
    site configuration (`--siteconfigpath`) is a directory the helper writes instead of
    /etc/spamassassin: a local.cf with `dns_available no`, `dns_server 127.0.0.1:9` (nothing
    listens there, should anything still ask), Bayes and auto-learning off, `report_safe 0`
    (headers only, the body left as it was), and an init.pre that loads only the Check
    plugin: rules inside `ifplugin` blocks of other plugins are not compiled, so spamd
    listens in about 3 s instead of 6-7 with all of /etc/spamassassin/*.pre. GTUBE is a
    plain body rule (20_body_tests.cf, 1000 points) and the X-Spam-* header fields are
    SpamAssassin's defaults (10_default_prefs.cf), both without any plugin.
  - spamass-milter `-p SOCKET -r REJECT -- -U SPAMD_SOCKET`: for each message it runs spamc
    against our spamd, copies SpamAssassin's X-Spam-* fields into the message (milter
    add/change header) and, from `-r` points on, rejects it with 550 5.7.1.

    with SpamAssassin(directory, reject_score=15) as sa:
        sa.socket        # the milter socket, for [[milters]] address = "unix:..."
        sa.log()         # spamd's log and both processes' output

Both run as the user running the test; as root (CI), spamd binds its socket and then becomes
nobody (it refuses to scan as root), so the helper makes the directories above its site
configuration traversable (o+x, as postfix.py does for Postfix). Both are stopped by the pids this helper started
(spamd ends its children on SIGTERM; spamass-milter, which keeps no state, gets SIGKILL like
OpenDKIM in test_milter.py, as libmilter takes seconds to end its threads on SIGTERM).
Only the standard library.
"""

import os
import signal
import socket
import subprocess
import time

from postfix import make_traversable
from processes import end_process

SPAMD = "/usr/sbin/spamd"
SPAMC = "/usr/bin/spamc"
SPAMASS_MILTER = "/usr/sbin/spamass-milter"
RULES = "/usr/share/spamassassin"

LOCAL_CF = """# Written by tests/integration/spamassassin.py: offline, private.
dns_available no
dns_server 127.0.0.1:9
use_bayes 0
bayes_auto_learn 0
report_safe 0
required_score 5.0
"""

# Only the plugin that runs the rules (it is what makes a scan possible at all).
INIT_PRE = "loadplugin Mail::SpamAssassin::Plugin::Check\n"


def _listening(path):
    if not os.path.exists(path):
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


class SpamAssassin:

    def __init__(self, directory, reject_score=15):
        self.dir = os.path.join(directory, "spamassassin")
        self.site = os.path.join(self.dir, "site")
        self.home = os.path.join(self.dir, "home")
        self.spamd_socket = os.path.join(self.dir, "spamd.sock")
        self.socket = os.path.join(self.dir, "milter.sock")
        self.reject_score = reject_score
        self.spamd = None
        self.milter = None
        for sub in (self.site, self.home):
            os.makedirs(sub, exist_ok=True)
        # Started as root, spamd becomes nobody before it reads its configuration: it must
        # reach the site directory (o+x on the test's directories, read on the files).
        make_traversable(self.site)
        with open(os.path.join(self.site, "local.cf"), "w") as f:
            f.write(LOCAL_CF)
        with open(os.path.join(self.site, "init.pre"), "w") as f:
            f.write(INIT_PRE)

    def log(self):
        text = ""
        for name in ("spamd.log", "spamd.out", "milter.out"):
            path = os.path.join(self.dir, name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    text += f"--- {name}:\n{f.read()}"
        return text

    def _wait(self, process, name, path, started, timeout):
        while not _listening(path):
            if process.poll() is not None:
                raise RuntimeError(f"{name} ended with status {process.returncode} before "
                                   f"listening:\n{self.log()[-4000:]}")
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{name} did not listen on {path} within {timeout} s:\n"
                                   f"{self.log()[-4000:]}")
            time.sleep(0.05)

    def start(self, timeout=30):
        """Starts spamd, waits until its socket accepts a connection, then spamass-milter
        and waits for its socket (at most timeout seconds in all, then raises with the
        logs). start_seconds: how long spamd took to listen."""
        started = time.monotonic()
        try:
            with open(os.path.join(self.dir, "spamd.out"), "wb") as out:
                self.spamd = subprocess.Popen(
                    [SPAMD, "--local", "--nouser-config", "--max-children=1",
                     "--min-children=1", f"--socketpath={self.spamd_socket}",
                     f"--configpath={RULES}", f"--siteconfigpath={self.site}",
                     f"--helper-home-dir={self.home}",
                     f"--pidfile={self.dir}/spamd.pid",
                     f"--syslog={self.dir}/spamd.log"],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=out)
            self._wait(self.spamd, "spamd", self.spamd_socket, started, timeout)
            self.start_seconds = time.monotonic() - started
            with open(os.path.join(self.dir, "milter.out"), "wb") as out:
                self.milter = subprocess.Popen(
                    [SPAMASS_MILTER, "-p", self.socket, "-r", str(self.reject_score),
                     "-P", f"{self.dir}/milter.pid", "--", "-U", self.spamd_socket],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=out)
            self._wait(self.milter, "spamass-milter", self.socket, started, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        end_process(self.milter, signal.SIGKILL)
        end_process(self.spamd)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
