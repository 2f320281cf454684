"""The queue tools an administrator knows from Postfix, against the real binaries: `mailq`
(a symlink to smtpsctl) and every `smtpsctl queue` command with --json on a queue of
deferred messages (a relay that answers 451), `show --body` (as postcat), the bulk verbs by
--to-domain / --from / --all, requeue, the configuration found through SMTPSD_CONFIG
without --config, a non-root caller that sees only its own messages and can change
nothing, and the bad inputs (README "Delivery and the queue").

Every command here sets SMTPSD_CONFIG (or --config): a package may have installed
/etc/smtpsd on this machine, and the tests must never read it.
"""

import json
import re
import os
import shutil
import subprocess
import time
import unittest

import needs
from fake_smtp import FakeSmtp
from harness import SMTPSD, ServerTestCase
from test_onward import delivery_toml, submit, wait_log_after

SMTPSCTL = os.path.join(os.path.dirname(SMTPSD), "smtpsctl")
SETPRIV = shutil.which("setpriv")
ROOT = os.geteuid() == 0
NOBODY = 65534
LATER = "451 4.3.0 try later"


def run(args, config=None, env_extra=None, prefix=(), stdin=None):
    """Runs a command with SMTPSD_CONFIG set to config (never the machine's /etc/smtpsd)."""
    env = dict(os.environ)
    env["SMTPSD_CONFIG"] = config if config is not None else "/nonexistent/smtpsd.toml"
    env.update(env_extra or {})
    return subprocess.run([*prefix, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=env, timeout=20, input=stdin)


class QueueTools(ServerTestCase):
    def deferred_server(self, server_keys=""):
        """A server relaying to a fake that answers 451 to everyone, retrying in an hour;
        server_keys: more lines for its [server] table."""
        self.remote = FakeSmtp(rcpt={a: [LATER] for a in (
            "bob@remote.test", "carol@other.test", "dave@remote.test")})
        self.remote.__enter__()
        self.addCleanup(self.remote.__exit__)
        server = self.new_server()
        server.extra_toml = delivery_toml(relay=f"smtp://127.0.0.1:{self.remote.port}",
                                          relay_tls="may", retry=(3600,))
        server.write_config()
        if server_keys:
            with open(server.config_path) as f:
                config = f.read()
            with open(server.config_path, "w") as f:
                f.write(config.replace("[server]\n", "[server]\n" + server_keys + "\n", 1))
        server.start()
        return server

    def ctl(self, server, *args, **kwargs):
        return run([SMTPSCTL, *args], config=server.config_path, **kwargs)

    def json_of(self, server, *args, **kwargs):
        result = self.ctl(server, *args, "--json", **kwargs)
        self.assertEqual(result.returncode, 0, result.stderr)
        return json.loads(result.stdout)

    def test_mailq_and_every_queue_command_with_json_on_deferred_mail(self):
        server = self.deferred_server()
        first = submit(server, ["bob@remote.test", "carol@other.test"], subject="first")
        second = submit(server, ["carol@other.test"], subject="second")
        for queue_id in (first, second):
            server.wait_log(r"event=retry id=" + queue_id)
        now = time.time()

        # SMTPSD_CONFIG alone finds the server: no --config anywhere below.
        listed = self.ctl(server, "queue", "list")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        text = listed.stdout.decode()
        self.assertIn("ID STATE AGE_SECONDS SIZE ATTEMPTS SENDER\n", text)
        self.assertRegex(text, first + r" deferred \d+ \d+ 1 <demo@localhost>\n"
                         r"    <bob@remote.test> next attempt in 3[56]\d\ds: .*451 4\.3\.0 try later")
        self.assertRegex(text, r"    <carol@other.test> next attempt in \d+s: .*451 4\.3\.0")

        # mailq is smtpsctl queue list under another name, options included.
        mailq = os.path.join(self.tmp, "mailq")
        os.symlink(SMTPSCTL, mailq)
        from_mailq = run([mailq], config=server.config_path)
        self.assertEqual(from_mailq.returncode, 0, from_mailq.stderr)
        # The age may tick over a second between the two listings: compare the rest.
        without_age = lambda line: re.sub(r"^(\S+ \S+) \d+ ", r"\1 AGE ", line)
        self.assertEqual([without_age(l) for l in from_mailq.stdout.decode().splitlines()[:2]],
                         [without_age(l) for l in text.splitlines()[:2]])
        mailq_json = json.loads(run([mailq, "--json"], config=server.config_path).stdout)
        self.assertEqual([m["id"] for m in mailq_json["messages"]], sorted([first, second]))

        listing = self.json_of(server, "queue", "list")["messages"]
        entry = next(m for m in listing if m["id"] == first)
        self.assertEqual(entry["sender"], "demo@localhost")
        self.assertEqual(entry["state"], "deferred")
        self.assertFalse(entry["held"])
        self.assertEqual(entry["attempts"], 1)
        self.assertEqual([r["address"] for r in entry["recipients"]],
                         ["bob@remote.test", "carol@other.test"])
        for recipient in entry["recipients"]:
            self.assertEqual(recipient["state"], "pending")
            self.assertIn(LATER, recipient["last_error"])
            self.assertAlmostEqual(recipient["next_attempt_unix"], now + 3600, delta=30)

        shown = self.json_of(server, "queue", "show", first)
        self.assertEqual(shown["id"], first)
        self.assertIn(LATER, shown["recipients"][0]["last_error"])
        body = self.ctl(server, "queue", "show", first, "--body")
        self.assertEqual(body.returncode, 0, body.stderr)
        self.assertIn(b"*** MESSAGE CONTENTS " + first.encode() + b" ***\nReceived: ",
                      body.stdout)
        self.assertIn(b"Subject: first\r\n", body.stdout)
        self.assertIn("Subject: first",
                      self.json_of(server, "queue", "show", first, "--body")["body"])

        # Selections: a pending recipient's domain, the sender.
        by_domain = self.json_of(server, "queue", "list", "--to-domain", "remote.test")
        self.assertEqual([m["id"] for m in by_domain["messages"]], [first])
        by_sender = self.json_of(server, "queue", "list", "--from", "demo@localhost")
        self.assertEqual(len(by_sender["messages"]), 2)
        self.assertEqual(self.json_of(server, "queue", "list", "--from", "x@localhost"),
                         {"messages": []})

        # Bulk hold and release.
        held = self.json_of(server, "queue", "hold", "--to-domain", "remote.test")
        self.assertEqual((held["action"], held["count"]), ("held", 1))
        states = {m["id"]: m["held"] for m in self.json_of(server, "queue", "list")["messages"]}
        self.assertEqual(states, {first: True, second: False})
        offset = len(server.log())  # before the command: the retry may follow it at once
        released = self.json_of(server, "queue", "release", "--all")
        self.assertEqual(released["action"], "released")
        wait_log_after(server, offset, r"event=retry id=" + first)  # released: tried now

        # requeue: tried again now, whatever the retry schedule says.
        offset = len(server.log())
        requeued = self.json_of(server, "queue", "requeue", second)
        self.assertEqual(requeued, {"action": "requeued", "count": 1,
                                    "messages": [{"id": second, "when_attempt_ends": False}]})
        wait_log_after(server, offset, r"event=retry id=" + second)
        attempts = {m["id"]: m["attempts"] for m in self.json_of(server, "queue", "list")["messages"]}
        self.assertEqual(attempts[second], 2)
        offset = len(server.log())
        flushed = self.json_of(server, "queue", "flush", "--from", "demo@localhost")
        self.assertEqual(flushed["action"], "flushed")

        # Bulk delete by sender: nothing left, and no bounce (as postsuper -d). Once the
        # attempts the flush started are over: a message in an attempt is deleted when the
        # attempt ends ("when_attempt_ends"), after this listing.
        for queue_id in (first, second):
            wait_log_after(server, offset, r"event=retry id=" + queue_id)
        deleted = self.json_of(server, "queue", "delete", "--from", "demo@localhost")
        self.assertEqual(sorted(m["id"] for m in deleted["messages"]), sorted([first, second]))
        self.assertEqual(self.json_of(server, "queue", "list"), {"messages": []})
        self.assertEqual(self.ctl(server, "queue", "list").stdout, b"queue is empty\n")
        self.assertEqual(server.spool_ids(), [])
        self.assertEqual(server.delivered("demo@localhost"), [])

    def test_delete_all(self):
        server = self.deferred_server()
        ids = [submit(server, ["dave@remote.test"], subject=f"m{i}") for i in range(3)]
        for queue_id in ids:
            server.wait_log(r"event=retry id=" + queue_id)
        deleted = self.ctl(server, "queue", "delete", "--all")
        self.assertEqual(deleted.returncode, 0, deleted.stderr)
        self.assertEqual(sorted(deleted.stdout.decode().split()),
                         sorted(["deleted"] * 3 + ids))
        self.assertEqual(server.spool_ids(), [])

    def test_bad_inputs_get_clear_errors(self):
        server = self.new_server()
        server.start()
        missing = run([SMTPSCTL, "queue", "list"], config="/nonexistent/dir/smtpsd.toml")
        self.assertEqual(missing.returncode, 2)
        self.assertIn(b"no configuration file at /nonexistent/dir/smtpsd.toml (SMTPSD_CONFIG)",
                      missing.stderr)
        no_daemon_config = run([SMTPSD, "check"], config="/nonexistent/dir/smtpsd.toml")
        self.assertEqual(no_daemon_config.returncode, 2)
        self.assertIn(b"/nonexistent/dir/smtpsd.toml", no_daemon_config.stderr)
        # smtpsd check reads SMTPSD_CONFIG too.
        checked = run([SMTPSD, "check"], config=server.config_path)
        self.assertEqual(checked.returncode, 0, checked.stderr)
        # --config wins over SMTPSD_CONFIG.
        explicit = run([SMTPSCTL, "queue", "list", "--config", server.config_path])
        self.assertEqual(explicit.stdout, b"queue is empty\n", explicit.stderr)

        cases = [
            (("queue", "show", "0123456789ABCDEF0000"), 1,
             b"no message 0123456789ABCDEF0000 in the queue"),
            (("queue", "delete", "0123456789ABCDEF0000"), 1,
             b"no message 0123456789ABCDEF0000 in the queue"),
            (("queue", "delete", "0123456789ABCDEF0000", "--all"), 2,
             b"give a queue id or a selection (--all, --to-domain, --from, --user), not both"),
            (("queue", "hold", "--all", "--to-domain", "example.net"), 2,
             b"--all selects every message"),
            (("queue", "hold"), 2,
             b"queue hold needs a queue id, --all, --to-domain, --from or --user"),
            (("queue", "release", "--user", "two words"), 2, b"holds no white space"),
            (("queue", "list", "--colour"), 2, b"--colour"),
            (("queue", "hold", "--to-domain", "bad..domain"), 1,
             b"'bad..domain' is not a domain name"),
            (("queue", "list", "--from", "nobody"), 1, b"'nobody' is not an address"),
            (("queue", "release", "../../etc/passwd"), 1, b"is not a queue id"),
        ]
        for args, code, error in cases:
            result = self.ctl(server, *args)
            self.assertEqual(result.returncode, code, (args, result.stderr))
            self.assertIn(error, result.stderr, args)

    @needs.condition(ROOT and SETPRIV, "a second local user needs root and setpriv")
    def test_a_user_sees_only_their_own_messages_and_changes_nothing(self):
        mailq_socket = os.path.join(self.tmp, "mailq.sock")
        server = self.deferred_server(f'mailq_socket = "{mailq_socket}"')
        self.assertEqual(os.stat(mailq_socket).st_mode & 0o777, 0o666)
        # nobody@localhost, the login name of uid 65534, gets a password and sends a message.
        added = run([SMTPSCTL, "user", "add", "--users", os.path.join(server.dir, "users"),
                     "nobody@localhost"], stdin=b"nobody-password-1\n")
        self.assertEqual(added.returncode, 0, added.stderr)
        server.wait_log(r"event=users_loaded file=\S+ users=2")  # re-read within a second
        own = self.submit_as(server, "nobody@localhost", "nobody-password-1", "bob@remote.test")
        other = submit(server, ["bob@remote.test"], subject="demo's")
        for queue_id in (own, other):
            server.wait_log(r"event=retry id=" + queue_id)
        os.chmod(self.tmp, 0o711)  # nobody reaches the configuration (0644) and the socket

        as_nobody = [SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        mailq = os.path.join(self.tmp, "mailq")
        os.symlink(SMTPSCTL, mailq)
        listed = run([mailq], config=server.config_path, prefix=as_nobody)
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn(own, listed.stdout.decode())
        self.assertNotIn(other, listed.stdout.decode())
        self.assertIn("<bob@remote.test> next attempt in", listed.stdout.decode())
        listed_json = json.loads(run([mailq, "--json"], config=server.config_path,
                                     prefix=as_nobody).stdout)
        self.assertEqual([m["id"] for m in listed_json["messages"]], [own])
        # Root sees both.
        self.assertEqual(len(self.json_of(server, "queue", "list")["messages"]), 2)

        for args in (("queue", "delete", other), ("queue", "delete", "--all"),
                     ("queue", "hold", own), ("queue", "flush"), ("queue", "show", other)):
            refused = run([SMTPSCTL, *args], config=server.config_path, prefix=as_nobody)
            self.assertEqual(refused.returncode, 1, args)
            self.assertIn(b"Permission denied", refused.stderr, args)
        # Even on the listing socket itself, only listing is served.
        direct = run([SMTPSCTL, "queue", "delete", "--all", "--socket", mailq_socket],
                     prefix=as_nobody)
        self.assertEqual(direct.returncode, 1)
        self.assertIn(b"permission denied", direct.stderr)
        self.assertEqual(sorted(server.spool_ids()), sorted([own, other]))

    def submit_as(self, server, user, password, rcpt):
        """Sends as user through implicit TLS with AUTH; returns the queue id."""
        client = server.smtps()
        try:
            client.login(user, password)
            self.assertEqual(client.mail(user)[0], 250)
            self.assertEqual(client.rcpt(rcpt)[0], 250)
            code, reply = client.data(b"Subject: mine\r\n\r\nHello.\r\n")
            self.assertEqual(code, 250, reply)
            return reply.decode().split()[-1]
        finally:
            client.quit()


if __name__ == "__main__":
    unittest.main()
