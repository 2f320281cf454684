"""`smtpsctl probe --domain DOMAIN` with the real binary: the MX hosts are looked up in a
DNSSEC-signed zone of the test's own (signed_zone.py, validated with its trust anchor through
--dns-server and --trust-anchor), each probed on the smtpsd's ephemeral port (--port), and the
domain's MTA-STS policy fetched from a private HTTPS server (--mta-sts-port, --cafile).

- good.example publishes everything right: TLSA "3 1 1" records of both served keys, an
  enforce policy naming its MX host, a TLS-RPT record: PASS, exit 0;
- wrong.example has two MX hosts: one whose TLSA record matches no served key, one whose
  TLSA answer is bogus (changed after signing); a policy naming neither; no TLS-RPT: each
  reported (HIGH, HIGH, HIGH, LOW), FAIL, exit 2;
- testing.example (an MTA-STS policy in testing mode, a malformed TLS-RPT record),
  none.example (mode none) and insecure.example (an unsigned zone delegated from the signed
  root: MX and TLSA not DNSSEC-secure; an MTA-STS record whose policy cannot be fetched):
  each weakness LOW or MEDIUM, WARN, exit 1;
- a null MX, no MX, no such domain, and names that are not domains: a clear error, exit 3;
  MX hosts without an address, or one that does not answer: INCONCLUSIVE, exit 4.
"""

import json
import os
import subprocess

import needs
from certificates import install_chain, issue_leaf
from harness import ServerTestCase
from signed_zone import SignedRoot, available
from test_mta_sts import PolicyHost
from test_probe import SMTPSCTL, probe

GOOD_POLICY = b"version: STSv1\r\nmode: enforce\r\nmx: mx.good.example\r\nmax_age: 86400\r\n"
WRONG_POLICY = b"version: STSv1\r\nmode: enforce\r\nmx: mx.elsewhere.example\r\nmax_age: 86400\r\n"
TESTING_POLICY = b"version: STSv1\r\nmode: testing\r\nmx: mx.good.example\r\nmax_age: 86400\r\n"
NONE_POLICY = b"version: STSv1\r\nmode: none\r\nmax_age: 86400\r\n"


def by_check(findings):
    out = {}
    for finding in findings:
        out.setdefault(finding["check"], []).append((finding["level"], finding["text"]))
    return out


