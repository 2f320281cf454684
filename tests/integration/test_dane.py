"""DANE for SMTP (RFC 7672) in MX delivery, against a DNSSEC-signed zone of the test's own
(signed_zone.py) that the sending smtpsd validates with the zone's trust anchor, and a
receiving smtpsd whose certificates nothing but the TLSA records vouch for (no CA file):

- DANE-EE(3): the records `smtpsctl dane tlsa` prints for the receiver: delivered,
  "verified by DANE (TLSA 3 1 1)", policy=dane;
- DANE-TA(2): the receiver's CA certificate, its certificate naming the MX host: delivered;
- a TLSA record that matches nothing: deferred, never sent unauthenticated;
- a TLSA answer whose signature fails (bogus): the host is not used at all: deferred;
- several MX hosts: the ones DANE disqualifies (bogus, mismatch) are skipped, the next one,
  authenticated by its records, gets the mail;
- a TLS report to an address of a domain whose DANE fails is delivered all the same
  (RFC 8460 §5.3);
- an unsigned zone delegated from the signed root (insecure, RFC 4035 §5.2) whose domain
  publishes an MTA-STS enforce policy and a TLSA record that matches nothing: DANE does not
  apply (its answers are not secure), MTA-STS does: delivered, policy=mta-sts;
- the same zone without validation: DANE cannot apply, said at start and once per domain
  whose MX host publishes TLSA records; opportunistic TLS.
"""

import email
import gzip
import hashlib
import http.server
import json
import os
import re
import ssl
import subprocess
import threading
import time
import urllib.request

import needs
from harness import ServerTestCase, make_message
from certificates import install_chain, issue_leaf
from postfix import POSTFIX, Postfix
from signed_zone import (ROOT_ADDRESS, NetworkNamespace, SignedRoot, ValidatingResolver,
                         available)
from test_onward import SMTPSCTL, demo_password, submit

DOMAINS = ("ee.example", "ta.example", "wrong.example", "bogus.example", "alias.example")
# Without TLS-RPT records: multi.example's MX hosts are those of bogus, wrong and ee (in
# that order); plain.example's MX host publishes no TLSA record; sts.example is an unsigned
# zone (MTA-STS, no DANE).
OTHER_DOMAINS = ("multi.example", "plain.example", "sts.example")
STS_POLICY = b"version: STSv1\nmode: enforce\nmx: mx.sts.example\nmax_age: 86400\n"


class ReportCollector:
    """An HTTPS server on a free loopback port that keeps every POST (path, Content-Type,
    body) and answers 200: a TLS report endpoint (RFC 8460 §5.4). `failures`: the statuses
    answered first instead, one per POST; `statuses` says what each POST got."""

    def __init__(self, certificate, key):
        self.requests = []
        self.failures = []
        self.statuses = []
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                collector.requests.append((self.path, self.headers.get("Content-Type"),
                                           self.rfile.read(length)))
                status = collector.failures.pop(0) if collector.failures else 200
                collector.statuses.append(status)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate, key)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@needs.condition(available, "BIND (Debian bind9, bind9-utils) not installed")
