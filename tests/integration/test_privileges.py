"""Least privilege and the systemd integration (docs/architecture.md "Privileges"): the
account switch after start-up, the refusal to stay root unless a setting says so, a start
that never walks the mailboxes and survives files vanishing under its walk, sd_notify(3)
readiness and stopping notifications, the unit file in contrib/systemd, and the unit
emulated with setpriv (there is no systemd here): the real smtpsd as an unprivileged account
whose only capability is the ambient CAP_NET_BIND_SERVICE, its keys in
$CREDENTIALS_DIRECTORY."""

import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

from certificates import issue_leaf
from harness import (SMTPSD, STRACE, Server, ServerTestCase, port_free, raw_connect,
                     run_under_strace)
import needs

ROOT = os.geteuid() == 0
UNIT = os.path.join(os.path.dirname(__file__), "..", "..", "contrib", "systemd",
                    "smtpsd.service")
CREDENTIALS_DROP_IN = os.path.join(os.path.dirname(UNIT), "credentials.conf")
SETPRIV = shutil.which("setpriv")
NOBODY = 65534  # stands for the unit's account, which this machine does not have
MESSAGE = b"Subject: x\r\n\r\nhi\r\n"


def unit_settings(path=UNIT, wanted="[Service]"):
    """The settings of one section ([Service] unless told) of the shipped unit (or a
    drop-in): name -> list of values, in order."""
    settings = {}
    section = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("["):
                section = line
            elif section == wanted and line and not line.startswith("#"):
                name, _, value = line.partition("=")
                settings.setdefault(name, []).append(value)
    return settings


def owners(top):
    """The set of (uid, gid) of top and everything under it."""
    found = set()
    for directory, subdirectories, files in os.walk(top):
        for name in [directory] + [os.path.join(directory, n) for n in subdirectories + files]:
            info = os.lstat(name)
            found.add((info.st_uid, info.st_gid))
    return found


def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return fields


