"""The resolver's DNSSEC modes against a signed zone of the test's own (signed_zone.py: a
root zone signed by dnssec-signzone, served by BIND's named), as an administrator meets
them through `smtpsctl dkim check` (which asks DNS as the server does) and the server's
start-up line:

- forward with validation: a signed record is "secure", a record changed after signing is
  refused as bogus (never used): the server does not believe a forged SPF "+all";
- forward without validation: the changed record is believed (what validation prevents);
- validation "auto" whose trust anchor does not match the zone's key: no validation, said;
- recursive, in a network namespace where the root server's address is this zone's server:
  the built-in root hints lead to it, and answers validate with its trust anchor.
"""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

import needs
from harness import SMTPSD, ServerTestCase, make_message
from signed_zone import NetworkNamespace, SignedRoot, available, root_server_addresses

SMTPSCTL = os.environ.get("SMTPSCTL_BIN") or os.path.join(os.path.dirname(SMTPSD), "smtpsctl")
DEBIAN_ROOT_ANCHOR = "/usr/share/dns/root.key"

needs_bind = needs.condition(available, "BIND (Debian bind9, bind9-utils) not installed")


def zone_lines(output):
    """The zone-file lines `smtpsctl dkim keygen` printed, with their parentheses joined."""
    return [line for line in output.splitlines() if line and not line.startswith(";")]


@needs_bind
class SignedZoneCase(unittest.TestCase):
    """Keys for good.example (published as made) and bad.example (published, then changed after
    signing to a key of an attacker's), in a signed zone served on loopback."""

    @classmethod
    def setUpClass(cls):
        if not available():
            return
        cls.dir = tempfile.mkdtemp(prefix="smtpsd-dnssec-")
        records = []
        for domain in ("good.example", "bad.example", "attacker.example"):
            made = subprocess.run([SMTPSCTL, "dkim", "keygen", domain, "--selector", "s1",
                                   "--algorithm", "ed25519", "--directory", cls.dir],
                                  capture_output=True, text=True, check=True)
            records += [line.replace(" IN TXT ", " TXT ") for line in zone_lines(made.stdout)]
        attacker = [line for line in records if line.startswith("s1._domainkey.attacker.")]
        cls.forged = attacker[0].split(" TXT ", 1)[1]
        cls.records = [line for line in records if "attacker" not in line] + [
            # SPF of two senders; forged.example's is changed after signing to let anyone send.
            'signed.example. TXT "v=spf1 ip4:127.0.0.1 -all"',
            'forged.example. TXT "v=spf1 ip4:192.0.2.1 -all"']

    @classmethod
    def tearDownClass(cls):
        if hasattr(cls, "dir"):
            shutil.rmtree(cls.dir, ignore_errors=True)

    def signed_root(self, **kwargs):
        root = SignedRoot(self.records, bogus={"s1._domainkey.bad.example.": self.forged,
                                               "forged.example.": '"v=spf1 +all"'}, **kwargs)
        self.addCleanup(root.stop)
        return root

    def config(self, dns_table):
        path = os.path.join(self.dir, f"smtpsd-{self.id().rsplit('.', 1)[-1]}.toml")
        with open(path, "w") as out:
            # What the configuration needs to load; only [dns] and the keys are used here.
            out.write(f'[server]\nhostname = "mx.good.example"\ndata_dir = "{self.dir}/data"\n'
                      '[[listeners]]\naddress = "127.0.0.1"\nport = 25\nrole = "smtp"\n'
                      '[[tls.certificates]]\ncertificate = "unused.pem"\nkey = "unused.key"\n')
            out.write(dns_table)
            for domain in ("good.example", "bad.example"):
                key = os.path.join(self.dir, domain, "s1.ed25519.key")
                out.write(f'\n[[domains]]\nname = "{domain}"\n'
                          f'dkim = [{{ selector = "s1", key = "{key}" }}]\n')
        return path

    def dkim_check(self, domain, config, namespace=None):
        prefix = namespace.prefix() if namespace else []
        return subprocess.run(prefix + [SMTPSCTL, "dkim", "check", domain, "--config", config],
                              capture_output=True, text=True, timeout=60)


