"""`smtpsctl dkim keygen` with the real binary: the key files (where, mode 0600), the
refusal to overwrite, and that the zone-file line it prints is the record that verifies a
signature made with the key written (through the test tool build/tests/dkim_tool).

OpenDKIM (opendkim-testmsg, Debian opendkim-tools) verifies our RSA and Ed25519 signatures
against those records, published by a name server in a network namespace of the test's own
(OpenDKIM asks the resolvers of /etc/resolv.conf on port 53, and cannot be pointed elsewhere).
"""

import os
import re
import shutil
import stat
import subprocess
import tempfile
import unittest

import needs
from harness import SMTPSD
from signed_zone import NetworkNamespace, SignedRoot, available

SMTPSCTL = os.environ.get("SMTPSCTL_BIN") or os.path.join(os.path.dirname(SMTPSD), "smtpsctl")
DKIM_TOOL = os.environ.get("DKIM_TOOL") or os.path.join(os.path.dirname(SMTPSD), "tests",
                                                        "dkim_tool")
ZONE_LINE = re.compile(r'^(\S+)\. IN TXT \(((?: "(?:[^"\\]|\\.)*")+) \)$')
MESSAGE = (b"From: a@example.com\r\nTo: b@example.org\r\nSubject: keygen\r\n"
           b"Date: Sat, 5 Dec 2026 12:00:00 +0000\r\n\r\nbody\r\n")


def keygen(*args):
    return subprocess.run([SMTPSCTL, "dkim", "keygen"] + list(args), capture_output=True,
                          text=True)


class DkimKeygen(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="dkim-keygen-")
        self.addCleanup(shutil.rmtree, self.dir)

    def records_of(self, output):
        """{name: rdata} from the printed zone-file lines, each string at most 255 octets."""
        records = {}
        for line in output.splitlines():
            if line.startswith(";"):
                continue
            match = ZONE_LINE.match(line)
            self.assertIsNotNone(match, line)
            strings = re.findall(r'"((?:[^"\\]|\\.)*)"', match.group(2))
            for text in strings:
                self.assertLessEqual(len(text), 255)
            records[match.group(1)] = "".join(strings)
        return records

    def verify(self, key_path, domain, selector, records):
        signed = subprocess.run([DKIM_TOOL, "sign", key_path, domain, selector], input=MESSAGE,
                                capture_output=True, check=True).stdout
        record_file = os.path.join(self.dir, "records")
        with open(record_file, "w") as out:
            for name, text in records.items():
                out.write(f"{name} {text}\n")
        return subprocess.run([DKIM_TOOL, "verify", record_file], input=signed,
                              capture_output=True, check=True).stdout.decode()

    def test_both_keys_are_written_0600_and_their_records_verify(self):
        result = keygen("Example.COM", "--selector", "mail", "--directory", self.dir)
        self.assertEqual(result.returncode, 0, result.stderr)
        records = self.records_of(result.stdout)
        self.assertEqual(sorted(records), ["maile._domainkey.example.com",
                                           "mailr._domainkey.example.com"])
        self.assertTrue(records["mailr._domainkey.example.com"].startswith("v=DKIM1; k=rsa; p="))
        self.assertTrue(
            records["maile._domainkey.example.com"].startswith("v=DKIM1; k=ed25519; p="))
        # An RSA-2048 record is longer than one 255-octet string.
        self.assertIn('" "', result.stdout)
        for selector, algorithm in (("mailr", "rsa"), ("maile", "ed25519")):
            path = os.path.join(self.dir, "example.com", f"{selector}.{algorithm}.key")
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
            with open(path) as key:
                self.assertTrue(key.read().startswith("-----BEGIN PRIVATE KEY-----"))
            verdict = self.verify(path, "example.com", selector, records)
            self.assertTrue(verdict.startswith(f"pass d=example.com s={selector}"), verdict)
        # A record of the other key does not verify this one's signature.
        swapped = {"mailr._domainkey.example.com": records["maile._domainkey.example.com"]}
        verdict = self.verify(os.path.join(self.dir, "example.com", "mailr.rsa.key"),
                              "example.com", "mailr", swapped)
        self.assertFalse(verdict.startswith("pass"), verdict)

    def test_default_selectors_are_dated_and_one_algorithm_is_possible(self):
        result = keygen("example.org", "--algorithm", "ed25519", "--directory", self.dir)
        self.assertEqual(result.returncode, 0, result.stderr)
        (name,) = self.records_of(result.stdout)
        self.assertRegex(name, r"^20\d{4}e\._domainkey\.example\.org$")
        self.assertEqual(os.listdir(os.path.join(self.dir, "example.org")),
                         [name.split(".")[0] + ".ed25519.key"])

    def test_an_existing_key_is_never_overwritten(self):
        args = ("example.com", "--selector", "s1", "--directory", self.dir)
        self.assertEqual(keygen(*args, "--algorithm", "rsa").returncode, 0)
        path = os.path.join(self.dir, "example.com", "s1r.key")
        rsa_path = os.path.join(self.dir, "example.com", "s1.rsa.key")
        with open(rsa_path) as key:
            before = key.read()
        # The same single-key run again, and a "both" run that would write s1r / s1e: the
        # first is refused; the second writes other names and is allowed.
        again = keygen(*args, "--algorithm", "rsa")
        self.assertEqual(again.returncode, 1)
        self.assertIn("exists; nothing written", again.stderr)
        with open(rsa_path) as key:
            self.assertEqual(key.read(), before)
        self.assertFalse(os.path.exists(path))
        # When one of two files exists, neither is written.
        open(os.path.join(self.dir, "example.com", "s2e.ed25519.key"), "w").close()
        both = keygen("example.com", "--selector", "s2", "--directory", self.dir)
        self.assertEqual(both.returncode, 1)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "example.com", "s2r.rsa.key")))

    def test_usage_errors(self):
        self.assertEqual(keygen("example.com", "--algorithm", "dsa",
                                "--directory", self.dir).returncode, 2)
        self.assertEqual(keygen("--directory", self.dir).returncode, 2)
        bad = keygen("bad domain!", "--directory", self.dir)
        self.assertEqual(bad.returncode, 1)
        self.assertEqual(os.listdir(self.dir), [])