@needs.condition(ROOT, "the account switch needs a start as root")
class AccountSwitch(ServerTestCase):
    def test_started_as_root_without_user_is_refused(self):
        server = self.new_server(privileges={})
        with self.assertRaises(RuntimeError) as refused:
            server.start()
        self.assertIn("started as root, but [server] user is not set", str(refused.exception))
        self.assertIn("run_as_root = true", str(refused.exception))
        self.assertEqual(server.process.returncode, 1)

    def test_unknown_account_is_refused(self):
        server = self.new_server(privileges={"user": "no-such-account-here"})
        with self.assertRaises(RuntimeError) as refused:
            server.start()
        self.assertIn("server.user: user 'no-such-account-here' does not exist",
                      str(refused.exception))

    def test_switches_to_the_account_for_good_and_mail_still_flows(self):
        os.chmod(self.tmp, 0o711)  # the account must be able to reach its data_dir
        server = self.new_server(privileges={"user": "nobody"})
        # `smtpsd dev --init-only` made the demo mailbox as root; start-up never enters a
        # mailbox, so it is given to the account as an administrator would.
        for directory, _subdirectories, files in os.walk(server.maildir()):
            for name in [directory] + [os.path.join(directory, n) for n in files]:
                os.lchown(name, NOBODY, NOBODY)
        with server:
            status = proc_status(server.process.pid)
            self.assertEqual(status["Uid"], ["65534"] * 4)  # real, effective, saved, fs
            self.assertEqual(status["Gid"], ["65534"] * 4)
            self.assertEqual(status["Groups"], ["65534"])
            self.assertEqual(status["CapEff"], ["0000000000000000"])
            self.assertEqual(status["CapPrm"], ["0000000000000000"])
            self.assertRegex(server.log(), r"event=privileges uid=65534 gid=65534 "
                                           r"note=\"switched to nobody")
            # The data directory was given to the account, so it stores and delivers.
            client = server.smtp()
            client.sendmail("you@example.org", ["demo@localhost"], b"Subject: x\r\n\r\nhi\r\n")
            client.quit()
            server.wait_delivered(1)
            maildir_new = os.path.join(server.maildir(), "new")
            [name] = os.listdir(maildir_new)
            self.assertEqual(os.stat(os.path.join(maildir_new, name)).st_uid, 65534)
            # A reload after the switch reads the configuration and the keys as the account.
            server.process.send_signal(signal.SIGHUP)
            server.wait_log(r"event=reloaded")
            self.assertNotIn("event=reload_refused", server.log())
            # The control socket still answers root's smtpsctl.
            listing = subprocess.run([os.path.join(os.path.dirname(SMTPSD), "smtpsctl"), "queue",
                                      "list", "--config", server.config_path],
                                     capture_output=True, timeout=10)
            self.assertEqual(listing.returncode, 0, listing.stderr)
        self.assertIn("event=stopped", server.log())  # a clean exit, as the account

    def test_check_reports_the_account_and_refuses_root(self):
        server = self.new_server(privileges={"user": "nobody"})
        # The test directory is root's alone (0700): the server starts (it reads its files
        # as root first) but could not read a renewed certificate as the account: a warning,
        # once for the directory.
        check = subprocess.run([SMTPSD, "check", "--config", server.config_path],
                               capture_output=True, text=True)
        self.assertEqual(check.returncode, 0, check.stderr)
        self.assertIn(f"warning: {self.tmp}/tls/server-ecdsa.pem: the certificate is out of "
                      f"reach of nobody: it cannot enter {self.tmp} (the server starts: it reads "
                      f"it as root first; a reload after it changes is refused); chmod o+x "
                      f"{self.tmp}", check.stdout)
        self.assertEqual(check.stdout.count("out of reach"), 1, check.stdout)
        os.chmod(self.tmp, 0o711)
        check = subprocess.run([SMTPSD, "check", "--config", server.config_path],
                               capture_output=True, text=True)
        self.assertEqual(check.returncode, 0, check.stderr)
        self.assertNotIn("out of reach", check.stdout)
        self.assertIn("privileges: after start-up, runs as nobody (uid 65534, gid 65534)",
                      check.stdout)
        for privileges, message in (
                ({"user": "root"}, "server.user: must be an unprivileged account"),
                ({"user": "nobody", "run_as_root": True},
                 'server.run_as_root: contradicts server.user = "nobody"'),
                ({"group": "nogroup"}, "server.group: needs server.user")):
            server.privileges = privileges
            server.write_config()
            check = subprocess.run([SMTPSD, "check", "--config", server.config_path],
                                   capture_output=True, text=True)
            self.assertEqual(check.returncode, 2, privileges)
            self.assertRegex(check.stderr, re.escape(server.config_path) + r":\d+: " +
                             re.escape(message))


    def test_check_catches_files_the_account_cannot_read_and_ports_in_use(self):
        os.chmod(self.tmp, 0o711)
        server = self.new_server(privileges={"user": "nobody"},
                                 listeners=[{"role": "smtp", "port": 0}])
        password = os.path.join(self.tmp, "relay.pass")
        with open(password, "w") as f:
            f.write("secret\n")
        os.chmod(password, 0o600)
        os.chmod(os.path.join(self.tmp, "users"), 0o600)
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        self.addCleanup(busy.close)
        server.listeners = [{"role": "smtp", "port": busy.getsockname()[1]}]
        server.extra_toml = ('[delivery]\nrelay = "smtps://relay.example.net"\n'
                             f'relay_user = "u"\nrelay_password_file = "{password}"\n')
        server.write_config()

        def check():
            return subprocess.run([SMTPSD, "check", "--config", server.config_path],
                                  capture_output=True, text=True)

        found = check()
        self.assertEqual(found.returncode, 2, found.stderr)
        users = os.path.join(self.tmp, "users")
        # Read as root at start, as the account after a change: warnings.
        self.assertIn(f"warning: {users}: the users file is not readable by nobody: the server "
                      f"starts (it reads it as root first), but a reload after it changes is "
                      f"refused; chgrp nogroup {users}; chmod g+r {users}", found.stdout)
        self.assertIn(f"warning: {password}: the relay password file is not readable by nobody",
                      found.stdout)
        # A port another program holds: the start would fail.
        self.assertIn(f"smtp listener 127.0.0.1 port {busy.getsockname()[1]}: already in use "
                      f"by another program", found.stderr)
        os.remove(password)
        gone = check()
        self.assertIn(f"{password}: the relay password file does not exist", gone.stderr)
        # Fixed as the messages say: check passes.
        with open(password, "w") as f:
            f.write("secret\n")
        for path in (users, password):
            os.chown(path, 0, NOBODY)
            os.chmod(path, 0o640)
        busy.close()
        fixed = check()
        self.assertEqual(fixed.returncode, 0, fixed.stderr)
        self.assertNotIn(f"warning: {users}", fixed.stdout)
        self.assertNotIn(f"warning: {password}", fixed.stdout)