class ValidatingForward(SignedZoneCase):
    def test_signed_records_are_secure_and_a_changed_one_is_refused(self):
        root = self.signed_root()
        config = self.config(f'[dns]\nservers = "{root.server}"\nvalidation = "yes"\n'
                             f'trust_anchor = "{root.trust_anchor}"\n')
        good = self.dkim_check("good.example", config)
        self.assertEqual(good.returncode, 0, good.stdout + good.stderr)
        self.assertIn(f"DNS: forward to {root.server}, validating (trust anchor "
                      f"{root.trust_anchor})", good.stdout)
        self.assertIn("s1._domainkey.good.example: OK (ed25519-sha256, 256 bits, DNSSEC: secure)",
                      good.stdout)
        bad = self.dkim_check("bad.example", config)
        self.assertEqual(bad.returncode, 1, bad.stdout + bad.stderr)
        self.assertRegex(bad.stdout, r"s1\._domainkey\.bad\.example: NOT CHECKED: DNSSEC bogus: "
                                     r"validation failure")

    def test_without_validation_the_changed_record_is_believed(self):
        root = self.signed_root()
        config = self.config(f'[dns]\nservers = "{root.server}"\nvalidation = "no"\n')
        bad = self.dkim_check("bad.example", config)
        self.assertEqual(bad.returncode, 1, bad.stdout + bad.stderr)
        self.assertIn(f"DNS: forward to {root.server}, not validating", bad.stdout)
        self.assertIn("s1._domainkey.bad.example: DIFFERENT", bad.stdout)
        good = self.dkim_check("good.example", config)
        self.assertIn("s1._domainkey.good.example: OK (ed25519-sha256, 256 bits)\n", good.stdout)

    def test_auto_without_a_matching_trust_anchor_does_not_validate_and_says_so(self):
        root = self.signed_root()
        # Debian's real root key cannot validate this root: "auto" turns validation off.
        config = self.config(f'[dns]\nservers = "{root.server}"\nvalidation = "auto"\n'
                             f'trust_anchor = "{DEBIAN_ROOT_ANCHOR}"\n')
        bad = self.dkim_check("bad.example", config)
        self.assertIn(f"DNS: forward to {root.server}, not validating", bad.stdout)
        self.assertIn("event=dns_validation_unavailable", bad.stderr)
        self.assertIn("s1._domainkey.bad.example: DIFFERENT", bad.stdout)


class ValidatingServer(ServerTestCase, SignedZoneCase):
    def test_the_server_validates_and_a_forged_spf_record_is_not_believed(self):
        root = self.signed_root()
        server = self.new_server(extra_toml=f'[dns]\nservers = "{root.server}"\n'
                                            f'validation = "auto"\n'
                                            f'trust_anchor = "{root.trust_anchor}"\n'
                                            '[authenticity]\nauthserv_id = "mx.smtpsd.test"\n')
        with server:
            server.wait_log(r"event=dns mode=forward validating=yes detail=")
            for sender in ("a@signed.example", "a@forged.example"):
                with server.smtp() as client:
                    client.sendmail(sender, ["demo@localhost"], make_message(sender=sender))
            delivered = server.wait_delivered(2)
            results = {}
            for message in delivered:
                head = message.split(b"\r\n\r\n", 1)[0].decode()
                spf = re.search(r"spf=(\w+) (?:\([^)]*\) )?smtp\.mailfrom=a@([\w.]+)",
                                head.replace("\r\n\t", " "))
                self.assertIsNotNone(spf, head)
                results[spf.group(2)] = spf.group(1)
            # The forged "+all" would pass; it failed validation, so nothing is believed.
            self.assertEqual(results, {"signed.example": "pass", "forged.example": "temperror"})


@needs.condition(lambda: os.geteuid() == 0, "root (ip netns) needed")
class Recursive(SignedZoneCase):
    def test_recursion_from_the_root_hints_validates(self):
        # Every root server address is this zone's server: the resolver may start from any.
        addresses = root_server_addresses()
        with NetworkNamespace(addresses=addresses) as namespace:
            root = self.signed_root(listen=addresses, port=53, namespace=namespace)
            config = self.config(f'[dns]\nmode = "recursive"\nvalidation = "yes"\n'
                                 f'trust_anchor = "{root.trust_anchor}"\ntimeout = 10\n')
            good = self.dkim_check("good.example", config, namespace)
            self.assertEqual(good.returncode, 0, good.stdout + good.stderr + root.log())
            self.assertIn("DNS: recursive from the root hints, validating", good.stdout)
            self.assertIn("OK (ed25519-sha256, 256 bits, DNSSEC: secure)", good.stdout)
            bad = self.dkim_check("bad.example", config, namespace)
            self.assertRegex(bad.stdout, r"NOT CHECKED: DNSSEC bogus: validation failure")
            root.stop()


if __name__ == "__main__":
    unittest.main()
