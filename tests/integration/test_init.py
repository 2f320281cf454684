"""`smtpsd init` with the real binaries, as a new administrator uses it:

- init on an empty directory writes the configuration, the users and aliases files, keys and
  certificates for the host, DKIM keys (secrets only for the server's account), and prints
  the DNS records;
- `smtpsd check` passes on what it wrote;
- the printed records, published in a DNSSEC-signed zone of the test's own (the policy file
  served over HTTPS), are ones `smtpsctl dns check` finds right, every one of them;
- the server starts on that configuration (its ports moved to free loopback ports, its DNS
  to a closed loopback port) and delivers a mail for a mailbox added with `smtpsctl user`,
  over STARTTLS with the certificate init made;
- a second init never overwrites anything; bad names are refused;
- both programs say their version (--version).
"""

import os
import pwd
import re
import shutil
import smtplib
import ssl
import stat
import subprocess
import tempfile
import time
import unittest

import needs
from certificates import issue_leaf
from harness import LISTENING, SMTPSD
from processes import end_process
from signed_zone import SignedRoot, available
from test_mta_sts import PolicyHost
from test_onward import SMTPSCTL


def read(path):
    with open(path) as f:
        return f.read()


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


@needs.condition(available, "BIND (Debian bind9, bind9-utils) not installed")
class Init(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="smtpsd-init-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        os.chmod(self.tmp, 0o755)  # the server's account must reach its data directory
        self.etc = os.path.join(self.tmp, "etc")
        self.data = os.path.join(self.tmp, "data")
        self.run_dir = os.path.join(self.tmp, "run")  # /run/smtpsd by default
        self.user = "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.getuid()).pw_name

    def init(self, *extra):
        return subprocess.run([SMTPSD, "init", "--domain", "Example.ORG", "--hostname",
                               "mx.example.org", "--dir", self.etc, "--data-dir", self.data,
                               "--run-dir", self.run_dir, "--user", self.user, *extra],
                              capture_output=True, text=True, timeout=120)

    def config_with(self, extra):
        """The written configuration plus extra TOML (init writes no [dns] nor [delivery])."""
        with open(os.path.join(self.etc, "smtpsd.toml")) as f:
            written = f.read()
        self.assertNotIn("\n[dns]", written)
        path = os.path.join(self.tmp, "test.toml")
        with open(path, "w") as f:
            f.write(written.replace('"users"', f'"{self.etc}/users"')
                    .replace('"aliases"', f'"{self.etc}/aliases"')
                    .replace('"tls/', f'"{self.etc}/tls/')
                    .replace('"dkim/', f'"{self.etc}/dkim/') + "\n" + extra)
        return path

    def test_init_writes_a_setup_that_checks_publishes_right_and_receives_mail(self):
        made = self.init()
        self.assertEqual(made.returncode, 0, made.stdout + made.stderr)
        printed = made.stdout
        account = pwd.getpwnam(self.user)

        # The files, and who may read the secrets.
        config = os.path.join(self.etc, "smtpsd.toml")
        for name in ("smtpsd.toml", "users", "aliases", "tls/server-ecdsa.pem",
                     "tls/server-rsa.pem", "tls/ca.pem"):
            self.assertTrue(os.path.isfile(os.path.join(self.etc, name)), name)
        self.assertFalse(os.path.exists(os.path.join(self.etc, "tls", "ca.key")))
        keys = sorted(os.listdir(os.path.join(self.etc, "dkim", "example.org")))
        self.assertEqual(len(keys), 2, keys)
        self.assertRegex(keys[0], r"^\d{6}e\.ed25519\.key$")
        self.assertRegex(keys[1], r"^\d{6}r\.rsa\.key$")
        for key in keys:
            info = os.stat(os.path.join(self.etc, "dkim", "example.org", key))
            self.assertEqual((stat.S_IMODE(info.st_mode), info.st_uid), (0o600, account.pw_uid))
        for name in ("users", "tls/server-ecdsa.key", "tls/server-rsa.key"):
            info = os.stat(os.path.join(self.etc, name))
            self.assertEqual((stat.S_IMODE(info.st_mode), info.st_gid), (0o640, account.pw_gid),
                             name)
        # Local submission on a socket every local user reaches (not in the data directory,
        # which is the account's alone), named in a configuration every user may read.
        self.assertIn(f'\n[local_submission]\nsocket = "{self.run_dir}/submit.sock"\n',
                      read(config))
        self.assertEqual(stat.S_IMODE(os.stat(config).st_mode), 0o644)
        checked = subprocess.run([SMTPSD, "check", "--config", config], capture_output=True,
                                 text=True, timeout=60)
        self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)
        self.assertIn("local domain: example.org", checked.stdout)
        self.assertNotIn("other users", checked.stdout)
        self.assertIn(f"privileges: ", checked.stdout)

        # The records, published as printed (the address placeholders filled in).
        records = [line for line in printed.splitlines()
                   if line and not line.startswith(";") and " IN " in line]
        self.assertIn("example.org. IN MX 10 mx.example.org.", records)
        self.assertIn('example.org. IN TXT "v=spf1 mx -all"', records)
        self.assertEqual(len([r for r in records if "._domainkey.example.org. IN TXT" in r]), 2)
        self.assertEqual(len([r for r in records if r.startswith(
            "_25._tcp.mx.example.org. IN TLSA 3 1 1 ")]), 2)
        policy = "".join(line[4:] + "\r\n" for line in printed.splitlines()
                         if re.match(r";   (version|mode|mx|max_age): ", line))
        self.assertIn("mode: testing\r\nmx: mx.example.org\r\n", policy)
        published = [r.replace("<this server's IPv4 address>", "198.18.0.1")
                     for r in records if "<" not in r or "IPv4" in r]
        published += ["1.0.18.198.in-addr.arpa. IN PTR mx.example.org.",
                      "mta-sts.example.org. IN A 127.0.0.1"]
        root = SignedRoot(published)
        self.addCleanup(root.stop)
        ca = os.path.join(self.tmp, "https-ca")
        os.makedirs(ca)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{ca}/ca.key", "-out",
                        f"{ca}/ca.pem", "-days", "2", "-subj", "/CN=test web CA"],
                       check=True, capture_output=True)
        certificate, key = issue_leaf(os.path.join(self.tmp, "https"), f"{ca}/ca.pem",
                                      f"{ca}/ca.key", ["mta-sts.example.org"])
        host = PolicyHost(certificate, key)
        self.addCleanup(host.stop)
        host.reply = (200, {"Content-Type": "text/plain"}, policy.encode())
        dns_config = self.config_with(
            f'[dns]\nservers = "{root.server}"\nvalidation = "yes"\n'
            f'trust_anchor = "{root.trust_anchor}"\n\n'
            f'[delivery]\nca_file = "{ca}/ca.pem"\nmta_sts_port = {host.port}\n')
        dns = subprocess.run([SMTPSCTL, "dns", "check", "example.org", "--config", dns_config],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(dns.returncode, 0, dns.stdout + dns.stderr)
        for what in ("MX", "A/AAAA", "PTR", "SPF", "DKIM", "DMARC", "MTA-STS", "TLS-RPT",
                     "TLSA"):
            self.assertRegex(dns.stdout, rf"(?m)^{re.escape(what)} \S+: OK ")
        self.assertIn("example.org: every record is right", dns.stdout)

        # The server on that configuration receives mail for a mailbox added with smtpsctl.
        added = subprocess.run([SMTPSCTL, "user", "add", "--users",
                                os.path.join(self.etc, "users"), "carol@example.org",
                                "--no-password"], capture_output=True, text=True)
        self.assertEqual(added.returncode, 0, added.stdout + added.stderr)
        with open(config) as f:
            serving = f.read().replace('address = "0.0.0.0"', 'address = "127.0.0.1"')
            serving = re.sub(r"(?m)^port = \d+$", "port = 0", serving)
        with open(config, "w") as f:
            f.write(serving + '\n[dns]\nservers = "127.0.0.1:9"\nvalidation = "no"\n')
        log_path = os.path.join(self.tmp, "smtpsd.log")
        with open(log_path, "wb") as log:
            server = subprocess.Popen([SMTPSD, "serve", "--config", config], stdout=log,
                                      stderr=log)
        self.addCleanup(end_process, server)
        ports, deadline = {}, time.time() + 30
        while "smtp" not in ports and time.time() < deadline and server.poll() is None:
            with open(log_path) as f:
                ports = {role: int(port) for role, _, port in LISTENING.findall(f.read())}
            time.sleep(0.05)
        self.assertIn("smtp", ports, read(log_path))
        context = ssl.create_default_context(cafile=os.path.join(self.etc, "tls", "ca.pem"))
        with smtplib.SMTP("127.0.0.1", ports["smtp"], local_hostname="client.test",
                          timeout=30) as client:
            client._host = "mx.example.org"  # the name smtplib's STARTTLS verifies
            client.starttls(context=context)
            client.sendmail("someone@sender.test", ["carol@example.org"],
                            b"From: someone@sender.test\r\nTo: carol@example.org\r\n"
                            b"Subject: after init\r\n\r\nhello\r\n")
        maildir = os.path.join(self.data, "mail", "example.org", "carol", "new")
        deadline = time.time() + 30
        while time.time() < deadline and not (os.path.isdir(maildir) and os.listdir(maildir)):
            time.sleep(0.05)
        (delivered,) = os.listdir(maildir)
        with open(os.path.join(maildir, delivered), "rb") as f:
            self.assertIn(b"Subject: after init", f.read())
        # sendmail as an ordinary local user (a cron job), through the socket init chose.
        ordinary = ([shutil.which("setpriv"), "--reuid", "nobody", "--regid", "nogroup",
                     "--clear-groups"] if os.geteuid() == 0 else [])
        sent = subprocess.run([*ordinary, SMTPSCTL, "sendmail", "--config", config,
                               "carol@example.org"], capture_output=True, timeout=60,
                              input=b"Subject: from a local user\n\nhello\n")
        self.assertEqual(sent.returncode, 0, sent.stdout + sent.stderr)
        deadline = time.time() + 30
        while time.time() < deadline and len(os.listdir(maildir)) < 2:
            time.sleep(0.05)
        (local,) = set(os.listdir(maildir)) - {delivered}
        self.assertIn(b"Subject: from a local user", read_bytes(os.path.join(maildir, local)))
        self.assertEqual(end_process(server), 0, read(log_path))
        self.assertNotIn("level=error", read(log_path))

    def test_nothing_is_overwritten_and_bad_names_are_refused(self):
        self.assertEqual(self.init().returncode, 0)
        with open(os.path.join(self.etc, "smtpsd.toml")) as f:
            before = f.read()
        again = self.init()
        self.assertEqual(again.returncode, 1)
        self.assertIn(f"{self.etc}/smtpsd.toml exists; nothing written", again.stderr)
        with open(os.path.join(self.etc, "smtpsd.toml")) as f:
            self.assertEqual(f.read(), before)
        # By default the local submission socket is in /run/smtpsd (the unit's
        # RuntimeDirectory=, 0755).
        default = subprocess.run([SMTPSD, "init", "--domain", "example.org", "--hostname",
                                  "mx.example.org", "--dir", os.path.join(self.tmp, "default"),
                                  "--data-dir", self.data, "--user", self.user],
                                 capture_output=True, text=True, timeout=120)
        self.assertEqual(default.returncode, 0, default.stdout + default.stderr)
        self.assertIn('\n[local_submission]\nsocket = "/run/smtpsd/submit.sock"\n',
                      read(os.path.join(self.tmp, "default", "smtpsd.toml")))
        relative = subprocess.run([SMTPSD, "init", "--domain", "example.org", "--hostname",
                                   "mx.example.org", "--dir", os.path.join(self.tmp, "other"),
                                   "--run-dir", "run"], capture_output=True, text=True)
        self.assertEqual(relative.returncode, 1)
        self.assertIn("--run-dir must be an absolute path", relative.stderr)
        bad = subprocess.run([SMTPSD, "init", "--domain", "not a domain", "--hostname",
                              "mx.example.org", "--dir", os.path.join(self.tmp, "other")],
                             capture_output=True, text=True)
        self.assertEqual(bad.returncode, 1)
        self.assertIn('--domain "not a domain" is not a domain name', bad.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "other", "smtpsd.toml")))
        bare = subprocess.run([SMTPSD, "init", "--domain", "example.org", "--hostname",
                               "localhost", "--dir", os.path.join(self.tmp, "other")],
                              capture_output=True, text=True)
        self.assertEqual(bare.returncode, 1)
        self.assertIn('--hostname "localhost" is not a host name', bare.stderr)
        missing = subprocess.run([SMTPSD, "init", "--domain", "example.org"],
                                 capture_output=True, text=True)
        self.assertNotEqual(missing.returncode, 0)
        self.assertIn("--hostname is required", missing.stderr + missing.stdout)

    def test_a_configuration_of_comments_only_is_replaced(self):
        # The Debian package installs /etc/smtpsd/smtpsd.toml with no setting in it.
        os.makedirs(self.etc)
        placeholder = "# not configured yet: run smtpsd init\n\n   # (comments only)\n"
        with open(os.path.join(self.etc, "smtpsd.toml"), "w") as f:
            f.write(placeholder)
        # ... and, beside it, the postinst's marker that holds the enabled unit back.
        marker = os.path.join(self.etc, "not-configured")
        with open(marker, "w") as f:
            f.write("smtpsd.service does not start while this file exists\n")
        made = self.init()
        self.assertEqual(made.returncode, 0, made.stdout + made.stderr)
        written = read(os.path.join(self.etc, "smtpsd.toml"))
        self.assertNotEqual(written, placeholder)
        self.assertIn("[[listeners]]", written)
        self.assertFalse(os.path.exists(marker))
        self.assertIn(f"Removed {marker}: the systemd unit may start now (systemctl enable "
                      f"--now smtpsd).\n", made.stdout)
        # A configuration written by hand beside the marker: check says what holds it back.
        with open(marker, "w") as f:
            f.write("")
        checked = subprocess.run([SMTPSD, "check", "--config", os.path.join(self.etc,
                                                                           "smtpsd.toml")],
                                 capture_output=True, text=True, timeout=60)
        self.assertIn(f"warning: {marker}: the systemd unit does not start while this file "
                      f"exists (ConditionPathExists=!); `smtpsd init` removes it, or rm "
                      f"{marker} once this configuration is yours\n", checked.stdout)
        # One setting is enough to make it the administrator's.
        os.makedirs(os.path.join(self.tmp, "taken"))
        with open(os.path.join(self.tmp, "taken", "smtpsd.toml"), "w") as f:
            f.write("# mine\n[server]\n")
        taken = subprocess.run([SMTPSD, "init", "--domain", "example.org", "--hostname",
                                "mx.example.org", "--dir", os.path.join(self.tmp, "taken")],
                               capture_output=True, text=True, timeout=60)
        self.assertEqual(taken.returncode, 1)
        self.assertIn("smtpsd.toml exists; nothing written", taken.stderr)


class Version(unittest.TestCase):
    def test_both_programs_say_their_version_and_commit(self):
        with open(os.path.join(os.path.dirname(__file__), "..", "..", "CMakeLists.txt")) as f:
            project = re.search(r"project\(smtpsd VERSION (\S+)", f.read()).group(1)
        for program, name in ((SMTPSD, "smtpsd"), (SMTPSCTL, "smtpsctl")):
            shown = subprocess.run([program, "--version"], capture_output=True, text=True)
            self.assertEqual(shown.returncode, 0, shown.stderr)
            self.assertRegex(shown.stdout,
                             rf"^{name} {re.escape(project)}(\+git\.[0-9a-z.-]+)?\n$")


if __name__ == "__main__":
    unittest.main()
