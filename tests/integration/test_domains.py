"""Per-domain settings and SRS with the real binary: an LMTP domain (a real Dovecot) beside a
Maildir domain on one server, a relay domain passed to its next hop with unknown recipients
refused at RCPT, a domain's own size limit (552 5.3.4 at RCPT and at the end of data), and
the Sender Rewriting Scheme: mail leaving for another domain on behalf of a sender who is not
one of our users carries an SRS0 sender whose hash this file computes on its own (Python's
hmac), and a bounce to that address comes back to the original sender.

The message that leaves is itself a bounce's way back (a message to an SRS address of ours
is forwarded to the address it stands for): no alias is needed to make mail leave. SRS
through a real alias (made with `smtpsctl alias add`, one local mailbox and one remote
address) is tested too, with and without [srs].
"""

import base64
import email
import hashlib
import hmac
import os
import pwd
import subprocess
import time
import unittest

from dovecot import Dovecot
from fake_smtp import FakeSmtp
from harness import SMTPSD, ServerTestCase, make_message
from test_onward import submit

SMTPSCTL = os.environ.get("SMTPSCTL_BIN") or os.path.join(os.path.dirname(SMTPSD), "smtpsctl")
SECRET = "integration-secret-0123456789"
SRS_DOMAIN = "srs.localhost"
BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def srs_stamp(unix_time):
    day = int(unix_time) // 86400
    return BASE32[(day >> 5) & 31] + BASE32[day & 31]


def srs_hash(secret, *parts):
    """libsrs2's hash: HMAC-SHA1 over the lower-cased fields, base64, four characters."""
    data = "".join(parts).lower().encode()
    return base64.b64encode(hmac.new(secret.encode(), data, hashlib.sha1).digest()).decode()[:4]


def srs0(address, unix_time, secret=SECRET):
    local, domain = address.rsplit("@", 1)
    stamp = srs_stamp(unix_time)
    return f"SRS0={srs_hash(secret, stamp, domain, local)}={stamp}={domain}={local}@{SRS_DOMAIN}"


