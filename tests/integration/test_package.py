"""The Debian packages of scripts/build-deb.sh (`make deb`), installed for real as an
administrator would, from the binaries of the build tree under test (no rebuild):

- `smtpsd` installs with dpkg: the system account and group smtpsd, /var/lib/smtpsd (its
  own, 0750), /etc/smtpsd/smtpsd.toml as a conffile that `smtpsd check` refuses (no
  setting), the unit installed and enabled but held back by a condition on the postinst's
  marker /etc/smtpsd/not-configured, the man pages (`man -w`);
- `smtpsd init` replaces that placeholder with a setup that checks and removes the marker;
  every file the unit names then exists (a LoadCredential= source that does not would fail
  every start); the installed
  /usr/sbin/smtpsd, started as the packaged account (setpriv, as the unit's User= does), on
  free loopback ports and a closed loopback DNS port, receives a mail over STARTTLS into
  /var/lib/smtpsd, and one from an ordinary local user (nobody) through `smtpsctl sendmail`
  and the local submission socket init puts in /run/smtpsd (0755, made by the postinst, and
  by the unit's RuntimeDirectory=; the data directory is 0750);
- `dpkg --purge` leaves nothing but what Debian keeps: the system account (its uid is never
  reused) and the mailboxes the postrm refuses to delete; the unit's link is gone;
- smtpsd-mta carries sendmail and mailq as links to smtpsctl and is the system's
  mail-transport-agent (only inspected: Postfix is installed here for other tests);
- the dns-01 hook of [acme] is installed where README "ACME" says
  (/usr/lib/smtpsd/acme-dns-nsupdate, executable; the package suggests bind9-dnsutils for
  its nsupdate);
- lintian finds no error nor warning on the three packages;
- `make install` (cmake --install --strip, any prefix, DESTDIR) puts each file in its place
  and writes the unit with the prefix's paths.

Runs alone (tests/CMakeLists.txt integration_serial): it installs a system package. Needs
root; refuses to run where smtpsd is installed or /etc/smtpsd exists (an administrator's).
"""

import glob
import grp
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
from harness import LISTENING, SMTPSD
from processes import end_process

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
BUILD = os.path.dirname(os.path.abspath(SMTPSD))
DPKG_ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
# Installing and upgrading leave man-db's trigger pending (it is "interest-noawait": smtpsd is
# still "install ok installed"), and the purge, which processes pending triggers, runs it
# once: `mandb -pq` takes 11 s a run here, three of them were half of this test's time.
# `man` finds the new pages without its index.
INSTALL = ("dpkg", "--no-triggers", "-i")


def run(*command, **kwargs):
    return subprocess.run(command, capture_output=True, text=True, timeout=120, **kwargs)


def installed(package):
    return "install ok installed" in run("dpkg-query", "-W", "-f=${Status}", package).stdout


def present(package):
    """Installed in any state, half-configured included (what a failed postinst leaves)."""
    status = run("dpkg-query", "-W", "-f=${Status}", package).stdout
    return status != "" and not status.endswith("not-installed")


def read(path):
    with open(path) as f:
        return f.read()


@needs.condition(lambda: os.geteuid() == 0, "installing a package needs root")
@needs.tools("dpkg-deb", "dpkg-shlibdeps", "scdoc", "man", "setpriv", "lintian",
             "systemd-analyze")