@needs.condition(ROOT, "giving data_dir to the account needs a start as root")
class StartUpOnABigDataDir(ServerTestCase):
    """The old systemd unit (StateDirectory= without User=) gave data_dir back to root before
    every start, and smtpsd then changed the owner of the whole tree, mailboxes included."""

    MAILBOXES = ("alice", "bob", "carol", "dave")  # and demo, which smtpsd dev made as root
    FILES_PER_MAILBOX = 500

    def fill_mailboxes(self):
        for name in self.MAILBOXES:
            box = os.path.join(self.tmp, "mail", "localhost", name)
            for sub in ("cur", "new", "tmp"):
                os.makedirs(os.path.join(box, sub))
            for i in range(self.FILES_PER_MAILBOX):
                sub = "cur" if i % 2 else "new"
                with open(os.path.join(box, sub, f"{i}.M1P1.host:2,S"), "wb") as f:
                    f.write(MESSAGE)
        return [os.path.join(self.tmp, "mail", "localhost", name)
                for name in self.MAILBOXES + ("demo",)]

    def test_start_never_walks_or_changes_the_mailboxes(self):
        os.chmod(self.tmp, 0o711)  # the account must be able to reach its data_dir
        server = self.new_server(privileges={"user": "nobody"},
                                 domains=[("localhost", ["demo", "erin"])])
        mailboxes = self.fill_mailboxes()  # 2,000 messages, root's, as the old unit left them
        began = time.monotonic()
        server.start()
        started_in = time.monotonic() - began
        for box in mailboxes:
            self.assertEqual(owners(box), {(0, 0)}, box)
        # What smtpsd needs is the account's: the spool takes mail, a new mailbox is made.
        self.assertEqual(os.stat(os.path.join(self.tmp, "spool")).st_uid, NOBODY)
        self.assertEqual(os.stat(os.path.join(self.tmp, "mail", "localhost")).st_uid, NOBODY)
        client = server.smtp()
        client.sendmail("you@example.org", ["erin@localhost"], MESSAGE)
        client.quit()
        server.wait_delivered(1, "erin@localhost")
        self.assertEqual(owners(server.maildir("erin@localhost")), {(NOBODY, NOBODY)})
        self.assertLess(started_in, 10)
        server.stop()
        needs.require("strace")  # the walk itself is traced
        # Root's again, as before each start of the old unit: the walk runs, and never
        # opens, lists or changes a mailbox.
        os.chown(self.tmp, 0, 0)
        trace = os.path.join(self.tmp, "trace")
        run_under_strace(server, ["-y", "-o", trace, "-e",
                                  "trace=open,openat,getdents64,lchown,fchownat,chown,fchown"])
        server.start(timeout=60)
        self.assertEqual(server.stop(), 0)
        with open(trace) as f:
            lines = f.read().splitlines()
        self.assertTrue(any(f'lchown("{self.tmp}",' in line for line in lines),
                        "the walk was not traced")
        for box in mailboxes:
            touching = [line for line in lines if box in line]
            self.assertEqual(touching, [], f"start-up touched {box}")


@needs.condition(ROOT and STRACE, "needs a start as root and strace")
class VanishingDuringTheWalk(ServerTestCase):
    """A file or directory that disappears between the listing and the change of owner (a
    mail reader moving new/ to cur/, a queue run) is skipped: the start goes on. strace
    makes it deterministic by failing the call with ENOENT, as the race would."""

    def start_with_injected_enoent(self, inject):
        os.chmod(self.tmp, 0o711)
        server = self.new_server(privileges={"user": "nobody"},
                                 domains=[("localhost", ["demo", "erin"])])
        archive = os.path.join(self.tmp, "archive")
        os.makedirs(os.path.join(archive, "vanishing-folder"))
        for i in range(10):
            with open(os.path.join(archive, f"{i}"), "wb") as f:
                f.write(b"x")
        run_under_strace(server, ["-o", "/dev/null"] + inject(archive))
        server.start(timeout=60)
        match = server.wait_log(r'event=privileges uid=65534 gid=65534 note="switched to nobody '
                                r'\(gave \d+ files in data_dir to it; 1 disappeared during '
                                r'the walk\)"')
        self.assertTrue(match)
        client = server.smtp()
        client.sendmail("you@example.org", ["erin@localhost"], MESSAGE)
        client.quit()
        server.wait_delivered(1, "erin@localhost")
        self.assertEqual(server.stop(), 0)

    def test_a_file_that_vanishes_before_its_change_of_owner_is_skipped(self):
        self.start_with_injected_enoent(lambda archive: [
            "-P", os.path.join(archive, "3"), "-e", "inject=lchown:error=ENOENT"])

    def test_a_directory_that_vanishes_before_it_is_listed_is_skipped(self):
        # Opening it finds nothing, whether it is opened by its whole path or by its name
        # relative to its parent's descriptor (strace matches -P against either text).
        self.start_with_injected_enoent(lambda archive: [
            "-P", os.path.join(archive, "vanishing-folder"), "-P", "vanishing-folder",
            "-e", "inject=open,openat:error=ENOENT"])


