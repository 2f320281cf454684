"""Integration harness: runs the real smtpsd binary on loopback ports of its own.

Each test gets a temporary directory with a development PKI (`smtpsd dev --init-only`),
a configuration whose listeners use port 0 (the kernel picks free ports, so tests run in
parallel), and a server process whose log (stderr) is kept in the directory. A failed
test keeps its directory and prints where it is, as evidence.

Only the standard library: PyPI is not reachable on CI machines.
"""

import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from processes import end_process

SMTPSD = os.environ.get("SMTPSD_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "smtpsd")

STRACE = shutil.which("strace")
LISTENING = re.compile(r"event=listening role=(\S+) address=(\S+) port=(\d+)")


def default_listeners():
    return [
        {"role": "submissions"},
        {"role": "submission"},
        {"role": "smtp"},
    ]


# What `smtpsd dev --init-only` makes when it is missing, and costs CPU to make: the DKIM keys
# (an RSA-2048 key, ~0.3 s) and the demo user's password hashes (Argon2id with 64 MiB, and
# SCRAM's 100,000 rounds). Made once per build of the binary and copied into every test
# directory: 0.37 s of CPU a server becomes 0.1 s, over the ~450 servers of a run. The
# development PKI stays each server's own, made for it (its CA and certificates): tests of
# relaying need servers that do not trust one another. Only the RSA key of its certificate,
# most of that 0.1 s, comes from a pool made with the cache: a different key for each of the
# first RSA_POOL servers of a test process (a later one makes its own), so that no two
# servers of one test share a key either.
SEEDED_FILES = ("dkim", "users", "demo.password")
RSA_POOL = 4
_rsa_keys_given = 0  # in this process


def _seed_cache():
    binary = os.stat(SMTPSD)
    # "v2": with the RSA key pool (a cache of an older harness has none).
    return os.path.join(tempfile.gettempdir(), f"smtpsd-test-seed-{os.getuid()}-"
                        f"{binary.st_size}-{binary.st_mtime_ns}-v2")


def _copy_seeds(source_dir, target_dir):
    for name in SEEDED_FILES:
        source = os.path.join(source_dir, name)
        target = os.path.join(target_dir, name)
        if os.path.isdir(source):
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)


def seed_dev_files(directory):
    cache = _seed_cache()
    if not os.path.isdir(cache):
        scratch = tempfile.mkdtemp(prefix="smtpsd-seed-")
        try:
            made = os.path.join(scratch, "made")
            os.mkdir(made)
            subprocess.run([SMTPSD, "dev", "--dir", made, "--init-only"], check=True,
                           stdout=subprocess.DEVNULL)
            pool = os.path.join(made, "rsa-keys")
            os.mkdir(pool)
            for n in range(RSA_POOL):
                pki = os.path.join(scratch, f"pki-{n}")  # only its PKI is missing
                os.mkdir(pki)
                _copy_seeds(made, pki)
                subprocess.run([SMTPSD, "dev", "--dir", pki, "--init-only"], check=True,
                               stdout=subprocess.DEVNULL)
                os.rename(os.path.join(pki, "tls", "server-rsa.key"),
                          os.path.join(pool, f"{n}.key"))
            for name in set(os.listdir(made)) - set(SEEDED_FILES) - {"rsa-keys"}:
                path = os.path.join(made, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
            try:
                os.rename(made, cache)
            except OSError:
                pass  # another test made it first
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        # One cache per build of the binary: those of builds a day old go (a run of the
        # tests under another build at the same time keeps its own).
        prefix = f"smtpsd-test-seed-{os.getuid()}-"
        for name in os.listdir(tempfile.gettempdir()):
            path = os.path.join(tempfile.gettempdir(), name)
            try:
                if (name.startswith(prefix) and path != cache and
                        time.time() - os.stat(path).st_mtime > 86400):
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:
                pass  # gone meanwhile
    _copy_seeds(cache, directory)
    global _rsa_keys_given
    tls = os.path.join(directory, "tls")
    key = os.path.join(cache, "rsa-keys", f"{_rsa_keys_given}.key")
    if (_rsa_keys_given < RSA_POOL and os.path.exists(key)
            and not os.path.exists(os.path.join(tls, "server-rsa.key"))
            and not os.path.exists(os.path.join(tls, "server-rsa.pem"))):
        os.makedirs(tls, exist_ok=True)
        shutil.copy2(key, os.path.join(tls, "server-rsa.key"))
        _rsa_keys_given += 1


def traced_child(process):
    """The pid of the program strace started (strace's own pid is process.pid)."""
    deadline = time.time() + 10
    while time.time() < deadline:
        with open(f"/proc/{process.pid}/task/{process.pid}/children") as f:
            children = f.read().split()
        if children:
            return int(children[0])
        time.sleep(0.01)
    raise AssertionError("strace started no child")


def run_under_strace(server, options):
    """Starts of `server` go through strace; its stop sends SIGTERM to smtpsd itself (strace
    would detach and leave it running), then waits for strace."""
    server.command_prefix = [STRACE, "-f", "-qq"] + options

    def stop(sig=signal.SIGTERM, timeout=20):
        process, server.process = server.process, None
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        child = traced_child(process)
        os.kill(child, sig)
        try:
            return process.wait(timeout)  # strace exits with smtpsd's status
        except subprocess.TimeoutExpired:
            os.kill(child, signal.SIGKILL)
            return end_process(process, signal.SIGKILL, timeout)

    server.stop = stop


class SyslogSocket:
    """A syslog daemon's socket at path (AF_UNIX datagrams): what arrives, in order (bytes),
    in datagrams, read by a thread until close(). close() also reads what is still queued: a
    busy machine leaves up to net.unix.max_dgram_qlen datagrams unread, the sender's last."""

    def __init__(self, path):
        self.datagrams = []
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(path)
        self._socket.settimeout(0.2)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self):
        while not self._done.is_set():
            try:
                self.datagrams.append(self._socket.recv(65536))
            except socket.timeout:
                continue
        self._socket.setblocking(False)
        while True:
            try:
                self.datagrams.append(self._socket.recv(65536))
            except BlockingIOError:
                return

    def close(self):
        self._done.set()
        self._thread.join()
        self._socket.close()