class Package(unittest.TestCase):
    packages = None

    @classmethod
    def setUpClass(cls):
        cls.out = tempfile.mkdtemp(prefix="smtpsd-deb-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.out, ignore_errors=True)

    def build(self):
        """The three packages, built once for both tests: {name: path}."""
        if Package.packages is None:
            made = run(os.path.join(ROOT, "scripts", "build-deb.sh"), BUILD, self.out)
            self.assertEqual(made.returncode, 0, made.stdout + made.stderr)
            Package.packages = {os.path.basename(path).split("_")[0]: path
                                for path in made.stdout.split()}
        self.assertEqual(sorted(Package.packages), ["smtpsd", "smtpsd-dbgsym", "smtpsd-mta"])
        return Package.packages

    def test_install_set_up_serve_and_purge(self):
        if present("smtpsd") or os.path.exists("/etc/smtpsd") or os.path.exists("/run/smtpsd"):
            self.fail("smtpsd is installed here, or /etc/smtpsd or /run/smtpsd exists: not "
                      "touching them")
        account_existed = self.account() is not None
        data_existed = os.path.exists("/var/lib/smtpsd")
        packages = self.build()

        def leave_the_machine_as_found():
            if present("smtpsd"):
                run("dpkg", "--purge", "smtpsd", env=DPKG_ENV)
            shutil.rmtree("/etc/smtpsd", ignore_errors=True)
            shutil.rmtree("/run/smtpsd", ignore_errors=True)
            if not data_existed:
                shutil.rmtree("/var/lib/smtpsd", ignore_errors=True)
            if not account_existed and self.account() is not None:
                run("userdel", "smtpsd")
                run("groupdel", "smtpsd")
        self.addCleanup(leave_the_machine_as_found)

        done = run(*INSTALL, packages["smtpsd"], env=DPKG_ENV)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)

        # What dpkg and the postinst made.
        account = self.account()
        self.assertIsNotNone(account, "no account smtpsd")
        self.assertLess(account.pw_uid, 1000)  # a system account
        self.assertEqual((account.pw_dir, account.pw_shell), ("/var/lib/smtpsd", "/usr/sbin/nologin"))
        self.assertEqual(grp.getgrgid(account.pw_gid).gr_name, "smtpsd")
        data = os.stat("/var/lib/smtpsd")
        self.assertEqual((data.st_uid, data.st_gid, stat.S_IMODE(data.st_mode)),
                         (account.pw_uid, account.pw_gid, 0o750))
        # The local submission socket's directory, open to every local user (sendmail).
        run_dir = os.stat("/run/smtpsd")
        self.assertEqual((run_dir.st_uid, run_dir.st_gid, stat.S_IMODE(run_dir.st_mode)),
                         (account.pw_uid, account.pw_gid, 0o755))
        conffiles = run("dpkg-query", "-W", "-f=${Conffiles}", "smtpsd").stdout
        self.assertIn("/etc/smtpsd/smtpsd.toml ", conffiles)
        self.assertIn("/etc/fail2ban/filter.d/smtpsd.conf ", conffiles)
        unconfigured = run("/usr/sbin/smtpsd", "check", "--config", "/etc/smtpsd/smtpsd.toml")
        self.assertEqual(unconfigured.returncode, 2, unconfigured.stdout + unconfigured.stderr)
        for page, path in (("smtpsd", "/usr/share/man/man8/smtpsd.8.gz"),
                           ("smtpsctl", "/usr/share/man/man1/smtpsctl.1.gz"),
                           ("smtpsd.toml", "/usr/share/man/man5/smtpsd.toml.5.gz")):
            self.assertEqual(run("man", "-w", page).stdout.strip(), path)
        # The dns-01 hook of [acme], where README "ACME" and smtpsd.toml(5) say (dns_hook).
        hook = "/usr/lib/smtpsd/acme-dns-nsupdate"
        self.assertEqual(stat.S_IMODE(os.stat(hook).st_mode), 0o755)
        usage = run(hook)
        self.assertEqual(usage.returncode, 2, usage.stdout + usage.stderr)
        self.assertIn("add|remove NAME VALUE", usage.stderr)
        unit = read("/lib/systemd/system/smtpsd.service")
        self.assertIn("\nExecStart=/usr/sbin/smtpsd serve --config /etc/smtpsd/smtpsd.toml\n",
                      unit)
        documentation = re.search(r"\nDocumentation=(.*)\n", unit).group(1).split()
        self.assertEqual(documentation[0], "man:smtpsd(8)")
        self.assertTrue(os.path.isfile(documentation[1].removeprefix("file:")), documentation)
        # Enabled (deb-systemd-helper's link, as `systemctl enable` makes it), yet held back:
        # the condition skips the start while the postinst's marker exists.
        self.assertEqual(glob.glob("/etc/systemd/system/*.wants/smtpsd.service"),
                         ["/etc/systemd/system/multi-user.target.wants/smtpsd.service"])
        self.assertEqual(os.readlink("/etc/systemd/system/multi-user.target.wants/smtpsd.service"),
                         "/lib/systemd/system/smtpsd.service")
        self.assertIn("\n[Install]\nWantedBy=multi-user.target\n", unit)
        self.assertIn("\nConditionPathExists=!/etc/smtpsd/not-configured\n", unit)
        # A start that keeps failing (the pre-start check refusing the configuration) is
        # given up after 5 attempts, one every RestartSec=5s (test_privileges.py).
        self.assertRegex(unit, r"\n\[Unit\]\n(?:[^\[]*\n)?StartLimitIntervalSec=300\n"
                               r"StartLimitBurst=5\n(?:[^\[]*\n)?\[Service\]\n")
        self.assertIn("\nRuntimeDirectory=smtpsd\nRuntimeDirectoryMode=0755\n", unit)
        self.assertTrue(os.path.isfile("/etc/smtpsd/not-configured"))
        # Its paths exist and systemd knows every setting (a misspelt one is only a warning).
        verify = run("systemd-analyze", "verify", "/lib/systemd/system/smtpsd.service")
        self.assertEqual((verify.returncode, verify.stdout + verify.stderr), (0, ""))
        version = run("dpkg-query", "-W", "-f=${Version}", "smtpsd").stdout
        said = run("/usr/sbin/smtpsd", "--version").stdout
        # The project's version and the commit the binaries say they were built from.
        commit = re.match(r"^(\d+\.\d+\.\d+)~git\d{8}\.([0-9a-f]{7,})", version)
        self.assertIsNotNone(commit, version)
        self.assertTrue(said.startswith(f"smtpsd {commit.group(1)}+git"), said)
        self.assertIn(commit.group(2), said)

        # The administrator's steps: init over the placeholder, a mailbox, check.
        made = run("/usr/sbin/smtpsd", "init", "--domain", "example.org", "--hostname",
                   "mx.example.org")
        self.assertEqual(made.returncode, 0, made.stdout + made.stderr)
        added = run("/usr/bin/smtpsctl", "user", "add", "--users", "/etc/smtpsd/users",
                    "carol@example.org", "--no-password")
        self.assertEqual(added.returncode, 0, added.stdout + added.stderr)
        self.assertIn("Removed /etc/smtpsd/not-configured: the systemd unit may start now",
                      made.stdout)
        self.assertFalse(os.path.exists("/etc/smtpsd/not-configured"))
        config = "/etc/smtpsd/smtpsd.toml"
        checked = run("/usr/sbin/smtpsd", "check", "--config", config)
        self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)
        self.assertNotIn("not-configured", checked.stdout)
        # Nothing out of reach of the local users sendmail runs as.
        self.assertNotIn("other users", checked.stdout)
        self.assertIn('\n[local_submission]\nsocket = "/run/smtpsd/submit.sock"\n', read(config))
        # Every file the unit needs at its start exists now: systemd (252) fails a start whose
        # LoadCredential= source is missing (status=243/CREDENTIALS), and checks
        # ConditionPathExists= before that.
        for setting, value in re.findall(r"(?m)^(\w+)=(.*)$", unit):
            if setting in ("LoadCredential", "LoadCredentialEncrypted"):
                source = value.partition(":")[2]
                self.assertTrue(os.path.exists(source), f"{setting}={value}: no {source}")
            elif setting == "ConditionPathExists":
                negated, path = value.startswith("!"), value.removeprefix("!")
                self.assertEqual(os.path.exists(path), not negated, f"{setting}={value}")

        # The installed server as the packaged account, on loopback ports of its own.
        serving = read(config).replace('address = "0.0.0.0"', 'address = "127.0.0.1"')
        serving = re.sub(r"(?m)^port = \d+$", "port = 0", serving)
        with open(config, "w") as f:
            f.write(serving + '\n[dns]\nservers = "127.0.0.1:9"\nvalidation = "no"\n')
        log_path = os.path.join(self.out, "smtpsd.log")
        with open(log_path, "wb") as log:
            server = subprocess.Popen(
                ["setpriv", "--reuid", "smtpsd", "--regid", "smtpsd", "--init-groups",
                 "/usr/sbin/smtpsd", "serve", "--config", config], stdout=log, stderr=log)
        self.addCleanup(end_process, server)
        ports, deadline = {}, time.time() + 30
        while "smtp" not in ports and time.time() < deadline and server.poll() is None:
            ports = {role: int(port) for role, _, port in LISTENING.findall(read(log_path))}
            time.sleep(0.05)
        self.assertIn("smtp", ports, read(log_path))
        context = ssl.create_default_context(cafile="/etc/smtpsd/tls/ca.pem")
        with smtplib.SMTP("127.0.0.1", ports["smtp"], local_hostname="client.test",
                          timeout=30) as client:
            client._host = "mx.example.org"  # the name smtplib's STARTTLS verifies
            client.starttls(context=context)
            client.sendmail("someone@sender.test", ["carol@example.org"],
                            b"From: someone@sender.test\r\nTo: carol@example.org\r\n"
                            b"Subject: from the package\r\n\r\nhello\r\n")
        maildir = "/var/lib/smtpsd/mail/example.org/carol/new"
        deadline = time.time() + 30
        while time.time() < deadline and not (os.path.isdir(maildir) and os.listdir(maildir)):
            time.sleep(0.05)
        (delivered,) = os.listdir(maildir)
        self.assertIn("Subject: from the package", read(os.path.join(maildir, delivered)))
        self.assertEqual(os.stat(os.path.join(maildir, delivered)).st_uid, account.pw_uid)
        # An ordinary local user (a cron job; not root, not the account) sends with sendmail
        # (smtpsctl sendmail: the smtpsd-mta package's /usr/sbin/sendmail, not installed
        # here beside Postfix), with the default configuration /etc/smtpsd/smtpsd.toml.
        sent = subprocess.run(["setpriv", "--reuid", "nobody", "--regid", "nogroup",
                               "--clear-groups", "/usr/bin/smtpsctl", "sendmail",
                               "carol@example.org"], capture_output=True, timeout=60,
                              input=b"Subject: from a local user\n\nhello\n")
        self.assertEqual(sent.returncode, 0, sent.stdout + sent.stderr)
        deadline = time.time() + 30
        while time.time() < deadline and len(os.listdir(maildir)) < 2:
            time.sleep(0.05)
        (local,) = set(os.listdir(maildir)) - {delivered}
        self.assertIn("Subject: from a local user", read(os.path.join(maildir, local)))
        self.assertIn("event=local_submission", read(log_path))
        self.assertIn("user=nobody", read(log_path))
        # A message that waits in the queue through the upgrade (its MX cannot be looked up),
        # sent as root through the local submission socket (sendmail -t).
        sent = subprocess.run(["/usr/bin/smtpsctl", "sendmail", "-t"], capture_output=True,
                              timeout=60, input=b"To: someone@elsewhere.test\n"
                              b"Subject: waits through the upgrade\n\nhello\n")
        self.assertEqual(sent.returncode, 0, sent.stdout + sent.stderr)
        deadline = time.time() + 30
        while "rcpt=someone@elsewhere.test" not in read(log_path) and time.time() < deadline:
            time.sleep(0.05)
        self.assertIn("event=deferred", read(log_path))
        self.assertEqual(end_process(server), 0, read(log_path))
        self.assertNotIn("level=error", read(log_path))

        # Upgrade to a newer package with mail queued: the administrator's configuration
        # (a changed conffile) stays as it is, and the queued message is still there.
        newer_dir = os.path.join(self.out, "newer")
        newer_version = version + "+upgrade1"
        made = run(os.path.join(ROOT, "scripts", "build-deb.sh"), BUILD, newer_dir,
                   env=dict(os.environ, SMTPSD_DEB_VERSION=newer_version))
        self.assertEqual(made.returncode, 0, made.stdout + made.stderr)
        (newer,) = [path for path in made.stdout.split()
                    if os.path.basename(path).startswith("smtpsd_")]
        configured = read(config)
        upgraded = run(*INSTALL, newer, env=DPKG_ENV)
        self.assertEqual(upgraded.returncode, 0, upgraded.stdout + upgraded.stderr)
        self.assertEqual(run("dpkg-query", "-W", "-f=${Version}", "smtpsd").stdout,
                         newer_version)
        self.assertEqual(read(config), configured)
        self.assertFalse(os.path.exists(config + ".dpkg-new"))
        with open(log_path, "ab") as log:
            again = subprocess.Popen(
                ["setpriv", "--reuid", "smtpsd", "--regid", "smtpsd", "--init-groups",
                 "/usr/sbin/smtpsd", "serve", "--config", config], stdout=log, stderr=log)
        self.addCleanup(end_process, again)
        deadline = time.time() + 30
        while "event=recovered count=1" not in read(log_path) and time.time() < deadline:
            time.sleep(0.05)
        self.assertIn("event=recovered count=1", read(log_path))
        queued = run("/usr/bin/smtpsctl", "queue", "list", "--config", config)
        self.assertIn("someone@elsewhere.test", queued.stdout, queued.stdout + queued.stderr)
        self.assertEqual(end_process(again), 0, read(log_path))

        # Purge: nothing left but the account and the mailboxes.
        files = run("dpkg-query", "-L", "smtpsd").stdout.split()
        purged = run("dpkg", "--purge", "smtpsd", env=DPKG_ENV)
        self.assertEqual(purged.returncode, 0, purged.stdout + purged.stderr)
        self.assertIn("/var/lib/smtpsd/mail holds mailboxes: kept", purged.stderr)
        self.assertFalse(installed("smtpsd"))
        self.assertIn("/usr/sbin/smtpsd", files)
        left = [path for path in files if os.path.lexists(path) and not os.path.isdir(path)]
        self.assertEqual(left, [])
        self.assertFalse(os.path.exists("/etc/smtpsd"))
        self.assertEqual(os.listdir("/var/lib/smtpsd"), ["mail"])
        self.assertFalse(os.path.exists("/run/smtpsd"))
        # The enablement is forgotten too: no link, no mask, no deb-systemd-helper state.
        self.assertFalse(glob.glob("/etc/systemd/system/**/smtpsd.service", recursive=True))
        self.assertFalse(glob.glob("/var/lib/systemd/deb-systemd-helper-*/**/smtpsd.service*",
                                   recursive=True))
        self.assertIsNotNone(self.account())

    def test_the_mta_package_and_lintian(self):
        packages = self.build()
        listed = run("dpkg-deb", "--contents", packages["smtpsd-mta"]).stdout
        self.assertRegex(listed, r"\./usr/sbin/sendmail -> \.\./bin/smtpsctl\n")
        self.assertRegex(listed, r"\./usr/bin/mailq -> smtpsctl\n")
        fields = run("dpkg-deb", "--field", packages["smtpsd-mta"]).stdout
        for field in ("Provides", "Conflicts", "Replaces"):
            self.assertIn(f"{field}: mail-transport-agent\n", fields)
        self.assertRegex(fields, r"Depends: smtpsd \(>= [^)]+\)\n")
        # The dns-01 hook, executable, in the smtpsd package; its nsupdate suggested.
        listed = run("dpkg-deb", "--contents", packages["smtpsd"]).stdout
        self.assertRegex(listed,
                         r"(?m)^-rwxr-xr-x root/root .* \./usr/lib/smtpsd/acme-dns-nsupdate$")
        self.assertRegex(run("dpkg-deb", "--field", packages["smtpsd"], "Suggests").stdout,
                         r"\bbind9-dnsutils\b")
        # The debug files are named by the build ids of the packaged (stripped) programs.
        debug = run("dpkg-deb", "--contents", packages["smtpsd-dbgsym"]).stdout
        named = set(re.findall(r"/usr/lib/debug/\.build-id/(..)/([0-9a-f]+)\.debug\n", debug))
        unpacked = os.path.join(self.out, "unpacked")
        self.assertEqual(run("dpkg-deb", "-x", packages["smtpsd"], unpacked).returncode, 0)
        ids = set()
        for program in ("usr/sbin/smtpsd", "usr/bin/smtpsctl"):
            notes = run("readelf", "-n", os.path.join(unpacked, program)).stdout
            build_id = re.search(r"Build ID: ([0-9a-f]+)", notes).group(1)
            ids.add((build_id[:2], build_id[2:]))
        self.assertEqual(named, ids)
        # Errors and warnings; the informational tags left are in README "Running in
        # production" with their reasons (lintian -I --pedantic shows them).
        # Its temporary files in the class's directory: lintian leaves some (mldbm-elf-*)
        # wherever TMPDIR points.
        scratch = os.path.join(self.out, "lintian-tmp")
        os.makedirs(scratch, exist_ok=True)
        linted = run("lintian", "--fail-on", "error,warning", "--tag-display-limit", "0",
                     packages["smtpsd"], packages["smtpsd-mta"], packages["smtpsd-dbgsym"],
                     env={**os.environ, "TMPDIR": scratch})
        self.assertEqual(linted.returncode, 0, linted.stdout + linted.stderr)

    @staticmethod
    def account():
        try:
            return pwd.getpwnam("smtpsd")
        except KeyError:
            return None