class CredentialsServer(Server):
    """A server whose one certificate and key are read from $CREDENTIALS_DIRECTORY."""

    def write_config(self):
        super().write_config()
        with open(self.config_path) as f:
            text = f.read()
        text = text.replace('certificate = "tls/server-ecdsa.pem"\nkey = "tls/server-ecdsa.key"',
                            'certificate = "%credentials%/smtpsd.crt"\n'
                            'key = "%credentials%/smtpsd.key"')
        text = text.replace('[[tls.certificates]]\ncertificate = "tls/server-rsa.pem"\n'
                            'key = "tls/server-rsa.key"\n', "")
        with open(self.config_path, "w") as f:
            f.write(text)


@needs.condition(ROOT and SETPRIV, "emulating the unit needs root and setpriv")
class UnitEmulation(ServerTestCase):
    """The shipped unit without systemd: setpriv gives the process what the unit's User=,
    AmbientCapabilities=, CapabilityBoundingSet= and NoNewPrivileges= say, a directory
    stands for $CREDENTIALS_DIRECTORY (LoadCredential= of the drop-in
    contrib/systemd/credentials.conf), and data_dir is the account's, as
    StateDirectory= with User= leaves it."""

    def setpriv_command(self, credentials):
        settings = unit_settings()
        self.assertEqual(settings["User"], ["smtpsd"])
        capabilities = [c.lower().removeprefix("cap_")
                        for c in " ".join(settings["AmbientCapabilities"]).split()]
        self.assertEqual(capabilities, ["net_bind_service"])
        bounding = [c.lower().removeprefix("cap_")
                    for c in " ".join(settings["CapabilityBoundingSet"]).split()]
        wanted = ",".join("+" + c for c in capabilities)
        command = [SETPRIV, "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups",
                   "--inh-caps", wanted, "--ambient-caps", wanted,
                   "--bounding-set", "-all," + ",".join("+" + c for c in bounding)]
        if settings.get("NoNewPrivileges") == ["yes"]:
            command.append("--no-new-privs")
        return command + ["env", f"CREDENTIALS_DIRECTORY={credentials}"]

    def load_credentials(self, credentials, certificate, key):
        """What systemd does for LoadCredential= at each start: a copy readable by the
        account only."""
        for source, name in ((certificate, "smtpsd.crt"), (key, "smtpsd.key")):
            target = os.path.join(credentials, name)
            shutil.copyfile(source, target + ".new")
            os.chown(target + ".new", NOBODY, NOBODY)
            os.chmod(target + ".new", 0o400)
            os.replace(target + ".new", target)

    def served_certificate(self, server):
        client = server.smtp()
        der = client.sock.getpeercert(binary_form=True)
        client.quit()
        return der

    def test_unprivileged_account_binds_a_low_port_and_delivers_over_tls(self):
        names = [source.partition(":")[0]
                 for source in unit_settings(CREDENTIALS_DROP_IN)["LoadCredential"]]
        self.assertEqual(sorted(names), ["smtpsd.crt", "smtpsd.key"])
        server = CredentialsServer(self.tmp, privileges={})
        self.servers.append(server)
        tls = os.path.join(self.tmp, "tls")  # stands for /etc/smtpsd/tls: root's alone
        os.chmod(tls, 0o700)
        credentials = os.path.join(self.tmp, "credentials")
        os.mkdir(credentials, 0o500)
        os.chown(credentials, NOBODY, NOBODY)
        self.load_credentials(credentials, os.path.join(tls, "server-ecdsa.pem"),
                              os.path.join(tls, "server-ecdsa.key"))
        for directory, subdirectories, files in os.walk(self.tmp):
            if directory == tls:
                subdirectories[:] = []
                continue
            for name in [directory] + [os.path.join(directory, n) for n in files]:
                os.lchown(name, NOBODY, NOBODY)
        os.chmod(self.tmp, 0o750)
        server.command_prefix = self.setpriv_command(credentials)
        for attempt in range(8):
            port = random.randrange(600, 1000)
            if not port_free(port):
                continue
            server.listeners = [{"role": "smtp", "port": port}]
            server.write_config()
            try:
                server.start()
                break
            except RuntimeError as error:
                if "Address already in use" not in str(error):
                    raise
        else:
            self.fail("no free port below 1024")
        self.assertEqual(server.ports["smtp"], port)
        status = proc_status(server.process.pid)
        self.assertEqual(status["Uid"], [str(NOBODY)] * 4)
        self.assertEqual(status["Groups"], [])
        for kind in ("CapEff", "CapPrm", "CapAmb", "CapBnd"):
            self.assertEqual(status[kind], ["0000000000000400"], kind)  # net_bind_service
        self.assertEqual(status["NoNewPrivs"], ["1"])
        client = server.smtp()
        self.assertIsNotNone(client.sock.cipher())
        client.sendmail("you@example.org", ["demo@localhost"], MESSAGE)
        client.quit()
        server.wait_delivered(1)
        self.assertEqual(owners(server.maildir()), {(NOBODY, NOBODY)})
        before = self.served_certificate(server)
        # A renewed certificate (systemd copies it at the next start; here by hand) is read
        # from $CREDENTIALS_DIRECTORY by the account at SIGHUP.
        work = tempfile.mkdtemp(dir=self.tmp)
        renewed, renewed_key = issue_leaf(work, os.path.join(tls, "ca.pem"),
                                          os.path.join(tls, "ca.key"), ["localhost"],
                                          common_name="renewed")
        self.load_credentials(credentials, renewed, renewed_key)
        offset = len(server.log())
        server.process.send_signal(signal.SIGHUP)
        server.wait_log(r"event=reloaded")
        self.assertNotIn("reload_refused", server.log()[offset:])
        after = self.served_certificate(server)
        self.assertNotEqual(after, before)
        with open(renewed) as f:
            text = f.read()
        end = "-----END CERTIFICATE-----"
        self.assertEqual(after, ssl.PEM_cert_to_DER_cert(
            text[text.index("-----BEGIN CERTIFICATE-----"):text.index(end) + len(end)]))
        client = server.smtp()
        client.sendmail("you@example.org", ["demo@localhost"], MESSAGE)
        client.quit()
        server.wait_delivered(2)
        self.assertEqual(server.stop(), 0)


