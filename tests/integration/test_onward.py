"""Onward delivery through a relay (smarthost): to a second smtpsd over verified TLS with
connection reuse, retries after 4xx, DSNs after 5xx and after the queue lifetime, the TLS
level of the relay, and the queue commands of smtpsctl against the running server.

The remote is either a second smtpsd (harness.Server) or a scripted fake (fake_smtp.py)
where a reply must be forced; both listen on loopback ports of their own.
"""

import email
import os
import re
import shutil
import smtplib
import subprocess
import time
import unittest

from fake_smtp import FakeSmtp
from harness import SMTPSD, ServerTestCase, make_message

SMTPSCTL = os.path.join(os.path.dirname(SMTPSD), "smtpsctl")


def demo_password(server):
    with open(os.path.join(server.dir, "demo.password")) as f:
        return f.read().strip()


def submit(server, recipients, subject="onward", message_id=None, body="Hello.\r\n"):
    """Sends as demo@localhost through implicit TLS with AUTH; returns the queue id."""
    client = server.smtps()
    try:
        client.login("demo@localhost", demo_password(server))
        code, reply = client.mail("demo@localhost")
        assert code == 250, reply
        for rcpt in recipients:
            code, reply = client.rcpt(rcpt)
            assert code == 250, (rcpt, reply)
        code, reply = client.data(make_message(subject=subject, message_id=message_id,
                                               body=body, sender="demo@localhost",
                                               to=recipients[0]))
        assert code == 250, reply
        return reply.decode().split()[-1]
    finally:
        client.quit()


def delivery_toml(relay="", relay_tls="verify", ca_file="", retry=(1,), lifetime=None,
                  extra=""):
    lines = ["[queue]", "retry_schedule = [" + ", ".join(str(r) for r in retry) + "]"]
    if lifetime is not None:
        lines.append(f"max_lifetime = {lifetime}")
    # No [dns]: the harness's, a closed loopback port (never real DNS).
    lines += ["", "[delivery]", "connect_timeout = 5", "command_timeout = 10"]
    if relay:
        lines += [f'relay = "{relay}"', f'relay_tls = "{relay_tls}"']
    if ca_file:
        lines.append(f'ca_file = "{ca_file}"')
    return "\n".join(lines) + "\n" + extra + "\n"


def wait_log_after(server, offset, pattern, timeout=10):
    """Like Server.wait_log, for log lines written after offset (len of the log before)."""
    deadline = time.time() + timeout
    regex = re.compile(pattern)
    while time.time() < deadline:
        match = regex.search(server.log()[offset:])
        if match:
            return match
        time.sleep(0.02)
    raise AssertionError(f"log never matched {pattern!r}:\n{server.log()[offset:][-4000:]}")


def dsn_parts(raw):
    """(report fields text, whole message) of a DSN found in a Maildir file."""
    message = email.message_from_bytes(raw)
    assert message.get_content_type() == "multipart/report", message.get_content_type()
    assert message.get_param("report-type") == "delivery-status"
    status = [p for p in message.walk() if p.get_content_type() == "message/delivery-status"]
    assert status, raw[:2000]
    fields = "\n".join(str(block) for block in status[0].get_payload())
    return fields, message


