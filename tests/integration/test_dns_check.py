"""`smtpsctl dns check DOMAIN` with the real binary, against a DNSSEC-signed zone of the test's
own (signed_zone.py, validated with its trust anchor; the MX hosts' addresses are in
198.18.0.0/24, which nothing connects to: the check only asks DNS) and an HTTPS server for the MTA-STS
policies (a certificate from the test's CA, [delivery] ca_file and mta_sts_port):

- good.example publishes everything right: MX, A, PTR, SPF, DKIM (the key `smtpsctl dkim
  keygen` made), DMARC, MTA-STS, TLS-RPT and the TLSA records of the served certificates:
  each line OK, exit 0;
- bad.example has each record wrong: the PTR names another host, SPF fails the host's
  address, the DKIM record is another key, two DMARC records, an MTA-STS policy that does not
  name the MX host, a broken TLS-RPT record, a TLSA record of another key: each WRONG with
  its fix, exit 1;
- bare.example publishes only its MX: each record MISSING with the exact record to publish.
"""

import os
import re
import subprocess

import needs
from harness import ServerTestCase
from certificates import issue_leaf
from signed_zone import SignedRoot, available
from test_mta_sts import PolicyHost
from test_onward import SMTPSCTL

GOOD_POLICY = b"version: STSv1\r\nmode: enforce\r\nmx: mx.good.example\r\nmax_age: 86400\r\n"
BAD_POLICY = b"version: STSv1\r\nmode: enforce\r\nmx: mx.elsewhere.example\r\nmax_age: 86400\r\n"


