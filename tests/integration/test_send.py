"""smtpsctl send and the sendmail-compatible mode, against smtpsd and small fake servers.

Each failure must be explained in words (certificate expired on a date, name mismatch with
the certificate's names, not trusted, STARTTLS not offered, AUTH refused with the reply,
recipient refused, connection refused, timeout), and nothing secret may leave before the
certificate is checked: the server's log must show no AUTH attempt.
"""

import email
import email.policy
import email.utils
import os
import pty
import re
import socket
import subprocess
import tempfile
import time
import unittest

from certificates import issue_leaf
from fake_smtp import FakeSmtp
from harness import SMTPSD, ServerTestCase, make_message
from ports import free_port

SMTPSCTL = os.environ.get("SMTPSCTL_BIN") or os.path.join(os.path.dirname(SMTPSD), "smtpsctl")

AUTH_EVENT = re.compile(r"event=auth(_failed)?\b")


def run(args, input=b"", env=None, program=None, timeout=60):
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("SMTPSCTL_PASSWORD", "SMTPSCTL_CONFIG")}
    environment.update(env or {})
    # No controlling terminal: a missing password must fail, never hang on a prompt.
    return subprocess.run([program or SMTPSCTL] + list(args), input=input, env=environment,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                          start_new_session=True)


def output(result):
    return result.stdout.decode() + result.stderr.decode()


def make_certificate(directory, ca_cert, ca_key, name, san, start=None, end=None):
    """A leaf certificate for the SANs `san` ("DNS:a,IP:…") signed by the given CA, valid
    from start to end ("YYYYMMDDHHMMSSZ"; by default 2020 to 2099)."""
    return issue_leaf(os.path.join(directory, name), ca_cert, ca_key, san.split(","),
                      common_name=name, start=start or "20200101000000Z",
                      end=end or "20991231000000Z")