class Dane(ServerTestCase):
    def receiver(self):
        """A second smtpsd for every test domain; its ECDSA certificate (signed by its own CA,
        which the sender trusts only when given ca_file) names mx.ta.example and
        mx.sts.example."""
        remote = self.new_server(domains=[
            (domain, ["carol", "tlsrpt"] if domain == "wrong.example" else ["carol"])
            for domain in DOMAINS + OTHER_DOMAINS])
        tls_dir = os.path.join(remote.dir, "tls")
        certificate, key = issue_leaf(os.path.join(remote.dir, "issued"), remote.ca,
                                      os.path.join(tls_dir, "ca.key"),
                                      ["mx.ta.example", "mx.sts.example"],
                                      common_name="mx.ta.example")
        install_chain(certificate, remote.ca, os.path.join(tls_dir, "server-ecdsa.pem"))
        os.replace(key, os.path.join(tls_dir, "server-ecdsa.key"))
        return remote.start()

    def zone(self, remote, report_port=None):
        port = remote.ports["smtp"]
        printed = subprocess.run([SMTPSCTL, "dane", "tlsa", "--config", remote.config_path,
                                  "--host", "mx.ee.example", "--port", str(port)],
                                 capture_output=True, text=True, check=True).stdout
        tlsa = [line.split(";")[0].replace(" IN TLSA ", " TLSA ").strip()
                for line in printed.splitlines() if line and not line.startswith(";")]
        # One record per certificate served (ECDSA and RSA): both keys of the receiver.
        self.assertEqual(len(tlsa), 2, printed)
        for line in tlsa:
            self.assertRegex(line, rf"^_{port}\._tcp\.mx\.ee\.example\. TLSA 3 1 1 [0-9a-f]{{64}}$")
        with open(remote.ca) as ca:
            ca_der = ssl.PEM_cert_to_DER_cert(ca.read())
        records = tlsa + [
            f"_{port}._tcp.mx.ta.example. TLSA 2 0 1 {hashlib.sha256(ca_der).hexdigest()}",
            f"_{port}._tcp.mx.wrong.example. TLSA 3 1 1 {'00' * 32}",
            f"_{port}._tcp.mx.bogus.example. TLSA 3 1 1 {'11' * 32}"]
        for domain in DOMAINS:
            rua = "mailto:demo@localhost"
            if report_port and domain == "ee.example":
                rua += f",https://reports.example:{report_port}/tlsrpt"
            if domain == "wrong.example":
                rua += ",mailto:tlsrpt@wrong.example"  # its own, behind its broken DANE
            records += [f"{domain}. MX 10 mx.{domain}.",
                        f'_smtp._tls.{domain}. TXT "v=TLSRPTv1; rua={rua}"']
            if domain == "alias.example":
                # The MX host is an alias (RFC 7672 §2.2.2): the records are at its target.
                records += ["mx.alias.example. CNAME real.alias.example.",
                            "real.alias.example. A 127.0.0.1"]
                records += [line.replace("mx.ee.example.", "real.alias.example.")
                            for line in tlsa]
            else:
                records.append(f"mx.{domain}. A 127.0.0.1")
        records += ["multi.example. MX 5 mx.bogus.example.",
                    "multi.example. MX 10 mx.wrong.example.",
                    "multi.example. MX 20 mx.ee.example.",
                    "plain.example. MX 10 mx.plain.example.", "mx.plain.example. A 127.0.0.1",
                    "reports.example. A 127.0.0.1"]
        self.ee_records = [line.split(" TLSA ", 1)[1] for line in tlsa]
        # The bogus host's record is changed after signing to the one that would match.
        good = tlsa[0].split(" TLSA ", 1)[1]
        # Delegated without DS (insecure): an MTA-STS domain whose TLSA record matches
        # nothing, which DANE must not use (RFC 7672 §2.2: only secure TLSA records count).
        insecure = ["sts.example. MX 10 mx.sts.example.", "mx.sts.example. A 127.0.0.1",
                    f"_{port}._tcp.mx.sts.example. TLSA 3 1 1 {'22' * 32}",
                    '_mta-sts.sts.example. TXT "v=STSv1; id=1"',
                    "mta-sts.sts.example. A 127.0.0.1"]
        root = SignedRoot(records, bogus={f"_{port}._tcp.mx.bogus.example.": ("TLSA", good)},
                          unsigned={"sts.example.": insecure})
        self.addCleanup(root.stop)
        return root

    def sender(self, root, port, validation="yes", reports="", ca_file="", delivery=""):
        return self.new_server(extra_toml=(
            f'[queue]\nretry_schedule = [60]\n\n[dns]\nservers = "{root.server}"\n'
            f'validation = "{validation}"\ntrust_anchor = "{root.trust_anchor}"\n\n'
            f'[delivery]\nmx_port = {port}\nconnect_timeout = 5\ncommand_timeout = 10\n'
            + (f'ca_file = "{ca_file}"\n' if ca_file else "") + delivery + reports)).start()

    def tls_reports(self, server, domains, timeout=20):
        """{policy domain: the JSON report (RFC 8460 §4.4)} from the reports delivered to
        demo@localhost, once every domain of `domains` has had one."""
        deadline = time.monotonic() + timeout
        while True:
            reports = {}
            for raw in server.delivered():
                message = email.message_from_bytes(raw)
                if message.get_content_type() != "multipart/report":
                    continue
                self.assertEqual(message.get_param("report-type"), "tlsrpt")
                domain = message["TLS-Report-Domain"]
                self.assertEqual(message["TLS-Report-Submitter"], "localhost")
                self.assertIn(f"Report Domain: {domain} Submitter: localhost Report-ID: <",
                              message["Subject"])
                (part,) = [p for p in message.walk()
                           if p.get_content_type() == "application/tlsrpt+gzip"]
                self.assertRegex(part.get_filename(),
                                 rf"^localhost!{re.escape(domain)}!\d+!\d+!\S+\.json\.gz$")
                reports.setdefault(domain, []).append(
                    json.loads(gzip.decompress(part.get_payload(decode=True))))
            if set(domains) <= set(reports) or time.monotonic() > deadline:
                return reports
            time.sleep(0.2)

    def tls_policy(self, server, domain):
        return subprocess.run([SMTPSCTL, "tls", "policy", "--config", server.config_path,
                               domain], capture_output=True, text=True, check=True,
                              timeout=60).stdout

    def test_tlsa_records_authenticate_and_a_mismatch_or_bogus_answer_defers(self):
        remote = self.receiver()
        # The https: report address: a web server whose certificate the sender's CA file
        # (the receiver's CA, which DANE does not need) trusts.
        posted = ReportCollector(*issue_leaf(os.path.join(self.tmp, "reports"), remote.ca,
                                             os.path.join(remote.dir, "tls", "ca.key"),
                                             ["reports.example"]))
        self.addCleanup(posted.stop)
        # sts.example's MTA-STS policy host, with a certificate from the same CA. (Imported
        # here: test_mta_sts imports this module, through test_tls_reports.)
        from test_mta_sts import PolicyHost
        policies = PolicyHost(*issue_leaf(os.path.join(self.tmp, "mta-sts"), remote.ca,
                                          os.path.join(remote.dir, "tls", "ca.key"),
                                          ["mta-sts.sts.example"]))
        self.addCleanup(policies.stop)
        policies.reply = (200, {"Content-Type": "text/plain"}, STS_POLICY)
        root = self.zone(remote, report_port=posted.port)
        local = self.sender(root, remote.ports["smtp"], ca_file=remote.ca, reports=(
            '\n[tls_reports]\norg_name = "Test Org"\nfrom = "tlsrpt@localhost"\n'
            'interval = 2\n\n[metrics]\naddress = "127.0.0.1:0"\n'),
            delivery=f"mta_sts_port = {policies.port}\n")
        for domain in DOMAINS + ("multi.example", "sts.example"):
            submit(local, [f"carol@{domain}"], subject=domain)
        remote.wait_delivered(1, "carol@ee.example")
        remote.wait_delivered(1, "carol@ta.example")
        local.wait_log(r"event=delivered id=\S+ rcpt=carol@ee\.example to=smtp detail=\"relay="
                       r"mx\.ee\.example\[127\.0\.0\.1\]:\d+ tls=TLSv1\.3 \S+ verified by DANE "
                       r"\(TLSA 3 1 1\) .*\" policy=dane")
        local.wait_log(r"event=delivered id=\S+ rcpt=carol@ta\.example to=smtp .*verified by "
                       r"DANE \(TLSA 2 0 1\) .*\" policy=dane")
        remote.wait_delivered(1, "carol@alias.example")
        local.wait_log(r"event=delivered id=\S+ rcpt=carol@alias\.example to=smtp .*verified by "
                       r"DANE \(TLSA 3 1 1\) .*\" policy=dane")
        local.wait_log(r"event=deferred id=\S+ rcpt=carol@wrong\.example detail=\"DANE "
                       r"authentication of mx\.wrong\.example\[127\.0\.0\.1\]:\d+ failed[^\"]*\" "
                       r"policy=dane")
        local.wait_log(r"event=deferred id=\S+ rcpt=carol@bogus\.example detail=\"mx\.bogus\."
                       r"example: TLSA lookup of _\d+\._tcp\.mx\.bogus\.example failed: DNSSEC "
                       r"bogus[^\"]*\(DANE: host not used\)\" policy=dane")
        self.assertIn("event=dane_failed", local.log())
        self.assertNotIn("event=dane_unavailable", local.log())
        # Nothing reached the receiver for those two, not even a connection for the bogus one.
        self.assertEqual(remote.delivered("carol@wrong.example"), [])
        self.assertEqual(remote.delivered("carol@bogus.example"), [])
        self.assertNotRegex(local.log(), r"mx\.bogus\.example\[")
        # Several MX hosts (RFC 7672 §2.1.1, §2.2): the one whose TLSA lookup is bogus and the
        # one whose certificate matches no record are skipped, each said; the next host,
        # which its records authenticate, gets the mail.
        remote.wait_delivered(1, "carol@multi.example")
        local.wait_log(r"event=dane_failed domain=multi\.example host=mx\.bogus\.example ")
        local.wait_log(r"event=tls_refused domain=multi\.example host=mx\.wrong\.example\["
                       r"127\.0\.0\.1\]:\d+ stage=tls-policy .* detail=\"DANE authentication of "
                       r"mx\.wrong\.example\[127\.0\.0\.1\]:\d+ failed")
        local.wait_log(r"event=delivered id=\S+ rcpt=carol@multi\.example to=smtp detail=\"relay="
                       r"mx\.ee\.example\[127\.0\.0\.1\]:\d+ tls=TLSv1\.3 \S+ verified by DANE "
                       r"\(TLSA 3 1 1\) .*\" policy=dane")
        # An insecure zone (delegated without DS) with an MTA-STS enforce policy: its TLSA
        # record, which matches nothing, is not DNSSEC-secure and so not used (RFC 7672
        # §2.2); the policy is (RFC 8461 §2), with a certificate valid for the MX name.
        remote.wait_delivered(1, "carol@sts.example")
        local.wait_log(r"event=delivered id=\S+ rcpt=carol@sts\.example to=smtp detail=\"relay="
                       r"mx\.sts\.example\[127\.0\.0\.1\]:\d+ tls=TLSv1\.3 \S+ verified "
                       r"(?!by DANE).*\" policy=mta-sts")
        self.assertEqual(policies.requests, 1)
        self.assertNotRegex(local.log(), r"event=dane_failed [^\n]*sts\.example")

        # Sessions counted by the policy that decided them and their result.
        host, port = re.search(r"event=metrics_listening address=(\S+) port=(\d+)",
                               local.log()).groups()
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as reply:
            metrics = reply.read().decode()
        # (multi.example's three hosts included: one of each.)
        for sample in ('smtpsd_outbound_tls_sessions_total{policy="dane",result="success"} 4',
                       'smtpsd_outbound_tls_sessions_total{policy="dane",'
                       'result="validation-failure"} 2',
                       'smtpsd_outbound_tls_sessions_total{policy="dane",'
                       'result="dnssec-invalid"} 2',
                       'smtpsd_outbound_tls_sessions_total{policy="mta-sts",result="success"} 1'):
            self.assertIn(sample, metrics)

        # What decides each domain's TLS, as the operator asks the running server.
        ee = self.tls_policy(local, "ee.example")
        self.assertIn("MX: 1 MX host for ee.example (DNSSEC: secure)", ee)
        self.assertIn("  TLS-RPT: reports to mailto:demo@localhost "
                      f"https://reports.example:{posted.port}/tlsrpt (DNSSEC: secure)\n", ee)
        self.assertIn("host mx.ee.example (preference 10): 127.0.0.1 (DNSSEC: secure)", ee)
        for record in self.ee_records:
            self.assertIn(f"      TLSA {record}\n", ee)
        self.assertIn("policy dane: STARTTLS required, the certificate must match", ee)
        self.assertIn("policy dane: this host is not used (the TLSA lookup failed)",
                      self.tls_policy(local, "bogus.example"))
        insecure = self.tls_policy(local, "sts.example")
        self.assertIn("MX: 1 MX host for sts.example (DNSSEC: insecure)", insecure)
        self.assertIn("policy mta-sts (enforce): named by the policy; STARTTLS and a "
                      "certificate valid for mx.sts.example required", insecure)
        self.assertNotIn("policy dane", insecure)
        bad = subprocess.run([SMTPSCTL, "tls", "policy", "--config", local.config_path,
                              "bad!domain"], capture_output=True, text=True)
        self.assertIn("is not a domain name", bad.stdout + bad.stderr)

        # SMTP TLS reports (RFC 8460) to the rua of each domain, checked field by field.
        reports = self.tls_reports(local, DOMAINS)
        self.assertEqual(sorted(reports), sorted(DOMAINS))
        for domain, found in reports.items():
            report = found[0]
            self.assertEqual(report["organization-name"], "Test Org")
            self.assertEqual(report["contact-info"], "tlsrpt@localhost")
            self.assertRegex(report["date-range"]["start-datetime"],
                             r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
            self.assertTrue(report["report-id"])
            (entry,) = report["policies"]
            policy = entry["policy"]
            base = "real.alias.example" if domain == "alias.example" else f"mx.{domain}"
            self.assertEqual((policy["policy-type"], policy["policy-domain"],
                              policy["mx-host"]), ("tlsa", domain, base))
            summary = entry["summary"]
            if domain in ("ee.example", "ta.example", "alias.example"):
                self.assertEqual(summary, {"total-successful-session-count": 1,
                                           "total-failure-session-count": 0})
                self.assertNotIn("failure-details", entry)
                continue
            self.assertEqual(summary["total-successful-session-count"], 0)
            self.assertEqual(summary["total-failure-session-count"], 1)
            (detail,) = entry["failure-details"]
            self.assertEqual(detail["failed-session-count"], 1)
            self.assertEqual(detail["receiving-mx-hostname"], f"mx.{domain}")
            if domain == "wrong.example":
                self.assertEqual(detail["result-type"], "validation-failure")
                self.assertEqual(detail["receiving-ip"], "127.0.0.1")
                self.assertEqual(policy["policy-string"], [f"3 1 1 {'00' * 32}"])
            else:
                self.assertEqual(detail["result-type"], "dnssec-invalid")
        # The policy-string of a TLSA policy: the records that applied (§4.3), as printed.
        self.assertEqual(sorted(reports["ee.example"][0]["policies"][0]["policy"]
                                ["policy-string"]), sorted(self.ee_records))
        local.wait_log(r"event=tls_report domain=wrong\.example to=demo@localhost,"
                       r"tlsrpt@wrong\.example sessions=1")
        # wrong.example's report also goes to its own address, whose MX host fails DANE: a
        # report is delivered despite the failures it reports (RFC 8460 §5.3), with
        # opportunistic TLS (DANE, MTA-STS, REQUIRETLS and the memory set aside).
        reported = email.message_from_bytes(remote.wait_delivered(1, "tlsrpt@wrong.example")[0])
        self.assertEqual(reported.get_content_type(), "multipart/report")
        self.assertEqual(reported["TLS-Report-Domain"], "wrong.example")
        local.wait_log(r"event=delivered id=\S+ rcpt=tlsrpt@wrong\.example to=smtp detail=\""
                       r"relay=mx\.wrong\.example\[127\.0\.0\.1\]:\d+ tls=TLSv1\.3 \S+ "
                       r"unverified .*\" policy=tls-required-no")
        # ee.example also asked for its reports by HTTPS POST (§5.4): the same JSON.
        local.wait_log(r"event=tls_report domain=ee\.example to=https://reports\.example:\d+/"
                       r"tlsrpt sessions=\d+ status=200")
        path, content_type, body = posted.requests[0]
        self.assertEqual((path, content_type), ("/tlsrpt", "application/tlsrpt+gzip"))
        report = json.loads(gzip.decompress(body))
        self.assertEqual(report["policies"][0]["policy"]["policy-domain"], "ee.example")
        self.assertEqual(report["organization-name"], "Test Org")

        # REQUIRETLS (RFC 8689) rides on DANE: a DNSSEC-secure MX, a verified hop that
        # offers it; and `TLS-Required: No` from our user gets past the broken DANE policy.
        with local.smtps() as client:
            client.login("demo@localhost", demo_password(local))
            client.sendmail("demo@localhost", ["carol@ee.example"],
                            make_message(subject="requiretls", sender="demo@localhost",
                                         to="carol@ee.example"),
                            mail_options=["REQUIRETLS"])
            client.sendmail("demo@localhost", ["carol@wrong.example"],
                            b"TLS-Required: No\r\n" + make_message(
                                subject="tls-required-no", sender="demo@localhost",
                                to="carol@wrong.example"))
        remote.wait_delivered(2, "carol@ee.example")
        local.wait_log(r"event=delivered id=\S+ rcpt=carol@ee\.example to=smtp requiretls=yes "
                       r".*verified by DANE .* policy=dane")
        self.assertTrue(any(b"Subject: tls-required-no" in m
                            for m in remote.wait_delivered(1, "carol@wrong.example")))
        local.wait_log(r"event=tls_required_no domain=wrong\.example ")
        local.wait_log(r"event=delivered id=\S+ rcpt=carol@wrong\.example .* "
                       r"policy=tls-required-no")
        # The connection that carried it is never reused for the domain's other mail: the
        # next message still meets DANE, and waits.
        offset = len(local.log())
        second = submit(local, ["carol@wrong.example"], subject="still dane")
        local.wait_log(rf"event=deferred id={second} rcpt=carol@wrong\.example detail=\"DANE "
                       r"authentication")
        self.assertNotIn("still dane", "".join(m.decode() for m in
                                               remote.delivered("carol@wrong.example")))
        self.assertNotRegex(local.log()[offset:], r"event=delivered id=\S+ rcpt=carol@wrong")

        # The operator's way out for a destination with a broken policy: an exception that
        # ends, logged and counted; the deferred message then goes (opportunistic TLS).
        def smtpsctl(*args):
            return subprocess.run([SMTPSCTL, *args, "--config", local.config_path],
                                  capture_output=True, text=True, timeout=30)
        self.assertEqual(smtpsctl("tls", "except", "wrong.example", "--hours", "721").returncode,
                         2)
        done = smtpsctl("tls", "except", "wrong.example", "--hours", "2")
        self.assertIn("goes with opportunistic TLS (no DANE, MTA-STS, table or memory) for "
                      "7200s", done.stdout)
        self.assertRegex(smtpsctl("tls", "exceptions").stdout, r"^wrong\.example 7\d{3}s left\n$")
        self.assertIn("EXCEPTION until", self.tls_policy(local, "wrong.example"))
        smtpsctl("queue", "flush")
        remote.wait_delivered(3, "carol@wrong.example")
        local.wait_log(r"level=warning event=tls_exception domain=wrong\.example until=\d+ ")
        local.wait_log(r"event=delivered id=\S+ rcpt=carol@wrong\.example .* unverified .*"
                       r" policy=exception")
        self.assertEqual(smtpsctl("tls", "except", "wrong.example", "--hours", "0").stdout,
                         "exception for wrong.example ended\n")
        self.assertEqual(smtpsctl("tls", "exceptions").stdout, "")

    def test_without_validation_dane_does_not_apply_and_the_start_says_so(self):
        remote = self.receiver()
        root = self.zone(remote)
        # No connection is reused: each message looks its MX hosts up again.
        local = self.sender(root, remote.ports["smtp"], validation="no",
                            delivery="connection_cache = 0\n")
        local.wait_log(r"level=warning event=dane_unavailable detail=")
        for domain in ("wrong.example", "alias.example", "plain.example"):
            submit(local, [f"carol@{domain}"], subject="opportunistic")
            remote.wait_delivered(1, f"carol@{domain}")
        line = local.wait_log(r"event=delivered id=\S+ rcpt=carol@wrong\.example .*").group(0)
        self.assertIn("unverified", line)
        self.assertTrue(re.search(r" policy=opportunistic$", line), line)
        # And per domain, once (not per message), for each whose MX host publishes TLSA
        # records: at the MX host, or at the end of its CNAME chain; not for plain.example.
        submit(local, ["carol@wrong.example"], subject="again")
        remote.wait_delivered(2, "carol@wrong.example")
        local.wait_log(r"event=delivered id=\S+ rcpt=carol@wrong\.example (.|\n)*"
                       r"event=delivered id=\S+ rcpt=carol@wrong\.example ")
        warnings = re.findall(r"level=warning event=dane_unavailable domain=(\S+) host=(\S+) "
                              r"detail=\"(_\d+\._tcp\.\S+) has TLSA records, but the DNS "
                              r"resolver does not validate DNSSEC: ", local.log())
        port = remote.ports["smtp"]
        self.assertEqual(sorted(warnings), [
            ("alias.example", "mx.alias.example", f"_{port}._tcp.real.alias.example"),
            ("wrong.example", "mx.wrong.example", f"_{port}._tcp.mx.wrong.example")])
        self.assertEqual(local.log().count("event=dane_unavailable"), 3)  # with the start's
        policy = self.tls_policy(local, "wrong.example")
        self.assertIn("DANE: not applied (the resolver does not validate DNSSEC)", policy)
        self.assertIn("learned: reached with encrypted TLS before", policy)
        self.assertIn("policy learned: level may, at least encrypted TLS", policy)


@needs.condition(available, "BIND (Debian bind9, bind9-utils) not installed")
@needs.condition(lambda: os.geteuid() == 0, "root (ip netns, a private Postfix) needed")
@needs.condition(lambda: os.access(POSTFIX, os.X_OK), "postfix not installed")
class PostfixVerifiesOurTlsa(ServerTestCase):
    """The records `smtpsctl dane tlsa` prints, checked by another implementation: Debian's
    Postfix as a DANE client (smtp_tls_security_level = dane) delivers to smtpsd with them
    and refuses a wrong one. Postfix trusts the AD bit of /etc/resolv.conf's server and sends
    to port 25, so all of it runs in a network namespace of the test's own: the signed root
    on a.root-servers.net's address, a validating resolver on 127.0.0.1:53, smtpsd on
    127.0.0.2:25."""

    def test_postfix_delivers_with_the_printed_record_and_refuses_a_wrong_one(self):
        namespace = NetworkNamespace(addresses=[ROOT_ADDRESS])
        self.addCleanup(namespace.close)
        receiver = self.new_server(
            domains=[("dane-in.example", ["carol"]), ("wrong-in.example", ["carol"])],
            listeners=[{"role": "smtp", "address": "127.0.0.2", "port": 25}])
        receiver.command_prefix = namespace.prefix()
        receiver.start()
        printed = subprocess.run([SMTPSCTL, "dane", "tlsa", "--config", receiver.config_path,
                                  "--host", "mx.dane-in.example"], capture_output=True,
                                 text=True, check=True).stdout
        records = [line.split(";")[0].replace(" IN TLSA ", " TLSA ").strip()
                   for line in printed.splitlines() if line and not line.startswith(";")]
        records += ["_25._tcp.mx.wrong-in.example. TLSA 3 1 1 " + "00" * 32]
        for domain in ("dane-in.example", "wrong-in.example"):
            records += [f"{domain}. MX 10 mx.{domain}.", f"mx.{domain}. A 127.0.0.2"]
        root = SignedRoot(records, listen=(ROOT_ADDRESS,), port=53, namespace=namespace)
        self.addCleanup(root.stop)
        resolver = ValidatingResolver(root.trust_anchor, namespace)
        self.addCleanup(resolver.stop)
        tls = os.path.join(receiver.dir, "tls")
        postfix = Postfix(self.tmp, os.path.join(tls, "server-ecdsa.pem"),
                          os.path.join(tls, "server-ecdsa.key"), starttls=False,
                          hostname="sender.test",  # not the receiver's: no mail loop
                          command_prefix=namespace.prefix(), main_cf_extra=[
                              "mydestination =",
                              "default_transport = smtp", "relay_transport = smtp",
                              "smtp_tls_security_level = dane",
                              "smtp_dns_support_level = dnssec", "smtp_tls_loglevel = 1",
                              "smtp_host_lookup = dns"])
        self.addCleanup(postfix.stop)
        postfix.start()
        # Without a listening service, start() cannot see the master ready: its log can.
        deadline = time.monotonic() + 60
        while "daemon started" not in postfix.log():
            if postfix.process.poll() is not None or time.monotonic() > deadline:
                self.fail("the Postfix master did not start (exit "
                          f"{postfix.process.poll()}): {postfix.master_errors()}")
            time.sleep(0.1)
        for domain in ("dane-in.example", "wrong-in.example"):
            subprocess.run(["/usr/sbin/sendmail", "-C", postfix.config_dir, "-f",
                            "sender@localhost", f"carol@{domain}"],
                           input=f"Subject: to {domain}\n\nHello.\n".encode(), check=True)
        receiver.wait_delivered(1, "carol@dane-in.example", timeout=60)
        # The copy is in the mailbox before the 250 goes: Postfix logs the delivery later.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
                "status=deferred" in postfix.log()
                and re.search(r"to=<carol@dane-in\.example>.*status=sent", postfix.log())):
            time.sleep(0.1)
        log = postfix.log()
        self.assertRegex(log, r"Verified TLS connection established to "
                              r"mx\.dane-in\.example\[127\.0\.0\.2\]:25")
        self.assertRegex(log, r"to=<carol@dane-in\.example>.*status=sent")
        self.assertRegex(log, r"to=<carol@wrong-in\.example>.*status=deferred .*"
                              r"[Cc]ertificate")
        self.assertEqual(receiver.delivered("carol@wrong-in.example"), [])
