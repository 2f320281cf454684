"""Mail authenticity with the real binary (docs/architecture.md "Mail authenticity"): SPF,
DKIM and DMARC on port 25, our Authentication-Results, and DKIM signatures on what our users
submit. Every DNS answer comes from a dnsmasq on loopback that the test starts
(dns_server.py); signatures are made and checked by an independent implementation, dkimpy
(Debian python3-dkim, run with /usr/bin/python3), never by smtpsd itself.

The sender domains live under .example (dnsmasq answers for it only): bank.example publishes
p=reject, shop.example p=quarantine, plain.example no DMARC at all; the client is 127.0.0.1.
"""

import base64
import email
import gzip
import json
import os
import re
import smtplib
import subprocess
import time
import unittest
import urllib.request

import needs
from dns_server import DnsServer
from harness import ServerTestCase, make_message

DKIMPY = "/usr/bin/python3"
SMTPSCTL = os.environ.get("SMTPSCTL_BIN", os.path.join(
    os.path.dirname(os.environ.get("SMTPSD_BIN", "smtpsd")), "smtpsctl"))

SIGN = r"""
import sys, dkim
message = sys.stdin.buffer.read()
with open(sys.argv[1], "rb") as f:
    key = f.read()
signature = dkim.sign(message, sys.argv[2].encode(), sys.argv[3].encode(), key,
                      canonicalize=(b"relaxed", b"simple"),
                      include_headers=[b"from", b"to", b"subject"])
sys.stdout.buffer.write(signature + message)
"""

# A mailing list's ARC seal (RFC 8617 §5.1): the list's own Authentication-Results, then
# dkim.arc_sign adds the set (AAR, AMS, AS) on top; the list's A-R field is not kept.
SEAL = r"""
import sys, dkim
message = sys.stdin.buffer.read()
with open(sys.argv[1], "rb") as f:
    key = f.read()
domain = sys.argv[2].encode()
results = b"Authentication-Results: " + domain + b"; dkim=pass header.d=bank.example\r\n"
fields = dkim.arc_sign(results + message, b"arc", domain, key, domain,
                       include_headers=[b"from", b"to", b"subject"])
assert len(fields) == 3, fields
sys.stdout.buffer.write(b"".join(fields) + message)
"""

# Verifies every DKIM-Signature of the message on stdin with the TXT records of a JSON file;
# prints one "pass" or "fail" per signature, in order.
VERIFY = r"""
import json, sys, dkim
with open(sys.argv[1]) as f:
    records = json.load(f)
def dnsfunc(name, timeout=5):
    return records.get(name.decode().rstrip("."), "").encode()
message = sys.stdin.buffer.read()
count = sum(1 for line in message.split(b"\n") if line.lower().startswith(b"dkim-signature:"))
for index in range(count):
    try:
        ok = dkim.DKIM(message).verify(idx=index, dnsfunc=dnsfunc)
    except dkim.DKIMException:  # dkimpy raises for some failures (a broken body hash)
        ok = False
    print("pass" if ok else "fail")
"""


def dkimpy_available():
    return os.access(DKIMPY, os.X_OK) and subprocess.run(
        [DKIMPY, "-c", "import dkim, nacl"], capture_output=True).returncode == 0


def rsa_key(directory, name="sender"):
    """A 2048-bit RSA key (PEM file) and its DKIM TXT record (RFC 6376 §3.6.1)."""
    key = os.path.join(directory, f"{name}.key")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:2048", "-out", key], check=True, capture_output=True)
    der = subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    return key, "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def txt_record(text):
    """One TXT record in character-strings of at most 255 octets (RFC 1035 §3.3.14)."""
    return [tuple(text[i:i + 255] for i in range(0, len(text), 255))]


def sign_with_dkimpy(message, key, selector, domain):
    done = subprocess.run([DKIMPY, "-c", SIGN, key, selector, domain], input=message,
                          capture_output=True, check=True)
    return done.stdout


def seal_with_dkimpy(message, key, domain):
    return subprocess.run([DKIMPY, "-c", SEAL, key, domain], input=message, capture_output=True,
                          check=True).stdout


