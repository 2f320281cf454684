"""Overload limits: new connections per client per minute, messages per user per hour.

The concurrent per-IP and total limits are tested in test_robustness.py; here the
rates: a client past its connections per minute gets "421 4.7.0" before any greeting and a
rate-limited log line naming it, other clients are not affected; an authenticated user past
its messages per hour gets "451 4.7.1" at MAIL (README "Replies and limits").
"""

import os
import smtplib
import socket
import time
import unittest

from harness import ServerTestCase, make_message, read_reply

# Refused connections are named too: the id ties the refusal to the connect attempt.
REFUSED = r"event=connection_refused session=[0-9a-f]{14} "


def demo_password(server):
    with open(os.path.join(server.dir, "demo.password")) as f:
        return f.read().strip()


def greeting_from(port, source):
    """The first reply line the server sends to a connection from `source` (an address)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    with sock, sock.makefile("rb") as f:
        code, lines = read_reply(f)
    return code, lines


class ConnectionRate(ServerTestCase):
    def test_connections_past_the_rate_get_421_and_a_log_line(self):
        server = self.new_server(limits={"max_connections_per_minute_per_ip": 5})
        with server:
            port = server.ports["smtp"]
            codes = []
            for _ in range(7):
                code, lines = greeting_from(port, "127.0.0.2")
                codes.append((code, lines[0]))
            self.assertEqual([c for c, _ in codes[:5]], [220] * 5)
            self.assertEqual(codes[5][0], 421)
            self.assertIn("4.7.0", codes[5][1])
            self.assertIn("per minute", codes[5][1])
            server.wait_log(REFUSED + r"role=smtp client=127\.0\.0\.2 limit=rate ")
            # Another client still gets in: the rate is per client.
            code, _ = greeting_from(port, "127.0.0.3")
            self.assertEqual(code, 220)

    def test_implicit_tls_past_the_rate_is_closed_without_a_reply(self):
        server = self.new_server(limits={"max_connections_per_minute_per_ip": 2})
        with server:
            for _ in range(2):
                server.smtps().quit()
            with self.assertRaises((OSError, smtplib.SMTPException)):
                server.smtps()
            server.wait_log(REFUSED + r"role=submissions client=127\.0\.0\.1 "
                            r"limit=rate ")

    def test_zero_turns_the_rate_off(self):
        server = self.new_server(limits={"max_connections_per_minute_per_ip": 0})
        with server:
            for _ in range(30):
                code, _ = greeting_from(server.ports["smtp"], "127.0.0.2")
                self.assertEqual(code, 220)
            self.assertNotIn("limit=rate", server.log())


class ConcurrentLimits(ServerTestCase):
    def test_open_connections_per_ip_and_in_total(self):
        server = self.new_server(limits={"max_connections_per_ip": 2, "max_connections": 3})
        with server:
            port = server.ports["smtp"]
            held = []
            try:
                for _ in range(2):
                    sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                                    source_address=("127.0.0.2", 0))
                    f = sock.makefile("rb")
                    self.assertEqual(read_reply(f)[0], 220)
                    held.append((sock, f))
                code, lines = greeting_from(port, "127.0.0.2")
                self.assertEqual(code, 421)
                self.assertIn("4.7.0", lines[0])
                server.wait_log(REFUSED + r"role=smtp client=127\.0\.0\.2 "
                                r"limit=per_ip ")
                sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                                source_address=("127.0.0.3", 0))
                f = sock.makefile("rb")
                self.assertEqual(read_reply(f)[0], 220)
                held.append((sock, f))
                time.sleep(1.1)  # one refusal line a second at most
                code, lines = greeting_from(port, "127.0.0.4")
                self.assertEqual(code, 421)
                server.wait_log(REFUSED + r"role=smtp client=127\.0\.0\.4 "
                                r"limit=total ")
            finally:
                for sock, f in held:
                    f.close()
                    sock.close()


class UserMessageRate(ServerTestCase):
    def test_user_past_its_messages_per_hour_gets_451_at_mail(self):
        server = self.new_server(extra_toml="[sending_limits]\nmessages_per_hour = 3\n")
        with server:
            client = server.smtps()
            client.login("demo@localhost", demo_password(server))
            for i in range(3):
                client.sendmail("demo@localhost", ["demo@localhost"],
                                make_message(subject=f"n{i}", sender="demo@localhost"))
            code, text = client.mail("demo@localhost")
            self.assertEqual(code, 451, text)
            self.assertTrue(text.startswith(b"4.7.1"), text)
            # Transient and not a client error: the session goes on and QUIT works.
            self.assertEqual(client.noop()[0], 250)
            client.quit()
            server.wait_log(r"event=user_rate_limited session=\S+ client=127\.0\.0\.1 "
                            r"user=demo@localhost limit=3")
            # A new connection of the same user is limited too (the count is per user).
            client = server.smtp("submission")
            client.login("demo@localhost", demo_password(server))
            self.assertEqual(client.mail("demo@localhost")[0], 451)
            client.quit()
            self.assertEqual(len(server.wait_delivered(3)), 3)


if __name__ == "__main__":
    unittest.main()
