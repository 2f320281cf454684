"""The README's full configuration example ("Configuration": "Every key") is one the server
takes: `smtpsd check` passes on it, with its files made where it names them (moved under a
temporary directory) and its listeners on free loopback ports. A key renamed or a value
the loader refuses fails this test until the README follows."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

from certificates import issue_leaf
from harness import SMTPSD

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def full_example():
    with open(README) as f:
        text = f.read()
    section = text[text.index("\n## Configuration\n"):]
    return re.search(r"```toml\n(.*?)```", section, re.S).group(1)


class ReadmeExample(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="smtpsd-readme-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def test_the_full_example_passes_check(self):
        example = full_example()
        self.assertIn("[server]", example)
        self.assertGreater(example.count("\n"), 100)  # the whole example, not a fragment
        etc, data = os.path.join(self.tmp, "etc"), os.path.join(self.tmp, "data")
        os.makedirs(etc)
        os.makedirs(data)
        text = (example.replace("/etc/smtpsd/", etc + "/")
                .replace("/var/lib/smtpsd", data)
                .replace("/run/smtpsd/", self.tmp + "/"))
        # Free loopback ports instead of 25/465 and 9464 (other tests and MTAs run here).
        text = text.replace('address = "0.0.0.0"', 'address = "127.0.0.1"')
        text = re.sub(r"(?m)^port = \d+", "port = 0", text)
        text = text.replace('role = "submissions"', 'role = "submissions"\nport = 0')
        text = text.replace('address = "127.0.0.1:9464"', 'address = "127.0.0.1:0"')
        if os.geteuid() == 0:
            text = text.replace('user = "smtpsd"', 'user = "nobody"')
            os.chmod(self.tmp, 0o755)
        else:
            text = re.sub(r'(?m)^user = "smtpsd".*$', "", text)
        self.assertNotIn("/etc/smtpsd", text)
        # The files it names: a CA (also the client CA) and an ECDSA and an RSA pair.
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{etc}/ca.key", "-out",
                        f"{etc}/client-ca.pem", "-days", "2", "-subj", "/CN=readme CA"],
                       check=True, capture_output=True)
        for kind, name in (("ec", "ecdsa"), ("rsa", "rsa")):
            chain, key = issue_leaf(os.path.join(self.tmp, name), f"{etc}/client-ca.pem",
                                    f"{etc}/ca.key", ["mx.example.org"], key_type=kind)
            shutil.copy(chain, f"{etc}/{name}.pem")
            shutil.copy(key, f"{etc}/{name}.key")
            for path in (f"{etc}/{name}.pem", f"{etc}/{name}.key"):
                os.chmod(path, 0o644 if path.endswith(".pem") else 0o640)
                if os.geteuid() == 0:
                    os.chown(path, 0, 65534)
        config = os.path.join(self.tmp, "smtpsd.toml")
        with open(config, "w") as f:
            f.write(text)
        checked = subprocess.run([SMTPSD, "check", "--config", config], capture_output=True,
                                 text=True, timeout=60)
        self.assertEqual(checked.returncode, 0, checked.stderr + checked.stdout[-2000:])
        self.assertIn("configuration OK", checked.stdout)


if __name__ == "__main__":
    unittest.main()