class SystemdNotify(ServerTestCase):
    def listen(self, name):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(name if not name.startswith("@") else "\0" + name[1:])
        sock.settimeout(10)
        self.addCleanup(sock.close)
        return sock

    def start_with_notify_socket(self, server, name):
        os.environ["NOTIFY_SOCKET"] = name
        try:
            server.start()
        finally:
            del os.environ["NOTIFY_SOCKET"]

    def test_ready_once_listening_then_stopping(self):
        server = self.new_server()
        path = os.path.join(self.tmp, "notify")
        sock = self.listen(path)
        self.start_with_notify_socket(server, path)
        ready = sock.recv(4096).decode()
        self.assertIn("READY=1", ready.split("\n"))
        self.assertRegex(ready, r"STATUS=accepting mail on 3 listeners")
        raw_connect(server.ports["smtp"]).close()  # READY=1 means the ports answer
        # systemctl reload: RELOADING=1 (with the monotonic time systemd ≥ 253 asks for),
        # then READY=1 once the new configuration is in service.
        server.process.send_signal(signal.SIGHUP)
        reloading = sock.recv(4096).decode().split("\n")
        self.assertIn("RELOADING=1", reloading)
        self.assertTrue(any(re.fullmatch(r"MONOTONIC_USEC=\d+", f) for f in reloading), reloading)
        ready = sock.recv(4096).decode()
        self.assertIn("READY=1", ready.split("\n"))
        self.assertIn("STATUS=accepting mail; configuration reloaded", ready)
        server.wait_log(r"event=reloaded")
        server.process.send_signal(signal.SIGTERM)
        stopping = sock.recv(4096).decode()
        self.assertIn("STOPPING=1", stopping.split("\n"))
        self.assertEqual(server.process.wait(timeout=15), 0)

    def test_abstract_notify_socket(self):
        server = self.new_server()
        name = f"@smtpsd-test-{os.getpid()}-{time.time_ns()}"
        sock = self.listen(name)
        self.start_with_notify_socket(server, name)
        self.assertIn("READY=1", sock.recv(4096).decode().split("\n"))


