"""A private Postfix for tests and benchmarks, on loopback, in a directory of the test.

`smtpsctl probe` and `bench/compare` need a real, widely deployed server to talk to. This
helper writes a config_directory of its own (main.cf, master.cf; nothing in /etc/postfix
is written, only its postfix-files list is read), creates the queue and data directories
with `postfix -c DIR check` (which creates what is missing, owned as Postfix wants), and
runs `master -c DIR -d` in the foreground as a child, stopped by the pid it started
(SIGTERM: the master stops its children). Instances share nothing but the binaries, so
tests run in parallel.

    pki = ...  # certificate and key for "localhost" signed by a test CA
    with Postfix(tmpdir, pki.cert, pki.key, smtps=True, submission=True) as postfix:
        postfix.ports["smtp"]        # STARTTLS offered (smtpd_tls_security_level = may)
        postfix.ports["smtps"]       # implicit TLS (smtpd_tls_wrappermode = yes)
        postfix.ports["submission"]  # STARTTLS + AUTH (Dovecot SASL: sasl_user/_password)

Mail is accepted from loopback (mynetworks) for any recipient and thrown away by the
discard transport after cleanup has written and fsynced the queue file (as always before
Postfix says 250), so a benchmark measures acceptance, not delivery. The log goes to
<dir>/postfix/maillog (postlogd, `maillog_file`).

With `maildir=BASE` the local domain is a virtual mailbox domain instead: mail to
demo@<domain> (`mailbox=`) is delivered by the virtual(8) agent into the Maildir BASE/<domain>/demo/
(new/ holds one file per message), as user nobody, and other recipients of the domain are
refused (unknown user), as on a real mail server; `queued()` says how many messages still
wait in the queue, `delivered()` how many files the Maildir holds.

Weak on purpose (for the probe): `protocols=">=TLSv1"` with `legacy_tls=True` lowers
OpenSSL's security level to 0 so that TLS 1.0 really is negotiated (Debian's OpenSSL 3 refuses
TLS 1.0/1.1 at level 1 and above), and `auth_before_tls=True` offers AUTH before STARTTLS
(`smtpd_tls_auth_only = no`).

Needs the Debian package postfix (scripts/install-deps.sh: "No configuration", no system
service), its `postfix` user and `postdrop` group, and root (the master starts as root and
its daemons switch to the postfix user). Only the standard library.
"""

import grp
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

from dovecot import DOVECOT, MAX_BASE_DIR
from ports import free_port
from processes import end_process

POSTFIX = os.environ.get("POSTFIX_BIN", "/usr/sbin/postfix")
POSTCONF = "/usr/sbin/postconf"
INSTALL_HINT = "postfix not found: run scripts/install-deps.sh (Debian package postfix)"


def postfix_daemon_directory():
    return subprocess.run([POSTCONF, "-h", "-d", "daemon_directory"], capture_output=True,
                          text=True, check=True).stdout.strip()


def make_traversable(path):
    """Let the postfix user reach files under a root-only temp dir (o+x on each parent)."""
    path = os.path.abspath(path)
    while path not in ("/", ""):
        mode = os.stat(path).st_mode
        if not mode & 0o001:
            os.chmod(path, mode | 0o001)
        path = os.path.dirname(path)