def verify_with_dkimpy(message, records, directory):
    path = os.path.join(directory, "records.json")
    with open(path, "w") as f:
        json.dump(records, f)
    done = subprocess.run([DKIMPY, "-c", VERIFY, path], input=message, capture_output=True,
                          check=True)
    return done.stdout.decode().split()


def submit(server, message):
    """demo@localhost submits `message` over implicit TLS with AUTH PLAIN."""
    with open(os.path.join(server.dir, "demo.password")) as f:
        password = f.read().strip()
    with server.smtps() as client:
        client.login("demo@localhost", password)
        client.sendmail("demo@localhost", ["demo@localhost"], message)


def header_fields(message, name):
    """The values of every field called `name` (unfolded), from a delivered message."""
    head = message.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    unfolded = re.sub(r"\r\n[ \t]", " ", head)
    prefix = name.lower() + ":"
    return [line.split(":", 1)[1].strip() for line in unfolded.split("\r\n")
            if line.lower().startswith(prefix)]


@needs.condition(dkimpy_available, "needs Debian python3-dkim and python3-nacl "
                 "(scripts/install-deps.sh)")
class Inbound(ServerTestCase):
    """Port 25: the verdicts, what is delivered and what is refused."""

    def setUp(self):
        super().setUp()
        self.key, record = rsa_key(self.tmp)
        self.dns = DnsServer(
            txt={
                # The client (127.0.0.1) may send for bank, shop and plain; nobody for evil.
                "bank.example": "v=spf1 ip4:127.0.0.1 -all",
                "_dmarc.bank.example": "v=DMARC1; p=reject; "
                                       "rua=mailto:dmarc@reports.test,mailto:spy@unverified.example",
                # reports.test agrees to receive bank.example's reports (RFC 7489 §7.1).
                "bank.example._report._dmarc.reports.test": "v=DMARC1",
                "s1._domainkey.bank.example": txt_record(record),
                "s1._domainkey.lists.example": txt_record(record),
                "arc._domainkey.lists.example.org": txt_record(record),
                "shop.example": "v=spf1 ip4:192.0.2.1 -all",
                "_dmarc.shop.example": "v=DMARC1; p=quarantine; sp=reject",
                "plain.example": "v=spf1 ip4:192.0.2.1 -all",
                "relaxed.example": "v=spf1 include:spf.bank.example ~all",
                "spf.bank.example": "v=spf1 ip4:127.0.0.0/8 -all",
                "_dmarc.relaxed.example": "v=DMARC1; p=reject; aspf=s",
            },
            directory=self.tmp)
        self.addCleanup(self.dns.stop)

    def server(self, authenticity=None, domains=None):
        toml = ["[dns]", f'servers = ["{self.dns.server}"]', 'validation = "no"', "",
                "[authenticity]", 'authserv_id = "mx.smtpsd.test"']
        for key, value in (authenticity or {}).items():
            toml.append(f"{key} = {value}")
        return self.new_server(extra_toml="\n".join(toml) + "\n", domains=domains)

    def send(self, server, sender, message, recipient="demo@localhost"):
        with server.smtp() as client:
            return client.sendmail(sender, [recipient], message)

    def refused(self, server, sender, message):
        with self.assertRaises(smtplib.SMTPDataError) as caught:
            self.send(server, sender, message)
        return caught.exception

    def test_spf_and_dkim_aligned_pass_dmarc_and_say_so_in_authentication_results(self):
        server = self.server()
        with server:
            message = sign_with_dkimpy(
                make_message("signed", sender="ceo@bank.example"), self.key, "s1", "bank.example")
            self.assertEqual(self.send(server, "ceo@bank.example", message), {})
            delivered = server.wait_delivered(1)[0]
            results = header_fields(delivered, "Authentication-Results")
            self.assertEqual(len(results), 1, delivered[:600])
            self.assertTrue(results[0].startswith("mx.smtpsd.test;"), results[0])
            self.assertIn("spf=pass smtp.mailfrom=ceo@bank.example", results[0])
            self.assertIn("dkim=pass header.d=bank.example header.s=s1", results[0])
            self.assertIn("dmarc=pass", results[0])
            self.assertIn("header.from=bank.example", results[0])
            line = server.wait_log(r"event=auth_results .*dmarc=pass").group(0)
            self.assertIn("spf=pass", line)

    def test_forged_from_of_a_reject_domain_is_refused_at_the_end_of_data(self):
        server = self.server()
        server.extra_toml += '[metrics]\naddress = "127.0.0.1:0"\n'
        server.write_config()
        with server:
            # MAIL FROM of another domain (whose SPF fails), From: the bank: nothing aligned.
            forged = make_message("forged", sender="ceo@bank.example")
            error = self.refused(server, "someone@plain.example", forged)
            self.assertEqual(error.smtp_code, 550)
            self.assertIn(b"5.7.1", error.smtp_error)
            self.assertIn(b"DMARC policy of bank.example", error.smtp_error)
            # A signature that breaks (body changed after signing) does not help either.
            signed = sign_with_dkimpy(forged, self.key, "s1", "bank.example")
            tampered = signed.replace(b"Hello.", b"Pay me.")
            self.assertEqual(self.refused(server, "x@plain.example", tampered).smtp_code, 550)
            server.wait_log(r"event=auth_results .*dkim=fail:bank.example.*refused=dmarc")
            time.sleep(0.3)
            self.assertEqual(server.delivered(), [])
            self.assertEqual(server.spool_ids(), [])
            # The counters per result: two DMARC fails, both rejected, one DKIM fail.
            host, port = re.search(r"event=metrics_listening address=(\S+) port=(\d+)",
                                   server.log()).groups()
            with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as reply:
                metrics = reply.read().decode()
            for sample in ('smtpsd_authenticity_results_total{method="dmarc",result="fail"} 2',
                           'smtpsd_authenticity_results_total{method="dkim",result="fail"} 1',
                           'smtpsd_authenticity_results_total{method="spf",result="fail"} 2',
                           'smtpsd_dmarc_dispositions_total{disposition="reject"} 2'):
                self.assertIn(sample, metrics)

    def test_a_monitoring_domain_cannot_carry_forged_mail_to_an_enforcing_one(self):
        server = self.server(domains=[("localhost", ["demo"]),
                                      ("watch.test", ["demo"], {"dmarc": "monitor"})])
        with server:
            forged = make_message("forged", sender="ceo@bank.example")
            with server.smtp() as client:
                client.ehlo()
                self.assertEqual(client.mail("someone@plain.example")[0], 250)
                self.assertEqual(client.rcpt("demo@localhost")[0], 250)
                code, text = client.rcpt("demo@watch.test")
                self.assertEqual((code, text[:5]), (452, b"4.5.3"), text)
                code, text = client.data(forged)
                self.assertEqual((code, text[:5]), (550, b"5.7.1"), text)
                # Sent again alone, as the 452 asks: monitored, so delivered and recorded.
                client.rset()
                self.assertEqual(client.sendmail("someone@plain.example", ["demo@watch.test"],
                                                 forged), {})
            (delivered,) = server.wait_delivered(1, "demo@watch.test")
            self.assertIn(b"dmarc=fail", delivered)
            self.assertEqual(server.delivered(), [])

    def test_quarantine_goes_to_junk_with_a_spam_flag(self):
        server = self.server()
        with server:
            self.assertEqual(self.send(server, "news@shop.example",
                                       make_message("offer", sender="news@shop.example")), {})
            junk = os.path.join(server.maildir(), ".Junk", "new")
            deadline = time.time() + 10
            while time.time() < deadline and not (os.path.isdir(junk) and os.listdir(junk)):
                time.sleep(0.05)
            names = os.listdir(junk)
            self.assertEqual(len(names), 1)
            with open(os.path.join(junk, names[0]), "rb") as f:
                delivered = f.read()
            self.assertEqual(header_fields(delivered, "X-Spam-Flag"), ["YES"])
            results = header_fields(delivered, "Authentication-Results")[0]
            self.assertIn("spf=fail", results)
            self.assertIn("dmarc=fail (p=quarantine dis=quarantine ", results)
            self.assertEqual(server.delivered(), [])  # not in INBOX

    def test_spf_fail_without_dmarc_is_refused_and_with_dmarc_dmarc_decides(self):
        server = self.server()
        with server:
            error = self.refused(server, "a@plain.example",
                                 make_message("x", sender="a@plain.example"))
            self.assertEqual(error.smtp_code, 550)
            self.assertIn(b"5.7.1 SPF of plain.example does not allow 127.0.0.1", error.smtp_error)
        # "record": nothing refused for SPF, the result is in Authentication-Results.
        server = self.server(authenticity={"spf": '"record"'})
        with server:
            self.assertEqual(self.send(server, "a@plain.example",
                                       make_message("y", sender="a@plain.example")), {})
            results = header_fields(server.wait_delivered(1)[0], "Authentication-Results")[0]
            self.assertIn("spf=fail smtp.mailfrom=a@plain.example", results)
            self.assertIn("dmarc=none", results)

    def test_strict_spf_alignment_and_the_organizational_domain(self):
        server = self.server()
        with server:
            # relaxed.example: SPF passes through include, but aspf=s wants the exact From
            # domain: a subdomain of it in MAIL FROM is not aligned.
            error = self.refused(server, "a@relaxed.example",
                                 make_message("x", sender="a@mail.relaxed.example"))
            self.assertEqual(error.smtp_code, 550)
            self.assertEqual(self.send(server, "a@relaxed.example",
                                       make_message("y", sender="a@relaxed.example")), {})
            results = header_fields(server.wait_delivered(1)[0], "Authentication-Results")[0]
            self.assertIn("spf=pass", results)
            self.assertIn("dmarc=pass", results)

    def test_forged_authentication_results_with_our_id_are_removed_others_kept(self):
        server = self.server(authenticity={"spf": '"record"'})
        with server:
            message = (b"Authentication-Results: mx.smtpsd.test; dkim=pass header.d=bank.example\r\n"
                       b"Authentication-Results: (forged)\r\n MX.SMTPSD.TEST; dmarc=pass\r\n"
                       b"Authentication-Results: other.example; spf=pass\r\n"
                       + make_message("forged verdict", sender="a@plain.example"))
            self.assertEqual(self.send(server, "a@plain.example", message), {})
            delivered = server.wait_delivered(1)[0]
            results = header_fields(delivered, "Authentication-Results")
            self.assertEqual(len(results), 2, results)
            self.assertIn("spf=fail", results[0])  # ours, on top
            self.assertEqual(results[1], "other.example; spf=pass")
            self.assertNotIn(b"dkim=pass header.d=bank.example", delivered)
            # A message that is all header section (no empty line, no body) too.
            only_header = (b"Authentication-Results: mx.smtpsd.test; dmarc=pass\r\n"
                           b"From: a@plain.example\r\nSubject: no body\r\n")
            self.assertEqual(self.send(server, "a@plain.example", only_header), {})
            (delivered,) = [message for message in server.wait_delivered(2)
                            if b"Subject: no body" in message]
            self.assertEqual(len(header_fields(delivered, "Authentication-Results")), 1)
            self.assertNotIn(b"dmarc=pass", delivered)

    def test_several_from_fields_are_all_evaluated(self):
        server = self.server(authenticity={"spf": '"record"'})
        with server:
            message = b"From: <a@plain.example>\r\n" + make_message(
                "two authors", sender="ceo@bank.example")
            error = self.refused(server, "a@plain.example", message)
            self.assertIn(b"DMARC policy of bank.example", error.smtp_error)

    def test_an_unreadable_from_or_too_many_author_domains_is_refused(self):
        server = self.server(authenticity={"spf": '"record"'})
        with server:
            for from_field in (b"From: ceo@bank.example (unclosed comment",
                               b"From: ceo@bank.example, not-an-address",
                               b"From: " + b", ".join(b"a@d%d.example" % i for i in range(6))):
                message = from_field + b"\r\nSubject: x\r\n\r\nHello.\r\n"
                error = self.refused(server, "a@plain.example", message)
                self.assertEqual(error.smtp_code, 550, error.smtp_error)
                self.assertIn(b"5.7.1", error.smtp_error)
            # Without a From field there is no author to protect: accepted, dmarc=none.
            self.assertEqual(self.send(server, "a@plain.example", b"Subject: x\r\n\r\nHi.\r\n"), {})
            self.assertNotIn("dmarc=", header_fields(server.wait_delivered(1)[0],
                                                     "Authentication-Results")[0])

    def test_a_header_section_over_1_mib_is_refused_not_let_through_unchecked(self):
        server = self.server(authenticity={"spf": '"record"'})
        with server:
            padding = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"x" * 900) for i in range(1300))
            message = (b"Authentication-Results: mx.smtpsd.test; dmarc=pass\r\n" + padding +
                       make_message("big header", sender="ceo@bank.example"))
            error = self.refused(server, "a@plain.example", message)
            self.assertEqual(error.smtp_code, 552)
            self.assertIn(b"Header section too large", error.smtp_error)

    def test_trusted_forwarder_is_recorded_not_refused(self):
        server = self.server(authenticity={"trusted_forwarders": '["127.0.0.0/8"]'})
        with server:
            self.assertEqual(self.send(server, "list@plain.example",
                                       make_message("via a list", sender="ceo@bank.example")), {})
            results = header_fields(server.wait_delivered(1)[0], "Authentication-Results")[0]
            self.assertIn("dmarc=fail (p=reject dis=none ", results)
            server.wait_log(r"event=auth_results .*override=trusted_forwarder")

    def test_a_trusted_mailing_list_signature_overrides_the_reject(self):
        # The bank's mail through a list: the list re-signs as lists.example.
        relayed = sign_with_dkimpy(make_message("[list] news", sender="ceo@bank.example"),
                                   self.key, "s1", "lists.example")
        server = self.server()
        with server:
            error = self.refused(server, "bounces@plain.example", relayed)
            self.assertIn(b"DMARC policy of bank.example", error.smtp_error)
        server = self.server(authenticity={"mailing_lists": '["lists.example"]'})
        with server:
            self.assertEqual(self.send(server, "bounces@plain.example", relayed), {})
            results = header_fields(server.wait_delivered(1)[0], "Authentication-Results")[0]
            self.assertIn("dkim=pass header.d=lists.example", results)
            self.assertIn("dmarc=fail (p=reject dis=none ", results)
            server.wait_log(r"event=auth_results .*override=mailing_list")

    def test_a_passing_arc_chain_of_a_trusted_sealer_overrides_the_reject(self):
        # The bank signs; a list rewrites the subject (the bank's signature breaks) and seals
        # the result with ARC as lists.example.org, signing with no DKIM-Signature of its own.
        signed = sign_with_dkimpy(make_message("news", sender="ceo@bank.example"), self.key,
                                  "s1", "bank.example")
        relayed = seal_with_dkimpy(signed.replace(b"Subject: news", b"Subject: [list] news"),
                                   self.key, "lists.example.org")
        server = self.server()
        with server:
            error = self.refused(server, "bounces@plain.example", relayed)
            self.assertEqual(error.smtp_code, 550)
            self.assertIn(b"5.7.1", error.smtp_error)
            server.wait_log(r"event=auth_results .*arc=pass arc_sealer=lists.example.org.*"
                            r"refused=dmarc")
        server = self.server(authenticity={"trusted_arc_sealers": '["Lists.Example.org"]'})
        server.extra_toml += '[metrics]\naddress = "127.0.0.1:0"\n'
        server.write_config()
        with server:
            self.assertEqual(self.send(server, "bounces@plain.example", relayed), {})
            results = header_fields(server.wait_delivered(1)[0], "Authentication-Results")[0]
            self.assertIn("dkim=fail", results)
            self.assertIn("arc=pass (sealer lists.example.org) smtp.remote-ip=127.0.0.1", results)
            self.assertIn("dmarc=fail (p=reject dis=none ", results)
            server.wait_log(r"event=auth_results .*arc=pass arc_sealer=lists.example.org.*"
                            r"override=local_policy")
            host, port = re.search(r"event=metrics_listening address=(\S+) port=(\d+)",
                                   server.log()).groups()
            with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as reply:
                self.assertIn('smtpsd_authenticity_results_total{method="arc",result="pass"} 1',
                              reply.read().decode())

    def test_dns_failures_are_accepted_and_recorded_or_deferred(self):
        # temperror.example is not in any zone dnsmasq serves: REFUSED, a temporary failure.
        server = self.server()
        with server:
            self.assertEqual(self.send(server, "a@temperror.invalid-zone",
                                       make_message("dns down", sender="a@temperror.invalid-zone")),
                             {})
            results = header_fields(server.wait_delivered(1)[0], "Authentication-Results")[0]
            self.assertIn("spf=temperror", results)
        server = self.server(authenticity={"temperror": '"defer"'})
        with server:
            error = self.refused(server, "a@temperror.invalid-zone",
                                 make_message("dns down", sender="a@temperror.invalid-zone"))
            self.assertEqual(error.smtp_code, 451)
            self.assertIn(b"4.4.3", error.smtp_error)

    def test_aggregate_report_reaches_the_verified_rua_and_validates_against_the_schema(self):
        server = self.server(domains=[("localhost", ["demo"]), ("reports.test", ["dmarc"])])
        server.extra_toml += ('[dmarc_reports]\norg_name = "Smtpsd Test"\n'
                              'from = "dmarc@localhost"\ninterval = 2\n')
        server.write_config()
        with server:
            signed = sign_with_dkimpy(make_message("fine", sender="ceo@bank.example"),
                                      self.key, "s1", "bank.example")
            self.assertEqual(self.send(server, "ceo@bank.example", signed), {})
            self.refused(server, "x@plain.example", make_message("forged", sender="ceo@bank.example"))
            report = server.wait_delivered(1, address="dmarc@reports.test", timeout=20)[0]
            server.wait_log(r"event=dmarc_report_refused .*to=spy@unverified.example")
        message = email.message_from_bytes(report)
        self.assertEqual(message["Subject"].split(" Report-ID:")[0],
                         "Report Domain: bank.example Submitter: localhost")
        attachment = [part for part in message.walk()
                      if part.get_content_type() == "application/gzip"][0]
        name = attachment.get_filename()
        self.assertRegex(name, r"^localhost!bank\.example!\d+!\d+\.xml\.gz$")
        xml = gzip.decompress(attachment.get_payload(decode=True))
        path = os.path.join(self.tmp, "report.xml")
        with open(path, "wb") as f:
            f.write(xml)
        schema = os.path.join(os.path.dirname(__file__), "..", "data",
                              "rfc7489-aggregate-report.xsd")
        checked = subprocess.run(["xmllint", "--noout", "--schema", schema, path],
                                 capture_output=True, text=True)
        self.assertEqual(checked.returncode, 0, checked.stderr + xml.decode())
        text = xml.decode()
        self.assertIn("<disposition>reject</disposition>", text)
        self.assertIn("<disposition>none</disposition>", text)
        self.assertEqual(text.count("<record>"), 2)
        self.assertIn("<result>pass</result>", text)  # the DKIM signature of the first

    def test_submission_is_not_checked(self):
        server = self.server()
        with server:
            # From the bank, though the client may not send for it: our user, our rules.
            # A field claiming our verdict is removed for submissions too.
            submit(server, b"Authentication-Results: mx.smtpsd.test; dmarc=pass\r\n"
                   + make_message("mine", sender="ceo@bank.example"))
            delivered = server.wait_delivered(1)[0]
            self.assertEqual(header_fields(delivered, "Authentication-Results"), [])


