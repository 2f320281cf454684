"""arc_oracle_test.py — mailauth's ARC verifier (RFC 8617 §5.2) checked against dkimpy.

dkimpy (Debian python3-dkim with python3-authres; run by /usr/bin/python3) seals a message
with dkim.arc_sign, as a mailing list would, once and then twice (a second hop); our
verifier (dkim_tool arc-verify) must say pass and name the latest sealer, and fail once the
body or a sealed header changes; dkim.arc_verify agrees on each. The tool is $DKIM_TOOL
(CTest sets it).
"""

import os
import shutil
import subprocess
import tempfile
import unittest

try:
    import authres  # noqa: F401  (dkimpy's arc_sign reads Authentication-Results with it)
    import dkim
except ImportError:  # pragma: no cover
    dkim = None

TOOL = os.environ.get("DKIM_TOOL", "")

MESSAGE = (
    b"From: Alice Example <alice@example.com>\r\n"
    b"To: list@lists.example.org\r\n"
    b"Subject: [list] a test\r\n"
    b"\tof folding  and   spaces  \r\n"
    b"Date: Sat, 5 Dec 2026 12:00:00 +0000\r\n"
    b"Message-ID: <arc-oracle-1@example.com>\r\n"
    b"\r\n"
    b"Hello list,  \r\n"
    b"\r\n"
    b"  a line\twith   tabs \t\r\n"
    b"\r\n"
)


def run(args, stdin=b""):
    return subprocess.run(args, input=stdin, capture_output=True, check=True).stdout


def setUpModule():
    # A skip would hide a test that never ran: in CI (the CI variable, as .ci/run sets) a
    # missing oracle fails (scripts/install-deps.sh installs it).
    if dkim is None:
        if os.environ.get("CI"):
            raise AssertionError("python3-dkim / python3-authres not installed for this python: CI must run every test")
        raise unittest.SkipTest("python3-dkim / python3-authres not installed for this python")


class ArcOracle(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="arc-oracle-")
        cls.records = {}
        cls.keys = {}
        for domain in ("lists.example.org", "forwarder.example.net"):
            pem = os.path.join(cls.dir, domain + ".pem")
            run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                 "rsa_keygen_bits:2048", "-out", pem])
            cls.keys[domain] = run(["openssl", "pkey", "-in", pem, "-traditional"])
            cls.records["arc._domainkey." + domain] = run([TOOL, "record", pem]).strip()
        cls.records_file = os.path.join(cls.dir, "records")
        with open(cls.records_file, "wb") as out:
            for name, rdata in cls.records.items():
                out.write(name.encode() + b" " + rdata + b"\n")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def dnsfunc(self, name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        return self.records.get(name.rstrip("."))

    def seal(self, message, domain, results):
        """One hop: the hop's own Authentication-Results (what it verified), then its set."""
        srv_id = domain.encode()
        with_results = b"Authentication-Results: " + srv_id + b"; " + results + b"\r\n" + message
        fields = dkim.arc_sign(with_results, b"arc", srv_id, self.keys[domain], srv_id,
                               include_headers=[b"from", b"to", b"subject", b"date",
                                                b"message-id"])
        self.assertEqual(len(fields), 3, "dkimpy did not seal")
        return b"".join(fields) + message

    def ours(self, message):
        return run([TOOL, "arc-verify", self.records_file], message).decode().split(" ", 3)

    def theirs(self, message):
        return dkim.arc_verify(message, dnsfunc=self.dnsfunc)[0]

    def one_hop(self):
        return self.seal(MESSAGE, "lists.example.org", b"dkim=fail header.d=example.com")

    def two_hops(self):
        return self.seal(self.one_hop(), "forwarder.example.net", b"arc=pass")

    def test_one_hop_passes(self):
        sealed = self.one_hop()
        self.assertEqual(self.theirs(sealed), dkim.CV_Pass)
        self.assertEqual(self.ours(sealed)[:3],
                         ["pass", "instances=1", "sealer=lists.example.org"])

    def test_two_hops_pass(self):
        sealed = self.two_hops()
        self.assertEqual(self.theirs(sealed), dkim.CV_Pass)
        self.assertEqual(self.ours(sealed)[:3],
                         ["pass", "instances=2", "sealer=forwarder.example.net"])

    def test_changed_body_fails(self):
        for sealed in (self.one_hop(), self.two_hops()):
            changed = sealed.replace(b"Hello list", b"Hello all ")
            self.assertEqual(self.theirs(changed), dkim.CV_Fail)
            result = self.ours(changed)
            self.assertEqual(result[0], "fail")
            self.assertIn("body hash did not verify", result[3])

    def test_changed_seal_input_fails(self):
        sealed = self.two_hops()
        # The first hop's ARC-Authentication-Results is covered by both seals only.
        changed = sealed.replace(b"dkim=fail header.d=example.com", b"dkim=pass header.d=example.com")
        self.assertNotEqual(changed, sealed)
        self.assertEqual(self.theirs(changed), dkim.CV_Fail)
        result = self.ours(changed)
        self.assertEqual(result[0], "fail")
        self.assertIn("ARC-Seal 2: signature did not verify", result[3])


if __name__ == "__main__":
    unittest.main()
