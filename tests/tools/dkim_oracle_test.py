"""dkim_oracle_test.py — mailauth's DKIM checked against other implementations, both ways.

- dkimpy (Debian python3-dkim, with python3-nacl for Ed25519; run by /usr/bin/python3)
  signs, our verifier (dkim_tool verify) must say pass, and fail once the body changes;
- our signer (dkim_tool sign) signs, dkimpy's dkim.verify must accept, and refuse a change;
- OpenDKIM: opendkim-testmsg signs only with rsa-sha1, which our verifier must refuse
  (RFC 8301 §3.1): that is what is checked here. It verifies only against DNS on port 53,
  so it checks our signatures in tests/integration/test_dkim_keygen.py, in a network
  namespace with a name server of the test's own.
The tool is $DKIM_TOOL (CTest sets it).
"""

import base64
import os
import shutil
import subprocess
import tempfile
import time
import unittest

try:
    import dkim
    import nacl.signing  # noqa: F401  (dkimpy's Ed25519)
except ImportError:  # pragma: no cover
    dkim = None

TOOL = os.environ.get("DKIM_TOOL", "")
NOW = int(time.time())  # dkimpy signs with the real time in t=

MESSAGE = (
    b"From: Alice Example <alice@example.com>\r\n"
    b"To: bob@example.org,\r\n"
    b"  carol@example.org\r\n"
    b"Subject: a test\r\n"
    b"\tof folding  and   spaces  \r\n"
    b"Date: Sat, 5 Dec 2026 12:00:00 +0000\r\n"
    b"Message-ID: <oracle-1@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello Bob,  \r\n"
    b"\r\n"
    b"  a line\twith   tabs \t\r\n"
    b"and trailing empty lines\r\n"
    b"\r\n"
    b"\r\n"
)


def run(args, stdin=b""):
    return subprocess.run(args, input=stdin, capture_output=True, check=True).stdout


def setUpModule():
    # A skip would hide a test that never ran: in CI (the CI variable, as .ci/run sets) a
    # missing oracle fails (scripts/install-deps.sh installs it).
    if dkim is None:
        if os.environ.get("CI"):
            raise AssertionError("python3-dkim / python3-nacl not installed for this python: CI must run every test")
        raise unittest.SkipTest("python3-dkim / python3-nacl not installed for this python")