@needs.condition(available, "BIND (Debian bind9, bind9-utils) not installed")
class ProbeDomain(ServerTestCase):
    def serve_domains(self):
        # Three full scans of one port: more than the default 120 connections a minute.
        server = self.new_server(limits={"max_connections_per_minute_per_ip": 0})
        tls = os.path.join(server.dir, "tls")
        names = ["localhost", "mx.good.example", "mx.wrong.example", "mx.bogus.example",
                 "mx.insecure.example", "mta-sts.good.example", "mta-sts.wrong.example",
                 "mta-sts.testing.example", "mta-sts.none.example", "mta-sts.insecure.example"]
        # The same keys, certified for the MX names too (by the test's CA).
        for kind, key_type in (("ecdsa", "ec"), ("rsa", "rsa")):
            key = os.path.join(tls, f"server-{kind}.key")
            certificate, _ = issue_leaf(os.path.join(self.tmp, kind), server.ca,
                                        os.path.join(tls, "ca.key"), names, key_type=key_type,
                                        key=key)
            install_chain(certificate, server.ca, os.path.join(tls, f"server-{kind}.pem"))
            if kind == "ecdsa":
                policies = PolicyHost(certificate, key)
                self.addCleanup(policies.stop)
        policies.replies = {
            "mta-sts.good.example": (200, {"Content-Type": "text/plain"}, GOOD_POLICY),
            "mta-sts.wrong.example": (200, {"Content-Type": "text/plain"}, WRONG_POLICY),
            "mta-sts.testing.example": (200, {"Content-Type": "text/plain"}, TESTING_POLICY),
            "mta-sts.none.example": (200, {"Content-Type": "text/plain"}, NONE_POLICY),
            "mta-sts.insecure.example": (404, {"Content-Type": "text/plain"}, b"not here\n")}
        self.server = server.start()
        self.policies = policies
        port = server.ports["smtp"]
        printed = subprocess.run([SMTPSCTL, "dane", "tlsa", "--config", server.config_path,
                                  "--host", "mx.good.example", "--port", str(port)],
                                 capture_output=True, text=True, check=True).stdout
        tlsa = [line.split(";")[0].replace(" IN TLSA ", " TLSA ").strip()
                for line in printed.splitlines() if line and not line.startswith(";")]
        self.assertEqual(len(tlsa), 2, printed)  # the ECDSA and the RSA key
        good = tlsa[0].split(" TLSA ", 1)[1]
        records = [
            "good.example. MX 10 mx.good.example.",
            "mx.good.example. A 127.0.0.1",
            *tlsa,
            '_mta-sts.good.example. TXT "v=STSv1; id=20261206"',
            "mta-sts.good.example. A 127.0.0.1",
            '_smtp._tls.good.example. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@good.example"',

            "wrong.example. MX 10 mx.wrong.example.",
            "wrong.example. MX 20 mx.bogus.example.",
            "mx.wrong.example. A 127.0.0.1",
            "mx.bogus.example. A 127.0.0.1",
            f"_{port}._tcp.mx.wrong.example. TLSA 3 1 1 {'00' * 32}",
            f"_{port}._tcp.mx.bogus.example. TLSA 3 1 1 {'11' * 32}",
            '_mta-sts.wrong.example. TXT "v=STSv1; id=1"',
            "mta-sts.wrong.example. A 127.0.0.1",

            "testing.example. MX 10 mx.good.example.",
            '_mta-sts.testing.example. TXT "v=STSv1; id=2"',
            "mta-sts.testing.example. A 127.0.0.1",
            '_smtp._tls.testing.example. TXT "v=TLSRPTv1 rua=mailto:tlsrpt@testing.example"',

            "none.example. MX 10 mx.good.example.",
            '_mta-sts.none.example. TXT "v=STSv1; id=3"',
            "mta-sts.none.example. A 127.0.0.1",
            '_smtp._tls.none.example. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@none.example"',
        ]
        # A zone delegated without DS: its answers are insecure, the records the same.
        insecure = [
            "insecure.example. MX 10 mx.insecure.example.",
            "mx.insecure.example. A 127.0.0.1",
            *(record.replace(".mx.good.example.", ".mx.insecure.example.") for record in tlsa),
            '_mta-sts.insecure.example. TXT "v=STSv1; id=4"',
            "mta-sts.insecure.example. A 127.0.0.1",
            '_smtp._tls.insecure.example. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@insecure.example"',
        ]
        # The bogus host's record is changed after signing to the one that would match.
        self.root = SignedRoot(records,
                               bogus={f"_{port}._tcp.mx.bogus.example.": ("TLSA", good)},
                               unsigned={"insecure.example.": insecure})
        self.addCleanup(self.root.stop)

    def probe_command(self, domain, *more):
        return [SMTPSCTL, "probe", "--domain", domain, "--port", str(self.server.ports["smtp"]),
                "--dns-server", self.root.server, "--trust-anchor", self.root.trust_anchor,
                "--cafile", self.server.ca, "--mta-sts-port", str(self.policies.port),
                "--timeout", "10", *more]

    def probe(self, domain, *more):
        return probe(*self.probe_command(domain, *more)[2:])

    def test_published_posture_right_and_wrong_each_mx_probed(self):
        self.serve_domains()
        good = self.probe("good.example", "--json")
        self.assertEqual(good.returncode, 0, good.stdout + good.stderr)
        report = json.loads(good.stdout)
        self.assertEqual(report["verdict"], "PASS")
        (mx,) = report["mx"]
        self.assertEqual((mx["host"], mx["preference"], mx["address"]),
                         ("mx.good.example", 10, "127.0.0.1"))
        (port,) = mx["ports"]
        self.assertEqual(port["mode"], "starttls")
        self.assertIs(port["certificate"]["name_matches"], True)
        checks = by_check(port["findings"])
        (dane,) = checks["dane_tlsa"]
        self.assertEqual(dane[0], "OK")
        self.assertIn("(3 1 1, 3 1 1): DNSSEC-secure, and they match every certificate served",
                      dane[1])
        records = by_check(report["records"])
        self.assertEqual(records["mx"][0][1], "MX good.example: 10 mx.good.example (DNSSEC-secure)")
        self.assertEqual(records["mta_sts"], [
            ("OK", "MTA-STS: mode enforce, mx mx.good.example, max_age 86400: names every MX "
                   "host, whose certificates verify")])
        self.assertEqual(records["tls_rpt"], [
            ("OK", "TLS-RPT _smtp._tls.good.example: reports to mailto:tlsrpt@good.example")])

        wrong = self.probe("wrong.example")
        self.assertEqual(wrong.returncode, 2, wrong.stdout + wrong.stderr)
        out = wrong.stdout
        self.assertIn("\nMX host mx.wrong.example (preference 10, address 127.0.0.1)\n", out)
        self.assertIn("\nMX host mx.bogus.example (preference 20, address 127.0.0.1)\n", out)
        self.assertRegex(out, r"FAIL TLSA _\d+\._tcp\.mx\.wrong\.example \(3 1 1\): DNSSEC-secure, "
                              r"but no record matches the EC certificate .* and the RSA "
                              r"certificate .*: senders using DANE do not deliver to this host\n")
        self.assertRegex(out, r"FAIL TLSA _\d+\._tcp\.mx\.bogus\.example: DNSSEC validation "
                              r"failed \(bogus")
        self.assertIn("FAIL MTA-STS: mode enforce, mx mx.elsewhere.example, max_age 86400: the "
                      "policy does not name the MX host(s) mx.wrong.example mx.bogus.example: "
                      "enforcing senders do not deliver there\n", out)
        self.assertIn("WARN TLS-RPT _smtp._tls.wrong.example: none", out)
        self.assertIn("\nverdict: FAIL (worst: HIGH)\n", out)

    def test_weaker_postures_warn(self):
        self.serve_domains()
        # Three domains at once: each probe scans the MX host's port in full.
        domains = ("testing.example", "none.example", "insecure.example")
        running = {domain: subprocess.Popen(self.probe_command(domain), stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True)
                   for domain in domains}
        results = {}
        for domain, process in running.items():
            stdout, stderr = process.communicate(timeout=120)
            results[domain] = (process.returncode, stdout, stderr)

        def seen(domain, severity, level, text):
            """The finding as the administrator reads it: severity, text, then its level."""
            code, out, err = results[domain]
            self.assertIn(f"    {severity} {text}\n         {level}", out, out + err)

        for domain in domains:
            code, out, err = results[domain]
            with self.subTest(domain=domain):
                self.assertEqual(code, 1, out + err)
                self.assertIn("\nverdict: WARN (worst: ", out)
        self.assertIn("verdict: WARN (worst: LOW)", results["testing.example"][1])
        seen("testing.example", "WARN", "LOW",
             "MTA-STS: mode testing, mx mx.good.example, max_age 86400: names every MX host; "
             "testing mode does not protect mail")
        seen("testing.example", "WARN", "LOW",
             'TLS-RPT _smtp._tls.testing.example: malformed: "v=TLSRPTv1 '
             'rua=mailto:tlsrpt@testing.example" is not a valid TLSRPTv1 record')

        self.assertIn("verdict: WARN (worst: LOW)", results["none.example"][1])
        seen("none.example", "WARN", "LOW",
             "MTA-STS: mode none, mx , max_age 86400: mode none withdraws the policy")

        out = results["insecure.example"][1]
        self.assertIn("verdict: WARN (worst: MEDIUM)", out)
        self.assertIn("    INFO MX insecure.example: 10 mx.insecure.example (not DNSSEC-signed)\n",
                      out)
        self.assertRegex(out, r"    WARN TLSA _\d+\._tcp\.mx\.insecure\.example \(3 1 1, 3 1 1\): "
                              r"not DNSSEC-signed, so DANE cannot be used \(RFC 7672 §2\.2\)\n"
                              r"         MEDIUM")
        self.assertRegex(out, r"    WARN MTA-STS: the _mta-sts\.insecure\.example record is published "
                              r"but the policy is not: sts-policy-fetch-error: "
                              r"https://mta-sts\.insecure\.example:\d+/\.well-known/mta-sts\.txt: "
                              r"HTTP 404\n         MEDIUM")

    def test_no_mx_and_unprobeable_mx_and_bad_names(self):
        root = SignedRoot(["gone.example. MX 10 mx.gone.example.",
                           'mx.gone.example. TXT "no address"',
                           "nullmx.example. MX 0 .",
                           "bare.example. A 127.0.0.1",
                           "dead.example. MX 10 mx.dead.example.",
                           "mx.dead.example. A 127.0.0.1"])
        self.addCleanup(root.stop)

        def probe_domain(domain):
            return probe("--domain", domain, "--port", "9", "--dns-server", root.server,
                         "--trust-anchor", root.trust_anchor, "--timeout", "10")

        null = probe_domain("nullmx.example")
        self.assertEqual(null.returncode, 3, null.stdout + null.stderr)
        self.assertIn("nullmx.example publishes a null MX (RFC 7505): it accepts no mail",
                      null.stderr)
        bare = probe_domain("bare.example")
        self.assertEqual(bare.returncode, 3, bare.stdout + bare.stderr)
        self.assertIn("bare.example has no MX record", bare.stderr)
        missing = probe_domain("missing.example")
        self.assertEqual(missing.returncode, 3, missing.stdout + missing.stderr)
        self.assertIn("missing.example: no MX host to probe", missing.stderr)

        # No MX host has an address: nothing could be probed, inconclusive.
        gone = probe_domain("gone.example")
        self.assertEqual(gone.returncode, 4, gone.stdout + gone.stderr)
        self.assertIn("gone.example: nothing probed: no address for any MX host of gone.example: "
                      "no A/AAAA record for mx.gone.example", gone.stderr)

        # An MX host that does not answer (nothing listens on port 9): inconclusive.
        dead = probe_domain("dead.example")
        self.assertEqual(dead.returncode, 4, dead.stdout + dead.stderr)
        self.assertIn("\nMX host mx.dead.example (preference 10)\n\nport 9: incomplete (", dead.stdout)
        self.assertIn("\nverdict: INCONCLUSIVE", dead.stdout)

        for name in ("127.0.0.1", "no_such..name", "localhost"):
            with self.subTest(name=name):
                bad = probe_domain(name)
                self.assertEqual(bad.returncode, 3, bad.stdout + bad.stderr)
                self.assertIn("is not a domain name", bad.stderr)
        both = probe("localhost", "--domain", "good.example")
        self.assertEqual(both.returncode, 3)
        self.assertIn("not both", both.stderr)