class DovecotSasl:
    """A private Dovecot that serves only its auth socket, for Postfix SASL (PLAIN LOGIN).

    One user, `user`, with the plain password `password` (a test secret, never real)."""

    def __init__(self, directory, user, password):
        self.dir = directory
        self.user, self.password = user, password
        os.makedirs(self.dir, exist_ok=True)
        base_dir = os.path.join(self.dir, "run")
        self.own_base_dir = len(base_dir) > MAX_BASE_DIR
        self.base_dir = tempfile.mkdtemp(prefix="dovecot-") if self.own_base_dir else base_dir
        os.makedirs(self.base_dir, exist_ok=True)
        self.socket = os.path.join(self.base_dir, "auth-postfix")
        self.config_path = os.path.join(self.dir, "dovecot.conf")
        self.log_path = os.path.join(self.dir, "dovecot.log")
        users = os.path.join(self.dir, "users")
        with open(users, "w") as f:
            f.write(f"{user}:{{PLAIN}}{password}::::::\n")
        os.chmod(users, 0o600)
        with open(self.config_path, "w") as f:
            f.write(f"""# Written by tests/integration/postfix.py: SASL for a private Postfix.
base_dir = {self.base_dir}
state_dir = {os.path.join(self.dir, "state")}
instance_name = smtpsd-sasl-{os.getpid()}-{id(self)}
protocols =
ssl = no
log_path = {self.log_path}
default_internal_user = root
default_internal_group = root
default_login_user = root
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = {users}
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}}
service auth {{
  unix_listener auth-postfix {{
    mode = 0666
  }}
}}
""")
        os.makedirs(os.path.join(self.dir, "state"), exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([DOVECOT, "-F", "-c", self.config_path],
                                        stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if os.path.exists(self.socket):
                make_traversable(self.base_dir)
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot auth did not start; see {self.log_path}")

    def stop(self):
        end_process(self.process, timeout=10)
        self.process = None
        if self.own_base_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)


class Postfix:
    """A running private Postfix. A context manager, or call start() and stop().

    directory: an existing directory of the test; everything goes to <directory>/postfix.
    cert, key: PEM files (read by smtpd as root at start-up).
    starttls / smtps / submission: which services to run, each on a free loopback port.
    protocols: smtpd_tls_protocols and smtpd_tls_mandatory_protocols (">=TLSv1.2").
    legacy_tls: OpenSSL security level 0 for smtpd, so that TLS 1.0/1.1 can be negotiated.
    auth_before_tls: the submission service offers AUTH in clear (smtpd_tls_auth_only = no).
    exclude_ciphers: smtpd_tls_exclude_ciphers, e.g. "aNULL" (Postfix's smtpd otherwise
        accepts anonymous ciphers, as its default does).
    smtps_auth: the smtps service offers AUTH too (inside TLS, as smtpsd's submissions role).
    sasl_user, sasl_password: the one SASL account (AUTH PLAIN or LOGIN).
    domain: the local domain (mail to it is accepted and discarded).
    maildir: a directory; mail to <mailbox>@<domain> is delivered into the Maildir
        <maildir>/<domain>/<mailbox>/ (virtual(8)) instead of being discarded.
    process_limit: how many smtpd processes a service may run (default_process_limit).
    """

    def __init__(self, directory, cert, key, starttls=True, smtps=False, submission=False,
                 protocols=">=TLSv1.2", legacy_tls=False, auth_before_tls=False,
                 exclude_ciphers="", smtps_auth=False, sasl_user="demo@localhost",
                 sasl_password="bench-password",
                 hostname="localhost", domain="localhost", process_limit=100,
                 maildir=None, mailbox="demo", main_cf_extra=(), command_prefix=()):
        if not os.access(POSTFIX, os.X_OK):
            raise RuntimeError(INSTALL_HINT)
        if os.geteuid() != 0:
            raise RuntimeError("a private Postfix needs root (its master starts as root)")
        self.root = os.path.join(os.path.abspath(directory), "postfix")
        self.config_dir = os.path.join(self.root, "etc")
        self.queue_dir = os.path.join(self.root, "spool")
        self.data_dir = os.path.join(self.root, "data")
        self.log_path = os.path.join(self.root, "maillog")
        self.cert, self.key = os.path.abspath(cert), os.path.abspath(key)
        self.services = [name for name, wanted in (("smtp", starttls), ("smtps", smtps),
                                                   ("submission", submission)) if wanted]
        self.protocols = protocols
        self.legacy_tls = legacy_tls
        self.auth_before_tls = auth_before_tls
        self.smtps_auth = smtps_auth
        self.exclude_ciphers = exclude_ciphers
        self.sasl_user, self.sasl_password = sasl_user, sasl_password
        self.hostname, self.domain = hostname, domain
        self.process_limit = process_limit
        self.maildir_base = os.path.abspath(maildir) if maildir is not None else None
        self.mailbox = mailbox
        # main.cf lines that override the ones above (postconf: the last one wins), and what
        # runs the master (`ip netns exec NAME`: in a network namespace).
        self.main_cf_extra = list(main_cf_extra)
        self.command_prefix = list(command_prefix)
        self.ports = {}
        self.process = None
        self.sasl = None
        os.makedirs(self.config_dir, exist_ok=True)
        os.makedirs(self.queue_dir, mode=0o755, exist_ok=True)  # root's; postfix makes the rest
        make_traversable(self.root)
        if self.maildir_base is not None:
            # virtual(8) delivers as this user and creates <domain>/<mailbox>/{tmp,new,cur}
            # itself, so the base must be its; nobody's uid is above virtual_minimum_uid (100).
            self.maildir_owner = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
            os.makedirs(self.maildir_base, exist_ok=True)
            os.chown(self.maildir_base, *self.maildir_owner)
            make_traversable(self.maildir_base)
            with open(os.path.join(self.config_dir, "virtual_mailboxes"), "w") as f:
                f.write(f"{self.mailbox}@{self.domain} {self.domain}/{self.mailbox}/\n")

    # -- configuration -----------------------------------------------------------------------

    def main_cf(self):
        daemon_dir = postfix_daemon_directory()
        lines = [
            "# Written by tests/integration/postfix.py: a private instance on loopback.",
            "compatibility_level = 3.6",
            f"config_directory = {self.config_dir}",
            f"queue_directory = {self.queue_dir}",
            f"data_directory = {self.data_dir}",
            f"daemon_directory = {daemon_dir}",
            "mail_owner = postfix",
            "setgid_group = postdrop",
            "inet_interfaces = 127.0.0.1",
            "inet_protocols = ipv4",
            f"myhostname = {self.hostname}",
            "mydomain = localdomain",
            # With maildir= the domain is a virtual mailbox domain instead (below).
            "mydestination = " + ("" if self.maildir_base is not None else self.domain),
            "mynetworks = 127.0.0.0/8",
            "local_recipient_maps =",
            "alias_maps =",
            "alias_database =",
            "biff = no",
            # Accepted mail is thrown away after it was queued (and fsynced) by cleanup.
            "default_transport = discard:benchmark",
            "local_transport = discard:benchmark",
            "relay_transport = discard:benchmark",
            "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, "
            "reject_unauth_destination",
            f"default_process_limit = {self.process_limit}",
            "smtpd_client_connection_count_limit = 0",
            "smtpd_client_connection_rate_limit = 0",
            "smtpd_client_message_rate_limit = 0",
            "message_size_limit = 10240000",
            f"maillog_file = {self.log_path}",
            f"maillog_file_prefixes = {self.root}",
            f"syslog_name = postfix-test-{os.getpid()}",
            f"smtpd_tls_cert_file = {self.cert}",
            f"smtpd_tls_key_file = {self.key}",
            "smtpd_tls_security_level = may",
            f"smtpd_tls_protocols = {self.protocols}",
            f"smtpd_tls_mandatory_protocols = {self.protocols}",
            "smtpd_tls_loglevel = 0",
            "smtpd_tls_received_header = no",
            "tls_preempt_cipherlist = yes",
            "smtpd_sasl_auth_enable = no",
            f"smtpd_tls_exclude_ciphers = {self.exclude_ciphers}",
        ]
        if self.maildir_base is not None:
            # The trailing slash in the mailbox map makes the mailbox a Maildir.
            uid, gid = self.maildir_owner
            lines += [f"virtual_mailbox_domains = {self.domain}",
                      f"virtual_mailbox_base = {self.maildir_base}",
                      "virtual_mailbox_maps = texthash:"
                      + os.path.join(self.config_dir, "virtual_mailboxes"),
                      f"virtual_uid_maps = static:{uid}",
                      f"virtual_gid_maps = static:{gid}",
                      "virtual_transport = virtual"]
        if self.legacy_tls:
            # OpenSSL 3 allows TLS 1.0/1.1 only at security level 0; both cipher grades
            # smtpd may use get it (smtpd_tls_ciphers = medium is the default).
            lines += ["tls_medium_cipherlist = DEFAULT:@SECLEVEL=0",
                      "tls_high_cipherlist = HIGH:@SECLEVEL=0"]
        return "\n".join(lines + self.main_cf_extra) + "\n"

    def master_cf(self):
        # service type private unpriv chroot wakeup maxproc command
        lines = ["# Written by tests/integration/postfix.py. Nothing is chrooted."]
        for name in self.services:
            port = self.ports[name]
            lines.append(f"127.0.0.1:{port} inet n - n - - smtpd")
            if name == "smtps":
                lines += ["  -o syslog_name=postfix/smtps", "  -o smtpd_tls_wrappermode=yes",
                          "  -o smtpd_tls_security_level=encrypt"]
                if self.smtps_auth:
                    lines += ["  -o smtpd_sasl_auth_enable=yes", "  -o smtpd_sasl_type=dovecot",
                              f"  -o smtpd_sasl_path=unix:{self.sasl.socket}"]
            elif name == "submission":
                lines += ["  -o syslog_name=postfix/submission",
                          "  -o smtpd_tls_security_level=may",
                          "  -o smtpd_sasl_auth_enable=yes",
                          "  -o smtpd_sasl_type=dovecot",
                          f"  -o smtpd_sasl_path=unix:{self.sasl.socket}",
                          "  -o smtpd_tls_auth_only="
                          + ("no" if self.auth_before_tls else "yes")]
        lines += [
            "pickup unix n - n 60 1 pickup",
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr",
            "tlsmgr unix - - n 1000? 1 tlsmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap",
            "smtp unix - - n - - smtp",
            "showq unix n - n - - showq",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
        ]
        if self.maildir_base is not None:
            # Runs as root (unprivileged = n) and switches to the mailbox's uid per delivery.
            lines.append("virtual unix - n n - - virtual")
        return "\n".join(lines) + "\n"

    # -- life cycle --------------------------------------------------------------------------

    def start(self, timeout=30):
        if ("submission" in self.services or self.smtps_auth) and self.sasl is None:
            self.sasl = DovecotSasl(os.path.join(self.root, "sasl"), self.sasl_user,
                                    self.sasl_password)
        last_log = ""
        for _ in range(5):  # a free port may still be taken by another program before we bind it
            self.ports = {name: free_port() for name in self.services}
            with open(os.path.join(self.config_dir, "main.cf"), "w") as f:
                f.write(self.main_cf())
            with open(os.path.join(self.config_dir, "master.cf"), "w") as f:
                f.write(self.master_cf())
            subprocess.run([POSTFIX, "-c", self.config_dir, "check"], check=True,
                           capture_output=True)
            offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
            errors = open(os.path.join(self.root, "master.stderr"), "ab")
            self.process = subprocess.Popen(
                self.command_prefix +
                [os.path.join(postfix_daemon_directory(), "master"), "-c", self.config_dir,
                 "-d"], stdin=subprocess.DEVNULL, stdout=errors, stderr=errors,
                # Its own process group: on SIGTERM the master signals that group (its
                # children), never the test's.
                start_new_session=True)
            errors.close()
            if self._wait_ready(timeout):
                return self
            self._kill()
            last_log = self.log()[offset:] + self.master_errors()
            if "Address already in use" not in last_log:
                break
        self.stop()
        raise RuntimeError(f"postfix did not start; its log ({self.log_path}):\n{last_log}")

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        pending = dict(self.ports)
        while time.monotonic() < deadline and pending:
            if self.process.poll() is not None:
                return False
            for name, port in list(pending.items()):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        del pending[name]
                except OSError:
                    pass
            time.sleep(0.05)
        return not pending

    def _kill(self):
        end_process(self.process, timeout=15)  # the master stops its children
        self.process = None

    def stop(self):
        self._kill()
        if self.sasl is not None:
            self.sasl.stop()
            self.sasl = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def queued(self):
        """How many messages are still in the queue (received, or waiting for delivery)."""
        count = 0
        for queue in ("maildrop", "incoming", "active", "deferred", "hold"):
            for _, _, files in os.walk(os.path.join(self.queue_dir, queue)):
                count += len(files)
        return count

    def delivered(self):
        """How many messages the Maildir (maildir=) holds, in new/ and cur/."""
        mailbox = os.path.join(self.maildir_base, self.domain, self.mailbox)
        return sum(len(os.listdir(os.path.join(mailbox, sub))) for sub in ("new", "cur")
                   if os.path.isdir(os.path.join(mailbox, sub)))

    def master_errors(self):
        try:
            with open(os.path.join(self.root, "master.stderr"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""