class RelayToSecondServer(ServerTestCase):
    def test_relayed_over_verified_starttls_on_reused_connections(self):
        remote = self.new_server(domains=[("remote.test", ["bob"])])
        remote.start()
        local = self.new_server(extra_toml=delivery_toml(
            relay=f"smtp://127.0.0.1:{remote.ports['smtp']}", ca_file=remote.ca))
        local.start()
        for i in range(6):
            submit(local, ["bob@remote.test"], subject=f"relayed {i}",
                   message_id=f"relay-{i}@test")
        delivered = remote.wait_delivered(6, "bob@remote.test")
        subjects = sorted(email.message_from_bytes(m)["Subject"] for m in delivered)
        self.assertEqual(subjects, [f"relayed {i}" for i in range(6)])
        # The hop's TLS is logged per recipient: version, cipher and a verified certificate.
        local.wait_log(r"event=delivered id=\S+ rcpt=bob@remote.test to=relay "
                       r"detail=\"relay=127.0.0.1:\d+ tls=TLSv1.3 \S+ verified")
        # Connection reuse: fewer TLS sessions at the remote than messages.
        sessions = remote.log().count("event=tls ")
        self.assertLess(sessions, 6, remote.log()[-3000:])
        # Nothing left in the local queue.
        deadline = time.time() + 10
        while local.spool_ids() and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(local.spool_ids(), [])

    def test_without_a_ca_file_the_system_trust_store_verifies_the_relay(self):
        # No [delivery] ca_file: the relay's certificate is checked against the system trust
        # store, OpenSSL's default paths, which $SSL_CERT_FILE names here. The server reads it
        # at its first delivery, not at its start: the file is only there after the start.
        remote = self.new_server(domains=[("remote.test", ["bob"])])
        remote.start()
        bundle = os.path.join(self.tmp, "system-store.pem")
        local = self.new_server(extra_toml=delivery_toml(
            relay=f"smtp://127.0.0.1:{remote.ports['smtp']}"),
            env={"SSL_CERT_FILE": bundle, "SSL_CERT_DIR": "/nonexistent"})
        local.start()
        shutil.copy(remote.ca, bundle)
        submit(local, ["bob@remote.test"], subject="system store")
        remote.wait_delivered(1, "bob@remote.test")
        local.wait_log(r"event=delivered id=\S+ rcpt=bob@remote.test to=relay "
                       r"detail=\"relay=127.0.0.1:\d+ tls=TLSv1.3 \S+ verified")
        self.assertNotIn("trust_store", local.log())

    def test_an_empty_system_trust_store_is_logged_and_verifies_nothing(self):
        remote = self.new_server(domains=[("remote.test", ["bob"])])
        remote.start()
        local = self.new_server(extra_toml=delivery_toml(
            relay=f"smtp://127.0.0.1:{remote.ports['smtp']}"),
            env={"SSL_CERT_FILE": "/nonexistent/bundle.pem", "SSL_CERT_DIR": "/nonexistent"})
        local.start()
        submit(local, ["bob@remote.test"], subject="no store")
        local.wait_log(r"event=trust_store_empty file=/nonexistent/bundle.pem "
                       r"dir=/nonexistent")
        local.wait_log(r"event=deferred id=\S+ rcpt=bob@remote.test")
        self.assertEqual(remote.delivered("bob@remote.test"), [])

    def test_a_relay_named_in_etc_hosts_is_found_without_dns(self):
        # "localhost" comes from /etc/hosts (the way a local content filter is named); the
        # configured DNS server is a dead port, so only the system's lookup can find it.
        remote = self.new_server(domains=[("remote.test", ["bob"])])
        remote.start()
        local = self.new_server(extra_toml=delivery_toml(
            relay=f"smtp://localhost:{remote.ports['smtp']}", ca_file=remote.ca))
        local.start()
        submit(local, ["bob@remote.test"], subject="by name")
        remote.wait_delivered(1, "bob@remote.test")
        local.wait_log(r"event=delivered id=\S+ rcpt=bob@remote.test to=relay "
                       r"detail=\"relay=localhost\[(127.0.0.1|::1)\]:\d+ tls=TLSv1.3 \S+ verified")

    def test_verify_refuses_an_unknown_ca(self):
        remote = self.new_server(domains=[("remote.test", ["bob"])])
        remote.start()
        # The local server trusts its own dev CA, which did not sign the remote's certificate.
        local = self.new_server(extra_toml=delivery_toml(
            relay=f"smtp://127.0.0.1:{remote.ports['smtp']}", ca_file="tls/ca.pem", retry=(60,)))
        local.start()
        submit(local, ["bob@remote.test"])
        local.wait_log(r"event=deferred id=\S+ rcpt=bob@remote.test detail=.*does not verify")
        self.assertEqual(remote.delivered("bob@remote.test"), [])
        self.assertEqual(len(local.spool_ids()), 1)


    def relay_with_auth(self, password=None, trust_remote=True, retry=(60,)):
        """A local server relaying through the remote's implicit-TLS submission port with
        AUTH as demo@localhost (the remote's own demo user, whose password is used unless
        another one is given)."""
        remote = self.new_server(domains=[("remote.test", ["bob"])])
        remote.start()
        local = self.new_server()
        with open(os.path.join(local.dir, "relay.password"), "w") as f:
            f.write((password or demo_password(remote)) + "\n")
        local.extra_toml = delivery_toml(
            relay=f"smtps://127.0.0.1:{remote.ports['submissions']}",
            ca_file=remote.ca if trust_remote else "tls/ca.pem", retry=retry,
            extra='relay_user = "demo@localhost"\nrelay_password_file = "relay.password"')
        local.write_config()
        local.start()
        submit(local, ["bob@remote.test"], message_id="auth-relay@test")
        return local, remote

    def test_relay_with_auth_over_implicit_tls(self):
        local, remote = self.relay_with_auth()
        [message] = remote.wait_delivered(1, "bob@remote.test")
        self.assertIn(b"Message-ID: <auth-relay@test>", message)
        self.assertIn(b"with ESMTPSA", message)  # the remote saw an authenticated submission
        remote.wait_log(r"event=auth session=\S+ client=127.0.0.1 user=demo@localhost")

    def test_relay_auth_refused_is_deferred_with_the_reply(self):
        local, remote = self.relay_with_auth(password="not-the-password")
        local.wait_log(r"event=deferred id=\S+ rcpt=bob@remote.test detail=.*535 5.7.8", timeout=20)
        self.assertEqual(remote.delivered("bob@remote.test"), [])

    def test_no_password_goes_to_a_relay_whose_certificate_does_not_verify(self):
        local, remote = self.relay_with_auth(trust_remote=False)
        local.wait_log(r"event=tls_refused domain=127.0.0.1 .*stage=tls-policy")
        local.wait_log(r"event=deferred id=\S+ rcpt=bob@remote.test detail=.*does not verify")
        time.sleep(0.3)
        log = remote.log()
        self.assertNotIn("event=auth", log)  # neither success nor failure: AUTH never began
        self.assertIn("event=tls ", log)     # the handshake itself happened


