"""badNonce from a real CA (RFC 8555 §6.5): Pebble rejects a fifth of the nonces it is sent
(PEBBLE_WFE_NONCEREJECT=20), and smtpsd retries each rejected request with the nonce the error
carries, so issuance never fails for it. The scripted CA of the unit tests covers the rest
(a CA that rejects every nonce: given up after five retries)."""

import os
import subprocess

import needs
from dns_server import DnsServer
from harness import ServerTestCase
from pebble import Pebble
from ports import free_port
from test_acme import NAME, SMTPSCTL, acme_server, issuer_of, served_certificate, wait_count


@needs.tools("pebble", "dnsmasq", "openssl")
class AcmeBadNonceTest(ServerTestCase):
    def test_rejected_nonces_are_retried_and_issuance_succeeds(self):
        http_port = free_port()
        with DnsServer(a={NAME: "127.0.0.1"}) as dns, \
                Pebble(os.path.join(self.tmp, "pebble"), dns.server, http_port,
                       nonce_reject=20) as ca:
            server = acme_server(self, ca.directory, ca.ca_file, http_port,
                                 extra='retry_wait = "1h"\n')
            server.start()
            wait_count(server, r"event=acme_renewed key=(ecdsa|rsa) ", 2)
            if "event=acme_bad_nonce" not in server.log():
                # About 30 requests so far: none rejected happens once in a thousand runs.
                # A second round makes that a million.
                renewed = subprocess.run([SMTPSCTL, "cert", "renew", "--config",
                                          server.config_path], capture_output=True, text=True,
                                         timeout=20)
                self.assertEqual(renewed.returncode, 0, renewed.stderr)
                wait_count(server, r"event=acme_renewed key=(ecdsa|rsa) ", 4)
            log = server.log()
            self.assertRegex(log, r"event=acme_bad_nonce step=\S+ attempt=[1-5]\b")
            self.assertNotIn("event=acme_failed", log)
            # Pebble says the same: it rejected some.
            self.assertRegex(open(ca.log_path).read(), r"(?i)nonce")
            server.wait_log(r"event=tls_reloaded file=\S+/acme/rsa\.crt", timeout=10)
            self.assertIn("Pebble", issuer_of(served_certificate(server.ports["submissions"],
                                                                 ecdsa=True)))
