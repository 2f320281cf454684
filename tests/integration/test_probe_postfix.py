"""smtpsctl probe against a real Postfix (Debian package) on loopback (postfix.py here).

Well configured: TLS 1.2 and 1.3 only, AUTH only after STARTTLS, no anonymous ciphers
(`smtpd_tls_exclude_ciphers = aNULL`: Postfix's smtpd accepts them by default, and the probe
fails a server that does), a certificate for "localhost" from a test CA (--cafile): every
finding passes.
Deliberately weak: TLS 1.0 allowed (with OpenSSL security level 0 so that it really is
negotiated), AUTH offered before STARTTLS, a certificate that expires in 5 days: the probe
reports each weakness and fails.

The test CA and the "localhost" certificate are smtpsd's development PKI
(`smtpsd dev --init-only`, through the harness); Postfix only reads them.
"""

import json
import os
import unittest

from harness import ServerTestCase
from postfix import POSTFIX
from test_probe import finding_of, findings
from test_probe import probe as probe_with_default_timeout
from testssl_fixtures import assert_covers_testssl
import needs
import weak_targets


def probe(*args):
    """A Postfix smtpd forked while the heaviest tests run in parallel can take over the
    probe's default 10 s to greet (seen once in a clean-clone run): 30 s here."""
    return probe_with_default_timeout(*args, "--timeout", "30")


@needs.condition(lambda: os.access(POSTFIX, os.X_OK) and os.geteuid() == 0,
                 "needs the postfix package (scripts/install-deps.sh) and root")
