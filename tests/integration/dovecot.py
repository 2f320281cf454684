"""A private Dovecot LMTP server for tests (RFC 2033), delivering into Maildirs in a temp dir.

smtpsd hands local mail to an LMTP server; a test checks what really arrived by asking a real
Dovecot (Debian's dovecot-core and dovecot-lmtpd). This helper writes a configuration of its
own (no /etc/dovecot), runs `dovecot -F -c <conf>` in the foreground and stops it by the pid
it started. Only LMTP is served (protocols = lmtp), on a free 127.0.0.1 TCP port and on a
unix socket; no TLS; the log goes to a file in the directory.

    with Dovecot(tmpdir, users=["alice", "bob"]) as dovecot:
        smtplib.LMTP("127.0.0.1", dovecot.lmtp_port)   # or smtplib.LMTP(dovecot.lmtp_socket)
        dovecot.messages("alice")                       # [b"Return-Path: ...", ...]

Users are "alice" or "alice@<any domain>" (auth_username_format = %Ln); an unknown recipient
gets a per-recipient "550 5.1.1 ... User doesn't exist". Homes are <dir>/home/<user>, mail is
in <home>/Maildir.

With mail_root (smtpsd's data_dir/mail), Dovecot serves the Maildirs smtpsd writes instead:
users are whole addresses ("demo@localhost", auth_username_format = %Lu), each one's mail is
maildir:<mail_root>/<domain>/<local part> (Maildir++ folders ".news" are mailboxes "news"),
and doveadm() runs doveadm against this instance:

    with Dovecot(tmpdir, users=["demo@localhost"], mail_root=data_dir + "/mail") as dovecot:
        dovecot.doveadm("fetch", "-u", "demo@localhost", "hdr.subject", "mailbox", "INBOX", "all")

Running as root: Dovecot's LMTP never writes mail as uid 0 ("Mail access not allowed for
root" is hard-coded for lmtp), so as root the mail is owned by "nobody" (mail_uid/mail_gid),
the homes are chowned to it and the directory is made traversable (o+x); everything else
(master, auth, the config) runs as root (default_internal_user = default_login_user = root).
As another user, everything, mail included, runs as that user.

Only the standard library: PyPI is not reachable on CI machines.
"""

import grp
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

from ports import free_port
from processes import end_process

DOVECOT = os.environ.get("DOVECOT_BIN", "/usr/sbin/dovecot")
INSTALL_HINT = ("dovecot not found: run scripts/install-deps.sh "
                "(Debian packages dovecot-core and dovecot-lmtpd)")
LMTP_BINARY = "/usr/lib/dovecot/lmtp"

# sockaddr_un.sun_path is 108 bytes; Dovecot puts sockets such as "auth-userdb" and
# "stats-writer" in base_dir.
MAX_BASE_DIR = 80


def mail_owner():
    """(uid, gid, user name, group name) that mail is written as."""
    if os.geteuid() != 0:
        uid, gid = os.geteuid(), os.getegid()
    else:
        try:
            entry = pwd.getpwnam("nobody")
            uid, gid = entry.pw_uid, entry.pw_gid
        except KeyError:
            uid, gid = 65534, 65534
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    try:
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        group = str(gid)
    return uid, gid, user, group