class SendTest(ServerTestCase):
    def setUp(self):
        super().setUp()
        self.server = self.new_server(domains=[("localhost", ["demo", "bob"])])
        self.server.start()
        self.password_file = os.path.join(self.server.dir, "demo.password")
        with open(self.password_file) as f:
            self.password = f.read().strip()

    def smtps(self):
        return f"smtps://localhost:{self.server.ports['submissions']}"

    def submission(self):
        return f"smtp://localhost:{self.server.ports['submission']}"

    def send(self, *args, input=b"", env=None, server=None, cafile=True, user=True):
        base = ["send", "--server", server or self.smtps()]
        if cafile:
            base += ["--cafile", self.server.ca]
        if user:
            base += ["--user", "demo@localhost"]
        return run(base + list(args), input=input, env=env)

    def delivered_message(self, index=0, address="demo@localhost"):
        raw = self.server.wait_delivered(index + 1, address=address)[index]
        return raw, email.message_from_bytes(raw, policy=email.policy.default)

    # --- success ---------------------------------------------------------------------

    def test_smtps_with_password_file_delivered(self):
        result = self.send("--password-file", self.password_file, "--to", "demo@localhost",
                           "--subject", "over smtps", "--body", "Hello over implicit TLS.")
        self.assertEqual(result.returncode, 0, output(result))
        self.assertRegex(result.stdout.decode(), r"^250 .*queued as \S+")
        raw, message = self.delivered_message()
        self.assertEqual(message["Subject"], "over smtps")
        self.assertIn(b"Hello over implicit TLS.\r\n", raw)
        self.assertIn("TLS", message["Received"])

    def test_starttls_with_environment_password_and_stdin_message(self):
        body = make_message(subject="from stdin", sender="demo@localhost")
        result = self.send("--to", "demo@localhost", input=body, server=self.submission(),
                           env={"SMTPSCTL_PASSWORD": self.password})
        self.assertEqual(result.returncode, 0, output(result))
        self.assertIn("queued as", result.stdout.decode())
        _, message = self.delivered_message()
        self.assertEqual(message["Subject"], "from stdin")
        # Added because the message had none.
        self.assertIsNotNone(email.utils.parsedate_to_datetime(message["Date"]))
        self.assertRegex(message["Message-ID"], r"^<[0-9a-f]{32}\.\d+@localhost>$")

    def test_utf8_subject_and_body_built_with_correct_headers(self):
        subject = ("Grüße aus Köln — ünïcödé ✓ and a fairly long subject line "
                   "to force folding")
        result = self.send("--to", "demo@localhost", "--to", "bob@localhost",
                           "--subject", subject, "--body", "Schöne Grüße\nzweite Zeile\n",
                           env={"SMTPSCTL_PASSWORD": self.password})
        self.assertEqual(result.returncode, 0, output(result))
        raw, message = self.delivered_message()
        self.assertEqual(message["Subject"], subject)
        header_block = raw.split(b"\r\n\r\n", 1)[0]
        self.assertTrue(all(b < 0x80 for b in header_block), header_block)
        self.assertIn(b"=?UTF-8?B?", header_block)
        for line in header_block.split(b"\r\n"):
            self.assertLessEqual(len(line), 998)
        self.assertEqual(message["From"], "demo@localhost")
        self.assertEqual([a for _, a in email.utils.getaddresses([message["To"]])],
                         ["demo@localhost", "bob@localhost"])
        self.assertEqual(message["MIME-Version"], "1.0")
        self.assertEqual(message.get_content_type(), "text/plain")
        self.assertEqual(message.get_content_charset(), "utf-8")
        self.assertEqual(message["Content-Transfer-Encoding"], "8bit")
        self.assertEqual(message.get_content().replace("\r\n", "\n"),
                         "Schöne Grüße\nzweite Zeile\n")
        self.assertIsNotNone(email.utils.parsedate_to_datetime(message["Date"]))
        self.assertTrue(message["Message-ID"].startswith("<"))
        self.assertNotIn(b"\n", raw.replace(b"\r\n", b""))  # CRLF only
        self.server.wait_delivered(1, address="bob@localhost")

    # --- refusals explained -----------------------------------------------------------

    def test_wrong_password_says_auth_refused_with_535(self):
        result = self.send("--to", "demo@localhost", "--subject", "x", "--body", "x",
                           env={"SMTPSCTL_PASSWORD": "not the password"})
        self.assertEqual(result.returncode, 1, output(result))
        text = result.stderr.decode()
        self.assertIn("authentication as demo@localhost refused", text)
        self.assertIn("535", text)
        self.assertEqual(self.server.delivered(), [])

    def test_untrusted_ca_refused_before_auth(self):
        result = self.send("--to", "demo@localhost", "--subject", "x", "--body", "x",
                           cafile=False, env={"SMTPSCTL_PASSWORD": self.password})
        self.assertEqual(result.returncode, 1, output(result))
        text = result.stderr.decode()
        self.assertIn("not trusted", text)
        self.assertIn("--cafile", text)
        self.assertIn("nothing was sent", text)
        time.sleep(0.3)
        self.assertIsNone(AUTH_EVENT.search(self.server.log()), self.server.log()[-2000:])
        # The same refusal over STARTTLS, before EHLO is repeated inside TLS.
        result = self.send("--to", "demo@localhost", "--subject", "x", "--body", "x",
                           cafile=False, server=self.submission(),
                           env={"SMTPSCTL_PASSWORD": self.password})
        self.assertEqual(result.returncode, 1, output(result))
        self.assertIn("not trusted", result.stderr.decode())
        time.sleep(0.3)
        self.assertIsNone(AUTH_EVENT.search(self.server.log()))

    def test_tls_none_required_for_plain_text_and_never_with_a_password(self):
        with FakeSmtp(starttls=False) as fake:
            server = f"smtp://127.0.0.1:{fake.port}"
            result = run(["send", "--server", server, "--from", "a@example.org",
                          "--to", "b@example.org", "--subject", "x", "--body", "x"])
            self.assertEqual(result.returncode, 1, output(result))
            self.assertIn("does not offer STARTTLS", result.stderr.decode())
            self.assertIn("--tls none", result.stderr.decode())
            self.assertEqual(fake.messages, [])
            result = run(["send", "--server", server, "--tls", "none", "--from", "a@example.org",
                          "--to", "b@example.org", "--subject", "plain", "--body", "x"])
            self.assertEqual(result.returncode, 0, output(result))
            self.assertIn("queued as FAKE1", result.stdout.decode())
            self.assertEqual(len(fake.messages), 1)
            self.assertIsNone(fake.messages[0][3])  # no TLS
            result = run(["send", "--server", server, "--tls", "none", "--user", "a@example.org",
                          "--to", "b@example.org", "--subject", "x", "--body", "x"],
                         env={"SMTPSCTL_PASSWORD": "secret"})
            self.assertEqual(result.returncode, 2, output(result))
            self.assertIn("never sent without TLS", result.stderr.decode())
            self.assertEqual(len(fake.messages), 1)

    def test_name_mismatch_lists_the_certificate_names(self):
        cert, key = make_certificate(self.tmp, self.server.ca,
                                     os.path.join(self.server.dir, "tls", "ca.key"),
                                     "mail.example.org", "DNS:mail.example.org,DNS:mx.example.org")
        with FakeSmtp(cert=cert, key=key) as fake:
            result = run(["send", "--server", f"smtp://127.0.0.1:{fake.port}",
                          "--cafile", self.server.ca, "--user", "a@example.org",
                          "--to", "b@example.org", "--subject", "x", "--body", "x"],
                         env={"SMTPSCTL_PASSWORD": "secret"})
            self.assertEqual(result.returncode, 1, output(result))
            text = result.stderr.decode()
            self.assertIn("name mismatch", text)
            self.assertIn("mail.example.org, mx.example.org", text)
            self.assertIn("127.0.0.1", text)
            self.assertEqual(fake.messages, [])

    def test_expired_certificate_says_when(self):
        cert, key = make_certificate(self.tmp, self.server.ca,
                                     os.path.join(self.server.dir, "tls", "ca.key"),
                                     "expired", "IP:127.0.0.1",
                                     start="20200101000000Z", end="20200102030405Z")
        with FakeSmtp(cert=cert, key=key) as fake:
            result = run(["send", "--server", f"smtp://127.0.0.1:{fake.port}",
                          "--cafile", self.server.ca, "--from", "a@example.org",
                          "--to", "b@example.org", "--subject", "x", "--body", "x"])
            self.assertEqual(result.returncode, 1, output(result))
            self.assertIn("expired on 2020-01-02 03:04:05 UTC", result.stderr.decode())
            self.assertEqual(fake.messages, [])

    def test_recipient_refused_with_the_reply(self):
        tls_dir = os.path.join(self.server.dir, "tls")
        with FakeSmtp(cert=os.path.join(tls_dir, "server-ecdsa.pem"),
                      key=os.path.join(tls_dir, "server-ecdsa.key"),
                      rcpt={"nobody@example.org": ["550 5.1.1 no such user here"]}) as fake:
            result = run(["send", "--server", f"smtp://127.0.0.1:{fake.port}",
                          "--cafile", self.server.ca, "--from", "a@example.org",
                          "--to", "nobody@example.org", "--subject", "x", "--body", "x"])
            self.assertEqual(result.returncode, 1, output(result))
            self.assertIn("refused the message for <nobody@example.org>: "
                          "550 5.1.1 no such user here", result.stderr.decode())
            # One refused among accepted ones: named, and the others said to be sent.
            result = run(["send", "--server", f"smtp://127.0.0.1:{fake.port}",
                          "--cafile", self.server.ca, "--from", "a@example.org",
                          "--to", "nobody@example.org", "--to", "somebody@example.org",
                          "--subject", "x", "--body", "x"])
            self.assertEqual(result.returncode, 1, output(result))
            text = result.stderr.decode()
            self.assertIn("recipient <nobody@example.org> refused: 550 5.1.1 no such user here",
                          text)
            self.assertIn("sent to the 1 other recipient(s): 250 2.0.0 queued as FAKE1", text)
            self.assertEqual(fake.messages[0][1], ["somebody@example.org"])

    def test_connection_refused(self):
        result = run(["send", "--server", f"smtps://127.0.0.1:{free_port()}",
                      "--from", "a@example.org", "--to", "b@example.org",
                      "--subject", "x", "--body", "x"])
        self.assertEqual(result.returncode, 1, output(result))
        self.assertIn("connection refused by 127.0.0.1:", result.stderr.decode())

    def test_timeout_when_the_server_never_greets(self):
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        try:
            started = time.time()
            result = run(["send", "--server", f"smtp://127.0.0.1:{silent.getsockname()[1]}",
                          "--timeout", "1", "--from", "a@example.org", "--to", "b@example.org",
                          "--subject", "x", "--body", "x"])
            self.assertLess(time.time() - started, 10)
            self.assertEqual(result.returncode, 1, output(result))
            self.assertIn("timed out", result.stderr.decode())
        finally:
            silent.close()

    def test_no_password_argument_and_no_password_without_terminal(self):
        result = self.send("--to", "demo@localhost", "--password", self.password)
        self.assertEqual(result.returncode, 2, output(result))
        self.assertIn("no --password option", result.stderr.decode())
        self.assertNotIn(self.password, output(result))
        result = self.send("--to", "demo@localhost", "--subject", "x", "--body", "x")
        self.assertEqual(result.returncode, 1, output(result))
        self.assertIn("SMTPSCTL_PASSWORD", result.stderr.decode())

    def test_password_asked_on_the_terminal_without_echo(self):
        pid, fd = pty.fork()
        if pid == 0:  # the child: the pty is its controlling terminal
            os.execv(SMTPSCTL, [SMTPSCTL, "send", "--server", self.smtps(), "--cafile",
                                self.server.ca, "--user", "demo@localhost", "--to",
                                "demo@localhost", "--subject", "typed", "--body", "x"])
        seen = b""
        try:
            deadline = time.time() + 20
            while b"Password for demo@localhost at localhost: " not in seen:
                self.assertLess(time.time(), deadline, seen)
                seen += os.read(fd, 1024)
            os.write(fd, self.password.encode() + b"\n")
            while True:
                try:
                    chunk = os.read(fd, 1024)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
        finally:
            _, status = os.waitpid(pid, 0)
            os.close(fd)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0, seen)
        self.assertIn(b"queued as", seen)
        self.assertNotIn(self.password.encode(), seen)  # not echoed
        _, message = self.delivered_message()
        self.assertEqual(message["Subject"], "typed")

    def test_addresses_are_checked_before_connecting(self):
        result = self.send("--to", "Demo <demo@localhost>", "--subject", "x", "--body", "x",
                           env={"SMTPSCTL_PASSWORD": self.password})
        self.assertEqual(result.returncode, 2, output(result))
        self.assertIn("not an address", result.stderr.decode())

    # --- sendmail mode ----------------------------------------------------------------

    def write_config(self, extra="", **keys):
        values = {"server": self.smtps().replace("localhost", "127.0.0.1"),
                  "user": "demo@localhost", "password_file": "demo.password",
                  "cafile": "tls/ca.pem", "from": "demo@localhost"}
        values.update(keys)
        path = os.path.join(self.server.dir, "smtpsctl.toml")
        with open(path, "w") as f:
            for key, value in values.items():
                if value is not None:
                    f.write(f'{key} = "{value}"\n')
            f.write(extra)
        return path

    def test_sendmail_symlink_with_t_i_f_and_F(self):
        config = self.write_config(**{"from": None})
        link = os.path.join(self.tmp, "sendmail")
        os.symlink(os.path.abspath(SMTPSCTL), link)
        message = (b"To: Bob <bob@localhost>\n"
                   b"Bcc: demo@localhost\n"
                   b"Subject: from cron\n"
                   b"\n"
                   b"first line\n"
                   b".\n"
                   b"after the dot\n")
        result = run(["-t", "-i", "-f", "demo@localhost", "-F", "Cron Daemon", "-odi", "-oem"],
                     input=message, env={"SMTPSCTL_CONFIG": config}, program=link)
        self.assertEqual(result.returncode, 0, output(result))
        self.assertEqual(result.stdout, b"")  # silent on success, like sendmail
        for address in ("bob@localhost", "demo@localhost"):
            raw = self.server.wait_delivered(1, address=address)[0]
            message_in = email.message_from_bytes(raw, policy=email.policy.default)
            self.assertIsNone(message_in["Bcc"])
            self.assertNotIn(b"Bcc:", raw)
            self.assertEqual(message_in["From"], "Cron Daemon <demo@localhost>")
            self.assertEqual(message_in["Return-Path"], "<demo@localhost>")
            self.assertIn(b"first line\r\n.\r\nafter the dot\r\n", raw)
            self.assertIsNotNone(email.utils.parsedate_to_datetime(message_in["Date"]))
            self.assertTrue(message_in["Message-ID"])

    def test_sendmail_subcommand_recipients_as_arguments_and_dot_ends(self):
        config = self.write_config()
        result = run(["sendmail", "--config", config, "bob@localhost"],
                     input=b"Subject: dot\nBcc: secret@example.org\n\nbefore\n.\nnot sent\n")
        self.assertEqual(result.returncode, 0, output(result))
        raw = self.server.wait_delivered(1, address="bob@localhost")[0]
        self.assertIn(b"before\r\n", raw)
        self.assertNotIn(b"not sent", raw)
        self.assertNotIn(b"secret@example.org", raw)  # Bcc removed even without -t
        self.assertIn(b"\r\nFrom: demo@localhost\r\n", raw)  # from the configuration

    def test_sendmail_configuration_errors(self):
        config = self.write_config(extra='pasword = "x"\n')
        result = run(["sendmail", "--config", config, "bob@localhost"], input=b"Subject: x\n\nx\n")
        self.assertEqual(result.returncode, 78, output(result))
        self.assertIn(f"{config}:6: pasword: unknown key", result.stderr.decode())
        result = run(["sendmail", "--config", os.path.join(self.tmp, "missing.toml"), "a@b"])
        self.assertEqual(result.returncode, 78, output(result))
        self.assertIn("missing.toml: cannot read the file", result.stderr.decode())
        result = run(["sendmail", "--config", self.write_config(), "-bp"])
        self.assertEqual(result.returncode, 64, output(result))
        # Debian cron's call, to a local user name: explained, not sent anywhere.
        result = run(["sendmail", "--config", self.write_config(), "-FCronDaemon", "-i",
                      "-B8BITMIME", "-oem", "root"], input=b"Subject: cron\n\nout\n")
        self.assertEqual(result.returncode, 64, output(result))
        self.assertIn("recipient root is not an address", result.stderr.decode())
        self.assertEqual(self.server.delivered(address="bob@localhost"), [])

    def test_sendmail_wrong_password_exit_status(self):
        bad = os.path.join(self.tmp, "bad.password")
        with open(bad, "w") as f:
            f.write("wrong\n")
        config = self.write_config(password_file=bad)
        result = run(["sendmail", "--config", config, "bob@localhost"], input=b"Subject: x\n\nx\n")
        self.assertEqual(result.returncode, 69, output(result))  # EX_UNAVAILABLE: 535 is final
        self.assertIn("535", result.stderr.decode())


if __name__ == "__main__":
    unittest.main()