class ProbePostfix(ServerTestCase):
    def test_well_configured_postfix_passes(self):
        tls, ca = weak_targets.development_pki(self)
        postfix = weak_targets.start_postfix(self, cert=os.path.join(tls, "server-ecdsa.pem"),
                                             key=os.path.join(tls, "server-ecdsa.key"),
                                             smtps=True, submission=True, protocols=">=TLSv1.2",
                                             exclude_ciphers="aNULL")
        for service, mode in (("submission", "starttls"), ("smtps", "implicit")):
            with self.subTest(service=service):
                result = probe(f"localhost:{postfix.ports[service]}", "--cafile", ca, "--json")
                self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
                report = json.loads(result.stdout)
                self.assertEqual(report["verdict"], "PASS")
                port = report["ports"][0]
                self.assertEqual(port["mode"], mode)
                versions = port["versions"]
                self.assertFalse(versions["TLSv1"]["accepted"])
                self.assertFalse(versions["TLSv1.1"]["accepted"])
                self.assertTrue(versions["TLSv1.2"]["accepted"])
                self.assertTrue(versions["TLSv1.3"]["accepted"])
                self.assertEqual(port["auth_before_tls"], [])
                checks = findings(report)
                for check in ("tls_TLSv1", "tls_TLSv1.1", "tls_TLSv1.2", "tls_TLSv1.3",
                              "certificate_expiry", "certificate_name", "certificate_chain"):
                    self.assertEqual(checks[check][0][0], "PASS", (check, checks[check]))
                self.assertNotIn("cipher", checks)  # no anonymous, broken or non-PFS cipher
                self.assertNotIn("FAIL", [s for found in checks.values() for s, _ in found])
                self.assertNotIn("WARN", [s for found in checks.values() for s, _ in found])
                if mode == "starttls":
                    self.assertIs(port["starttls_injection_vulnerable"], False)
                    self.assertEqual(checks["auth_before_tls"][0][0], "PASS")
                    # AUTH is offered once TLS is up (smtpd_tls_auth_only = yes).
                    self.assertTrue(any(e.startswith("AUTH")
                                        for e in port["extensions_after_tls"]),
                                    port["extensions_after_tls"])
                    self.assertFalse(any(e.startswith("AUTH")
                                         for e in port["extensions_before_tls"]))

    def test_weak_postfix_fails_on_each_weakness(self):
        target = weak_targets.weak_postfix(self)
        result = probe(f"localhost:{target.port}", *target.probe_args, "--json")
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        report = json.loads(result.stdout)
        self.assertEqual(report["verdict"], "FAIL")
        port = report["ports"][0]
        checks = findings(report)
        # TLS 1.0 (and 1.1, which Postfix allows with ">=TLSv1") is accepted.
        self.assertTrue(port["versions"]["TLSv1"]["accepted"], port["versions"]["TLSv1"])
        self.assertTrue(port["versions"]["TLSv1.1"]["accepted"], port["versions"]["TLSv1.1"])
        self.assertEqual(checks["tls_TLSv1"][0][0], "FAIL")
        self.assertIn("TLS 1.0 accepted", checks["tls_TLSv1"][0][1])
        self.assertEqual(checks["tls_TLSv1.1"][0][0], "FAIL")
        # AUTH offered in clear, before STARTTLS.
        self.assertEqual(port["auth_before_tls"], ["PLAIN", "LOGIN"])
        self.assertEqual(checks["auth_before_tls"][0][0], "FAIL")
        self.assertIn("before TLS", checks["auth_before_tls"][0][1])
        # The client's order decides the suite (tls_preempt_cipherlist = no), among weak
        # ones (TLS 1.0, CBC, no forward secrecy): LOW. Downgrade protection is there all the
        # same (OpenSSL honours TLS_FALLBACK_SCSV).
        self.assertEqual(checks["cipher_order"][0][0], "WARN")
        self.assertEqual(finding_of(report, "cipher_order")["level"], "LOW")
        self.assertIn("follows the client's order", checks["cipher_order"][0][1])
        self.assertIn("accepts weak suites", checks["cipher_order"][0][1])
        self.assertEqual(checks["tls_fallback_scsv"][0][0], "PASS")
        # The certificate expires in 5 days.
        self.assertEqual(port["certificate"]["days_left"], 5)
        self.assertEqual(checks["certificate_expiry"][0][0], "WARN")
        self.assertIn("expires in 5 days", checks["certificate_expiry"][0][1])
        # What is fine stays fine: chain, name, no STARTTLS injection (Postfix fixed it).
        self.assertEqual(checks["certificate_chain"][0][0], "PASS")
        self.assertEqual(checks["certificate_name"][0][0], "PASS")
        self.assertIs(port["starttls_injection_vulnerable"], False)
        # Whatever testssl.sh rated MEDIUM or worse on this server, the probe reports.
        assert_covers_testssl(self, report, target.name)

        text = probe(f"localhost:{target.port}", *target.probe_args)
        self.assertEqual(text.returncode, 2, text.stdout + text.stderr)
        self.assertIn("FAIL TLS 1.0 accepted", text.stdout)
        self.assertIn("FAIL AUTH PLAIN LOGIN offered before TLS", text.stdout)
        self.assertIn("WARN certificate expires in 5 days", text.stdout)
        self.assertIn("verdict: FAIL", text.stdout)

    def test_null_only_tls12_is_found_whatever_the_local_openssl_offers(self):
        # TLS 1.2 with nothing but NULL suites (no encryption at all): a probe limited to what
        # the local OpenSSL can offer saw "TLS 1.2 refused" and passed this server. The
        # hand-built ClientHello offers every registry code and finds each NULL suite.
        target = weak_targets.null_only_postfix(self)
        result = probe(f"localhost:{target.port}", *target.probe_args, "--json")
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        report = json.loads(result.stdout)
        self.assertEqual(report["verdict"], "FAIL")
        port = report["ports"][0]
        tls12 = port["versions"]["TLSv1.2"]
        self.assertTrue(tls12["accepted"], tls12)
        self.assertTrue(tls12["ciphers"])
        self.assertTrue(all("NULL" in cipher for cipher in tls12["ciphers"]), tls12["ciphers"])
        self.assertFalse(port["versions"]["SSLv3"]["accepted"])
        checks = findings(report)
        self.assertEqual({severity for severity, _ in checks["cipher"]}, {"FAIL"})
        self.assertTrue(all("NULL encryption" in text for _, text in checks["cipher"]),
                        checks["cipher"])
        self.assertEqual(checks["tls_SSLv3"][0][0], "PASS")
        assert_covers_testssl(self, report, target.name)


if __name__ == "__main__":
    unittest.main()