@needs.condition(dkimpy_available, "needs Debian python3-dkim and python3-nacl "
                 "(scripts/install-deps.sh)")
class Signing(ServerTestCase):
    """What our users submit leaves with two signatures (RSA-2048 and Ed25519) that dkimpy
    verifies from the records `smtpsctl dkim keygen` printed."""

    def keygen(self, server, algorithm, selector, domain="localhost"):
        done = subprocess.run(
            [SMTPSCTL, "dkim", "keygen", domain, "--selector", selector, "--algorithm", algorithm,
             "--directory", os.path.join(server.dir, "keys")],
            capture_output=True, text=True, check=True)
        # The zone-file line: NAME IN TXT ( "…" "…" ): the strings joined are the record.
        strings = re.findall(r'"([^"]*)"', done.stdout)
        self.assertTrue(strings, done.stdout)
        return "".join(strings)

    def test_two_signatures_that_dkimpy_verifies_and_a_changed_body_breaks(self):
        server = self.new_server()
        records = {
            "r1._domainkey.localhost": self.keygen(server, "rsa", "r1"),
            "e1._domainkey.localhost": self.keygen(server, "ed25519", "e1"),
        }
        keys = {name: os.path.join(server.dir, "keys", "localhost", name)
                for name in os.listdir(os.path.join(server.dir, "keys", "localhost"))}
        for path in keys.values():
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o600, path)
        server.domains = [("localhost", ["demo"], {"dkim": [
            {"selector": name.split(".")[0], "key": path} for name, path in sorted(keys.items())]})]
        server.write_config()
        with server:
            submit(server, make_message("signed by us", sender="demo@localhost",
                                        body="Line one.\r\n\r\n\r\n"))
            delivered = server.wait_delivered(1)[0]
            signatures = header_fields(delivered, "DKIM-Signature")
            self.assertEqual(len(signatures), 2, delivered[:1200])
            self.assertTrue(any("a=rsa-sha256" in s for s in signatures))
            self.assertTrue(any("a=ed25519-sha256" in s for s in signatures))
            self.assertEqual(verify_with_dkimpy(delivered, records, self.tmp), ["pass", "pass"])
            changed = delivered.replace(b"Line one.", b"Line 1.")
            self.assertEqual(verify_with_dkimpy(changed, records, self.tmp), ["fail", "fail"])
            # From is over-signed: a second From added after signing breaks both.
            added = delivered.replace(b"\r\nSubject:", b"\r\nFrom: <ceo@bank.example>\r\nSubject:", 1)
            self.assertEqual(verify_with_dkimpy(added, records, self.tmp), ["fail", "fail"])
            server.wait_log(r"event=dkim_signed .*domain=localhost signatures=2")
            # A From of another domain than the sender's own is never signed.
            submit(server, make_message("not ours to sign", sender="ceo@bank.example"))
            unsigned = [m for m in server.wait_delivered(2) if b"not ours to sign" in m][0]
            self.assertEqual(header_fields(unsigned, "DKIM-Signature"), [])

    def test_dkim_check_says_which_published_records_match_the_keys(self):
        server = self.new_server()
        good = self.keygen(server, "rsa", "good", domain="signing.test")
        self.keygen(server, "ed25519", "stale", domain="signing.test")
        self.keygen(server, "ed25519", "absent", domain="signing.test")
        other = self.keygen(server, "ed25519", "other", domain="elsewhere.test")
        directory = os.path.join(server.dir, "keys", "signing.test")
        keys = [{"selector": name.split(".")[0], "key": os.path.join(directory, name)}
                for name in sorted(os.listdir(directory))]
        with DnsServer(txt={"good._domainkey.signing.test": txt_record(good),
                           "stale._domainkey.signing.test": other},
                       directory=self.tmp) as dns:
            server.domains = [("localhost", ["demo"]), ("signing.test", [], {"dkim": keys})]
            server.extra_toml = f'[dns]\nservers = "{dns.server}"\nvalidation = "no"\n'
            server.write_config()
            done = subprocess.run([SMTPSCTL, "dkim", "check", "signing.test", "--config",
                                   server.config_path], capture_output=True, text=True)
        self.assertEqual(done.returncode, 1, done.stdout + done.stderr)
        lines = {line.split(":")[0]: line for line in done.stdout.splitlines()
                 if "._domainkey." in line and not line.startswith(" ")}
        self.assertIn("OK (rsa-sha256, 2048 bits)", lines["good._domainkey.signing.test"])
        self.assertIn("DIFFERENT", lines["stale._domainkey.signing.test"])
        self.assertIn("MISSING", lines["absent._domainkey.signing.test"])
        self.assertIn('absent._domainkey.signing.test. IN TXT ( "v=DKIM1; k=ed25519; p=',
                      done.stdout)


if __name__ == "__main__":
    unittest.main()
