"""Sending limits ([sending_limits]): the leaked-credential bounds on distinct external
recipients, with the real binaries on loopback (README "Sending limits").

A user past the hour's bound has that message and every later one accepted (250) and held
in the queue, not delivered: one warning line names the user, the count, the bound and the
window, and smtpsd_users_held_total counts it. Recipients of our own domains do not count;
another user is not affected. `smtpsctl queue release --user` delivers the held mail exactly
once and lifts the hold; `smtpsctl auth unlock` lifts the hold (the held mail stays held), and
who is held survives a restart. Bad values are configuration errors naming file, line and
key. The bounds are tiny here, so no window is ever waited out.
"""

import json
import os
import re
import subprocess
import urllib.request
import unittest

from fake_smtp import FakeSmtp
from harness import SMTPSD, ServerTestCase, make_message
from test_onward import delivery_toml

SMTPSCTL = os.path.join(os.path.dirname(SMTPSD), "smtpsctl")
OTHER_PASSWORD = "Other-Pass-42"
METRICS_LISTENING = re.compile(r"event=metrics_listening address=(\S+) port=(\d+)")


def demo_password(server):
    with open(os.path.join(server.dir, "demo.password")) as f:
        return f.read().strip()


def ctl(server, *args, password=None):
    """smtpsctl with the server's configuration (never the machine's /etc/smtpsd)."""
    env = dict(os.environ, SMTPSD_CONFIG=server.config_path)
    return subprocess.run([SMTPSCTL, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=env, timeout=30,
                          input=(password + "\n").encode() if password is not None else b"")


def send(server, user, password, recipients, subject):
    """One message from user (implicit TLS, AUTH) to recipients; returns the queue id."""
    client = server.smtps()
    try:
        client.login(user, password)
        code, reply = client.mail(user)
        assert code == 250, reply
        for rcpt in recipients:
            code, reply = client.rcpt(rcpt)
            assert code == 250, (rcpt, reply)
        code, reply = client.data(make_message(subject=subject, sender=user, to=recipients[0]))
        assert code == 250, reply
        return reply.decode().split()[-1]
    finally:
        client.quit()


class SendingLimits(ServerTestCase):
    def limited_server(self, per_hour, per_day, metrics=False):
        """A server with the given recipient bounds, relaying every remote recipient to a fake
        next hop that takes everything, and a second user other@localhost."""
        self.remote = FakeSmtp()
        self.remote.__enter__()
        self.addCleanup(self.remote.__exit__)
        server = self.new_server(domains=[("localhost", ["demo", "other"])])
        server.extra_toml = (
            delivery_toml(relay=f"smtp://127.0.0.1:{self.remote.port}", relay_tls="may") +
            f"[sending_limits]\nexternal_recipients_per_hour = {per_hour}\n"
            f"external_recipients_per_day = {per_day}\n" +
            ('[metrics]\naddress = "127.0.0.1:0"\n' if metrics else ""))
        server.write_config()
        added = ctl(server, "user", "add", "--users", os.path.join(server.dir, "users"),
                    "other@localhost", password=OTHER_PASSWORD)
        self.assertEqual(added.returncode, 0, added.stderr)
        return server

    def remote_subjects(self):
        with self.remote.lock:
            return [re.search(rb"Subject: (\S+)", data).group(1).decode()
                    for _, _, data, _ in self.remote.messages]

    def state(self, server, queue_id):
        shown = ctl(server, "queue", "show", queue_id, "--json")
        if shown.returncode != 0:
            return "gone"
        return json.loads(shown.stdout)["state"]

    def scrape_held(self, server):
        host, port = METRICS_LISTENING.search(server.log()).groups()
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
        found = re.search(r'^smtpsd_users_held_total\{window="1h"\} (\S+)$', text, re.M)
        self.assertIsNotNone(found, text)
        return float(found.group(1))

    def test_past_the_bound_mail_is_held_and_release_by_user_delivers_it_once(self):
        server = self.limited_server(per_hour=3, per_day=10, metrics=True)
        demo = ("demo@localhost", demo_password(server))
        with server:
            self.assertEqual(self.scrape_held(server), 0)
            # Three distinct external recipients (one twice) and local ones: within the bound.
            send(server, *demo, ["r1@remote.test", "r2@remote.test", "demo@localhost"], "s1")
            server.wait_log(r"event=delivered id=\S+ rcpt=r2@remote\.test")
            send(server, *demo, ["R1@remote.test", "r3@remote.test", "other@localhost"], "s2")
            server.wait_log(r"event=delivered id=\S+ rcpt=r3@remote\.test")
            # The fourth crosses it: accepted, held, logged once, counted.
            crossing = send(server, *demo, ["r4@remote.test"], "s3")
            server.wait_log(r"level=warning event=user_held session=\S+ client=127\.0\.0\.1 "
                            r"user=demo@localhost id=" + crossing + r" count=4 bound=3 window=1h")
            # Held from now on, even mail for a local mailbox.
            local = send(server, *demo, ["demo@localhost"], "s4")
            self.assertEqual(self.state(server, crossing), "held")
            self.assertEqual(self.state(server, local), "held")
            self.assertEqual(server.log().count("event=user_held "), 1)
            self.assertEqual(self.scrape_held(server), 1)
            # Another user is not affected.
            send(server, "other@localhost", OTHER_PASSWORD,
                 ["o1@remote.test", "o2@remote.test", "o3@remote.test"], "o1")
            server.wait_log(r"event=delivered id=\S+ rcpt=o3@remote\.test")
            self.assertEqual(sorted(self.remote_subjects()), ["o1", "s1", "s2"])
            self.assertEqual(len(server.delivered()), 1)  # s1 only: s4 is held
            listed = json.loads(ctl(server, "queue", "list", "--user", "demo@localhost",
                                    "--json").stdout)["messages"]
            self.assertEqual(sorted(m["id"] for m in listed), sorted([crossing, local]))
            self.assertTrue(all(m["held"] and m["user"] == "demo@localhost" for m in listed))

            released = ctl(server, "queue", "release", "--user", "demo@localhost")
            self.assertEqual(released.returncode, 0, released.stderr)
            self.assertEqual(sorted(released.stdout.decode().splitlines()),
                             sorted([f"released {crossing}", f"released {local}",
                                     "lifted the sending hold of demo@localhost"]))
            server.wait_log(r"event=delivered id=" + crossing)
            self.assertEqual(len(server.wait_delivered(2)), 2)
            # The hold is lifted and the counts start again: three new ones go out.
            send(server, *demo, ["r5@remote.test", "r6@remote.test", "r7@remote.test"], "s5")
            server.wait_log(r"event=delivered id=\S+ rcpt=r7@remote\.test")
            self.assertEqual(sorted(self.remote_subjects()), ["o1", "s1", "s2", "s3", "s5"])
            self.assertEqual(len(server.delivered()), 2)
            self.assertEqual(server.log().count("event=user_held "), 1)

    def test_auth_unlock_lifts_the_hold_which_survives_a_restart(self):
        server = self.limited_server(per_hour=1, per_day=1)
        demo = ("demo@localhost", demo_password(server))
        with server:
            held = send(server, *demo, ["r1@remote.test", "r2@remote.test"], "h1")
            server.wait_log(r"event=user_held .*user=demo@localhost .*count=2 bound=1 window=1h")
        # Who is held is kept in data_dir: a restart does not let the user go.
        with server:
            server.wait_log(r"level=warning event=user_still_held user=demo@localhost count=2 "
                            r"bound=1 window=1h since=\d+")
            again = send(server, *demo, ["demo@localhost"], "h2")
            self.assertEqual(self.state(server, again), "held")
            listed = ctl(server, "auth", "held")
            self.assertEqual(listed.returncode, 0, listed.stderr)
            self.assertRegex(listed.stdout.decode(),
                             r"^USER RECIPIENTS BOUND WINDOW SINCE_UNIX\n"
                             r"demo@localhost 2 1 1h \d+\n$")

            unlocked = ctl(server, "auth", "unlock", "demo@localhost")
            self.assertEqual(unlocked.returncode, 0, unlocked.stderr)
            self.assertIn("lifted the sending hold of demo@localhost; the mail held meanwhile "
                          "stays held", unlocked.stdout.decode())
            self.assertEqual(ctl(server, "auth", "held").stdout.decode(), "no user held\n")
            # Mail sent from now on goes; what was held stays for the administrator.
            send(server, *demo, ["r3@remote.test"], "h3")
            server.wait_log(r"event=delivered id=\S+ rcpt=r3@remote\.test")
            self.assertEqual(self.state(server, held), "held")
            self.assertEqual(self.state(server, again), "held")
            self.assertEqual(self.remote_subjects(), ["h3"])

    def test_bad_values_are_configuration_errors_naming_file_line_and_key(self):
        server = self.new_server()
        for body, key, line_offset, message in (
                ("external_recipients_per_hour = -5\n",
                 "sending_limits.external_recipients_per_hour", 1, "must be between 0 and"),
                ("external_recipients_per_hour = 100\nexternal_recipients_per_day = 20\n",
                 "sending_limits.external_recipients_per_day", 2,
                 "20 is below external_recipients_per_hour (100)"),
                ("recipients_per_day = 20\n", "sending_limits.recipients_per_day", 1, "")):
            server.extra_toml = "[sending_limits]\n" + body
            server.write_config()
            with open(server.config_path) as f:
                table_line = f.read().splitlines().index("[sending_limits]") + 1
            result = subprocess.run([SMTPSD, "check", "--config", server.config_path],
                                    capture_output=True, timeout=30)
            self.assertNotEqual(result.returncode, 0, result)
            self.assertIn(f"{server.config_path}:{table_line + line_offset}: {key}: {message}",
                          result.stderr.decode())
        # The old name of the message rate is still read, with a note naming the new key, and
        # `smtpsd check` says what the limits are.
        server.extra_toml = "[limits]\nmax_messages_per_user_per_hour = 7\n"
        server.write_config()
        result = subprocess.run([SMTPSD, "check", "--config", server.config_path],
                                capture_output=True, timeout=30)
        self.assertEqual(result.returncode, 0, result)
        out = result.stdout.decode()
        self.assertIn("limits.max_messages_per_user_per_hour: deprecated: write [sending_limits] "
                      "messages_per_hour = 7", out)
        self.assertIn("sending limits: per user: 7 messages an hour (then 451 4.7.1); distinct "
                      "external recipients: 50 an hour, 200 a day (then held: smtpsctl queue "
                      "release --user USER)", out)


if __name__ == "__main__":
    unittest.main()