class Dovecot:
    """A running Dovecot LMTP server. A context manager, or call stop().

    tmpdir: an existing directory of the test (config, log, homes; kept after stop()).
    users: the local parts that exist; anyone else is an unknown user.
    """

    def __init__(self, tmpdir, users=None, mail_root=None):
        if not os.access(DOVECOT, os.X_OK) or not os.access(LMTP_BINARY, os.X_OK):
            raise RuntimeError(INSTALL_HINT)
        self.dir = os.path.abspath(os.fspath(tmpdir))
        self.users = list(users) if users is not None else ["alice", "bob"]
        self.mail_root = os.path.abspath(mail_root) if mail_root else None
        self.process = None
        self.lmtp_port = None
        self.log_path = os.path.join(self.dir, "dovecot.log")
        self.config_path = os.path.join(self.dir, "dovecot.conf")
        self.users_path = os.path.join(self.dir, "dovecot-users")
        self.home_root = os.path.join(self.dir, "home")
        base_dir = os.path.join(self.dir, "dovecot-run")
        self.own_base_dir = len(base_dir) > MAX_BASE_DIR
        self.base_dir = tempfile.mkdtemp(prefix="dovecot-") if self.own_base_dir else base_dir
        self.state_dir = os.path.join(self.dir, "dovecot-state")
        self.lmtp_socket = os.path.join(self.base_dir, "lmtp-test")
        try:
            self._prepare()
            self.start()
        except BaseException:
            self.stop()
            raise

    # -- set-up ---------------------------------------------------------------------------

    def home(self, user):
        return os.path.join(self.home_root, user)

    def maildir(self, user):
        """The user's Maildir (with new/, cur/, tmp/ once something was delivered)."""
        return os.path.join(self.home(user), "Maildir")

    def _prepare(self):
        uid, gid, _, _ = mail_owner()
        os.makedirs(self.base_dir, exist_ok=True)
        os.makedirs(self.state_dir, exist_ok=True)
        os.makedirs(self.home_root, exist_ok=True)
        if os.geteuid() == 0:
            # The lmtp process switches to the mail owner to write: it must reach the homes.
            for path in (self.dir, self.home_root):
                os.chmod(path, os.stat(path).st_mode | 0o711)
        for user in self.users:
            if not user or any(c in user for c in ":/\n") or user.startswith(".") or \
                    (("@" in user) != bool(self.mail_root)):
                raise ValueError(f"unusable user name {user!r}")
            if self.mail_root:
                continue  # the Maildirs are smtpsd's
            os.makedirs(self.home(user), exist_ok=True)
            if os.geteuid() == 0:
                os.chown(self.home(user), uid, gid)
            os.chmod(self.home(user), 0o700)
        # passwd-file: user:password:uid:gid:gecos:home:shell:extra. uid and gid stay empty
        # (Dovecot refuses 0 there); mail_uid/mail_gid below say who owns the mail. The
        # password is unusable: no login protocol is served anyway.
        with open(self.users_path, "w", encoding="utf-8") as users:
            for user in self.users:
                users.write(f"{user}:{{CRYPT}}!:::::\n")
        os.chmod(self.users_path, 0o644)

    def config(self, port):
        uid, gid, _, _ = mail_owner()
        me = pwd.getpwuid(os.geteuid()).pw_name
        my_group = grp.getgrgid(os.getegid()).gr_name
        return f"""# Written by tests/integration/dovecot.py: a private LMTP-only instance.
base_dir = {self.base_dir}
state_dir = {self.state_dir}
instance_name = smtpsd-test-{os.getpid()}-{port}
protocols = lmtp
listen = 127.0.0.1
ssl = no
log_path = {self.log_path}
info_log_path = {self.log_path}
debug_log_path = {self.log_path}
default_internal_user = {me}
default_internal_group = {my_group}
default_login_user = {me}
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}
{self.mail_settings()}
passdb {{
  driver = passwd-file
  args = {self.users_path}
}}
userdb {{
  driver = passwd-file
  args = {self.users_path}
  default_fields = home={self.mail_root + "/%d/%n" if self.mail_root else self.home_root + "/%n"}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
  unix_listener {os.path.basename(self.lmtp_socket)} {{
    mode = 0666
  }}
}}
"""

    def mail_settings(self):
        if self.mail_root:
            return f"mail_location = maildir:{self.mail_root}/%d/%n\nauth_username_format = %Lu"
        return "mail_location = maildir:~/Maildir\nauth_username_format = %Ln"

    def doveadm(self, *args, timeout=20):
        """Runs `doveadm -c <this config> ARGS`; returns the CompletedProcess (text)."""
        return subprocess.run(["doveadm", "-c", self.config_path] + list(args),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)

    # -- life cycle ------------------------------------------------------------------------

    def start(self):
        last_log = ""
        for _ in range(5):
            port = free_port()
            with open(self.config_path, "w", encoding="utf-8") as config:
                config.write(self.config(port))
            log_offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen([DOVECOT, "-F", "-c", self.config_path],
                                                stdin=subprocess.DEVNULL, stdout=log,
                                                stderr=log)
            if self._wait_ready(port):
                self.lmtp_port = port
                return
            self._kill()
            last_log = self.log()[log_offset:]
            if "Address already in use" not in last_log:
                break
        raise RuntimeError(f"dovecot did not start; its log ({self.log_path}):\n{last_log}")

    @staticmethod
    def _greets(family, address):
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.settimeout(2)
                sock.connect(address)
                return sock.recv(512).startswith(b"220 ")
        except OSError:
            return False

    def _wait_ready(self, port, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if (self._greets(socket.AF_INET, ("127.0.0.1", port))
                    and self._greets(socket.AF_UNIX, self.lmtp_socket)):
                return True
            time.sleep(0.05)
        return False

    def _kill(self):
        end_process(self.process, timeout=10)  # the master stops its children
        self.process = None

    def stop(self):
        self._kill()
        if self.own_base_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()

    # -- what arrived -----------------------------------------------------------------------

    def messages(self, user):
        """The messages in the user's Maildir new/ and cur/, oldest file name first (Maildir
        names start with the delivery time), as bytes."""
        found = []
        for sub in ("new", "cur"):
            directory = os.path.join(self.maildir(user), sub)
            if not os.path.isdir(directory):
                continue
            for name in os.listdir(directory):
                found.append((name, os.path.join(directory, name)))
        result = []
        for _, path in sorted(found):
            with open(path, "rb") as message:
                result.append(message.read())
        return result

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as log:
                return log.read()
        except FileNotFoundError:
            return ""
