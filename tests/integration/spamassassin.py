"""A private SpamAssassin for tests and benchmarks: spamd on a unix socket and Debian's
spamass-milter on another, in a directory of the test, offline.

Debian's spamassassin, spamd, spamc and spamass-milter packages (scripts/install-deps.sh;
their system services stay disabled), started with options and files of our own:

  - spamd `--local` (Mail::SpamAssassin's local_tests_only: no DNS or network test runs),
    `--nouser-config`, one child (or `children`), listening only on a unix socket (no port, no client name to
    look up), logging to a file of its own. Its rules are the ones Debian's package ships in
    /usr/share/spamassassin (`--configpath`; sa-update never runs, nothing is fetched):
    rules="all" takes them all, the default "core" a directory of links to them without
    72_active.cf (490 KB, the rules sa-update would refresh) and the 30_text_*.cf
    translations. Its site configuration (`--siteconfigpath`) is a directory the helper
    writes instead of /etc/spamassassin: a local.cf with `dns_available no`,
    `dns_server 127.0.0.1:9` (nothing listens there, should anything still ask), Bayes and
    auto-learning off, `report_safe 0` (header fields only, the body left as it was), and an
    init.pre that loads only the Check plugin, so the rules inside `ifplugin` blocks of the
    other plugins are not compiled. GTUBE is a plain body rule (20_body_tests.cf, 1000
    points) and the X-Spam-* header fields are SpamAssassin's defaults
    (10_default_prefs.cf): neither needs another plugin.
  - spamass-milter `-p SOCKET -r REJECT -- -U SPAMD_SOCKET`: for each message it runs spamc
    against our spamd, adds SpamAssassin's X-Spam-* fields to the message and, from `-r`
    points on, rejects it with 550 5.7.1 Blocked by SpamAssassin.

Start-up is spamd compiling its rules on one core; it binds its socket first, so readiness is
its answer to a PING. Time from start to that answer on the shared 2-core machine (December
2026, load average 5-8 from other builds, variants in alternation, three rounds each):
all of /etc/spamassassin/*.pre with all rules 7.8-10.2 s; only the Check plugin, all rules
2.7-6.5 s; only the Check plugin, "core" rules 1.7-2.9 s. launch() returns at once so that a
test starts smtpsd while spamd compiles, then wait_ready().

    with SpamAssassin(directory, reject_score=15) as sa:
        sa.socket        # the milter socket, for [[milters]] address = "unix:..."
        sa.log()         # spamd's log and both processes' output

Both run as the user running the test; as root (CI), spamd binds its socket and then becomes
nobody (it refuses to scan as root), so the helper makes the directories above its site and
rules directories traversable (o+x, as postfix.py does for Postfix). Both are stopped by the
pids this helper started: spamd ends its children on SIGTERM; spamass-milter, which keeps no
state, gets SIGKILL (on SIGTERM libmilter took 5 s to end, like OpenDKIM in test_milter.py).
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


def _pong(path):
    """Whether spamd answers a PING on its socket: it binds the socket before it reads its
    rules, and a child answers only once they are compiled."""
    if not os.path.exists(path):
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1)
    try:
        probe.connect(path)
        probe.sendall(b"PING SPAMC/1.5\r\n\r\n")
        answer = b""
        while b"\n" not in answer:
            chunk = probe.recv(100)
            if not chunk:
                break
            answer += chunk
        return b" 0 PONG" in answer
    except OSError:
        return False
    finally:
        probe.close()


class SpamAssassin:

    def __init__(self, directory, reject_score=15, rules="core", children=1):
        """rules: "all", every rule file Debian ships in /usr/share/spamassassin; "core",
        the same without 72_active.cf (490 KB, the rules sa-update would refresh) and the
        30_text_*.cf translations, which spamd compiles in about half the time. children:
        spamd's scanning processes (each scans one message at a time)."""
        if rules not in ("all", "core"):
            raise ValueError(f"rules must be 'all' or 'core', not {rules!r}")
        self.dir = os.path.join(directory, "spamassassin")
        self.site = os.path.join(self.dir, "site")
        self.home = os.path.join(self.dir, "home")
        self.rules = RULES if rules == "all" else os.path.join(self.dir, "rules")
        self.spamd_socket = os.path.join(self.dir, "spamd.sock")
        self.socket = os.path.join(self.dir, "milter.sock")
        self.reject_score = reject_score
        self.children = children
        self.spamd = None
        self.milter = None
        for sub in (self.site, self.home):
            os.makedirs(sub, exist_ok=True)
        if rules == "core":
            os.makedirs(self.rules, exist_ok=True)
            for name in sorted(os.listdir(RULES)):
                if name.endswith(".cf") and name != "72_active.cf" and \
                        not name.startswith("30_text_"):
                    os.symlink(os.path.join(RULES, name), os.path.join(self.rules, name))
        # Started as root, spamd becomes nobody before it reads its configuration: it must
        # reach the site and rules directories (o+x on the test's directories).
        make_traversable(self.site)
        make_traversable(self.rules)
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

    def _wait(self, process, name, path, started, timeout, ready=_listening):
        while not ready(path):
            if process.poll() is not None:
                raise RuntimeError(f"{name} ended with status {process.returncode} before "
                                   f"listening:\n{self.log()[-4000:]}")
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{name} did not listen on {path} within {timeout} s:\n"
                                   f"{self.log()[-4000:]}")
            time.sleep(0.05)

    def launch(self):
        """Starts spamd and spamass-milter without waiting for them (spamass-milter needs
        spamd only per message): the caller may start smtpsd meanwhile, then call
        wait_ready(). spamd's start is mostly compiling its rules, on one core."""
        self.launched = time.monotonic()
        try:
            with open(os.path.join(self.dir, "spamd.out"), "wb") as out:
                self.spamd = subprocess.Popen(
                    [SPAMD, "--local", "--nouser-config", f"--max-children={self.children}",
                     f"--min-children={self.children}", f"--socketpath={self.spamd_socket}",
                     f"--configpath={self.rules}", f"--siteconfigpath={self.site}",
                     f"--helper-home-dir={self.home}",
                     f"--pidfile={self.dir}/spamd.pid",
                     f"--syslog={self.dir}/spamd.log"],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=out)
            with open(os.path.join(self.dir, "milter.out"), "wb") as out:
                self.milter = subprocess.Popen(
                    [SPAMASS_MILTER, "-p", self.socket, "-r", str(self.reject_score),
                     "-P", f"{self.dir}/milter.pid", "--", "-U", self.spamd_socket],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout=30):
        """Waits until spamd answers a PING on its socket and spamass-milter accepts a
        connection on its own (at most timeout seconds from launch(), then stops both and
        raises with the logs). start_seconds: from launch() to spamd's answer."""
        try:
            self._wait(self.spamd, "spamd", self.spamd_socket, self.launched, timeout, _pong)
            self.start_seconds = time.monotonic() - self.launched
            self._wait(self.milter, "spamass-milter", self.socket, self.launched, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def start(self, timeout=30):
        """launch(), then wait_ready(timeout)."""
        return self.launch().wait_ready(timeout)

    def stop(self):
        end_process(self.milter, signal.SIGKILL)
        end_process(self.spamd)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