class RelayReplies(ServerTestCase):
    def fake(self, server, **kwargs):
        return FakeSmtp(cert=os.path.join(server.dir, "tls", "server-ecdsa.pem"),
                        key=os.path.join(server.dir, "tls", "server-ecdsa.key"), **kwargs)

    def test_4xx_is_retried_then_delivered(self):
        local = self.new_server()
        with self.fake(local, rcpt={"bob@remote.test": ["451 4.3.0 try later",
                                                        "250 2.1.5 ok"]}) as remote:
            local.extra_toml = delivery_toml(relay=f"smtp://127.0.0.1:{remote.port}",
                                             ca_file="tls/ca.pem", retry=(1,))
            local.write_config()
            local.start()
            submit(local, ["bob@remote.test"], message_id="retry@test")
            local.wait_log(r"event=deferred id=\S+ rcpt=bob@remote.test .*451 4.3.0 try later")
            local.wait_log(r"event=delivered id=\S+ rcpt=bob@remote.test", timeout=15)
            self.assertEqual(len(remote.messages), 1)
            self.assertIn(b"Message-ID: <retry@test>", remote.messages[0][2])
            self.assertEqual(remote.messages[0][3], "TLSv1.3")
            self.assertEqual(local.delivered("demo@localhost"), [])  # no DSN for a success

    def test_5xx_sends_a_dsn_to_the_sender(self):
        local = self.new_server()
        with self.fake(local, rcpt={"gone@remote.test": ["550 5.1.1 no such user here"]}) as remote:
            local.extra_toml = delivery_toml(relay=f"smtp://127.0.0.1:{remote.port}",
                                             ca_file="tls/ca.pem")
            local.write_config()
            local.start()
            submit(local, ["gone@remote.test", "fine@remote.test"], subject="bounce me",
                   message_id="bounce@test")
            dsn = local.wait_delivered(1, "demo@localhost")[0]
            fields, message = dsn_parts(dsn)
            self.assertIn("Action: failed", fields)
            self.assertIn("Status: 5.1.1", fields)
            self.assertIn("rfc822;gone@remote.test", fields.replace(" ", ""))
            self.assertIn("550 5.1.1 no such user here", fields)
            self.assertNotIn("fine@remote.test", fields)  # only the failed recipient
            self.assertIn(b"Message-ID: <bounce@test>", dsn)  # the original comes back
            self.assertEqual(message["Auto-Submitted"], "auto-replied")
            self.assertTrue(dsn.startswith(b"Return-Path: <>"), dsn[:100])
            # The good recipient was delivered in the same transaction.
            self.assertEqual(len(remote.messages), 1)
            self.assertEqual(remote.messages[0][1], ["fine@remote.test"])

    def test_unreachable_past_the_lifetime_sends_a_failure_dsn(self):
        local = self.new_server()
        closed = FakeSmtp()  # bound, never accepting: then closed, so the port refuses
        port = closed.port
        closed.__exit__()
        local.extra_toml = delivery_toml(relay=f"smtp://127.0.0.1:{port}", ca_file="tls/ca.pem",
                                         retry=(1,), lifetime=4)
        local.write_config()
        local.start()
        submit(local, ["bob@remote.test"], message_id="expire@test")
        # Routine at first (info), then a deferral that keeps failing: a warning to alert on.
        local.wait_log(r"level=info event=deferred id=\S+ rcpt=bob@remote.test .*cannot "
                       r"connect.* attempt=1\n")
        local.wait_log(r"level=warning event=deferred id=\S+ rcpt=bob@remote.test .* attempt=3\n")
        self.assertNotRegex(local.log(), r"level=warning event=deferred .* attempt=[12]\n")
        dsn = local.wait_delivered(1, "demo@localhost", timeout=20)[0]
        fields, _ = dsn_parts(dsn)
        self.assertIn("Action: failed", fields)
        self.assertRegex(fields, r"Status: 4\.\d\.\d")
        local.wait_log(r"level=warning event=expired id=\S+ rcpt=bob@remote.test")

    def test_encrypt_relay_without_starttls_is_deferred_not_sent(self):
        local = self.new_server()
        with self.fake(local, starttls=False) as remote:
            local.extra_toml = delivery_toml(relay=f"smtp://127.0.0.1:{remote.port}",
                                             relay_tls="encrypt", retry=(60,))
            local.write_config()
            local.start()
            submit(local, ["bob@remote.test"])
            local.wait_log(r"event=deferred id=\S+ rcpt=bob@remote.test detail=.*TLS is required "
                           r"\(policy encrypt\) but 127.0.0.1:\d+ did not offer STARTTLS")
            self.assertEqual(remote.messages, [])


