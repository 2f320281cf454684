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

from harness import ServerTestCase

TESTSSL = shutil.which("testssl") or shutil.which("testssl.sh")
BAD = {"MEDIUM", "HIGH", "CRITICAL"}


def issue_public_like_certificates(server):
    """Replaces the dev leaf certificates with 90-day ones that carry a CRL URI."""
    tls = os.path.join(server.dir, "tls")
    ext = os.path.join(tls, "public-like.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints = critical, CA:FALSE\n"
                "keyUsage = critical, digitalSignature\n"
                "extendedKeyUsage = serverAuth\n"
                "subjectAltName = DNS:localhost, IP:127.0.0.1\n"
                "crlDistributionPoints = URI:http://crl.invalid/test-ca.crl\n"
                "authorityKeyIdentifier = keyid\n"
                "subjectKeyIdentifier = hash\n")
    for kind, newkey in (("ecdsa", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]),
                         ("rsa", ["-newkey", "rsa:2048"])):
        key = os.path.join(tls, f"server-{kind}.key")
        csr = os.path.join(tls, f"server-{kind}.csr")
        leaf = os.path.join(tls, f"server-{kind}.leaf")
        subprocess.run(["openssl", "req", "-new", *newkey, "-nodes", "-subj", "/CN=localhost",
                        "-keyout", key, "-out", csr], check=True, capture_output=True)
        subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", server.ca,
                        "-CAkey", os.path.join(tls, "ca.key"), "-CAcreateserial",
                        "-days", "90", "-sha256", "-extfile", ext, "-out", leaf],
                       check=True, capture_output=True)
        with open(os.path.join(tls, f"server-{kind}.pem"), "wb") as out:
            for part in (leaf, server.ca):
                with open(part, "rb") as f:
                    out.write(f.read())
        os.chmod(key, 0o600)


@unittest.skipUnless(TESTSSL, "testssl.sh is not installed (scripts/install-deps.sh)")
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
