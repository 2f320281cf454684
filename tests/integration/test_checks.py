"""The built-in checks of every listener (docs/architecture.md "Checks"), with the real binary.

received-loop (RFC 5321 §6.3): a message whose header section has more than 100 Received
fields is refused at the end of data with "554 5.4.6 Too many Received header fields: mail
loop" and nothing is stored; one with 100 is accepted and delivered. The session's own,
stricter limits.max_received_headers (50 by default) answers first unless it is turned off
(0) or raised past 100, as the last test shows.
"""

import smtplib
import time
import unittest

from harness import ServerTestCase, make_message


def with_received(count, subject):
    """A message whose header section starts with `count` Received fields (folded)."""
    hops = "".join(f"Received: from hop{i}.example\r\n\tby hop{i + 1}.example; "
                   f"Tue, 1 Jan 2030 00:00:00 +0000\r\n" for i in range(count))
    # Received lines in the body are not fields: they do not count.
    return hops.encode() + make_message(subject, body="Received: from body.example\r\n" * 150)


class ReceivedLoop(ServerTestCase):
    def test_101_received_fields_are_refused_and_nothing_is_stored_100_are_delivered(self):
        server = self.new_server(limits={"max_received_headers": 0})  # the session's off
        with server:
            with server.smtp() as client:
                with self.assertRaises(smtplib.SMTPDataError) as refused:
                    client.sendmail("you@example.org", ["demo@localhost"],
                                    with_received(101, "loop"))
                self.assertEqual(refused.exception.smtp_code, 554)
                self.assertEqual(refused.exception.smtp_error,
                                 b"5.4.6 Too many Received header fields: mail loop")
                # The session goes on: the next message of the connection is taken.
                self.assertEqual(client.sendmail("you@example.org", ["demo@localhost"],
                                                 with_received(100, "hundred")), {})
            server.wait_delivered(1)
            time.sleep(0.3)  # a refused message would have been delivered by now
            delivered = server.delivered()
            self.assertEqual(len(delivered), 1)
            self.assertIn(b"Subject: hundred", delivered[0])
            self.assertEqual(delivered[0].count(b"\r\nReceived: from hop"), 100)
            self.assertEqual(server.spool_ids(), [])

    def test_the_session_limit_answers_first_by_default(self):
        server = self.new_server()
        with server:
            with server.smtp() as client:
                with self.assertRaises(smtplib.SMTPDataError) as refused:
                    client.sendmail("you@example.org", ["demo@localhost"],
                                    with_received(50, "fifty"))
                self.assertEqual(refused.exception.smtp_code, 554)
                self.assertEqual(refused.exception.smtp_error,
                                 b"5.4.6 Too many Received headers (50): mail loop?")
            self.assertEqual(server.spool_ids(), [])
            self.assertEqual(server.delivered(), [])


if __name__ == "__main__":
    unittest.main()
