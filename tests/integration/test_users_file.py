"""The users file as an administrator edits it, with the real binaries.

A running server takes an edit by itself (no AUTH is needed to make it look): a deleted
user is refused at its very first attempt, and a broken edit is reported at once (an
error line naming file:line, and /metrics) while the previous users keep being served.
`smtpsctl user` edits are serialised by a lock (parallel edits all land) and, run as root,
keep the owner, group and mode of the file the unprivileged server reads."""

import os
import re
import smtplib
import stat
import subprocess
import time
import urllib.request

from harness import SMTPSD, ServerTestCase

SMTPSCTL = os.environ.get("SMTPSCTL_BIN") or os.path.join(os.path.dirname(SMTPSD), "smtpsctl")
METRICS_LISTENING = re.compile(r"event=metrics_listening address=(\S+) port=(\d+)")
NOBODY = 65534


def smtpsctl(*args, password=None, check=True):
    result = subprocess.run([SMTPSCTL] + list(args), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, timeout=60,
                            input=(password + "\n").encode() if password is not None else b"")
    if check and result.returncode != 0:
        raise AssertionError(f"smtpsctl {args} failed ({result.returncode}): {result.stdout!r}")
    return result


def demo_password(server):
    with open(os.path.join(server.dir, "demo.password")) as f:
        return f.read().strip()


def login_code(server, user, password):
    client = server.smtps()
    try:
        return client.login(user, password)[0]
    except smtplib.SMTPAuthenticationError as error:
        return error.smtp_code
    finally:
        client.close()


def scrape(server, name):
    host, port = METRICS_LISTENING.search(server.log()).groups()
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split(" ")[1])
    raise AssertionError(f"{name} not in /metrics")


class UsersFileChanges(ServerTestCase):
    def users(self, server):
        return os.path.join(server.dir, "users")

    def wait_log_count(self, server, pattern, count, timeout=5):
        deadline = time.time() + timeout
        while len(re.findall(pattern, server.log())) < count:
            self.assertLess(time.time(), deadline, f"no {pattern!r} in time:\n{server.log()}")
            time.sleep(0.05)

    def test_deleted_user_is_refused_at_first_attempt_without_an_auth_to_trigger_it(self):
        server = self.new_server(domains=[("localhost", ["demo", "carol"])])
        smtpsctl("user", "add", "--users", self.users(server), "carol@localhost",
                 password="Carol-Pass-1")
        with server:
            self.assertEqual(login_code(server, "carol@localhost", "Carol-Pass-1"), 235)
            loads = server.log().count("event=users_loaded")
            smtpsctl("user", "del", "--users", self.users(server), "carol@localhost")
            # No AUTH until the server says it re-read the file: the watch did it.
            self.wait_log_count(server, r"event=users_loaded \S+ users=1\b", 1, timeout=3)
            self.assertEqual(server.log().count("event=users_loaded"), loads + 1)
            self.assertEqual(login_code(server, "carol@localhost", "Carol-Pass-1"), 535)
            self.assertEqual(login_code(server, "demo@localhost", demo_password(server)), 235)

    def test_broken_edit_is_logged_at_once_shown_in_metrics_and_old_users_serve(self):
        server = self.new_server(domains=[("localhost", ["demo", "carol"])],
                                 extra_toml='[metrics]\naddress = "127.0.0.1:0"\n')
        server.expected_errors = [r"event=users_reload_failed"]  # the broken edit, at once
        smtpsctl("user", "add", "--users", self.users(server), "carol@localhost",
                 password="Carol-Pass-1")
        with server:
            self.assertEqual(scrape(server, "smtpsd_users_file_valid"), 1)
            self.assertEqual(scrape(server, "smtpsd_users"), 2)
            loaded = scrape(server, "smtpsd_users_file_loaded_timestamp_seconds")
            self.assertGreater(loaded, time.time() - 60)
            # An edit by hand that deletes carol and breaks line 3.
            with open(self.users(server)) as f:
                lines = [line for line in f.read().splitlines(keepends=True)
                         if not line.startswith("carol@")]
            lines.insert(2, "this is not a user\n")
            with open(self.users(server), "w") as f:
                f.write("".join(lines))
            self.wait_log_count(server, r"(?m)^\S+ level=error event=users_reload_failed "
                                rf"file={re.escape(self.users(server))} "
                                rf"error=\"?{re.escape(self.users(server))}:3: ", 1, timeout=3)
            self.assertEqual(scrape(server, "smtpsd_users_file_valid"), 0)
            self.assertEqual(scrape(server, "smtpsd_users_file_loaded_timestamp_seconds"),
                             loaded)
            # The old users still serve (carol too: her deletion was not applied).
            self.assertEqual(login_code(server, "demo@localhost", demo_password(server)), 235)
            self.assertEqual(login_code(server, "carol@localhost", "Carol-Pass-1"), 235)
            # smtpsctl refuses to edit the broken file and names file:line.
            refused = smtpsctl("user", "del", "--users", self.users(server), "carol@localhost",
                               check=False)
            self.assertEqual(refused.returncode, 1)
            self.assertIn(f"{self.users(server)}:3: ".encode(), refused.stdout)
            # Fixed: valid again, and the deletion applies.
            with open(self.users(server), "w") as f:
                f.write("".join(line for line in lines if "not a user" not in line))
            self.wait_log_count(server, r"event=users_loaded \S+ users=1\b", 1, timeout=3)
            self.assertEqual(scrape(server, "smtpsd_users_file_valid"), 1)
            self.assertEqual(login_code(server, "carol@localhost", "Carol-Pass-1"), 535)


class UsersFileEdits(ServerTestCase):
    def test_parallel_adds_all_land(self):
        path = os.path.join(self.tmp, "users")
        addresses = [f"user{i}@example.org" for i in range(6)]
        processes = [subprocess.Popen([SMTPSCTL, "user", "add", "--users", path, address],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT)
                     for address in addresses]
        for process in processes:  # all started before any gets its password
            process.stdin.write(b"Parallel-Pass-1\n")
            process.stdin.close()
        for process in processes:
            self.assertEqual(process.wait(timeout=60), 0, process.stdout.read())
            process.stdout.close()
        listed = smtpsctl("user", "list", "--users", path).stdout.decode().split()
        self.assertEqual(sorted(listed), addresses)
        self.assertEqual([name for name in os.listdir(self.tmp) if ".tmp." in name], [])

    def test_edit_as_root_keeps_owner_group_and_mode(self):
        self.assertEqual(os.geteuid(), 0, "needs root, as CI runs it")
        path = os.path.join(self.tmp, "users")
        smtpsctl("user", "add", "--users", path, "a@example.org", password="Owner-Pass-1")
        os.chown(path, NOBODY, NOBODY)
        os.chmod(path, 0o640)
        smtpsctl("user", "add", "--users", path, "b@example.org", password="Owner-Pass-2")
        status = os.stat(path)
        self.assertEqual((status.st_uid, status.st_gid), (NOBODY, NOBODY))
        self.assertEqual(stat.S_IMODE(status.st_mode), 0o640)
        # Permissions for others are never copied: the file holds password hashes.
        os.chmod(path, 0o644)
        smtpsctl("user", "del", "--users", path, "a@example.org")
        status = os.stat(path)
        self.assertEqual(stat.S_IMODE(status.st_mode), 0o640)
        self.assertEqual(status.st_uid, NOBODY)
