"""REQUIRETLS (RFC 8689) end to end: what a client sees (the EHLO keyword and the MAIL option
only inside TLS), what the spool keeps (the option, and an authenticated sender's
"TLS-Required: No"), and delivery: passed on over verified TLS to a next hop that offers it,
returned with 5.7.30 by one that does not, and with 5.7.10 for an MX answer that DNSSEC does
not vouch for. Each notice carries the headers only (RFC 8689 §5).

A second smtpsd plays the next hop that offers REQUIRETLS; fake_smtp.py one that does not;
dns_server.py (dnsmasq, no DNSSEC) names the MX host.
"""

import os
import subprocess
import unittest

from dns_server import DnsServer
from fake_smtp import FakeSmtp
from harness import RawSession, ServerTestCase, make_message
from test_onward import SMTPSCTL, demo_password, dsn_parts


def show(server, queue_id):
    shown = subprocess.run([SMTPSCTL, "queue", "show", queue_id, "--config", server.config_path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    assert shown.returncode == 0, shown.stderr
    return shown.stdout.decode()


def submit(server, recipient, options=(), tls_required_no=False, subject="rtls"):
    """Sends as demo@localhost through implicit TLS with AUTH; returns the queue id."""
    client = server.smtps()
    try:
        client.login("demo@localhost", demo_password(server))
        code, reply = client.mail("demo@localhost", list(options))
        assert code == 250, reply
        code, reply = client.rcpt(recipient)
        assert code == 250, reply
        message = make_message(subject=subject, sender="demo@localhost", to=recipient,
                               body="The secret body.\r\n")
        if tls_required_no:
            message = b"TLS-Required: No\r\n" + message
        code, reply = client.data(message)
        assert code == 250, reply
        return reply.decode().split()[-1]
    finally:
        client.quit()


class RequireTlsIntake(ServerTestCase):
    def test_offered_and_taken_inside_tls_only_and_tls_required_no_from_our_users(self):
        # Mail for other domains waits in the queue (the harness's DNS is a closed port).
        server = self.new_server(extra_toml="[queue]\nretry_schedule = [3600]\n")
        server.start()

        # Port 25: nothing before STARTTLS, the keyword and the option after it.
        with RawSession(server.ports["smtp"]) as session:
            session.greeting()
            code, lines = session.cmd("EHLO client.example")
            self.assertNotIn("REQUIRETLS", " ".join(lines))
            self.assertEqual(session.cmd("MAIL FROM:<x@example.org> REQUIRETLS"),
                             (555, ["555 5.7.10 REQUIRETLS is only accepted inside TLS "
                                    "(STARTTLS first)"]))
            session.starttls(server.client_context())
            code, lines = session.cmd("EHLO client.example")
            self.assertIn("250-REQUIRETLS", lines)
            self.assertEqual(session.cmd("MAIL FROM:<x@example.org> REQUIRETLS=YES"),
                             (501, ["501 5.5.4 Invalid REQUIRETLS parameter"]))
            self.assertEqual(session.cmd("MAIL FROM:<x@example.org> REQUIRETLS")[0], 250)
            self.assertEqual(session.cmd("RCPT TO:<demo@localhost>")[0], 250)
            self.assertEqual(session.cmd("DATA")[0], 354)
            session.send(b"TLS-Required: No\r\n" + make_message(subject="port 25") + b"\r\n.\r\n")
            self.assertEqual(session.reply()[0], 250)
            # Anyone's "TLS-Required: No" on port 25 is kept in the message and ignored.
            self.assertEqual(session.cmd("MAIL FROM:<y@example.org>")[0], 250)
            self.assertEqual(session.cmd("RCPT TO:<demo@localhost>")[0], 250)
            self.assertEqual(session.cmd("DATA")[0], 354)
            session.send(b"TLS-Required: No\r\n" + make_message(subject="port 25 no") +
                         b"\r\n.\r\n")
            self.assertEqual(session.reply()[0], 250)
            session.cmd("QUIT")
        server.wait_log(r"event=accepted .*from=x@example.org .*requiretls=yes\n")
        plain = server.wait_log(r"event=accepted .*from=y@example.org .*\n").group(0)
        self.assertNotIn("tls_required", plain)
        server.wait_log(r"event=delivered id=\S+ rcpt=demo@localhost to=maildir requiretls=yes")
        self.assertEqual(len(server.wait_delivered(2)), 2)
        self.assertIn(b"TLS-Required: No", server.delivered()[1])

        # Submission (implicit TLS, AUTH): our user's "TLS-Required: No" is recorded, but not
        # on a message that also asks for REQUIRETLS (RFC 8689 §4.1).
        optional = submit(server, "friend@elsewhere.test", tls_required_no=True)
        both = submit(server, "friend@elsewhere.test", options=["REQUIRETLS"],
                      tls_required_no=True)
        server.wait_log(r"event=accepted session=\S+ id=" + optional + r" .*tls_required=no")
        shown = show(server, optional)
        self.assertIn("tls_optional: yes", shown)
        self.assertNotIn("requiretls", shown)
        shown = show(server, both)
        self.assertIn("requiretls: yes", shown)
        self.assertNotIn("tls_optional", shown)


class RequireTlsDelivery(ServerTestCase):
    def test_onward_only_to_verified_hops_that_offer_it_else_returned(self):
        remote = self.new_server(domains=[("remote.test", ["bob"])])
        remote.start()
        cert = os.path.join(remote.dir, "tls", "server-ecdsa.pem")
        key = os.path.join(remote.dir, "tls", "server-ecdsa.key")
        # Verified TLS (the remote's CA), but no REQUIRETLS: a hop that cannot promise it.
        with FakeSmtp(cert=cert, key=key) as lax, FakeSmtp(cert=cert, key=key,
                                                          ehlo_extra=["REQUIRETLS"]) as mx, \
                DnsServer(mx={"mx.test": [(10, "mx.mx.test")]}, a={"mx.mx.test": "127.0.0.1"},
                          directory=self.tmp) as dns:
            relay_domains = ""
            for name, port in (("remote.test", remote.ports["smtp"]), ("lax.test", lax.port)):
                relay_domains += (f'[[domains]]\nname = "{name}"\nkind = "relay"\n'
                                  f'next_hop = "smtp://127.0.0.1:{port}"\n'
                                  'next_hop_tls = "verify"\nrecipients = ["bob"]\n\n')
            local = self.new_server(extra_toml=(
                relay_domains + "[queue]\nretry_schedule = [3600]\n\n"
                f'[dns]\nservers = "{dns.server}"\nvalidation = "no"\n\n'
                f'[delivery]\nmx_port = {mx.port}\nca_file = "{remote.ca}"\n'
                "connect_timeout = 5\ncommand_timeout = 10\n"))
            local.start()
            passed_on = submit(local, "bob@remote.test", options=["REQUIRETLS"])
            not_offered = submit(local, "bob@lax.test", options=["REQUIRETLS"], subject="lax")
            insecure = submit(local, "carol@mx.test", options=["REQUIRETLS", "RET=FULL"],
                              subject="mx")

            # (b) The relay offers REQUIRETLS after STARTTLS: the option went on with the message.
            remote.wait_delivered(1, "bob@remote.test")
            remote.wait_log(r"event=accepted .*from=demo@localhost .*requiretls=yes")
            local.wait_log(r"event=delivered id=" + passed_on + r" rcpt=bob@remote.test to=relay "
                           r"requiretls=yes detail=\"relay=127.0.0.1:\d+ tls=TLSv1.3 \S+ verified")

            # (c) and (d): refused and returned at once (no retry), the reason logged; each
            # notice has the headers only, even with RET=FULL (RFC 8689 §5).
            local.wait_log(r"event=requiretls_refused domain=127.0.0.1 host=127.0.0.1:" +
                           str(lax.port) + r" status=5.7.30 ")
            local.wait_log(r"event=requiretls_refused domain=mx.test status=5.7.10 "
                           r"detail=\"REQUIRETLS: the MX answer for mx.test is not DNSSEC-secure")
            local.wait_log(r"event=failed id=" + not_offered + r" rcpt=bob@lax.test "
                           r"requiretls=yes detail=\"REQUIRETLS: 127.0.0.1:\d+ does not offer REQUIRETLS")
            local.wait_log(r"event=failed id=" + insecure + r" rcpt=carol@mx.test requiretls=yes")
            notices = local.wait_delivered(2)
            statuses = []
            for raw in notices:
                fields, message = dsn_parts(raw)
                statuses.append(fields)
                self.assertNotIn(b"The secret body.", raw)
                self.assertIn("text/rfc822-headers",
                              [part.get_content_type() for part in message.walk()])
            self.assertTrue(any("Status: 5.7.30" in f for f in statuses), statuses)
            self.assertTrue(any("Status: 5.7.10" in f for f in statuses), statuses)
            local.wait_log(r"event=dsn id=" + insecure + r" kind=failure")
            # Nothing went to the hops that could not take it; the MX host was not even asked.
            self.assertEqual(lax.messages, [])
            self.assertEqual(mx.connections, 0)
            self.assertNotIn(passed_on, local.spool_ids())


if __name__ == "__main__":
    unittest.main()