class Oracle(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="dkim-oracle-")
        cls.rsa_pem = os.path.join(cls.dir, "rsa.pem")
        cls.ed_pem = os.path.join(cls.dir, "ed.pem")
        run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
             "-out", cls.rsa_pem])
        run(["openssl", "genpkey", "-algorithm", "ED25519", "-out", cls.ed_pem])
        # dkimpy wants PKCS#1 for RSA and the raw base64 seed for Ed25519.
        cls.rsa_pkcs1 = run(["openssl", "pkey", "-in", cls.rsa_pem, "-traditional"])
        ed_der = run(["openssl", "pkey", "-in", cls.ed_pem, "-outform", "DER"])
        cls.ed_seed = base64.b64encode(ed_der[-32:])
        cls.records = {
            "rsa._domainkey.example.com": run([TOOL, "record", cls.rsa_pem]).strip(),
            "ed._domainkey.example.com": run([TOOL, "record", cls.ed_pem]).strip(),
        }

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def dnsfunc(self, name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        return self.records.get(name.rstrip("."))

    def dkimpy_accepts(self, message, index):
        try:
            return dkim.DKIM(message).verify(idx=index, dnsfunc=self.dnsfunc)
        except dkim.DKIMException:
            return False

    def our_verdicts(self, message, records=None):
        path = os.path.join(self.dir, "records")
        with open(path, "wb") as out:
            for name, text in (records or self.records).items():
                out.write(name.encode() + b" " + text + b"\n")
        lines = run([TOOL, "verify", "--now", str(NOW + 60), path], message).decode()
        return [line.split(" ", 1)[0] for line in lines.splitlines()], lines

    def dkimpy_sign(self, message, algorithm, canon, length=False):
        if algorithm == "rsa":
            key, selector, name = self.rsa_pkcs1, b"rsa", b"rsa-sha256"
        else:
            key, selector, name = self.ed_seed, b"ed", b"ed25519-sha256"
        header = dkim.sign(message, selector, b"example.com", key,
                           canonicalize=canon, signature_algorithm=name, length=length,
                           include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
        return header + message

    def test_dkimpy_signatures_pass_here_and_fail_after_a_body_change(self):
        for algorithm in ("rsa", "ed25519"):
            for canon in ((b"simple", b"simple"), (b"relaxed", b"relaxed"),
                          (b"simple", b"relaxed"), (b"relaxed", b"simple")):
                with self.subTest(algorithm=algorithm, canon=canon):
                    signed = self.dkimpy_sign(MESSAGE, algorithm, canon)
                    verdicts, text = self.our_verdicts(signed)
                    self.assertEqual(verdicts, ["pass"], text)
                    tampered = signed.replace(b"Hello Bob", b"Hello Rob")
                    verdicts, text = self.our_verdicts(tampered)
                    self.assertEqual(verdicts, ["fail"], text)
                    self.assertIn("body hash", text)

    def test_dkimpy_l_tag_ignores_appended_text_but_not_a_changed_body(self):
        for algorithm in ("rsa", "ed25519"):
            with self.subTest(algorithm=algorithm):
                signed = self.dkimpy_sign(MESSAGE, algorithm, (b"relaxed", b"simple"), True)
                self.assertIn(b" l=", signed.replace(b"\r\n\t", b" "))
                self.assertEqual(self.our_verdicts(signed + b"appended\r\n")[0], ["pass"])
                self.assertEqual(
                    self.our_verdicts(signed.replace(b"a line", b"b line"))[0], ["fail"])

    def test_dkimpy_folded_header_changes_matter_only_for_simple(self):
        for algorithm in ("rsa", "ed25519"):
            simple = self.dkimpy_sign(MESSAGE, algorithm, (b"simple", b"simple"))
            relaxed = self.dkimpy_sign(MESSAGE, algorithm, (b"relaxed", b"relaxed"))
            refold = (b"Subject: a test\r\n\tof folding  and   spaces  \r\n",
                      b"Subject: a  test of\r\n folding and spaces\r\n")
            self.assertEqual(self.our_verdicts(relaxed.replace(*refold))[0], ["pass"])
            self.assertEqual(self.our_verdicts(simple.replace(*refold))[0], ["fail"])

    def test_our_signatures_verify_with_dkimpy(self):
        signed = run([TOOL, "sign", "--now", str(NOW), self.rsa_pem, "example.com", "rsa",
                      self.ed_pem, "example.com", "ed"], MESSAGE)
        self.assertEqual(signed.count(b"DKIM-Signature:"), 2)
        for line in signed.split(b"\r\n\r\n")[0].split(b"\r\n"):
            self.assertLessEqual(len(line), 78, line)
        for index in (0, 1):
            self.assertTrue(self.dkimpy_accepts(signed, index), index)
        for tampered in (signed.replace(b"Hello Bob", b"Hello Rob"),
                         signed.replace(b"Subject: a test", b"Subject: a jest"),
                         b"Subject: added\r\n" + signed):
            for index in (0, 1):
                self.assertFalse(self.dkimpy_accepts(tampered, index), index)

    def test_opendkim_rsa_sha1_signature_is_refused(self):
        testmsg = shutil.which("opendkim-testmsg") or "/usr/sbin/opendkim-testmsg"
        if not os.path.exists(testmsg):
            self.skipTest("opendkim-tools not installed")
        key = os.path.join(self.dir, "rsa1.pem")
        with open(key, "wb") as out:
            out.write(self.rsa_pkcs1)
        signed = run([testmsg, "-C", "-d", "example.com", "-s", "rsa", "-k", key],
                     MESSAGE.replace(b"\r\n", b"\n"))
        self.assertIn(b"a=rsa-sha1", signed)
        verdicts, text = self.our_verdicts(signed.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
        self.assertEqual(verdicts, ["fail"], text)
        self.assertIn("rsa-sha1", text)


if __name__ == "__main__":
    unittest.main()
