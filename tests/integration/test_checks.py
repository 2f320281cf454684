"""The built-in checks of every listener (docs/architecture.md "Checks"), with the real binary.

received-loop (RFC 5321 §6.3): a message whose header section has limits.max_received_headers
(50 by default) Received fields or more is refused at the end of data with "554 5.4.6 Too
many Received headers (N): mail loop?" and nothing is stored; one with a field fewer is
accepted and delivered, over DATA and BDAT alike. The limit comes from the configuration (a
reload applies to new sessions); 0 turns the check off.
"""

import signal
import smtplib
import time
import unittest

from harness import ServerTestCase, make_message

LOOK_ALIKES = (b"X-Received: by relay.example\r\nSubject: folded\r\n"
               b" Received: a continuation line\r\n\tReceived: another continuation line\r\n"
               b"Receivedx: not a Received field\r\n")


def with_received(count, subject):
    """A message whose header section has `count` Received fields (folded, in the spellings
    a loop shows) among lines that look like them but are not fields."""
    spellings = ["Received: from hop{i}.example\r\n\tby hop{j}.example; "
                 "Tue, 1 Jan 2030 00:00:00 +0000\r\n",
                 "received :by hop{j}.example\r\n", "RECEIVED:\tfrom hop{i}.example\r\n"]
    hops = "".join(spellings[i % 3].format(i=i, j=i + 1) for i in range(count))
    # Received lines in the body are not fields: they do not count.
    return LOOK_ALIKES + hops.encode() + make_message(
        subject, body="Received: from body.example\r\n" * 150)


def refused_text(count):
    return b"5.4.6 Too many Received headers (%d): mail loop?" % count


class ReceivedLoop(ServerTestCase):
    def assert_refused(self, client, message, count):
        with self.assertRaises(smtplib.SMTPDataError) as refused:
            client.sendmail("you@example.org", ["demo@localhost"], message)
        self.assertEqual(refused.exception.smtp_code, 554)
        self.assertEqual(refused.exception.smtp_error, refused_text(count))

    def test_50_received_fields_are_refused_and_nothing_is_stored_49_are_delivered(self):
        server = self.new_server()
        with server:
            with server.smtp() as client:
                self.assert_refused(client, with_received(50, "loop"), 50)
                # The transaction is over, the session goes on.
                self.assertEqual(client.rcpt("demo@localhost")[0], 503)
                self.assertEqual(client.sendmail("you@example.org", ["demo@localhost"],
                                                 with_received(49, "forty-nine")), {})
            server.wait_delivered(1)
            time.sleep(0.3)  # a refused message would have been delivered by now
            delivered = server.delivered()
            self.assertEqual(len(delivered), 1)
            self.assertIn(b"Subject: forty-nine", delivered[0])
            self.assertEqual(delivered[0].count(b"Received: from hop"), 17)
            self.assertEqual(server.spool_ids(), [])

    def test_bdat_counts_the_same(self):
        server = self.new_server()
        with server:
            with server.smtp() as client:
                for count, expected in ((50, (554, refused_text(50))),
                                        (49, (250, None))):
                    message = with_received(count, f"bdat {count}")
                    self.assertEqual(client.mail("you@example.org")[0], 250)
                    self.assertEqual(client.rcpt("demo@localhost")[0], 250)
                    # A field name split across two chunks.
                    first = message.index(b"\r\nReceived: from hop0") + 6
                    client.send(b"BDAT %d\r\n" % first + message[:first])
                    self.assertEqual(client.getreply()[0], 250)
                    rest = message[first:]
                    client.send(b"BDAT %d LAST\r\n" % len(rest) + rest)
                    code, text = client.getreply()
                    self.assertEqual(code, expected[0], text)
                    if expected[1] is not None:
                        self.assertEqual(text, expected[1])
            server.wait_delivered(1)
            time.sleep(0.3)
            self.assertEqual(len(server.delivered()), 1)
            self.assertIn(b"Subject: bdat 49", server.delivered()[0])

    def test_the_limit_comes_from_the_configuration_and_a_reload(self):
        server = self.new_server(limits={"max_received_headers": 3})
        with server:
            with server.smtp() as client:
                self.assert_refused(client, with_received(3, "three"), 3)
                # A message without a body is all header section.
                self.assert_refused(client, b"Received: a\r\nReceived: b\r\nreceived: c\r\n", 3)
                self.assertEqual(client.sendmail("you@example.org", ["demo@localhost"],
                                                 with_received(2, "two")), {})
                old_session = client
                # A reload to 0 turns the check off for the sessions that start after it.
                server.limits = {"max_received_headers": 0}
                server.write_config()
                server.process.send_signal(signal.SIGHUP)
                server.wait_log(r"event=reloaded")
                self.assertNotIn("event=reload_refused", server.log())
                with server.smtp() as fresh:
                    self.assertEqual(fresh.sendmail("you@example.org", ["demo@localhost"],
                                                    with_received(200, "two hundred")), {})
                # The session that started before keeps the checks it started with.
                self.assert_refused(old_session, with_received(3, "three again"), 3)
            server.wait_delivered(2)
            # The queue file goes just after the Maildir file appears: wait for it.
            self.assertEqual(server.wait_spool_empty(), [])

    def test_zero_turns_the_check_off(self):
        server = self.new_server(limits={"max_received_headers": 0})
        with server:
            with server.smtp() as client:
                self.assertEqual(client.sendmail("you@example.org", ["demo@localhost"],
                                                 with_received(200, "off")), {})
            server.wait_delivered(1)


if __name__ == "__main__":
    unittest.main()
