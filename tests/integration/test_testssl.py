"""testssl.sh (Debian's package) against the implicit TLS and STARTTLS ports.

The server is given certificates shaped like a public CA's (90 days, a CRL distribution
point, serverAuth only), signed by the test CA that testssl.sh is told to trust, so that
what testssl.sh rates is the server's own TLS setup: protocols, ciphers, forward secrecy,
cipher preference, certificate handling and the known vulnerabilities. Any finding rated
MEDIUM or worse fails the test, and the message lists each one.
"""

import json
import os
import shutil
import subprocess
import unittest

from certificates import install_chain, issue_leaf
from harness import ServerTestCase
import needs

TESTSSL = shutil.which("testssl") or shutil.which("testssl.sh")
BAD = {"MEDIUM", "HIGH", "CRITICAL"}


def issue_public_like_certificates(server):
    """Replaces the dev leaf certificates with 90-day ones that carry a CRL URI."""
    tls = os.path.join(server.dir, "tls")
    for kind, key_type in (("ecdsa", "ec"), ("rsa", "rsa")):
        cert, key = issue_leaf(
            os.path.join(tls, "public-like-" + kind), server.ca, os.path.join(tls, "ca.key"),
            ["localhost", "IP:127.0.0.1"], key_type=key_type, start=0, end=90 * 86400,
            extensions={"basicConstraints": "critical, CA:FALSE",
                        "keyUsage": "critical, digitalSignature",
                        "crlDistributionPoints": "URI:http://crl.invalid/test-ca.crl",
                        "authorityKeyIdentifier": "keyid",
                        "subjectKeyIdentifier": "hash"})
        install_chain(cert, server.ca, os.path.join(tls, f"server-{kind}.pem"))
        os.replace(key, os.path.join(tls, f"server-{kind}.key"))
        os.chmod(os.path.join(tls, f"server-{kind}.key"), 0o600)


@needs.condition(lambda: TESTSSL, "testssl.sh is not installed (scripts/install-deps.sh)")
class TestsslScan(ServerTestCase):
    def scan(self, port, starttls):
        # testssl.sh opens hundreds of connections a minute from one address.
        server = self.new_server(limits={"max_connections_per_minute_per_ip": 0})
        issue_public_like_certificates(server)
        with server:
            report = os.path.join(server.dir, "testssl.json")
            # --nodns none: no DNS query leaves the machine; no --phone-out either, so
            # testssl.sh never fetches the CRL it is shown.
            args = [TESTSSL, "--quiet", "--color", "0", "--warnings", "off", "--nodns", "none",
                    "--add-ca", server.ca, "-p", "-s", "-f", "-P", "-S", "-U",
                    "--jsonfile", report]
            if starttls:
                args += ["-t", "smtp"]
            args.append(f"127.0.0.1:{server.ports[port]}")
            run = subprocess.run(args, capture_output=True, timeout=600)
            output = run.stdout.decode(errors="replace")
            self.assertTrue(os.path.exists(report), f"testssl.sh wrote no report:\n{output}")
            with open(report) as f:
                findings = json.load(f)
        # Findings that show the scan really ran: the protocols were tested one by one.
        ids = {finding["id"] for finding in findings}
        for expected in ("SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3", "PFS", "heartbleed"):
            self.assertIn(expected, ids, f"testssl.sh did not report {expected}:\n{output}")
        by_id = {finding["id"]: finding for finding in findings}
        self.assertEqual(by_id["TLS1"]["finding"], "not offered")
        self.assertEqual(by_id["TLS1_3"]["finding"], "offered with final")
        bad = [f"{f['severity']} {f['id']}: {f['finding']}" for f in findings
               if f["severity"] in BAD]
        self.assertEqual(bad, [], "testssl.sh findings rated MEDIUM or worse")

    def test_implicit_tls_port_has_no_medium_or_worse_finding(self):
        self.scan("submissions", starttls=False)

    def test_starttls_port_has_no_medium_or_worse_finding(self):
        self.scan("smtp", starttls=True)


if __name__ == "__main__":
    unittest.main()
