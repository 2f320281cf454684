"""Addressing end to end: mailboxes from the users file, the aliases file, role accounts,
sub-addressing, catch-all, alias loops refused at RCPT, Delivered-To (README "Mailboxes and aliases").

One smtpsd per class (setUpClass), with two domains (localhost, example.test), demo@localhost
as the administrator, sub-address folders on, and a fake remote SMTP server as the relay for
other domains. Mailboxes and aliases are made with smtpsctl, as an administrator would;
nothing here sends SIGHUP: the server picks the files up by itself.
"""

import email
import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import time
import unittest

from fake_smtp import FakeSmtp
from harness import SMTPSD, Server

SMTPSCTL = os.environ.get("SMTPSCTL_BIN") or os.path.join(os.path.dirname(SMTPSD), "smtpsctl")


def read_text(path):
    with open(path, errors="replace") as f:
        return f.read()


def smtpsctl(*args, check=True):
    result = subprocess.run([SMTPSCTL] + list(args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"smtpsctl {args}: {result.returncode} {result.stderr}")
    return result


class Addressing(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="smtpsd-addressing-")
        cls.remote = FakeSmtp(starttls=False).__enter__()
        cls.server = Server(cls.tmp, domains=[("localhost", []), ("example.test", [])],
                            extra_toml="\n".join([
                                "[addressing]", 'administrator = "demo@localhost"',
                                "subaddress_folders = true", "",
                                "[queue]", "retry_schedule = [1]", "",
                                "[delivery]", f'relay = "smtp://127.0.0.1:{cls.remote.port}"',
                                'relay_tls = "none"', ""]))
        cls.users = os.path.join(cls.tmp, "users")
        cls.aliases = os.path.join(cls.tmp, "aliases")
        for address in ("alice@example.test", "bob@example.test"):
            smtpsctl("user", "add", "--users", cls.users, "--no-password", address)
        smtpsctl("alias", "add", "--aliases", cls.aliases, "--users", cls.users,
                 "team@example.test", "alice@example.test", "bob@example.test",
                 "partner@remote.test")
        # A loop, written by hand: `smtpsctl alias add` refuses it (test below).
        with open(cls.aliases, "a") as f:
            f.write("loop1@example.test loop2@example.test\n"
                    "loop2@example.test loop1@example.test\n")
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.remote.__exit__()
        problems = cls.server.problems()
        if problems:
            print(f"\nkept test directory: {cls.tmp}")
            raise AssertionError("the server misbehaved:\n" + "\n".join(problems[:20]))
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def send(self, recipients, subject, sender="sender@client.test", extra_headers=""):
        client = self.server.smtp()
        # A bounce (<>) still names an author: a From field without one is refused on port 25.
        author = sender or "mailer-daemon@client.test"
        try:
            client.sendmail(sender, recipients,
                            f"From: {author}\r\nSubject: {subject}\r\n{extra_headers}\r\n"
                            f"hello\r\n")
        finally:
            client.quit()

    def make_folder(self, address, folder):
        """The Maildir++ folder a mail client (Dovecot over IMAP) makes: .folder/{cur,new,tmp}
        with its maildirfolder marker."""
        local, domain = address.split("@")
        box = os.path.join(self.tmp, "mail", domain, local, "." + folder)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(box, sub), exist_ok=True)
        open(os.path.join(box, "maildirfolder"), "w").close()

    def messages(self, address, subject, folder=None, count=1, timeout=15):
        """The messages with this subject in address's Maildir (or its folder)."""
        local, domain = address.split("@")
        box = os.path.join(self.tmp, "mail", domain, local)
        if folder:
            box = os.path.join(box, "." + folder)
        deadline = time.time() + timeout
        found = []
        while time.time() < deadline:
            found = []
            for sub in ("new", "cur"):
                path = os.path.join(box, sub)
                for name in sorted(os.listdir(path)) if os.path.isdir(path) else []:
                    with open(os.path.join(path, name), "rb") as f:
                        message = email.message_from_bytes(f.read())
                    if message["Subject"] == subject:
                        found.append(message)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"{len(found)} of {count} '{subject}' in {box}\n" +
                             self.server.log()[-3000:])

    def wait_accepted(self, address, timeout=5):
        """RCPT until the server accepts address (a file change is picked up within ~1 s)."""
        deadline = time.time() + timeout
        while True:
            client = self.server.smtp()
            try:
                client.mail("sender@client.test")
                code, _ = client.rcpt(address)
            finally:
                client.quit()
            if code == 250:
                return
            if time.time() > deadline:
                raise AssertionError(f"{address} still refused ({code})")
            time.sleep(0.1)

    def test_role_accounts_land_in_the_administrators_maildir(self):
        for address in ("postmaster@localhost", "abuse@localhost", "POSTMASTER@example.test",
                        "abuse@example.test", "Postmaster"):
            self.send([address], f"role {address}")
        for address in ("postmaster@localhost", "abuse@localhost", "POSTMASTER@example.test",
                        "abuse@example.test", "Postmaster"):
            message = self.messages("demo@localhost", f"role {address}")[0]
            self.assertEqual(message["Delivered-To"], "demo@localhost")
        # No mailbox of its own was made for a role account.
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "mail", "localhost", "postmaster")))

    def test_an_alias_delivers_to_two_mailboxes_and_a_remote_address(self):
        self.send(["team@example.test"], "team news")
        for address in ("alice@example.test", "bob@example.test"):
            message = self.messages(address, "team news")[0]
            self.assertEqual(message["Delivered-To"], address)
            self.assertEqual(message["Return-Path"], "<sender@client.test>")
        deadline = time.time() + 15
        while time.time() < deadline and not any(b"team news" in m[2]
                                                 for m in self.remote.messages):
            time.sleep(0.05)
        sent = [m for m in self.remote.messages if b"team news" in m[2]]
        self.assertEqual(len(sent), 1, self.server.log()[-3000:])
        mail_from, recipients, _data, _tls = sent[0]
        self.assertEqual(recipients, ["partner@remote.test"])
        self.assertEqual(mail_from, "sender@client.test")  # the original envelope sender
        # The log names each expanded target.
        self.server.wait_log(r"event=delivered id=\S+ rcpt=alice@example.test")

    def test_success_asked_of_an_alias_is_reported_expanded(self):
        # RFC 3461 §5.2.7: one "expanded" notice for the alias, none for its targets.
        client = self.server.smtp()
        try:
            client.sendmail("bob@example.test", ["team@example.test"],
                            "Subject: notify me\r\n\r\nhi\r\n",
                            rcpt_options=["NOTIFY=SUCCESS"])
        finally:
            client.quit()
        self.messages("alice@example.test", "notify me")
        report = self.messages("bob@example.test", "Successful Mail Delivery Report")[0]
        status = [p for p in report.walk() if p.get_content_type() == "message/delivery-status"]
        fields = "\n".join(str(block) for block in status[0].get_payload())
        self.assertIn("Action: expanded", fields)
        self.assertIn("Final-Recipient: rfc822; team@example.test", fields)
        time.sleep(0.5)
        self.assertEqual(len(self.messages("bob@example.test", "Successful Mail Delivery Report")),
                         1)

    def test_catch_all_is_off_until_configured_and_never_shadows_a_mailbox(self):
        with self.assertRaises(smtplib.SMTPRecipientsRefused) as refused:
            self.send(["random@example.test"], "before catch-all")
        self.assertEqual(refused.exception.recipients["random@example.test"][0], 550)
        smtpsctl("alias", "add", "--aliases", self.aliases, "--users", self.users,
                 "@example.test", "alice@example.test")
        try:
            self.wait_accepted("random@example.test")
            self.send(["random@example.test", "bob@example.test"], "caught")
            self.messages("alice@example.test", "caught")
            self.messages("bob@example.test", "caught")  # bob's mailbox, not the catch-all
            time.sleep(0.3)
            self.assertEqual(len(self.messages("alice@example.test", "caught")), 1)
        finally:
            smtpsctl("alias", "del", "--aliases", self.aliases, "@example.test")
        deadline = time.time() + 5
        while True:
            client = self.server.smtp()
            client.mail("sender@client.test")
            code, _ = client.rcpt("random@example.test")
            client.quit()
            if code == 550 or time.time() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(code, 550)

    def test_sub_addresses_reach_the_mailbox_in_the_detail_folder(self):
        self.make_folder("alice@example.test", "news")
        self.send(["alice+news@example.test"], "detail news")
        message = self.messages("alice@example.test", "detail news", folder="news")[0]
        self.assertEqual(message["Delivered-To"], "alice@example.test")
        self.make_folder("demo@localhost", "tag")
        self.send(["demo+tag@localhost"], "demo tagged")
        self.messages("demo@localhost", "demo tagged", folder="tag")
        # A folder the owner has not made: the INBOX, and no folder is created (a sender
        # must not fill the mailbox with one directory per address variant).
        self.send(["alice+unmade@example.test"], "detail unmade")
        self.messages("alice@example.test", "detail unmade")
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "mail", "example.test", "alice",
                                                     ".unmade")))

    def test_an_alias_reached_with_a_detail_passes_it_on_to_its_local_targets(self):
        # As Postfix's propagate_unmatched_extensions: team+q3@ → alice+q3@, bob+q3@.
        for address in ("alice@example.test", "bob@example.test"):
            self.make_folder(address, "q3")
        self.send(["team+q3@example.test"], "team q3")
        for address in ("alice@example.test", "bob@example.test"):
            message = self.messages(address, "team q3", folder="q3")[0]
            self.assertEqual(message["Delivered-To"], address)
        deadline = time.time() + 15
        while time.time() < deadline and not any(b"team q3" in m[2] for m in self.remote.messages):
            time.sleep(0.05)
        sent = [m for m in self.remote.messages if b"team q3" in m[2]]
        self.assertEqual([m[1] for m in sent], [["partner@remote.test"]])  # remote: as written

    def test_an_alias_loop_is_refused_at_rcpt_and_nothing_is_queued(self):
        client = self.server.smtp()
        try:
            client.mail("sender@client.test")
            code, text = client.rcpt("loop1@example.test")
            self.assertEqual(code, 550)
            self.assertTrue(text.startswith(b"5.4.6"), text)
            code, _ = client.docmd("DATA")
            self.assertEqual(code, 554)  # no valid recipient
        finally:
            client.quit()
        time.sleep(0.2)
        self.assertEqual(self.server.spool_ids(), [])

    def test_a_receive_only_mailbox_receives_without_sighup_and_cannot_log_in(self):
        smtpsctl("user", "add", "--users", self.users, "--no-password", "carol@example.test")
        self.wait_accepted("carol@example.test")
        self.send(["carol@example.test"], "for carol")
        self.messages("carol@example.test", "for carol")
        client = self.server.smtps()
        try:
            with self.assertRaises(smtplib.SMTPAuthenticationError) as failed:
                client.login("carol@example.test", "-")
            self.assertEqual(failed.exception.smtp_code, 535)
        finally:
            client.close()
        self.assertNotIn("event=session_crashed", self.server.log())

    def test_a_message_that_already_has_our_delivered_to_is_a_loop(self):
        self.send(["bob@example.test"], "came back", sender="",
                  extra_headers="Delivered-To: Bob@Example.test\r\n")
        self.server.wait_log(r"event=failed id=\S+ rcpt=bob@example.test "
                             r"detail=\"mail loop: the message already has Delivered-To: "
                             r"bob@example.test\"")
        self.assertEqual(self.messages("bob@example.test", "came back", timeout=0.5, count=0), [])

    def test_check_and_alias_add_refuse_loops_and_bad_input(self):
        result = subprocess.run([SMTPSD, "check", "--config", self.server.config_path],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                timeout=60)
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        self.assertRegex(result.stderr, re.escape(self.aliases) +
                         r":\d+: alias loop1@example.test: alias loop1@example.test leads back")
        scratch = os.path.join(self.tmp, "scratch-aliases")
        smtpsctl("alias", "add", "--aliases", scratch, "a@example.test", "b@example.test")
        with open(scratch) as f:
            before = f.read()
        self.assertEqual(os.stat(scratch).st_mode & 0o777, 0o600)
        for args, why in (
                (["b@example.test", "a@example.test"], "leads back to itself"),
                (["c@example.test", "c@example.test"], "itself as its only target"),
                (["not-an-address", "a@example.test"], "local-part@domain"),
                (["d@example.test", "x y@example.test"], "space"),
                (["a@example.test", "B@example.test"], "listed twice")):
            result = smtpsctl("alias", "add", "--aliases", scratch, *args, check=False)
            self.assertEqual(result.returncode, 1, args)
            self.assertIn(why, result.stderr, args)
        result = smtpsctl("alias", "add", "--aliases", scratch, "only-address@example.test",
                          check=False)
        self.assertEqual(result.returncode, 2)  # usage: a target is required
        with open(scratch) as f:
            self.assertEqual(f.read(), before)  # nothing written by a refused edit
        listed = smtpsctl("alias", "list", "--aliases", scratch, "--json").stdout
        self.assertEqual(listed.strip(),
                         '[{"address":"a@example.test","catch_all":false,'
                         '"targets":["b@example.test"]}]')