@needs.tools("opendkim-testmsg")
@needs.condition(available, "BIND (Debian bind9, bind9-utils) not installed")
@needs.condition(lambda: os.geteuid() == 0, "root (ip netns) needed")
class OpenDkimVerifies(unittest.TestCase):
    def test_our_rsa_and_ed25519_signatures_pass_and_changes_fail(self):
        directory = tempfile.mkdtemp(prefix="dkim-opendkim-")
        self.addCleanup(shutil.rmtree, directory)
        records = []
        for algorithm, selector in (("rsa", "r1"), ("ed25519", "e1")):
            made = keygen("example.org", "--selector", selector, "--algorithm", algorithm,
                          "--directory", directory)
            self.assertEqual(made.returncode, 0, made.stderr)
            records += [line.replace(" IN TXT ", " TXT ") for line in made.stdout.splitlines()
                        if line and not line.startswith(";")]
        with NetworkNamespace() as namespace:
            root = SignedRoot(records, port=53, namespace=namespace)
            self.addCleanup(root.stop)

            def opendkim(message):
                # It reads a message with LF line ends, as a milter hands it over.
                return namespace.run(["opendkim-testmsg"], input=message.replace(b"\r\n", b"\n"),
                                     check=False, timeout=30)

            for algorithm, selector in (("rsa", "r1"), ("ed25519", "e1")):
                key = os.path.join(directory, "example.org", f"{selector}.{algorithm}.key")
                signed = subprocess.run([DKIM_TOOL, "sign", key, "example.org", selector],
                                        input=MESSAGE, capture_output=True, check=True).stdout
                self.assertIn(f"s={selector};".encode(), signed)
                verdict = opendkim(signed)
                self.assertEqual(verdict.returncode, 0, verdict.stderr)
                for changed in (signed.replace(b"\r\nbody", b"\r\nbodY"),
                                signed.replace(b"Subject: keygen", b"Subject: keygeN")):
                    verdict = opendkim(changed)
                    self.assertNotEqual(verdict.returncode, 0, algorithm)
                    self.assertIn(b"Bad signature", verdict.stderr)
                # The key really comes from DNS: a selector nobody published is not found.
                verdict = opendkim(signed.replace(f"s={selector};".encode(), b"s=none;"))
                self.assertIn(b"Key retrieval failed", verdict.stderr)
            root.stop()


if __name__ == "__main__":
    unittest.main()