@needs.condition(available, "BIND (Debian bind9, bind9-utils) not installed")
class DnsCheck(ServerTestCase):
    def keygen(self, domain, selector):
        made = subprocess.run([SMTPSCTL, "dkim", "keygen", domain, "--selector", selector,
                               "--algorithm", "ed25519", "--directory",
                               os.path.join(self.tmp, "dkim")],
                              capture_output=True, text=True, check=True).stdout
        (line,) = [line for line in made.splitlines() if "._domainkey." in line]
        key = os.path.join(self.tmp, "dkim", domain, f"{selector}.ed25519.key")
        return line, key

    def check(self, server, domain, host):
        return subprocess.run([SMTPSCTL, "dns", "check", domain, "--config", server.config_path,
                               "--host", host, "--timeout", "10"],
                              capture_output=True, text=True, timeout=120)

    def test_right_wrong_and_missing_records_each_get_their_verdict_and_fix(self):
        good_dkim, good_key = self.keygen("good.example", "s1")
        other_dkim, _ = self.keygen("other.example", "s1")
        _, bad_key = self.keygen("bad.example", "s1")
        server = self.new_server(domains=[
            ("good.example", ["carol"], {"dkim": [{"selector": "s1", "key": good_key}]}),
            ("bad.example", ["carol"], {"dkim": [{"selector": "s1", "key": bad_key}]}),
            ("bare.example", ["carol"])])
        server.write_config()
        tlsa = subprocess.run([SMTPSCTL, "dane", "tlsa", "--config", server.config_path,
                               "--host", "mx.good.example"],
                              capture_output=True, text=True, check=True).stdout
        good_tlsa = [line.split(";")[0].strip() for line in tlsa.splitlines()
                     if line and not line.startswith(";")]
        self.assertEqual(len(good_tlsa), 2, tlsa)  # the ECDSA and the RSA certificate

        certificate, key = issue_leaf(os.path.join(self.tmp, "sts"), server.ca,
                                      os.path.join(server.dir, "tls", "ca.key"),
                                      ["mta-sts.good.example", "mta-sts.bad.example"])
        policies = PolicyHost(certificate, key)
        self.addCleanup(policies.stop)
        policies.replies = {
            "mta-sts.good.example": (200, {"Content-Type": "text/plain"}, GOOD_POLICY),
            "mta-sts.bad.example": (200, {"Content-Type": "text/plain"}, BAD_POLICY)}

        records = [
            "good.example. MX 10 mx.good.example.",
            "mx.good.example. A 198.18.0.1",
            "1.0.18.198.in-addr.arpa. PTR mx.good.example.",
            'good.example. TXT "v=spf1 ip4:198.18.0.0/24 -all"',
            good_dkim,
            '_dmarc.good.example. TXT "v=DMARC1; p=reject; rua=mailto:dmarc@good.example"',
            '_mta-sts.good.example. TXT "v=STSv1; id=20261205"',
            "mta-sts.good.example. A 127.0.0.1",
            '_smtp._tls.good.example. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@good.example"',
            *good_tlsa,

            "bad.example. MX 10 mx.bad.example.",
            "mx.bad.example. A 198.18.0.2",
            "2.0.18.198.in-addr.arpa. PTR someone-else.example.",
            'bad.example. TXT "v=spf1 ip4:192.0.2.1 -all"',
            other_dkim.replace("other.example", "bad.example"),
            '_dmarc.bad.example. TXT "v=DMARC1; p=reject"',
            '_dmarc.bad.example. TXT "v=DMARC1; p=none"',
            '_mta-sts.bad.example. TXT "v=STSv1; id=1"',
            "mta-sts.bad.example. A 127.0.0.1",
            '_smtp._tls.bad.example. TXT "v=TLSRPTv1; rua="',
            f"_25._tcp.mx.bad.example. TLSA 3 1 1 {'00' * 32}",

            "bare.example. MX 10 mx.bare.example.",
            "mx.bare.example. A 198.18.0.3",
        ]
        root = SignedRoot(records)
        self.addCleanup(root.stop)
        server.extra_toml = (f'[dns]\nservers = "{root.server}"\nvalidation = "yes"\n'
                             f'trust_anchor = "{root.trust_anchor}"\n\n'
                             f'[delivery]\nca_file = "{server.ca}"\n'
                             f"mta_sts_port = {policies.port}\n")
        server.write_config()

        good = self.check(server, "good.example", "mx.good.example")
        self.assertEqual(good.returncode, 0, good.stdout + good.stderr)
        for line in ("MX good.example: OK mx.good.example (preference 10); DNSSEC: secure",
                     "A/AAAA mx.good.example: OK 198.18.0.1",
                     "PTR 198.18.0.1: OK mx.good.example",
                     'SPF good.example: OK "v=spf1 ip4:198.18.0.0/24 -all" passes 198.18.0.1; '
                     "DNSSEC: secure",
                     "DMARC _dmarc.good.example: OK p=reject, reports to "
                     "mailto:dmarc@good.example; DNSSEC: secure",
                     "MTA-STS good.example: OK mode enforce, mx mx.good.example, id 20261205, "
                     "max_age 86400",
                     "TLS-RPT _smtp._tls.good.example: OK reports to mailto:tlsrpt@good.example; "
                     "DNSSEC: secure",
                     "TLSA _25._tcp.mx.good.example: OK 3 1 1, 3 1 1 cover every served "
                     "certificate; DNSSEC: secure",
                     "good.example: every record is right"):
            self.assertIn(line + "\n", good.stdout)
        self.assertRegex(good.stdout, r"DKIM s1\._domainkey\.good\.example: OK \(ed25519")
        self.assertNotRegex(good.stdout, r"(WRONG|MISSING|NOT CHECKED)")

        bad = self.check(server, "bad.example", "mx.bad.example")
        self.assertEqual(bad.returncode, 1, bad.stdout + bad.stderr)
        out = bad.stdout
        self.assertIn("MX bad.example: OK mx.bad.example (preference 10); DNSSEC: secure\n", out)
        self.assertIn("PTR 198.18.0.2: WRONG someone-else.example, not mx.bad.example (the HELO "
                      "name)\n  fix: ask whoever holds 198.18.0.2 (the hosting provider) to set "
                      "its PTR record to mx.bad.example\n", out)
        self.assertIn("SPF bad.example: WRONG 198.18.0.2 gets fail\n  fix: add ip4:198.18.0.2 (or "
                      'mx) before the final all of "v=spf1 ip4:192.0.2.1 -all"\n', out)
        self.assertRegex(out, r"DKIM s1\._domainkey\.bad\.example: DIFFERENT: the published key "
                              r"is not the one in \S+; publish:\n  s1\._domainkey\.bad\.example\.")
        self.assertIn("DMARC _dmarc.bad.example: WRONG 2 v=DMARC1 records: receivers apply none "
                      "(RFC 7489 §6.6.3)\n", out)
        self.assertIn("MTA-STS bad.example: WRONG mode enforce, mx mx.elsewhere.example, id 1, "
                      "max_age 86400: the policy does not name the MX host(s) mx.bad.example",
                      out)
        self.assertIn("TLS-RPT _smtp._tls.bad.example: WRONG \"v=TLSRPTv1; rua=\" is not a valid "
                      "TLSRPTv1 record\n  fix: _smtp._tls.bad.example. IN TXT \"v=TLSRPTv1; "
                      "rua=mailto:tlsrpt@bad.example\"\n", out)
        self.assertRegex(out, r"TLSA _25\._tcp\.mx\.bad\.example: WRONG no record matches the key "
                              r"of \S+server-ecdsa\.pem \S+server-rsa\.pem: senders using DANE "
                              r"defer mail when the server presents it\n"
                              r"  fix: _25\._tcp\.mx\.bad\.example\. IN TLSA 3 1 1 [0-9a-f]{64}")
        self.assertRegex(out, r"bad\.example: 7 record\(s\) to fix\n$")

        bare = self.check(server, "bare.example", "mx.bare.example")
        self.assertEqual(bare.returncode, 1, bare.stdout + bare.stderr)
        out = bare.stdout
        for line in (
                "PTR 198.18.0.3: MISSING no PTR record: many receivers refuse mail from such an "
                "address",
                'SPF bare.example: MISSING no v=spf1 TXT record\n'
                '  fix: bare.example. IN TXT "v=spf1 mx -all"',
                "DKIM bare.example: MISSING no DKIM key for bare.example in the configuration: "
                "its mail is not signed\n  fix: smtpsctl dkim keygen bare.example",
                'DMARC _dmarc.bare.example: MISSING no v=DMARC1 TXT record\n'
                '  fix: _dmarc.bare.example. IN TXT "v=DMARC1; p=quarantine; '
                'rua=mailto:postmaster@bare.example"',
                "MTA-STS bare.example: MISSING",
                "  fix: smtpsctl mta-sts policy bare.example --mode enforce --mx mx.bare.example",
                "TLS-RPT _smtp._tls.bare.example: MISSING no TLSRPTv1 record at "
                "_smtp._tls.bare.example\n"
                '  fix: _smtp._tls.bare.example. IN TXT "v=TLSRPTv1; '
                'rua=mailto:tlsrpt@bare.example"',
                "TLSA _25._tcp.mx.bare.example: MISSING"):
            self.assertIn(line, out)
        self.assertEqual(len(re.findall(r"^  fix: _25\._tcp\.mx\.bare\.example\. IN TLSA 3 1 1 ",
                                        out, re.M)), 2, out)

        usage = subprocess.run([SMTPSCTL, "dns", "check", "bad domain!", "--config",
                                server.config_path], capture_output=True, text=True)
        self.assertEqual(usage.returncode, 1)
        self.assertIn('"bad domain!" is not a domain name', usage.stderr)


if __name__ == "__main__":
    import unittest
    unittest.main()