def wait_for(predicate, what, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class DomainsTestCase(ServerTestCase):
    def srs_toml(self):
        path = os.path.join(self.tmp, "srs.secrets")
        with open(path, "w") as f:
            f.write(SECRET + "\n")
        os.chmod(path, 0o600)
        return f'[srs]\ndomain = "{SRS_DOMAIN}"\nsecrets_file = "{path}"\n'

    @staticmethod
    def relay_toml(port):
        # Everything that leaves goes to the fake server; it offers no STARTTLS.
        return ("[queue]\nretry_schedule = [1]\n\n[delivery]\n"
                f'relay = "smtp://127.0.0.1:{port}"\nrelay_tls = "may"\n'
                "connect_timeout = 5\ncommand_timeout = 10\n")


class LocalAgents(DomainsTestCase):
    def setUp(self):
        super().setUp()
        # Running as root, Dovecot writes mail as "nobody", which must reach its homes.
        os.chmod(self.tmp, 0o711)

    def test_lmtp_domain_and_maildir_domain_side_by_side(self):
        os.makedirs(os.path.join(self.tmp, "dovecot"))
        dovecot = Dovecot(os.path.join(self.tmp, "dovecot"), users=["alice"])
        self.addCleanup(dovecot.stop)
        server = self.new_server(extra_toml=(
            '[[domains]]\nname = "lmtp.test"\nusers = ["alice"]\n'
            f'delivery = "unix:{dovecot.lmtp_socket}"\n'))
        server.start()
        client = server.smtp()
        client.sendmail("someone@elsewhere.test", ["demo@localhost", "alice@lmtp.test"],
                        make_message(subject="both", message_id="both@test",
                                     sender="someone@elsewhere.test", to="demo@localhost"))
        client.quit()
        # demo@localhost: Maildir, as [delivery] says nothing of LMTP.
        self.assertIn(b"Message-ID: <both@test>", server.wait_delivered(1)[0])
        # alice@lmtp.test: through the domain's own LMTP server, not into our Maildir.
        wait_for(lambda: dovecot.messages("alice"), "Dovecot to deliver", 15)
        self.assertIn(b"Message-ID: <both@test>", dovecot.messages("alice")[0])
        server.wait_log(r"event=delivered id=\S+ rcpt=alice@lmtp.test to=lmtp")
        self.assertEqual(server.delivered("alice@lmtp.test"), [])


class DovecotReadsOurMaildirs(DomainsTestCase):
    """smtpsd's own Maildir delivery, read by a real Dovecot: smtpsd runs as its account
    ("nobody" here, the production set-up) and writes every Maildir as that account, so
    Dovecot accesses them with mail_uid/mail_gid of that account (README "Reading the
    Maildirs with Dovecot")."""

    def test_dovecot_reads_the_inbox_and_the_sub_address_folder(self):
        os.chmod(self.tmp, 0o711)  # the account must be able to reach its data_dir
        root = os.geteuid() == 0
        server = self.new_server(domains=[("localhost", [])],
                                 privileges={"user": "nobody"} if root else {},
                                 extra_toml="[addressing]\nsubaddress_folders = true\n")
        mail_root = os.path.join(self.tmp, "mail")
        # The folder "news", as the user's mail client makes it over IMAP (smtpsd files a
        # +detail only into a folder that exists).
        news = os.path.join(mail_root, "localhost", "demo", ".news")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(news, sub), exist_ok=True)
        open(os.path.join(news, "maildirfolder"), "w").close()
        if root:
            # `smtpsd dev --init-only` made the demo mailbox as root; an administrator gives
            # the mailboxes to the account (README "Privileges").
            owner = pwd.getpwnam("nobody")
            for directory, _subdirectories, files in os.walk(mail_root):
                for name in [directory] + [os.path.join(directory, n) for n in files]:
                    os.lchown(name, owner.pw_uid, owner.pw_gid)
        with server:
            client = server.smtp()
            client.sendmail("someone@elsewhere.test", ["demo@localhost"],
                            make_message(subject="for the inbox", sender="someone@elsewhere.test"))
            client.sendmail("someone@elsewhere.test", ["demo+news@localhost"],
                            make_message(subject="for news", sender="someone@elsewhere.test"))
            client.quit()
            wait_for(lambda: server.log().count("event=delivered ") == 2, "both deliveries")
        os.makedirs(os.path.join(self.tmp, "dovecot"))
        with Dovecot(os.path.join(self.tmp, "dovecot"), users=["demo@localhost"],
                     mail_root=mail_root) as dovecot:
            listed = dovecot.doveadm("mailbox", "list", "-u", "demo@localhost")
            self.assertEqual(listed.returncode, 0, listed.stderr + dovecot.log()[-2000:])
            self.assertEqual(sorted(listed.stdout.split()), ["INBOX", "news"])
            fetched = dovecot.doveadm("-f", "tab", "fetch", "-u", "demo@localhost",
                                      "mailbox hdr.subject", "all")
            self.assertEqual(fetched.returncode, 0, fetched.stderr + dovecot.log()[-2000:])
            rows = sorted(tuple(line.split("\t")) for line in fetched.stdout.splitlines()[1:])
            self.assertEqual(rows, [("INBOX", "for the inbox"), ("news", "for news")])


class RelayDomain(DomainsTestCase):
    def test_relay_domain_goes_to_its_next_hop_and_unknown_recipients_get_550(self):
        with FakeSmtp() as next_hop:
            server = self.new_server(extra_toml=(
                '[[domains]]\nname = "backup.test"\nkind = "relay"\n'
                f'next_hop = "smtp://127.0.0.1:{next_hop.port}"\nnext_hop_tls = "may"\n'
                'recipients = ["ann"]\n\n' + self.srs_toml()))
            server.start()
            client = server.smtp()
            client.ehlo()
            self.assertEqual(client.mail("someone@elsewhere.test")[0], 250)
            self.assertEqual(client.rcpt("Ann@Backup.test")[0], 250)
            code, reply = client.rcpt("ghost@backup.test")
            self.assertEqual((code, reply[:5]), (550, b"5.1.1"))  # never a bounce later
            self.assertEqual(client.rcpt("postmaster@backup.test")[0], 250)
            code, _ = client.data(make_message(subject="backup", message_id="backup@test",
                                               sender="someone@elsewhere.test",
                                               to="ann@backup.test"))
            self.assertEqual(code, 250)
            client.quit()
            wait_for(lambda: next_hop.messages, "the next hop to receive the message")
            sender, recipients, data, _ = next_hop.messages[0]
            # Passed on as received: a relay domain's sender is not rewritten.
            self.assertEqual(sender, "someone@elsewhere.test")
            self.assertEqual(recipients, ["Ann@Backup.test", "postmaster@backup.test"])
            self.assertIn(b"Message-ID: <backup@test>", data)
            server.wait_log(r"event=delivered id=\S+ rcpt=Ann@Backup.test to=relay")
            self.assertEqual(server.delivered("ann@backup.test"), [])