class Notifications(ServerTestCase):
    def send_with(self, server, rcpt, notify, mail_options=()):
        client = server.smtps()
        client.login("demo@localhost", demo_password(server))
        client.sendmail("demo@localhost", [rcpt], make_message(message_id="notify@test"),
                        mail_options=list(mail_options), rcpt_options=[f"NOTIFY={notify}"])
        client.quit()

    def test_notify_success_gets_a_delivered_dsn_with_headers_only(self):
        local = self.new_server(domains=[("localhost", ["demo", "alice"])])
        local.start()
        self.send_with(local, "alice@localhost", "SUCCESS", mail_options=["ENVID=track-42"])
        local.wait_delivered(1, "alice@localhost")
        dsn = local.wait_delivered(1, "demo@localhost")[0]
        fields, message = dsn_parts(dsn)
        self.assertIn("Action: delivered", fields)
        self.assertIn("Original-Envelope-Id: track-42", fields)
        types = [part.get_content_type() for part in message.walk()]
        self.assertIn("text/rfc822-headers", types)  # RFC 3461 §4.3: no body on success

    def test_notify_never_suppresses_the_failure_dsn(self):
        local = self.new_server()
        with FakeSmtp(rcpt={"gone@remote.test": ["550 5.1.1 no such user"]}) as remote:
            local.extra_toml = delivery_toml(relay=f"smtp://127.0.0.1:{remote.port}",
                                             relay_tls="may")
            local.write_config()
            local.start()
            self.send_with(local, "gone@remote.test", "NEVER")
            local.wait_log(r"event=failed id=\S+ rcpt=gone@remote.test")
            local.wait_log(r"event=removed id=")
            time.sleep(0.3)
            self.assertEqual(local.delivered("demo@localhost"), [])
            self.assertNotIn("event=dsn", local.log())

    def test_dsn_parameters_are_passed_on_to_a_dsn_capable_relay(self):
        local = self.new_server()
        with FakeSmtp(dsn=True) as remote:
            local.extra_toml = delivery_toml(relay=f"smtp://127.0.0.1:{remote.port}",
                                             relay_tls="may")
            local.write_config()
            local.start()
            self.send_with(local, "bob@remote.test", "SUCCESS,FAILURE", mail_options=["ENVID=e1"])
            local.wait_log(r"event=delivered id=\S+ rcpt=bob@remote.test")
            local.wait_log(r"event=removed id=")
            # The next hop reports success itself (RFC 3461 §5.2.2): no "relayed" DSN here.
            self.assertEqual(local.delivered("demo@localhost"), [])

    def test_a_mail_loop_is_refused_with_554_5_4_6(self):
        local = self.new_server()
        local.start()
        hops = "".join(f"Received: from hop{i}.example by hop{i + 1}.example; "
                       f"Tue, 24 Nov 2026 06:00:00 +0000\r\n" for i in range(50))
        client = local.smtp()
        code = None
        try:
            client.sendmail("x@example.org", ["demo@localhost"],
                            hops.encode() + make_message(message_id="loop@test"))
        except smtplib.SMTPDataError as error:
            code, text = error.smtp_code, error.smtp_error
        self.assertEqual(code, 554)
        self.assertIn(b"5.4.6", text)
        self.assertEqual(local.spool_ids(), [])
        # One hop fewer is accepted.
        client.sendmail("x@example.org", ["demo@localhost"],
                        hops.split("\r\n", 1)[1].encode() + make_message(message_id="ok@test"))
        client.quit()
        local.wait_delivered(1)


