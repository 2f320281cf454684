"""`smtpsd check` catches what would stop the start (src/app/smtpsd/startup_check.h), each
problem with its exact message naming the file or the key, with the real binary:

- a users file that does not parse, a certificate that does not match its key, a data
  directory the account cannot enter: errors, whoever runs the check;
- run as root for a configuration naming an account (the server starts as root, then
  drops), a file the account cannot read is a warning (the start works, a later reload of
  that file would not); run as the account itself, as the systemd unit's pre-start step
  does (User=smtpsd, emulated with setpriv: there is no systemd here), the same file is an
  error, and so are a data directory the account cannot write and a port below 1024
  without CAP_NET_BIND_SERVICE; with the unit's one capability that port passes;
- with [local_submission], a socket directory or a configuration other local users cannot
  reach or read (sendmail runs as them): a warning naming the directory or the file.

Needs root (to make files another account cannot read) and setpriv.
"""

import os
import random
import shutil
import subprocess

import needs
from harness import SMTPSD, ServerTestCase, port_free

NOBODY = 65534  # stands for the unit's account smtpsd, which this machine may not have
SETPRIV = shutil.which("setpriv")
# What the unit's User= (without its AmbientCapabilities=) and then the whole unit give the
# pre-start step (test_privileges.py checks the unit says so).
AS_THE_ACCOUNT = [str(SETPRIV), "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups"]
AS_THE_UNIT = AS_THE_ACCOUNT + ["--inh-caps", "+net_bind_service", "--ambient-caps",
                                "+net_bind_service", "--bounding-set", "-all,+net_bind_service",
                                "--no-new-privs"]
DKIM_KEY = "dkim/localhost/dev-ed25519.key"  # made by `smtpsd dev --init-only`


@needs.condition(os.geteuid() == 0 and SETPRIV is not None,
                 "files the account cannot read need root; setpriv stands for the unit")