class SenderRelay(DomainsTestCase):
    def test_mail_from_a_domain_with_its_own_relay_goes_through_it(self):
        with FakeSmtp() as provider:
            server = self.new_server(
                domains=[("localhost", ["demo"],
                          {"relay": f"smtp://127.0.0.1:{provider.port}", "relay_tls": "may"})],
                extra_toml=self.srs_toml())  # [delivery] has no relay: MX delivery otherwise
            server.start()
            submit(server, ["friend@elsewhere.test"], message_id="own-relay@test")
            wait_for(lambda: provider.messages, "the domain's relay to receive the message")
            sender, recipients, data, _ = provider.messages[0]
            # An authenticated user's mail is not forwarded mail: no SRS.
            self.assertEqual(sender, "demo@localhost")
            self.assertEqual(recipients, ["friend@elsewhere.test"])
            self.assertIn(b"Message-ID: <own-relay@test>", data)
            server.wait_log(r"event=delivered id=\S+ rcpt=friend@elsewhere.test to=relay")


class DomainSizeLimit(DomainsTestCase):
    def test_a_domains_own_limit_gives_552_at_rcpt_and_at_end_of_data(self):
        server = self.new_server(extra_toml=(
            '[[domains]]\nname = "small.test"\nusers = ["tiny"]\nmax_message_size = 65536\n'))
        server.start()
        client = server.smtp()
        client.ehlo()
        # Declared SIZE over the domain's limit: that recipient only is refused (RFC 1870).
        self.assertEqual(client.mail("a@elsewhere.test", ["SIZE=100000"])[0], 250)
        code, reply = client.rcpt("tiny@small.test")
        self.assertEqual(code, 552)
        self.assertIn(b"5.3.4", reply)
        self.assertEqual(client.rcpt("demo@localhost")[0], 250)
        client.rset()
        # No SIZE: the message is refused whole at the end of data, nothing is queued.
        big = make_message(subject="big", body="x" * 76 + "\r\n") + \
            (("y" * 78 + "\r\n") * 1000).encode()
        self.assertEqual(client.mail("a@elsewhere.test")[0], 250)
        self.assertEqual(client.rcpt("tiny@small.test")[0], 250)
        self.assertEqual(client.rcpt("demo@localhost")[0], 250)
        code, reply = client.data(big)
        self.assertEqual(code, 552)
        self.assertIn(b"5.3.4", reply)
        self.assertIn(b"recipient's domain", reply)
        # A small one still goes through on the same connection.
        self.assertEqual(client.sendmail("a@elsewhere.test", ["tiny@small.test"],
                                         make_message(subject="small")), {})
        client.quit()
        self.assertEqual(len(server.wait_delivered(1, "tiny@small.test")), 1)
        self.assertEqual(server.delivered("demo@localhost"), [])


class Srs(DomainsTestCase):
    def test_forwarded_mail_gets_an_srs_sender_and_its_bounce_comes_back(self):
        with FakeSmtp() as remote:
            server = self.new_server(extra_toml=self.srs_toml() + self.relay_toml(remote.port))
            server.start()
            now = time.time()
            # A message to an SRS address of ours goes to the address it stands for; its
            # sender (not one of our users, not of our domains) is rewritten on the way out.
            client = server.smtp()
            client.ehlo()
            self.assertEqual(client.mail("dave@third.test")[0], 250)
            code, reply = client.rcpt(srs0("carol@origin.test", now))
            self.assertEqual(code, 250, reply)
            self.assertEqual(client.data(make_message(subject="forwarded",
                                                      message_id="fwd@test",
                                                      sender="dave@third.test"))[0], 250)
            wait_for(lambda: remote.messages, "the forwarded message")
            sender, recipients, data, _ = remote.messages[0]
            self.assertEqual(recipients, ["carol@origin.test"])
            self.assertIn(b"Message-ID: <fwd@test>", data)
            self.assertEqual(sender, srs0("dave@third.test", now))
            # The bounce of that message, to the SRS sender it carried, reaches dave.
            self.assertEqual(client.mail("")[0], 250)
            code, reply = client.rcpt(sender.lower())  # a relay may have folded the case
            self.assertEqual(code, 250, reply)
            self.assertEqual(client.data(make_message(subject="bounce", message_id="dsn@test",
                                                      sender="MAILER-DAEMON@origin.test"))[0],
                             250)
            wait_for(lambda: len(remote.messages) == 2, "the bounce to be passed back")
            bounce_sender, bounce_recipients, bounce, _ = remote.messages[1]
            self.assertEqual(bounce_sender, "")
            self.assertEqual(bounce_recipients, ["dave@third.test"])
            self.assertIn(b"Message-ID: <dsn@test>", bounce)
            client.quit()

    def test_forged_and_expired_srs_addresses_get_550(self):
        server = self.new_server(extra_toml=self.srs_toml())
        server.start()
        client = server.smtp()
        client.ehlo()
        self.assertEqual(client.mail("")[0], 250)
        forged = srs0("carol@origin.test", time.time(), secret="someone-elses-secret-123")
        code, reply = client.rcpt(forged)
        self.assertEqual(code, 550)
        self.assertIn(b"5.1.1 Invalid SRS address", reply)
        expired = srs0("carol@origin.test", time.time() - 30 * 86400)
        code, reply = client.rcpt(expired)
        self.assertEqual(code, 550)
        self.assertIn(b"5.1.1 Expired SRS address", reply)
        # Any other address of the SRS domain is nobody's.
        code, reply = client.rcpt(f"carol@{SRS_DOMAIN}")
        self.assertEqual(code, 550)
        client.quit()
        self.assertEqual(server.spool_ids(), [])