class DevelopmentMode(unittest.TestCase):
    def test_dev_config_sends_role_accounts_and_sub_addresses_to_demo(self):
        tmp = tempfile.mkdtemp(prefix="smtpsd-devaddr-")
        subprocess.run([SMTPSD, "dev", "--dir", tmp, "--init-only"], check=True,
                       stdout=subprocess.DEVNULL)
        config = os.path.join(tmp, "smtpsd.toml")
        with open(config) as f:
            text = f.read()
        self.assertNotIn("users = [", text)  # mailboxes live in the users file only
        with open(config, "w") as f:  # the kernel picks the ports: tests run in parallel
            f.write(re.sub(r"(?m)^port = \d+$", "port = 0", text))
            # never real DNS: a closed loopback port, no DNSSEC probe
            f.write('\n[dns]\nservers = "127.0.0.1:9"\nvalidation = "no"\n')
        log_path = os.path.join(tmp, "smtpsd.log")
        with open(log_path, "wb") as log:
            process = subprocess.Popen([SMTPSD, "serve", "--config", config], stdout=log,
                                       stderr=log)
        try:
            deadline = time.time() + 20
            port = None
            while time.time() < deadline and port is None:
                with open(log_path, "rb") as f:
                    found = re.search(rb"event=listening role=smtp address=\S+ port=(\d+)",
                                      f.read())
                port = int(found.group(1)) if found else None
                time.sleep(0.05)
            self.assertIsNotNone(port, read_text(log_path))
            # The folder "tag", as demo's mail client would make it (a +detail is filed only
            # into a folder that exists).
            demo = os.path.join(tmp, "mail", "localhost", "demo")
            for sub in ("cur", "new", "tmp"):
                os.makedirs(os.path.join(demo, ".tag", sub), exist_ok=True)
            open(os.path.join(demo, ".tag", "maildirfolder"), "w").close()
            client = smtplib.SMTP("127.0.0.1", port, timeout=10)
            for address in ("postmaster@localhost", "abuse@localhost", "demo+tag@localhost"):
                client.sendmail("you@example.org", [address],
                                f"Subject: dev {address}\r\n\r\nhi\r\n")
            client.quit()
            deadline = time.time() + 15
            while time.time() < deadline:
                inbox = os.listdir(os.path.join(demo, "new"))
                tagged = os.listdir(os.path.join(demo, ".tag", "new")) \
                    if os.path.isdir(os.path.join(demo, ".tag", "new")) else []
                if len(inbox) >= 2 and len(tagged) >= 1:
                    break
                time.sleep(0.05)
            self.assertEqual((len(inbox), len(tagged)), (2, 1), read_text(log_path)[-3000:])
        finally:
            process.terminate()
            process.wait(timeout=20)
        self.assertNotIn("level=error", read_text(log_path))
        shutil.rmtree(tmp, ignore_errors=True)


class LegacyDomainUsers(unittest.TestCase):
    def test_domains_users_still_receive_with_a_deprecation_warning(self):
        tmp = tempfile.mkdtemp(prefix="smtpsd-legacy-")
        server = Server(tmp, domains=[("localhost", ["olduser"])])
        with server:
            server.wait_log(r"level=warning event=deprecated detail=\"\S+smtpsd.toml:\d+: "
                            r"domains\[0\]\.users: deprecated")
            client = server.smtp()
            client.sendmail("sender@client.test", ["olduser@localhost"],
                            "Subject: legacy\r\n\r\nhi\r\n")
            client.quit()
            server.wait_delivered(1, "olduser@localhost")
        result = subprocess.run([SMTPSD, "check", "--config", server.config_path],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertRegex(result.stdout, r"warning: \S+smtpsd.toml:\d+: domains\[0\]\.users: "
                                        r"deprecated")
        self.assertEqual(server.problems(), [])
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