class StartupCheck(ServerTestCase):
    def check(self, server, prefix=()):
        return subprocess.run([*prefix, SMTPSD, "check", "--config", server.config_path],
                              capture_output=True, text=True, timeout=60)

    def edit_config(self, server, old, new):
        with open(server.config_path) as f:
            text = f.read()
        self.assertIn(old, text)
        with open(server.config_path, "w") as f:
            f.write(text.replace(old, new))

    def line_of(self, server, text):
        with open(server.config_path) as f:
            return 1 + f.read().split(text)[0].count("\n")

    def test_files_that_stop_the_start_whoever_checks(self):
        os.chmod(self.tmp, 0o711)
        server = self.new_server(privileges={"user": "nobody"},
                                 listeners=[{"role": "smtp", "port": 0}])
        users = os.path.join(self.tmp, "users")
        with open(users, "w") as f:
            f.write("smtpsd-users 1\nnot an address\n")
        found = self.check(server)
        self.assertEqual(found.returncode, 2, found.stdout + found.stderr)
        self.assertEqual(found.stderr, f"{users}:2: expected 4 fields: address argon2id-hash "
                                       f"scram-keys aliases\n")
        self.assertTrue(found.stdout.endswith("configuration has errors\n"), found.stdout)

        os.remove(users)  # as the server reads it: a missing users file is empty
        other = os.path.join(self.tmp, "tls", "other.key")
        made = subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                               "ec_paramgen_curve:P-256", "-out", other], capture_output=True)
        self.assertEqual(made.returncode, 0, made.stderr)
        self.edit_config(server, 'key = "tls/server-ecdsa.key"', 'key = "tls/other.key"')
        certificate = os.path.join(self.tmp, "tls", "server-ecdsa.pem")
        line = self.line_of(server, "[[tls.certificates]]")
        found = self.check(server)
        self.assertEqual(found.returncode, 2, found.stdout + found.stderr)
        self.assertEqual(found.stderr,
                         f"{server.config_path}:{line}: tls.certificates[0]: {other}: private "
                         f"key does not match the certificate {certificate}\n")
        self.edit_config(server, 'key = "tls/other.key"', 'key = "tls/server-ecdsa.key"')

        closed = os.path.join(self.tmp, "closed")
        os.makedirs(os.path.join(closed, "data"))
        os.chmod(closed, 0o700)
        self.edit_config(server, 'data_dir = "."', 'data_dir = "closed/data"')
        found = self.check(server)
        self.assertEqual(found.returncode, 2, found.stdout + found.stderr)
        self.assertEqual(found.stderr,
                         f"{closed}/data: the data directory is out of reach of nobody: it "
                         f"cannot enter {closed}; chmod o+x {closed} (or give its group to "
                         f"nobody)\n")
        os.chmod(closed, 0o711)
        os.chown(os.path.join(closed, "data"), NOBODY, NOBODY)
        found = self.check(server)
        self.assertEqual((found.returncode, found.stderr), (0, ""), found.stdout)

    def test_local_submission_out_of_reach_of_other_users_is_a_warning(self):
        """sendmail runs as any local user (cron, `mail`): it reads the configuration to find
        the socket, and connects to it. A socket under a closed directory (the package's
        data directory is 0750) or a configuration only root and the account may read work
        for those two alone: a warning (the server itself starts)."""
        os.chmod(self.tmp, 0o711)
        closed = os.path.join(self.tmp, "closed")
        os.makedirs(closed)
        os.chmod(closed, 0o750)
        socket = os.path.join(closed, "run", "submit.sock")
        server = self.new_server(privileges={"user": "nobody"},
                                 listeners=[{"role": "smtp", "port": 0}],
                                 extra_toml=f'[local_submission]\nsocket = "{socket}"\n')
        config = server.config_path
        os.chmod(config, 0o640)
        found = self.check(server)
        self.assertEqual((found.returncode, found.stderr), (0, ""), found.stdout)
        self.assertIn(f"warning: {socket}: the local submission socket is out of reach of other "
                      f"users ({closed} is closed to them): sendmail fails for every user but "
                      f"the server's account and root; chmod o+x {closed}, or socket = "
                      f"\"/run/smtpsd/submit.sock\" in [local_submission]\n", found.stdout)
        self.assertIn(f"warning: {config}: the configuration is not readable by other users: "
                      f"sendmail reads it to find the local submission socket (it holds no "
                      f"secret: keys and passwords are files of their own); chmod o+r "
                      f"{config}\n", found.stdout)
        os.chmod(self.tmp, 0o710)  # above both: one line each, naming the directory
        found = self.check(server)
        self.assertIn(f"warning: {config}: the configuration is out of reach of other users "
                      f"({self.tmp} is closed to them): sendmail reads it to find the local "
                      f"submission socket; chmod o+x {self.tmp}\n", found.stdout)
        self.assertIn(f"({self.tmp} is closed to them): sendmail fails", found.stdout)
        # The fixes: no warning left about other users.
        os.chmod(self.tmp, 0o711)
        os.chmod(closed, 0o751)
        os.chmod(config, 0o644)
        found = self.check(server)
        self.assertEqual((found.returncode, found.stderr), (0, ""), found.stdout)
        self.assertNotIn("other users", found.stdout)

    def test_as_the_account_what_root_warns_about_is_an_error(self):
        os.chmod(self.tmp, 0o711)
        port = next((p for p in random.sample(range(600, 1000), 100) if port_free(p)), None)
        self.assertIsNotNone(port, "no free port below 1024")
        server = self.new_server(
            privileges={"user": "nobody"}, listeners=[{"role": "smtp", "port": port}],
            domains=[("localhost", [],
                      {"dkim": [{"selector": "dev-ed25519", "key": DKIM_KEY}]})])
        # The TLS keys given to the account, as `smtpsd init` does; the users file and the
        # DKIM key (0600 root, as `smtpsd dev` made them) and the data directory not.
        for key in ("tls/server-ecdsa.key", "tls/server-rsa.key"):
            os.chown(os.path.join(self.tmp, key), 0, NOBODY)
            os.chmod(os.path.join(self.tmp, key), 0o640)
        users = os.path.join(self.tmp, "users")
        dkim = os.path.join(self.tmp, DKIM_KEY)
        self.assertEqual(os.stat(dkim).st_mode & 0o777, 0o600)

        # As root: the server starts (it reads the files as root, then drops): warnings.
        found = self.check(server)
        self.assertEqual((found.returncode, found.stderr), (0, ""), found.stdout)
        self.assertIn(f"warning: {dkim}: the DKIM key is not readable by nobody: the server "
                      f"starts (it reads it as root first), but a reload after it changes is "
                      f"refused; chown nobody {dkim}\n", found.stdout)
        self.assertIn(f"warning: {users}: the users file is not readable by nobody: the "
                      f"server starts (it reads it as root first), but a reload after it "
                      f"changes is refused; chgrp nogroup {users}; chmod g+r {users}\n",
                      found.stdout)
        self.assertTrue(found.stdout.endswith("configuration OK\n"), found.stdout)

        # As the account: the DKIM key cannot even be loaded.
        found = self.check(server, AS_THE_ACCOUNT)
        self.assertEqual(found.returncode, 2, found.stdout + found.stderr)
        line = self.line_of(server, "dkim = ")
        self.assertEqual(found.stderr, f"smtpsd: {server.config_path}:{line}: "
                                       f"domains[0].dkim[0].key: cannot read {dkim}: "
                                       f"Permission denied\n")
        os.chown(dkim, NOBODY, NOBODY)  # the fix the warning gave

        # Then each start-up problem, as an error: the port, the users file, the data dir.
        found = self.check(server, AS_THE_ACCOUNT)
        self.assertEqual(found.returncode, 2, found.stdout + found.stderr)
        for expected in (
                f"smtp listener 127.0.0.1 port {port}: ports below 1024 need root (then the "
                f"server drops to its account) or CAP_NET_BIND_SERVICE (the systemd unit "
                f"gives it)",
                f"{users}: the users file is not readable by nobody, the account the server "
                f"runs as; chgrp nogroup {users}; chmod g+r {users}",
                f"{self.tmp}: the data directory is not writable by nobody; chown nobody "
                f"{self.tmp}"):
            self.assertIn(expected + "\n", found.stderr)
        self.assertNotIn(f"warning: {users}", found.stdout)
        self.assertNotIn(f"{users}: Permission denied", found.stderr)  # said once, with its fix
        # Checked as root, neither the port nor the data directory is a problem (root binds,
        # and gives the data directory to the account at start).
        self.assertNotIn("port", self.check(server).stderr)

        # With the unit's one capability the port passes; fixed as the messages say, the
        # pre-start check passes.
        found = self.check(server, AS_THE_UNIT)
        self.assertNotIn("ports below 1024", found.stderr)
        os.chown(users, 0, NOBODY)
        os.chmod(users, 0o640)
        os.chown(self.tmp, NOBODY, NOBODY)
        found = self.check(server, AS_THE_UNIT)
        # (Another test may have taken the port meanwhile: that alone is not this test's.)
        errors = [line for line in found.stderr.splitlines()
                  if f"port {port}: already in use" not in line]
        self.assertEqual(errors, [], found.stdout)


if __name__ == "__main__":
    import unittest
    unittest.main()
