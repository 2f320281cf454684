"""Local submission: `smtpsctl sendmail` on the server's host, without credentials.

The server listens on a unix socket ([local_submission]) and knows the local user from the
socket (SO_PEERCRED). Each test runs sendmail as a non-root user with setpriv (fixed uids,
no /etc/passwd edits: `nobody` and `daemon` exist on every Debian system, 64001 has no name)
and checks what that user sees (exit code, message) and what arrives in the Maildir.

Needs root (setpriv changes uid). Standard library only.
"""

import os
import re
import shutil
import signal
import subprocess
import unittest

import needs
from harness import SMTPSD, ServerTestCase

SMTPSCTL = os.environ.get("SMTPSCTL_BIN") or os.path.join(os.path.dirname(SMTPSD), "smtpsctl")
NOBODY = 65534
DAEMON = 1
NAMELESS = 64001  # no /etc/passwd entry

MESSAGE = (b"To: demo@localhost\n"
           b"Bcc: demo@localhost\n"
           b"Subject: from cron\n"
           b"\n"
           b"disk 91% full\n")


@needs.condition(lambda: os.geteuid() == 0 and shutil.which("setpriv"),
                 "root and setpriv (to run sendmail as another local user)")
class LocalSubmission(ServerTestCase):

    def setUp(self):
        super().setUp()
        # The test directory is mkdtemp's 0700: local users must reach the socket and read
        # the configuration, as on a real host (/etc/smtpsd, /run/smtpsd).
        os.chmod(self.tmp, 0o755)

    def start(self, local="[local_submission]\n", limits=None):
        self.server = self.new_server(extra_toml=local, limits=limits)
        return self.server.start()

    def sendmail(self, *args, uid=NOBODY, input=MESSAGE, env=None):
        environment = {k: v for k, v in os.environ.items()
                       if k not in ("SMTPSCTL_CONFIG", "SMTPSD_CONFIG", "SMTPSCTL_PASSWORD")}
        environment["SMTPSD_CONFIG"] = self.server.config_path
        environment.update(env or {})
        prefix = [] if uid == 0 else ["setpriv", f"--reuid={uid}", f"--regid={uid}",
                                      "--clear-groups"]
        return subprocess.run(prefix + [SMTPSCTL, "sendmail"] + list(args), input=input,
                              env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=30)

    def test_local_user_sends_with_minus_t_and_its_sender_is_rewritten(self):
        self.start()
        result = self.sendmail("-t", "-f", "ceo@bank.example")
        self.assertEqual(result.returncode, 0, result.stderr)
        message = self.server.wait_delivered(1)[0]
        head = message.split(b"\r\n\r\n")[0]
        # Not ceo@bank.example: nobody may not choose its sender (may_set_sender = root).
        self.assertTrue(message.startswith(b"Return-Path: <nobody@localhost>\r\n"), message)
        self.assertIn(b"From: nobody@localhost\r\n", head)
        self.assertNotIn(b"Bcc", head)
        self.assertIn(b"with ESMTPA", head)
        # No address to name: the trace says which host user sent it (and no "[local]").
        self.assertRegex(head, rb"Received: by \S+ \(smtpsd, from local user nobody, uid 65534\)")
        self.assertNotIn(b"[local]", head)
        self.assertRegex(self.server.log(),
                         r"event=local_submission session=\S+ id=\S+ uid=65534 user=nobody "
                         r"from=nobody@localhost recipients=2")

    def test_works_for_a_user_who_cannot_read_the_servers_secrets(self):
        # [srs] secrets are mode 0600 for the server's account: sendmail, run by anyone,
        # reads the configuration without opening them.
        secrets = os.path.join(self.tmp, "srs.secrets")
        with open(secrets, "w") as f:
            f.write("a-secret-of-at-least-16-characters\n")
        os.chmod(secrets, 0o600)
        self.start(local=f"[local_submission]\n[srs]\ndomain = \"srs.localhost.test\"\n"
                         f"secrets_file = \"{secrets}\"\n")
        result = self.sendmail("-t")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.server.wait_delivered(1)

    def test_root_may_choose_its_sender(self):
        self.start()
        result = self.sendmail("-f", "alerts@localhost", "-F", "Alert Robot", "demo@localhost",
                               uid=0, input=b"Subject: x\n\nbody\n")
        self.assertEqual(result.returncode, 0, result.stderr)
        message = self.server.wait_delivered(1)[0]
        self.assertTrue(message.startswith(b"Return-Path: <alerts@localhost>\r\n"), message)
        self.assertIn(b"From: Alert Robot <alerts@localhost>\r\n", message)

    def test_user_the_configuration_forbids_is_refused(self):
        self.start('[local_submission]\nallow_users = ["daemon"]\n')
        result = self.sendmail("-t")
        self.assertEqual(result.returncode, 77, result.stderr)  # EX_NOPERM
        error = result.stderr.decode()
        self.assertIn("smtpsd refused local user nobody: 554 localhost local user nobody may "
                      "not submit mail here (not in local_submission.allow_users)", error)
        self.assertIn("NOT sent", error)
        self.assertRegex(self.server.log(), r"event=local_refused session=\S+ uid=65534 ")
        # daemon is allowed, and gets its own address.
        allowed = self.sendmail("demo@localhost", uid=DAEMON, input=b"Subject: ok\n\nx\n")
        self.assertEqual(allowed.returncode, 0, allowed.stderr)
        message = self.server.wait_delivered(1)[0]
        self.assertTrue(message.startswith(b"Return-Path: <daemon@localhost>\r\n"))
        self.assertEqual(len(self.server.delivered()), 1)

    def test_uid_without_a_name_is_refused(self):
        self.start()
        result = self.sendmail("-t", uid=NAMELESS)
        self.assertEqual(result.returncode, 77, result.stderr)
        self.assertIn("uid 64001 has no user name on this host", result.stderr.decode())
        self.assertEqual(self.server.spool_ids(), [])

    def test_unknown_recipient_exits_67_and_nothing_is_sent(self):
        self.start()
        result = self.sendmail("nosuchuser", input=b"Subject: x\n\nbody\n")
        self.assertEqual(result.returncode, 67, result.stderr)  # EX_NOUSER
        error = result.stderr.decode()
        # A bare user name is qualified with the local domain, as cron's MAILTO needs.
        self.assertIn("recipient <nosuchuser@localhost> refused: 550 5.1.1", error)
        self.assertIn("NOT sent", error)
        self.assertEqual(self.server.spool_ids(), [])

    def test_minus_bs_speaks_smtp_on_standard_input(self):
        self.start()
        dialog = (b"EHLO cron.local\n"
                  b"MAIL FROM:<someone@else.example>\n"
                  b"RCPT TO:<demo@localhost>\n"
                  b"DATA\n"
                  b"Subject: by -bs\n"
                  b"\n"
                  b"..a line with a dot\n"
                  b".\n"
                  b"QUIT\n")
        result = self.sendmail("-bs", input=dialog)
        self.assertEqual(result.returncode, 0, result.stderr)
        replies = result.stdout.decode()
        self.assertTrue(replies.startswith("220 localhost ESMTP"), replies)
        self.assertNotIn("STARTTLS", replies)
        self.assertNotIn("AUTH", replies)
        self.assertRegex(replies, r"250 2\.0\.0 Ok: queued as \S+\r\n221 ")
        message = self.server.wait_delivered(1)[0]
        self.assertTrue(message.startswith(b"Return-Path: <nobody@localhost>\r\n"), message)
        self.assertIn(b"\r\n.a line with a dot\r\n", message)

    def test_server_down_exits_75_and_says_not_sent(self):
        self.start()
        self.server.stop()
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "public", "submit.sock")),
                         "a stopped server leaves no socket behind")
        result = self.sendmail("-t")
        self.assertEqual(result.returncode, 75, result.stderr)  # EX_TEMPFAIL
        self.assertIn("the message was NOT sent; try again when smtpsd is running",
                      result.stderr.decode())
        bs = self.sendmail("-bs", input=b"QUIT\n")
        self.assertEqual(bs.returncode, 75, bs.stderr)
        self.assertIn("NOT sent", bs.stderr.decode())

    def test_reload_applies_allow_users_and_removes_the_socket(self):
        server = self.start('[local_submission]\nallow_users = ["daemon"]\n')
        self.assertEqual(self.sendmail("-t").returncode, 77)
        server.extra_toml = "[local_submission]\n"
        server.write_config()
        server.process.send_signal(signal.SIGHUP)
        server.wait_log(r"event=reloaded")
        result = self.sendmail("-t")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.server.wait_delivered(1)
        # Without the table, the socket goes away (and sendmail says the mail was not sent).
        server.extra_toml = ""
        server.write_config()
        server.process.send_signal(signal.SIGHUP)
        server.wait_log(r"event=listener_closed role=local")
        gone = self.sendmail("-t")
        self.assertEqual(gone.returncode, 78, gone.stderr)
        self.assertIn("has no [local_submission]", gone.stderr.decode())
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "public", "submit.sock")))

    def test_stale_socket_replaced_live_one_never_taken(self):
        server = self.start()
        server.kill9()  # leaves its socket file behind
        socket_path = os.path.join(self.tmp, "public", "submit.sock")
        self.assertTrue(os.path.exists(socket_path))
        server.start()
        self.assertEqual(self.sendmail("-t").returncode, 0)
        # A second server configured on the same path while the first one serves: refused.
        other = self.new_server(extra_toml=f'[local_submission]\nsocket = "{socket_path}"\n')
        with self.assertRaises(RuntimeError) as refused:
            other.start()
        self.assertIn("another server is listening on it", str(refused.exception))
        other.process = None
        self.assertEqual(self.sendmail("-t").returncode, 0, "the first server still serves")
        self.server = server
        server.wait_delivered(2)

    def test_hourly_message_limit_applies_to_local_users(self):
        # The former name of [sending_limits] messages_per_hour: still read (deprecated).
        self.start(limits={"max_messages_per_user_per_hour": 1})
        self.assertEqual(self.sendmail("-t").returncode, 0)
        again = self.sendmail("-t")
        self.assertEqual(again.returncode, 75, again.stderr)  # 451: try later
        self.assertIn("451 4.7.1", again.stderr.decode())
        self.assertIn("NOT sent", again.stderr.decode())
        self.assertRegex(self.server.log(), r"event=user_rate_limited session=\S+ client=local "
                                            r"user=nobody")

    def test_socket_is_local_only(self):
        server = self.start()
        socket_path = os.path.join(self.tmp, "public", "submit.sock")
        mode = os.stat(socket_path).st_mode
        self.assertEqual(mode & 0o777, 0o666)
        self.assertEqual(os.stat(os.path.dirname(socket_path)).st_mode & 0o777, 0o755)
        # Only the configured TCP roles listen on the network; local is a unix socket.
        roles = re.findall(r"event=listening role=(\S+) address=\S+ port=", server.log())
        self.assertEqual(sorted(roles), ["smtp", "submission", "submissions"])
        self.assertRegex(server.log(), r"event=listening role=local socket=\S+submit\.sock ")
        # The role cannot be put on a network address at all.
        server.stop()
        server.listeners = server.listeners + [{"role": "local"}]
        server.write_config()
        check = subprocess.run([SMTPSD, "check", "--config", server.config_path],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        self.assertNotEqual(check.returncode, 0)
        self.assertRegex(check.stdout.decode(),
                         r"listeners\[3\]\.role: the local role listens on a unix socket only")


if __name__ == "__main__":
    unittest.main()