@needs.tools("scdoc", "readelf")
class Install(unittest.TestCase):
    """`make install`'s rules (cmake --install --strip with a prefix and DESTDIR)."""

    def test_each_file_goes_to_its_place_under_the_prefix(self):
        stage = self.enterContext(tempfile.TemporaryDirectory())
        done = run("cmake", "--install", BUILD, "--prefix", "/opt/smtpsd", "--strip",
                   env=dict(os.environ, DESTDIR=stage))
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        found = sorted(os.path.relpath(os.path.join(top, name), stage)
                       for top, _, names in os.walk(stage) for name in names)
        docs = sorted(f"opt/smtpsd/share/doc/smtpsd/{name}"
                      for name in os.listdir(os.path.join(ROOT, "docs")) if name.endswith(".md"))
        self.assertEqual(found, sorted([
            "etc/fail2ban/filter.d/smtpsd.conf",
            "opt/smtpsd/bin/smtpsctl",
            "opt/smtpsd/lib/smtpsd/acme-dns-nsupdate",
            "opt/smtpsd/lib/systemd/system/smtpsd.service",
            "opt/smtpsd/sbin/smtpsd",
            "opt/smtpsd/share/doc/smtpsd/README.md",
            "opt/smtpsd/share/doc/smtpsd/examples/fail2ban/jail.d/smtpsd.conf",
            "opt/smtpsd/share/doc/smtpsd/examples/systemd/credentials.conf",
            "opt/smtpsd/share/man/man1/smtpsctl.1",
            "opt/smtpsd/share/man/man5/smtpsd.toml.5",
            "opt/smtpsd/share/man/man8/smtpsd.8", *docs]))
        unit = read(os.path.join(stage, "opt/smtpsd/lib/systemd/system/smtpsd.service"))
        self.assertIn("\nExecStart=/opt/smtpsd/sbin/smtpsd serve ", unit)
        self.assertIn("\nExecStartPre=/opt/smtpsd/sbin/smtpsd check ", unit)
        self.assertIn("\nDocumentation=file:/opt/smtpsd/share/doc/smtpsd/README.md\n", unit)
        self.assertTrue(os.access(os.path.join(stage, "opt/smtpsd/lib/smtpsd/acme-dns-nsupdate"),
                                  os.X_OK))
        for program in ("opt/smtpsd/sbin/smtpsd", "opt/smtpsd/bin/smtpsctl"):
            sections = run("readelf", "-S", "-W", os.path.join(stage, program)).stdout
            self.assertNotIn(".symtab", sections, f"{program} is not stripped")
            self.assertTrue(os.access(os.path.join(stage, program), os.X_OK))


if __name__ == "__main__":
    unittest.main()
