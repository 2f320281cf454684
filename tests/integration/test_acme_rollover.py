"""smtpsctl cert rollover: the key of an ACME certificate changes, staged so that DANE keeps
working. What an administrator sees against Pebble: the next key's TLSA record in the log and
from `smtpsctl dane tlsa --next`; without a DNSSEC-signed TLSA record for the name (this
test's DNS has none) the key changes at the next round; `--force` changes it at once. Each
time the served certificate is Pebble's, for exactly the key printed, and the other key type
is left alone. Then the wait itself, against real DNSSEC: in a network namespace of the
test's own, a signed root zone (BIND, on a.root-servers.net's address and port 53) publishes
the TLSA record; the key does not change until the next key's record is in it, served by the
authoritative server and validated by smtpsd's resolver, and twice the TTL has passed.
"""

import hashlib
import os
import re
import subprocess
import time

import needs
import signed_zone
from dns_server import DnsServer
from harness import ServerTestCase
from signed_zone import ROOT_ADDRESS, NetworkNamespace, SignedRoot
from pebble import Pebble
from ports import free_port
from test_acme import (NAME, SMTPSCTL, acme_server, issuer_of, public_key_digest,
                       served_certificate)


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
        http_port = free_port()
        with DnsServer(a={NAME: "127.0.0.1"},
                       extra_args=[f"--server=/{owner}/127.0.0.1#9"]) as dns, \
                Pebble(os.path.join(self.tmp, "pebble"), dns.server, http_port) as ca:
            server = acme_server(self, ca.directory, ca.ca_file, http_port,
                                 extra='retry_wait = "200ms"\n',
                                 tables=(f'[dns]\nservers = "{dns.server}"\n'
                                         'validation = "no"\ntimeout = 1\n'))
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

    def test_next_records_without_acme_are_a_clear_error(self):
        server = self.new_server()  # [[tls.certificates]] of its own: nothing rolls over
        server.write_config()
        printed = self.ctl(server, "dane", "tlsa", "--next")
        self.assertEqual(printed.returncode, 1, printed.stdout + printed.stderr)
        self.assertIn("[acme] is off: only ACME keys roll over", printed.stderr)
        self.assertEqual(printed.stdout, "")

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


@needs.condition(lambda: os.geteuid() == 0, "root (ip netns) needed")
@needs.condition(signed_zone.available, "BIND's named and dnssec tools needed")
class AcmeRolloverDnssecTest(ServerTestCase):
    def test_the_key_changes_only_after_the_signed_record_is_served_for_two_ttls(self):
        name = "mx.roll.example"
        owner = f"_25._tcp.{name}."
        namespace = NetworkNamespace(addresses=[ROOT_ADDRESS])
        self.addCleanup(namespace.close)
        current = [f"{owner} 2 TLSA 3 1 1 {'00' * 32}", f"{name}. A 127.0.0.1"]
        root = SignedRoot(current, listen=(ROOT_ADDRESS,), port=53, namespace=namespace)
        self.addCleanup(root.stop)
        # The CA is unreachable: what is seen is the decision, up to the order for the new key.
        server = self.new_server(
            listeners=[{"role": "submissions"}],
            extra_toml=(f'[dns]\nservers = "{ROOT_ADDRESS}:53"\nvalidation = "yes"\n'
                        f'trust_anchor = "{root.trust_anchor}"\n\n'
                        f'[acme]\ndirectory = "https://127.0.0.1:1/directory"\n'
                        f'names = ["{name}"]\nhttp_address = "127.0.0.1"\n'
                        f'http_port = {free_port()}\nretry_wait = "200ms"\n'))
        server.command_prefix = namespace.prefix()
        server.start()
        started = subprocess.run([SMTPSCTL, "cert", "rollover", "--key", "ecdsa", "--config",
                                  server.config_path], capture_output=True, text=True, timeout=20)
        self.assertEqual(started.returncode, 0, started.stderr)
        staged = server.wait_log(r'event=acme_key_staged key=ecdsa '
                                 r'tlsa="3 1 1 ([0-9a-f]{64})"').group(1)
        server.wait_log(rf'event=acme_key_rollover key=ecdsa step=waiting '
                        rf'detail="{re.escape(owner[:-1])} TLSA: the next key\'s record is not '
                        rf'published yet \(resolver\)"')
        # Published beside the current record, signed: validated, then asked at the server.
        root.republish(current + [f"{owner} 2 TLSA 3 1 1 {staged}"])
        published = time.monotonic()
        visible = server.wait_log(r"event=acme_key_rollover key=ecdsa step=visible "
                                  r"ttl=(\d+) switch_at=", timeout=30)
        ttl = int(visible.group(1))
        self.assertGreaterEqual(ttl, 2)
        self.assertNotIn("step=switching", server.log())
        server.wait_log(r'event=acme_key_rollover key=ecdsa step=switching reason="the record '
                        r'has been visible for twice its TTL"', timeout=30)
        waited = time.monotonic() - published
        print(f"\nrollover: visible with ttl {ttl}, switched {waited:.1f} s after publishing")
        self.assertGreaterEqual(waited, 2 * ttl)
        server.wait_log(r"event=acme_order key=ecdsa names=mx\.roll\.example "
                        r"key_file=\S+/acme/ecdsa\.next\.key")
        # The CA did not answer: the staged key waits for the next attempt; nothing changed.
        self.assertTrue(os.path.exists(os.path.join(self.tmp, "acme", "ecdsa.next.key")))
        self.assertIn("BEGIN", open(os.path.join(self.tmp, "acme", "ecdsa.key")).read())
        self.assertNotEqual(key_digest(os.path.join(self.tmp, "acme", "ecdsa.key")), staged)
