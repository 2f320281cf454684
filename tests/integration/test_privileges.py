"""Least privilege and the systemd integration: the account switch after start-up, the
refusal to stay root unless a setting says so, sd_notify(3) readiness and stopping
notifications, and the unit file in contrib/systemd."""

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import unittest

from harness import SMTPSD, ServerTestCase, raw_connect

ROOT = os.geteuid() == 0
UNIT = os.path.join(os.path.dirname(__file__), "..", "..", "contrib", "systemd",
                    "smtpsd.service")


def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return fields


@unittest.skipUnless(ROOT, "the account switch needs a start as root")
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
        check = subprocess.run([SMTPSD, "check", "--config", server.config_path],
                               capture_output=True, text=True)
        self.assertEqual(check.returncode, 0, check.stderr)
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
    @unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze is not installed")
    def test_unit_verifies_and_is_sandboxed(self):
        with open(UNIT) as f:
            unit = f.read()
        for line in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "NoNewPrivileges=yes",
                     "ProtectSystem=strict", "PrivateTmp=yes", "ProtectHome=yes"):
            self.assertIn(line + "\n", unit)
        tmp = self.enterContext(__import__("tempfile").TemporaryDirectory())
        copy = os.path.join(tmp, "smtpsd.service")
        with open(copy, "w") as f:
            f.write(unit.replace("/usr/local/bin/smtpsd", os.path.abspath(SMTPSD)))
        verify = subprocess.run(["systemd-analyze", "verify", copy], capture_output=True,
                                text=True)
        self.assertEqual(verify.returncode, 0, verify.stderr)
        # systemd's own exposure score (0 safest … 10): "OK" is below 3.
        security = subprocess.run(["systemd-analyze", "security", "--offline=true",
                                   "--threshold=30", copy], capture_output=True, text=True)
        self.assertEqual(security.returncode, 0, security.stdout[-2000:] + security.stderr)
        self.assertRegex(security.stdout, r"Overall exposure level for smtpsd.service: [0-2]\.")


if __name__ == "__main__":
    unittest.main()