class Server:
    """A running smtpsd. Use as a context manager or call stop()."""

    def __init__(self, directory, listeners=None, limits=None, timeouts=None, tls=None,
                 domains=None, extra_toml="", privileges=None, env=None):
        self.dir = directory
        self.listeners = listeners or default_listeners()
        self.limits = limits or {}
        self.timeouts = timeouts or {}
        self.tls = tls or {}
        self.domains = domains or [("localhost", ["demo"])]
        self.extra_toml = extra_toml
        self.env = env  # variables added to the server's environment
        # Tests run as root (CI does) in directories only root may enter, and write files
        # the server reads later: they keep root, saying so; test_privileges.py switches.
        self.privileges = {"run_as_root": True} if privileges is None else privileges
        self.ports = {}
        self.process = None
        # What the test expects in the log at level=error (regular expressions): any other
        # error line, a session_crashed, or a crash fails the test at tearDown.
        self.expected_errors = []
        self.crashes = []  # how runs of this server ended badly (checked at tearDown)
        self.failed_start = None  # the process whose exit start() reported as an exception
        # Run before the binary (its arguments follow): setpriv, strace, env (test_privileges.py).
        self.command_prefix = []
        self.log_path = os.path.join(directory, "smtpsd.log")
        seed_dev_files(directory)
        subprocess.run([SMTPSD, "dev", "--dir", directory, "--init-only"], check=True,
                       stdout=subprocess.DEVNULL)
        self.ca = os.path.join(directory, "tls", "ca.pem")
        self.config_path = os.path.join(directory, "smtpsd.toml")
        self.write_config()

    @staticmethod
    def toml_value(value):
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, list):
            return "[" + ", ".join(Server.toml_value(v) for v in value) + "]"
        if isinstance(value, dict):  # an inline table
            return "{ " + ", ".join(f"{k} = {Server.toml_value(v)}"
                                     for k, v in value.items()) + " }"
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'

    def write_config(self):
        lines = ['[server]', 'hostname = "localhost"', 'data_dir = "."', 'io_threads = 2']
        lines += [f"{key} = {self.toml_value(value)}" for key, value in self.privileges.items()]
        lines.append("")
        lines.append("[tls]")
        for key, value in self.tls.items():
            lines.append(f"{key} = {self.toml_value(value)}")
        lines += ['', '[[tls.certificates]]', 'certificate = "tls/server-ecdsa.pem"',
                  'key = "tls/server-ecdsa.key"', '', '[[tls.certificates]]',
                  'certificate = "tls/server-rsa.pem"', 'key = "tls/server-rsa.key"', '']
        # (name, users) or (name, users, {more per-domain keys: values}). Mailboxes live in
        # the users file; `users = [...]` is the deprecated form, still read (most tests give
        # it), left out when a test gives none.
        for name, users, *settings in self.domains:
            lines += ["[[domains]]", f"name = {self.toml_value(name)}"]
            if users:
                lines.append(f"users = {self.toml_value(users)}")
            for key, value in (settings[0] if settings else {}).items():
                lines.append(f"{key} = {self.toml_value(value)}")
            lines.append("")
        for listener in self.listeners:
            lines.append("[[listeners]]")
            entry = {"address": "127.0.0.1", "port": 0}
            entry.update(listener)
            for key, value in entry.items():
                lines.append(f"{key} = {self.toml_value(value)}")
            lines.append("")
        for table, values in (("limits", self.limits), ("timeouts", self.timeouts)):
            if values:
                lines.append(f"[{table}]")
                for key, value in values.items():
                    lines.append(f"{key} = {self.toml_value(value)}")
                lines.append("")
        lines.append(self.extra_toml)
        if "[dns]" not in self.extra_toml and "dns_servers" not in self.extra_toml:
            # Tests never query real DNS: every lookup (MX, SPF, ...) asks a closed loopback
            # port and fails fast (connection refused) as a temporary failure: mail for
            # other domains waits in the queue.
            lines += ["[dns]", 'servers = "127.0.0.1:9"', 'validation = "no"', ""]
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines))

    def start(self, timeout=20):
        self.ports = {}
        # Only the log written by this run counts: after kill9() there is no
        # "event=stopped", so the previous run's "event=started" must not be matched.
        offset = len(self.log())
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.command_prefix +
                                        [SMTPSD, "serve", "--config", self.config_path],
                                        stdout=log, stderr=log,
                                        env=dict(os.environ, **(self.env or {})))
        log.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            text = self.log()[offset:]
            if "event=started" in text:
                for role, _address, port in LISTENING.findall(text):
                    self.ports.setdefault(role, int(port))
                return self
            if self.process.poll() is not None:
                # The test hears of it through the exception: not a crash of a running server.
                self.failed_start = self.process
                raise RuntimeError(f"smtpsd exited with {self.process.returncode}:\n{text}")
            time.sleep(0.02)
        raise RuntimeError("smtpsd did not start in time:\n" + self.log())

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern, timeout=10):
        deadline = time.time() + timeout
        regex = re.compile(pattern)
        while time.time() < deadline:
            match = regex.search(self.log())
            if match:
                return match
            time.sleep(0.02)
        raise AssertionError(f"log never matched {pattern!r}:\n{self.log()[-4000:]}")

    # A message's journey is over: removed from the queue, or delivered to every mailbox at
    # acceptance (then it never was queued).
    DONE = r"event=removed |event=accepted [^\n]*delivered=yes"

    def wait_done(self, timeout=10):
        return self.wait_log(self.DONE, timeout)

    def done_count(self):
        return len(re.findall(self.DONE, self.log()))

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=20):
        process = self.process
        ended_alone = process is not None and process.poll() is not None
        code = end_process(process, sig, timeout)
        self.process = None
        if process is not None:
            if ended_alone and code is not None and code < 0:
                self.crashes.append(f"smtpsd died of signal {-code} on its own")
            elif ended_alone and code and process is not self.failed_start:
                self.crashes.append(f"smtpsd exited with {code} on its own")
            elif not ended_alone and sig == signal.SIGTERM and code != 0:
                self.crashes.append(f"smtpsd exited with {code} after SIGTERM (expected 0)")
        return code

    def problems(self):
        """Why this server's runs count as broken: crashes, session_crashed, and error lines
        the test did not expect."""
        found = list(self.crashes)
        for line in self.log().splitlines():
            if "Sanitizer" in line or ": runtime error: " in line:
                found.append("a sanitizer report: " + line)  # the ASan build (make test)
            elif "event=session_crashed" in line:
                found.append("a session crashed: " + line)
            elif "level=error" in line and \
                    not any(re.search(p, line) for p in self.expected_errors):
                found.append("unexpected error in the log: " + line)
        return found

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # Clients -----------------------------------------------------------------------

    def client_context(self, **kwargs):
        context = ssl.create_default_context(cafile=self.ca)
        for key, value in kwargs.items():
            setattr(context, key, value)
        return context

    def smtp(self, role="smtp", starttls=True, timeout=10):
        client = smtplib.SMTP("localhost", self.ports[role], timeout=timeout)
        client.ehlo("client.example")
        if starttls:
            client.starttls(context=self.client_context())
            client.ehlo("client.example")
        return client

    def smtps(self, timeout=10):
        client = smtplib.SMTP_SSL("localhost", self.ports["submissions"], timeout=timeout,
                                  context=self.client_context())
        client.ehlo("client.example")
        return client

    def maildir(self, address="demo@localhost"):
        local, domain = address.split("@")
        return os.path.join(self.dir, "mail", domain, local)

    def delivered(self, address="demo@localhost"):
        """Contents (bytes) of the messages in new/ and cur/, sorted by file name."""
        out = []
        for sub in ("new", "cur"):
            path = os.path.join(self.maildir(address), sub)
            if os.path.isdir(path):
                for name in sorted(os.listdir(path)):
                    with open(os.path.join(path, name), "rb") as f:
                        out.append(f.read())
        return out

    def wait_delivered(self, count, address="demo@localhost", timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            messages = self.delivered(address)
            if len(messages) >= count:
                return messages
            time.sleep(0.02)
        raise AssertionError(
            f"{len(self.delivered(address))} of {count} messages delivered to {address}\n" +
            self.log()[-4000:])

    def spool_ids(self):
        path = os.path.join(self.dir, "spool", "queue")
        return sorted(os.listdir(path)) if os.path.isdir(path) else []

    def wait_spool_empty(self, timeout=10):
        """Until queue/ is empty: a message leaves it after its last copy is in a mailbox."""
        deadline = time.time() + timeout
        while self.spool_ids() and time.time() < deadline:
            time.sleep(0.02)
        return self.spool_ids()


class ServerTestCase(unittest.TestCase):
    """Gives each test a fresh directory (kept when the test fails)."""

    def setUp(self):
        # Short: the control socket path under it must fit sun_path (108 octets).
        self.tmp = tempfile.mkdtemp(prefix=f"smtpsd-{self.id().split('.')[-1][:32]}-")
        self.servers = []
        self.mounts = []  # mounted_ext4's, unmounted by tearDown once the servers stopped

    def new_server(self, **kwargs):
        server = Server(self.tmp if not self.servers else tempfile.mkdtemp(dir=self.tmp),
                        **kwargs)
        self.servers.append(server)
        return server

    def mounted_ext4(self, name, journal):
        """A fresh ext4 with or without its journal, in a sparse image of its own, loop-mounted
        at <tmp>/<name> until the test ends (root; mkfs.ext4 and mount: needs.tools). Its
        image stays in <tmp>, with what the test left on it, when the test fails."""
        image = os.path.join(self.tmp, name + ".img")
        with open(image, "wb") as f:
            f.truncate(512 << 20)  # sparse; room for the spool reserve and its free-space floor
        features = [] if journal else ["-O", "^has_journal"]
        subprocess.run(["mkfs.ext4", "-q", "-F", *features, image], check=True,
                       capture_output=True)
        point = os.path.join(self.tmp, name)
        os.mkdir(point)
        subprocess.run(["mount", "-o", "loop", image, point], check=True, capture_output=True)
        self.mounts.append(point)
        return point

    def tearDown(self):
        problems = []
        for server in self.servers:
            server.stop()
            problems += [f"{server.dir}: {p}" for p in server.problems()]
        for point in reversed(self.mounts):
            unmounted = subprocess.run(["umount", point], capture_output=True, text=True)
            if unmounted.returncode != 0:  # detached, so that no mount outlives the test
                subprocess.run(["umount", "-l", point], capture_output=True)
                problems.append(f"umount {point}: {unmounted.stderr.strip()}")
        if problems:
            # A server that crashed or logged an error nobody expected fails the test even
            # when every assertion passed.
            self.fail("the server misbehaved:\n" + "\n".join(problems[:20]))
        outcome = getattr(self, "_outcome", None)
        failed = False
        if outcome is not None:
            result = getattr(outcome, "result", None)
            errors = getattr(result, "errors", []) + getattr(result, "failures", [])
            failed = any(test is self for test, _ in errors)
            failed = failed or not getattr(outcome, "success", True)
        if failed:
            print(f"\nkept test directory: {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def raw_connect(port, host="127.0.0.1", timeout=10):
    sock = socket.create_connection((host, port), timeout=timeout)
    return sock


def read_reply(sock_file):
    """Reads one (possibly multi-line) SMTP reply; returns (code, [lines])."""
    lines = []
    while True:
        line = sock_file.readline()
        if not line:
            raise ConnectionError("connection closed while reading a reply")
        line = line.decode("utf-8", "replace").rstrip("\r\n")
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return int(line[:3]), lines


# Helpers for raw dialogs and external clients -------------------------------------------

class RawSession:
    """A hand-driven SMTP connection (plain, then optionally TLS) for exact byte control.
    Reads go through its own buffer, so a read that times out leaves the session usable."""

    def __init__(self, port, timeout=10, implicit_tls_context=None):
        self.timeout = timeout
        self.sock = raw_connect(port, timeout=timeout)
        if implicit_tls_context is not None:
            self.sock = implicit_tls_context.wrap_socket(self.sock, server_hostname="localhost")
        self.buffer = b""
        self.eof = False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            self.eof = True
        self.buffer += chunk
        return chunk

    def readline(self):
        while b"\n" not in self.buffer and not self.eof:
            self._fill()
        if b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            return line + b"\n"
        line, self.buffer = self.buffer, b""
        return line

    def reply(self):
        return read_reply(self)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def greeting(self):
        code, lines = self.reply()
        assert code == 220, lines
        return code, lines

    def starttls(self, context):
        """STARTTLS, then the handshake; returns the 220 reply."""
        code, lines = self.cmd("STARTTLS")
        assert code == 220, lines
        self.wrap(context)
        return code, lines

    def wrap(self, context):
        assert self.buffer == b"", f"plaintext after the 220 to STARTTLS: {self.buffer!r}"
        self.sock = context.wrap_socket(self.sock, server_hostname="localhost")

    def read_some(self, timeout):
        """Whatever arrives within timeout (b"" on EOF, None when nothing came)."""
        if self.buffer:
            data, self.buffer = self.buffer, b""
            return data
        if self.eof:
            return b""
        self.sock.settimeout(timeout)
        try:
            chunk = self._fill()
            self.buffer = b""
            return chunk
        except (socket.timeout, TimeoutError):
            return None
        except (ConnectionError, ssl.SSLError, OSError):
            self.eof = True
            return b""
        finally:
            try:
                self.sock.settimeout(self.timeout)
            except OSError:
                pass

    def wait_closed(self, timeout=10):
        """True when the server closes the connection within timeout (data is drained)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            data = self.read_some(max(0.05, deadline - time.time()))
            if data == b"":
                return True
            if data is None:
                return False
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def make_message(subject="test", message_id=None, body="Hello.\r\n", sender="you@example.org",
                 to="demo@localhost"):
    headers = [f"From: <{sender}>", f"To: <{to}>", f"Subject: {subject}"]
    if message_id:
        headers.append(f"Message-ID: <{message_id}>")
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode()


def strip_trace(delivered):
    """The delivered message without the Return-Path, Delivered-To (Maildir), Received and
    Authentication-Results headers the server adds."""
    lines = delivered.split(b"\r\n")
    assert lines[0].startswith(b"Return-Path: <"), delivered[:300]
    i = 2 if lines[1].startswith(b"Delivered-To: ") else 1
    # Port 25 mail carries our Authentication-Results above Received (RFC 8601).
    while lines[i].startswith(b"Authentication-Results: ") or lines[i][:1] in (b" ", b"\t"):
        i += 1
    assert lines[i].startswith(b"Received: "), delivered[:300]
    i += 1
    while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
        i += 1
    return b"\r\n".join(lines[i:])


def s_client(args, stdin=b"", timeout=20):
    """Runs openssl s_client with args; returns CompletedProcess (output in .stdout, bytes,
    stderr merged)."""
    return subprocess.run(["openssl", "s_client"] + list(args), input=stdin,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)


def port_free(port, host="127.0.0.1"):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        sock.close()