class QueueCommands(ServerTestCase):
    def smtpsctl(self, server, *args):
        return subprocess.run([SMTPSCTL, *args, "--config", server.config_path],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)

    def test_list_show_hold_release_flush_delete(self):
        local = self.new_server()
        with FakeSmtp(rcpt={"bob@remote.test": ["451 4.3.0 later", "451 4.3.0 later",
                                                "250 2.1.5 ok"]}) as remote:
            local.extra_toml = delivery_toml(relay=f"smtp://127.0.0.1:{remote.port}",
                                             relay_tls="may", retry=(3600,))
            local.write_config()
            local.start()
            kept = submit(local, ["bob@remote.test"], subject="kept")
            dropped = submit(local, ["carol@remote.test"], subject="dropped")
            remote.rcpt_script["carol@remote.test"] = ["451 4.3.0 later"]
            local.wait_log(r"event=retry id=" + kept)
            local.wait_log(r"event=retry id=" + dropped)

            listed = self.smtpsctl(local, "queue", "list")
            self.assertEqual(listed.returncode, 0, listed.stderr)
            out = listed.stdout.decode()
            self.assertIn("ID STATE AGE_SECONDS SIZE ATTEMPTS SENDER", out)
            self.assertRegex(out, kept + r" deferred \d+ \d+ 1 <demo@localhost>")

            shown = self.smtpsctl(local, "queue", "show", kept).stdout.decode()
            self.assertIn("recipient: <bob@remote.test> pending: ", shown)
            self.assertIn("451 4.3.0 later", shown)

            self.assertEqual(self.smtpsctl(local, "queue", "hold", kept).returncode, 0)
            self.assertIn(f"{kept} held", self.smtpsctl(local, "queue", "list").stdout.decode())
            offset = len(local.log())
            flushed = self.smtpsctl(local, "queue", "flush").stdout.decode()
            self.assertIn("flushed 1 ", flushed)  # the held one is not flushed
            # Deleted once the attempt the flush started is over: a message in an attempt
            # is deleted when the attempt ends, after this check.
            wait_log_after(local, offset, r"event=retry id=" + dropped)

            deleted = self.smtpsctl(local, "queue", "delete", dropped)
            self.assertEqual(deleted.returncode, 0, deleted.stderr)
            self.assertNotIn(dropped, local.spool_ids())

            # A hold outlives a restart.
            local.stop()
            local.start()
            self.assertIn(f"{kept} held", self.smtpsctl(local, "queue", "list").stdout.decode())
            offset = len(local.log())
            self.assertEqual(self.smtpsctl(local, "queue", "release", kept).returncode, 0)
            wait_log_after(local, offset, r"event=retry id=" + kept)
            self.assertIn("flushed 1 ", self.smtpsctl(local, "queue", "flush").stdout.decode())
            wait_log_after(local, offset, r"event=delivered id=" + kept)
            self.assertEqual(self.smtpsctl(local, "queue", "list").stdout.decode(),
                             "queue is empty\n")
            self.assertEqual(local.delivered("demo@localhost"), [])  # deleted: no DSN

    def test_bad_queue_commands_say_what_is_wrong(self):
        local = self.new_server()
        local.start()
        missing = self.smtpsctl(local, "queue", "show", "0123456789ABCDEF0000")
        self.assertEqual(missing.returncode, 1)
        self.assertIn(b"no message 0123456789ABCDEF0000 in the queue", missing.stderr)
        bad = self.smtpsctl(local, "queue", "delete", "../../etc/passwd")
        self.assertEqual(bad.returncode, 1)
        self.assertIn(b"is not a queue id", bad.stderr)
        usage = subprocess.run([SMTPSCTL, "queue", "hold"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
        self.assertEqual(usage.returncode, 2)


if __name__ == "__main__":
    unittest.main()