class SystemdUnit(unittest.TestCase):
    def test_unit_runs_as_the_account_with_one_capability(self):
        settings = unit_settings()
        self.assertEqual(settings["User"], ["smtpsd"])
        self.assertEqual(settings["AmbientCapabilities"], ["CAP_NET_BIND_SERVICE"])
        self.assertEqual(settings["CapabilityBoundingSet"], ["CAP_NET_BIND_SERVICE"])
        self.assertEqual(settings["StateDirectory"], ["smtpsd"])
        # The local submission socket's directory (init's socket = "/run/smtpsd/submit.sock"):
        # every local user must enter it, unlike the data directory (0750).
        self.assertEqual(settings["StateDirectoryMode"], ["0750"])
        self.assertEqual(settings["RuntimeDirectory"], ["smtpsd"])
        self.assertEqual(settings["RuntimeDirectoryMode"], ["0755"])
        # Not in the unit itself: a LoadCredential= source that does not exist fails every
        # start (systemd 252: status=243/CREDENTIALS), and `smtpsd init` names its keys
        # directly. The drop-in that keeps keys root's alone names both.
        self.assertNotIn("LoadCredential", settings)
        self.assertEqual(sorted(unit_settings(CREDENTIALS_DROP_IN)["LoadCredential"]),
                         ["smtpsd.crt:/etc/smtpsd/tls/cert.pem",
                          "smtpsd.key:/etc/smtpsd/tls/key.pem"])

    def test_a_start_that_keeps_failing_is_given_up_a_transient_failure_retried(self):
        """Restart=on-failure with systemd's default start limit (5 starts in 10 s) never
        reaches it at one start per RestartSec=5s: a configuration the pre-start check refuses
        would be retried forever. The limit is in [Unit] (systemd ignores it in [Service] in
        older versions and warns)."""
        service, unit = unit_settings(), unit_settings(wanted="[Unit]")
        self.assertEqual(service["Restart"], ["on-failure"])
        self.assertNotIn("StartLimitIntervalSec", service)
        self.assertNotIn("StartLimitBurst", service)
        (restart_sec,) = service["RestartSec"]
        (interval,) = unit["StartLimitIntervalSec"]
        (burst,) = unit["StartLimitBurst"]
        restart_sec, interval, burst = int(restart_sec.removesuffix("s")), int(interval), int(burst)
        self.assertEqual((restart_sec, interval, burst), (5, 300, 5))
        # A start that fails at once (the check takes well under a second): the starts at
        # 0, 5, ... s; the one after `burst` of them falls within the interval and is refused.
        starts = [n * restart_sec for n in range(burst + 1)]
        self.assertLess(starts[-1] - starts[0], interval)
        # A transient failure is still retried a few times.
        self.assertGreaterEqual(burst - 1, 3)

    @needs.tools("systemd-analyze")
    def test_unit_verifies_and_is_sandboxed(self):
        with open(UNIT) as f:
            unit = f.read()
        for line in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "NoNewPrivileges=yes",
                     "ProtectSystem=strict", "PrivateTmp=yes", "ProtectHome=yes"):
            self.assertIn(line + "\n", unit)
        tmp = self.enterContext(tempfile.TemporaryDirectory())
        copy = os.path.join(tmp, "smtpsd.service")
        with open(copy, "w") as f:
            f.write(unit.replace("/usr/local/bin/smtpsd", os.path.abspath(SMTPSD)))
        # Works without a running systemd; an unknown or misspelt setting is only a warning,
        # so the output must be empty too.
        verify = subprocess.run(["systemd-analyze", "verify", copy], capture_output=True,
                                text=True)
        self.assertEqual(verify.returncode, 0, verify.stderr)
        self.assertEqual(verify.stdout + verify.stderr, "")
        # With the credentials drop-in beside it, as /etc/systemd/system/smtpsd.service.d/.
        os.mkdir(copy + ".d")
        shutil.copy(CREDENTIALS_DROP_IN, copy + ".d")
        verify = subprocess.run(["systemd-analyze", "verify", copy], capture_output=True,
                                text=True)
        self.assertEqual((verify.returncode, verify.stdout + verify.stderr), (0, ""))
        # systemd's own exposure score (0 safest … 10): "OK" is below 3.
        security = subprocess.run(["systemd-analyze", "security", "--offline=true",
                                   "--threshold=30", copy], capture_output=True, text=True)
        self.assertEqual(security.returncode, 0, security.stdout[-2000:] + security.stderr)
        self.assertRegex(security.stdout, r"Overall exposure level for smtpsd.service: [0-1]\.")


if __name__ == "__main__":
    unittest.main()