class SrsThroughAnAlias(DomainsTestCase):
    """fwd@localhost, an alias (smtpsctl alias add) of demo@localhost and partner@remote.test,
    receives from an outside sender on port 25, unauthenticated."""

    def forward_through_alias(self, remote, srs):
        server = self.new_server(extra_toml=(self.srs_toml() if srs else "") +
                                 self.relay_toml(remote.port))
        added = subprocess.run([SMTPSCTL, "alias", "add", "--aliases",
                                os.path.join(self.tmp, "aliases"), "--users",
                                os.path.join(self.tmp, "users"), "fwd@localhost",
                                "demo@localhost", "partner@remote.test"],
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(added.returncode, 0, added.stderr)
        server.start()
        before = time.time()
        client = server.smtp()
        client.ehlo()
        self.assertEqual(client.mail("dave@third.test")[0], 250)
        code, reply = client.rcpt("fwd@localhost")
        self.assertEqual(code, 250, reply)
        self.assertEqual(client.data(make_message(subject="via alias", message_id="alias@test",
                                                  sender="dave@third.test"))[0], 250)
        # The local target: the original sender, as for mail that is not forwarded.
        [local] = server.wait_delivered(1)
        local = email.message_from_bytes(local)
        self.assertEqual(local["Return-Path"], "<dave@third.test>")
        self.assertEqual(local["Delivered-To"], "demo@localhost")
        wait_for(lambda: remote.messages, "the forwarded copy")
        sender, recipients, data, _ = remote.messages[0]
        self.assertEqual(recipients, ["partner@remote.test"])
        self.assertIn(b"Message-ID: <alias@test>", data)
        return server, client, sender, {srs0("dave@third.test", t) for t in (before, time.time())}

    def test_an_alias_forward_gets_an_srs_sender_and_its_bounce_reaches_the_sender(self):
        with FakeSmtp() as remote:
            server, client, sender, expected = self.forward_through_alias(remote, srs=True)
            self.assertIn(sender, expected)  # hash computed here with hmac, the same secret
            # The remote's bounce, to the SRS sender it was given, is accepted and passed back.
            self.assertEqual(client.mail("")[0], 250)
            code, reply = client.rcpt(sender)
            self.assertEqual(code, 250, reply)
            self.assertEqual(client.data(make_message(subject="bounce", message_id="dsn@test",
                                                      sender="MAILER-DAEMON@remote.test"))[0],
                             250)
            client.quit()
            wait_for(lambda: len(remote.messages) == 2, "the bounce to be passed back")
            bounce_sender, bounce_recipients, bounce, _ = remote.messages[1]
            self.assertEqual((bounce_sender, bounce_recipients), ("", ["dave@third.test"]))
            self.assertIn(b"Message-ID: <dsn@test>", bounce)
            self.assertEqual(len(server.delivered()), 1)  # the bounce was not kept here

    def test_without_srs_an_alias_forward_keeps_the_original_sender(self):
        with FakeSmtp() as remote:
            _, client, sender, _ = self.forward_through_alias(remote, srs=False)
            client.quit()
            self.assertEqual(sender, "dave@third.test")


if __name__ == "__main__":
    unittest.main()
