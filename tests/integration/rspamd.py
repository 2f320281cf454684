"""A private rspamd for tests and benchmarks: its proxy worker in milter mode on a unix
socket in a directory of the test, scanning by itself (self_scan), offline.

Debian's rspamd (scripts/install-deps.sh; its system service stays disabled) started with a
configuration of its own that reads nothing in /etc/rspamd and writes only in its directory
(log, hyperscan cache, temporary files). It starts in about a second because it is given
almost nothing to compile:

  - no rules file (rules/rspamd.lua, hundreds of regexps) and no C filters (`filters = ""`):
    GTUBE is recognised by rspamd's core (reject, "Gtube pattern") all the same;
  - one Lua module configured, milter_headers (modules not configured are not loaded);
  - an empty language directory (the 46 languages' stop words are hyperscan patterns that
    took ~10 s to compile on a loaded 2-core machine) and a five-line public suffix list
    (the real one has 9,628 suffixes to compile); hyperscan off for regexps;
  - no controller or normal worker: the proxy scans the message itself.

Its resolver is 127.0.0.1:9 (nothing listens there): no configured module asks DNS, and
rspamd's log line for each message says `dns req: 0`, which the test checks.

    with Rspamd(directory) as rspamd:
        rspamd.socket    # the milter socket, for [[milters]] address = "unix:..."
        rspamd.log()     # its log

Runs as the user running the test (`-i`: root too, which rspamd otherwise refuses). Stopped
by the pid it started (SIGTERM: the main process stops its workers). Only the standard
library.
"""

import os
import socket
import subprocess
import time

from processes import end_process

RSPAMD = "/usr/bin/rspamd"


def config_text(directory, sock):
    return f"""# Written by tests/integration/rspamd.py: offline, minimal, private.
options {{
  pidfile = "{directory}/rspamd.pid";
  filters = "";
  explicit_modules = [];
  disable_hyperscan = true;
  hs_cache_dir = "{directory}/db";
  url_tld = "{directory}/tld.dat";
  tempdir = "{directory}/tmp";
  dns {{ nameserver = ["127.0.0.1:9"]; timeout = 1s; retransmits = 1; }}
  task_timeout = 8s;
}}
lang_detection {{ languages = "{directory}/languages"; }}
logging {{ type = "file"; filename = "{directory}/rspamd.log"; level = "info"; }}
actions {{ reject = 15; add_header = 6; greylist = 4; }}
modules {{ path = "$PLUGINSDIR"; }}
# Headed even from 127.0.0.1 (the module skips local and authenticated clients by default).
milter_headers {{
  use = ["x-spamd-result", "x-rspamd-queue-id"];
  skip_local = false;
  skip_authenticated = false;
}}
worker "rspamd_proxy" {{
  bind_socket = "{sock} mode=0600";
  milter = yes;
  timeout = 120s;
  upstream "local" {{ default = yes; self_scan = yes; }}
  count = 1;
}}
"""


class Rspamd:

    def __init__(self, directory):
        self.dir = os.path.join(directory, "rspamd")
        self.socket = os.path.join(self.dir, "milter.sock")
        self.config = os.path.join(self.dir, "rspamd.conf")
        self.process = None
        for sub in ("db", "tmp", "languages"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        with open(os.path.join(self.dir, "tld.dat"), "w") as f:
            f.write("com\norg\nnet\ntest\nexample\n")
        with open(self.config, "w") as f:
            f.write(config_text(self.dir, self.socket))

    def log(self):
        text = ""
        for name in ("rspamd.out", "rspamd.log"):
            path = os.path.join(self.dir, name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    text += f"--- {name}:\n{f.read()}"
        return text

    def start(self, timeout=20):
        """Starts rspamd and waits until its milter socket accepts a connection (at most
        timeout seconds, then raises with rspamd's log)."""
        with open(os.path.join(self.dir, "rspamd.out"), "wb") as out:
            self.process = subprocess.Popen(
                [RSPAMD, "-f", "-i", "-c", self.config, "--var", f"DBDIR={self.dir}/db",
                 "--var", f"RUNDIR={self.dir}", "--var", f"LOGDIR={self.dir}"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        started = time.monotonic()
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"rspamd ended with status {self.process.returncode} "
                                   f"before listening:\n{self.log()[-4000:]}")
            if os.path.exists(self.socket):
                probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    probe.connect(self.socket)
                    break
                except OSError:
                    pass
                finally:
                    probe.close()
            if time.monotonic() - started > timeout:
                self.stop()
                raise RuntimeError(f"rspamd did not listen on {self.socket} within {timeout} s:"
                                   f"\n{self.log()[-4000:]}")
            time.sleep(0.05)
        self.start_seconds = time.monotonic() - started
        return self

    def stop(self):
        end_process(self.process)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
