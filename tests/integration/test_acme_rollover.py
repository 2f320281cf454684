"""smtpsctl cert rollover: the key of an ACME certificate changes, staged so that DANE keeps
working. What an administrator sees against Pebble: the next key's TLSA record in the log and
from `smtpsctl dane tlsa --next`; without a DNSSEC-signed TLSA record for the name (this
test's DNS has none) the key changes at the next round; `--force` changes it at once. Each
time the served certificate is Pebble's, for exactly the key printed, and the other key type
is left alone. The wait for the record at every authoritative nameserver is unit-tested
(tests/unit/acme/renewal_test.cpp, RenewalTest.AKeyRollover*).
"""

import hashlib
import os
import re
import subprocess
import time

import needs
from dns_server import DnsServer
from harness import ServerTestCase
from pebble import Pebble, free_tcp_port
from test_acme import NAME, SMTPSCTL, issuer_of, public_key_digest, served_certificate


def key_digest(path):
    """The TLSA 3 1 1 data of a private key file (SHA-256 of its public key's DER)."""
    der = subprocess.run(["openssl", "pkey", "-in", path, "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    return hashlib.sha256(der).hexdigest()


@needs.tools("pebble", "dnsmasq", "openssl")
class AcmeRolloverTest(ServerTestCase):
    def ctl(self, server, *args):
        return subprocess.run([SMTPSCTL, *args, "--config", server.config_path],
                              capture_output=True, text=True, timeout=20)

    def test_a_rollover_waits_for_the_dns_prints_the_record_and_force_serves_that_key(self):
        # The TLSA owner's queries go to a server that never answers: the rollover cannot
        # tell whether the record is published, so the key stays until --force.
        owner = f"_25._tcp.{NAME}"
        http_port = free_tcp_port()
        with DnsServer(a={NAME: "127.0.0.1"},
                       extra_args=[f"--server=/{owner}/127.0.0.1#9"]) as dns, \
                Pebble(os.path.join(self.tmp, "pebble"), dns.server, http_port) as ca:
            server = self.new_server(
                listeners=[{"role": "submissions"}],
                tls={"watch_interval": "100ms"},
                extra_toml=(f'[dns]\nservers = "{dns.server}"\nvalidation = "no"\n'
                            f'timeout = 1\n\n'
                            f'[acme]\ndirectory = "{ca.directory}"\nnames = ["{NAME}"]\n'
                            f'http_address = "127.0.0.1"\nhttp_port = {http_port}\n'
                            f'ca_file = "{ca.ca_file}"\nretry_wait = "200ms"\n'))
            server.start()
            port = server.ports["submissions"]
            server.wait_log(r"event=acme_renewed key=ecdsa ", timeout=30)
            server.wait_log(r"event=acme_renewed key=rsa ", timeout=30)
            acme_dir = os.path.join(self.tmp, "acme")
            ecdsa_key = key_digest(os.path.join(acme_dir, "ecdsa.key"))
            rsa_key = open(os.path.join(acme_dir, "rsa.key")).read()

            # Nothing staged yet; bad words refused before they reach the server.
            nothing = self.ctl(server, "dane", "tlsa", "--next")
            self.assertEqual(nothing.returncode, 1)
            self.assertIn("no next key is staged: smtpsctl cert rollover stages one",
                          nothing.stderr)
            self.assertEqual(self.ctl(server, "cert", "rollover", "--key", "dsa").returncode, 2)

            started = self.ctl(server, "cert", "rollover", "--key", "ecdsa")
            self.assertEqual(started.returncode, 0, started.stderr)
            self.assertIn("publish the next key's TLSA record", started.stdout)
            staged = server.wait_log(r'level=warning event=acme_key_staged key=ecdsa '
                                     r'tlsa="3 1 1 ([0-9a-f]{64})"').group(1)
            self.assertNotEqual(staged, ecdsa_key)
            server.wait_log(rf'event=acme_key_rollover key=ecdsa step=waiting '
                            rf'detail="{re.escape(owner)} TLSA: temporary')
            # The record to publish beside the current one, for the MX name.
            printed = self.ctl(server, "dane", "tlsa", "--next")
            self.assertEqual(printed.returncode, 0, printed.stderr)
            self.assertRegex(printed.stdout, rf"{re.escape(owner)}\. IN TLSA 3 1 1 {staged}  ; "
                             rf"\S+/acme/ecdsa\.next\.key")
            status = self.ctl(server, "cert", "status").stdout
            self.assertRegex(status, rf'ecdsa: .*next_key="3 1 1 {staged}" rollover="waiting: ')
            # Still the old key in service.
            self.assertEqual(public_key_digest(served_certificate(port, ecdsa=True)), ecdsa_key)
            self.assertEqual(key_digest(os.path.join(acme_dir, "ecdsa.key")), ecdsa_key)

            # --force: the staged key, at once, with a certificate from the CA.
            forced = self.ctl(server, "cert", "rollover", "--key", "ecdsa", "--force")
            self.assertEqual(forced.returncode, 0, forced.stderr)
            self.assertIn("forced", forced.stdout)
            server.wait_log(r"event=acme_key_rollover key=ecdsa step=switching reason=forced")
            server.wait_log(r"level=warning event=acme_key_rollover key=ecdsa step=switched "
                            rf'tlsa="3 1 1 {staged}"')
            self.assertEqual(key_digest(os.path.join(acme_dir, "ecdsa.key")), staged)
            self.assertFalse(os.path.exists(os.path.join(acme_dir, "ecdsa.next.key")))
            self.assertFalse(os.path.exists(os.path.join(acme_dir, "ecdsa.next.crt")))
            served = self.wait_served(port, staged)
            self.assertIn("Pebble", issuer_of(served))
            self.assertEqual(open(os.path.join(acme_dir, "rsa.key")).read(), rsa_key)
            self.assertNotIn("acme_failed", server.log())
            status = self.ctl(server, "cert", "status").stdout
            self.assertNotIn("next_key=", status)
            self.assertEqual(self.ctl(server, "dane", "tlsa", "--next").returncode, 1)

    def wait_served(self, port, digest):
        """The ECDSA leaf served once its key is the one with this digest (the reload settles
        the key and the chain together within its 100 ms watch)."""
        deadline = time.monotonic() + 10
        served = served_certificate(port, ecdsa=True)
        while public_key_digest(served) != digest and time.monotonic() < deadline:
            time.sleep(0.05)
            served = served_certificate(port, ecdsa=True)
        self.assertEqual(public_key_digest(served), digest)
        return served
