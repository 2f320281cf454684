"""Mail accepted over TLS ends up, intact and exactly once, in the recipient's Maildir."""

import os
import random
import re
import smtplib
import subprocess
import time
import unittest

from harness import SMTPSD, RawSession, ServerTestCase, make_message, strip_trace

QUEUED = re.compile(r"queued as (\S+)")


def log_segments(server):
    """The octets of every segment of the server's commit log."""
    text = b""
    log_dir = os.path.join(server.dir, "spool", "log")
    for name in os.listdir(log_dir):
        if name.endswith(".seg"):
            with open(os.path.join(log_dir, name), "rb") as f:
                text += f.read()
    return text


def message_ids(messages):
    out = []
    for message in messages:
        match = re.search(rb"(?mi)^Message-ID: <([^>]+)>", message)
        out.append(match.group(1).decode() if match else None)
    return out


class StartTlsDelivery(ServerTestCase):
    def test_smtplib_starttls_verified_delivery_with_trace_headers(self):
        server = self.new_server()
        with server:
            context = server.client_context()
            self.assertTrue(context.check_hostname)
            with smtplib.SMTP("localhost", server.ports["smtp"], timeout=10) as client:
                client.ehlo("client.example")
                self.assertTrue(client.has_extn("starttls"))
                code, _ = client.starttls(context=context)
                self.assertEqual(code, 220)
                client.ehlo("client.example")
                self.assertEqual(client.sock.version(), "TLSv1.3")
                self.assertEqual(client.mail("you@example.org")[0], 250)
                self.assertEqual(client.rcpt("demo@localhost")[0], 250)
                body = make_message("first", "first@example.org")
                code, text = client.data(body)
                self.assertEqual(code, 250, text)
                match = QUEUED.search(text.decode())
                self.assertIsNotNone(match, text)
                queue_id = match.group(1)
            [message] = server.wait_delivered(1)
            self.assertTrue(message.startswith(b"Return-Path: <you@example.org>\r\n"),
                            message[:200])
            headers = message.split(b"\r\n\r\n", 1)[0].decode()
            received = re.search(r"(?m)^Received: [^\r\n]*(?:\r\n[ \t][^\r\n]*)*", headers)
            self.assertIsNotNone(received, headers)
            received = received.group(0)
            self.assertIn("with ESMTPS", received)
            self.assertIn("version=TLSv1.3", received)
            self.assertIn(queue_id, received)
            self.assertIn("for <demo@localhost>", received)
            self.assertEqual(strip_trace(message), body)
            self.assertIn(f"id={queue_id}", server.log())


class BigMessage(ServerTestCase):
    def test_20mib_dot_stuffed_8bit_message_arrives_byte_for_byte(self):
        server = self.new_server(limits={"max_message_size": 64 * 1024 * 1024})
        rng = random.Random(1234)
        eight_bit = bytes(b for b in range(0x80, 0x100))
        printable = bytes(range(0x20, 0x7f))
        alphabet = printable + eight_bit
        lines = [b"From: <you@example.org>", b"To: <demo@localhost>",
                 b"Subject: big", b"Message-ID: <big@example.org>",
                 b"MIME-Version: 1.0", b"Content-Type: text/plain; charset=latin1",
                 b"Content-Transfer-Encoding: 8bit", b""]
        size = sum(len(line) + 2 for line in lines)
        specials = [b".", b"..", b".hidden", b"...", b". ", b"", b"\xe9t\xe9 \xff\xfe"]
        target = 20 * 1024 * 1024
        while size < target:
            kind = rng.random()
            if kind < 0.1:
                line = rng.choice(specials)
            elif kind < 0.4:
                line = b"." + bytes(rng.choices(alphabet, k=rng.randrange(0, 997)))
            elif kind < 0.45:
                # the longest line RFC 5321 allows (a leading dot here is covered by
                # test_998_octet_line_starting_with_dot_accepted)
                line = b"x" + bytes(rng.choices(alphabet, k=997))
            else:
                line = bytes(rng.choices(alphabet, k=rng.randrange(0, 200)))
            lines.append(line)
            size += len(line) + 2
        body = b"\r\n".join(lines) + b"\r\n"
        self.assertGreaterEqual(len(body), target)
        self.assertTrue(all(len(line) <= 998 for line in lines))
        with server:
            client = server.smtp(timeout=120)
            self.assertTrue(client.has_extn("8bitmime"))
            refused = client.sendmail("you@example.org", ["demo@localhost"], body,
                                      mail_options=["BODY=8BITMIME"])
            self.assertEqual(refused, {})
            client.quit()
            [message] = server.wait_delivered(1, timeout=60)
            delivered = strip_trace(message)
            self.assertEqual(len(delivered), len(body))
            self.assertTrue(delivered == body, "delivered message differs from the one sent")

    def test_998_octet_line_starting_with_dot_accepted(self):
        # RFC 5321 4.5.3.1.6: 1000 octets including CRLF, "not counting the leading dot
        # duplicated for transparency".
        server = self.new_server()
        line = b"." + b"d" * 997
        body = make_message("dot line", "dotline@example.org", body="") + line + b"\r\n"
        with server:
            client = server.smtp()
            self.assertEqual(client.mail("you@example.org")[0], 250)
            self.assertEqual(client.rcpt("demo@localhost")[0], 250)
            code, text = client.data(body)
            self.assertEqual(code, 250, text)
            client.quit()
            [message] = server.wait_delivered(1)
            self.assertEqual(strip_trace(message), body)


class Recipients(ServerTestCase):
    def test_relay_denied_for_foreign_domain(self):
        server = self.new_server()
        with server:
            client = server.smtp()
            self.assertEqual(client.mail("you@example.org")[0], 250)
            code, text = client.rcpt("someone@example.com")
            self.assertEqual(code, 550, text)
            self.assertIn(b"5.7.1", text)
            client.quit()

    def test_unknown_local_user_refused(self):
        server = self.new_server()
        with server:
            client = server.smtp()
            self.assertEqual(client.mail("you@example.org")[0], 250)
            code, text = client.rcpt("demo2@localhost")
            self.assertEqual(code, 550, text)
            self.assertIn(b"5.1.1", text)
            client.quit()

    def test_mixed_recipients_delivered_to_valid_one_only(self):
        server = self.new_server()
        with server:
            client = server.smtp()
            refused = client.sendmail("you@example.org",
                                      ["demo@localhost", "demo2@localhost",
                                       "someone@example.com"],
                                      make_message("mixed", "mixed@example.org"))
            self.assertEqual(set(refused), {"demo2@localhost", "someone@example.com"})
            self.assertEqual(refused["demo2@localhost"][0], 550)
            self.assertEqual(refused["someone@example.com"][0], 550)
            client.quit()
            [message] = server.wait_delivered(1)
            self.assertIn(b"Subject: mixed", message)
            server.wait_done()
            self.assertFalse(server.delivered("demo2@localhost"))
            self.assertNotRegex(server.log(), r"rcpt=(demo2@localhost|someone@example\.com)")
            self.assertEqual(len(re.findall(r"event=delivered ", server.log())), 1)


class AtAcceptance(ServerTestCase):
    """Mail for this server's Maildir mailboxes goes into them before the 250 ([queue]
    deliver_at_acceptance, on by default): never queued, never in the commit log."""

    def test_the_message_is_in_the_mailbox_when_the_250_comes(self):
        server = self.new_server()
        with server:
            client = server.smtp()
            code, text = client.mail("you@example.org")[0], None
            self.assertEqual(client.rcpt("demo@localhost")[0], 250)
            code, text = client.data(make_message("now", "now@example.org"))
            self.assertEqual(code, 250, text)
            queue_id = re.search(rb"queued as (\w+)", text).group(1).decode()
            # No waiting: the copy was durable before the reply was written.
            [message] = server.delivered()
            self.assertIn(b"Subject: now", message)
            self.assertTrue(message.startswith(b"Return-Path: <you@example.org>\r\n"
                                               b"Delivered-To: demo@localhost\r\n"))
            client.quit()
            self.assertRegex(server.log(), rf"event=delivered id={queue_id} rcpt=demo@localhost "
                             rf"to=maildir .* at=acceptance")
            self.assertRegex(server.log(), rf"event=accepted [^\n]*id={queue_id} [^\n]*"
                             rf"delivered=yes")
            self.assertEqual(server.spool_ids(), [])
            self.assertNotIn(queue_id.encode(), log_segments(server))
            self.assertNotIn("event=removed", server.log())
            self.assertEqual(len(server.delivered()), 1)  # and the queue never delivers it again

    def test_a_recipient_that_cannot_have_it_now_is_left_to_the_queue(self):
        # alice's copy would loop (it carries Delivered-To: alice@localhost): demo has the
        # message at acceptance, the queue takes the rest, and the bounce goes to the sender.
        server = self.new_server(domains=[("localhost", ["demo", "alice"])])
        with server:
            client = server.smtp()
            message = b"Delivered-To: alice@localhost\r\n" + make_message("half", "half@x.org")
            refused = client.sendmail("demo@localhost", ["demo@localhost", "alice@localhost"],
                                      message)
            self.assertEqual(refused, {})
            client.quit()
            queue_id = re.search(r"event=accepted [^\n]*id=(\w+)", server.log()).group(1)
            self.assertRegex(server.log(), rf"event=delivered id={queue_id} "
                             rf"rcpt=demo@localhost [^\n]*at=acceptance")
            server.wait_log(rf"event=failed id={queue_id} rcpt=alice@localhost [^\n]*loop")
            server.wait_log(rf"event=removed id={queue_id}")
            # demo: the message once (the queue kept the "delivered 0" line) and the bounce.
            messages = server.wait_delivered(2)
            self.assertEqual(len([m for m in messages if b"Subject: half" in m
                                  and b"multipart/report" not in m]), 1)
            self.assertEqual(len(re.findall(rf"event=delivered id={queue_id} ", server.log())),
                             1, server.log()[-3000:])
            self.assertEqual(server.delivered("alice@localhost"), [])
            self.assertNotRegex(server.log(), r"event=accepted [^\n]*half[^\n]*delivered=yes")

    def test_turned_off_local_mail_goes_through_the_queue(self):
        server = self.new_server(extra_toml="[queue]\ndeliver_at_acceptance = false\n")
        with server:
            client = server.smtp()
            client.sendmail("you@example.org", ["demo@localhost"], make_message("q", "q@x.org"))
            client.quit()
            server.wait_delivered(1)
            server.wait_log(r"event=removed id=")
            self.assertNotIn("at=acceptance", server.log())
            self.assertNotIn("delivered=yes", server.log())


class ReplyAfterLog(ServerTestCase):
    """[queue] reply_after = "log": the 250 once the message is durable in the commit log,
    the Maildir copy made right after it by the committer (not the queue); what cannot be
    delivered then waits in the queue. Its crash states: test_power_loss."""

    AFTER_LOG = "[queue]\nreply_after = \"log\"\nretry_schedule = [1]\n"

    def test_the_copy_follows_a_reply_that_vouched_for_the_log(self):
        server = self.new_server(domains=[("localhost", ["demo", "alice"])],
                                 extra_toml=self.AFTER_LOG)
        with server:
            client = server.smtp()
            ids = []
            for n, recipients in enumerate((["demo@localhost"], ["demo@localhost"],
                                            ["demo@localhost", "alice@localhost"])):
                self.assertEqual(client.mail("you@example.org")[0], 250)
                for rcpt in recipients:
                    self.assertEqual(client.rcpt(rcpt)[0], 250)
                code, text = client.data(make_message(f"after {n}", f"a{n}@example.org"))
                self.assertEqual(code, 250, text)
                ids.append(QUEUED.search(text.decode()).group(1))
            client.quit()
            self.assertEqual(len(server.wait_delivered(3)), 3)
            server.wait_delivered(1, "alice@localhost")
            for queue_id in ids:
                server.wait_log(rf"event=delivered id={queue_id} rcpt=demo@localhost "
                                rf"to=maildir [^\n]*at=after_reply")
            # Through the commit log (the reply's only warrant), never queue/ or the queue.
            segments = log_segments(server)
            for queue_id in ids:
                self.assertIn(queue_id.encode(), segments)
            self.assertEqual(server.spool_ids(), [])
            self.assertNotIn("delivered=yes", server.log())
            self.assertNotIn("event=removed", server.log())
            self.assertIn("Maildir mail delivered right after the reply",
                          subprocess.run([SMTPSD, "check", "--config", server.config_path],
                                         capture_output=True, text=True, timeout=30).stdout)
        # Each has its D record: a restart finds none of them live in the log (it would
        # write their queue files again, "spool_log_restored", before "started").
        with server:
            server.wait_log(r"event=started ")
            self.assertNotIn("spool_log_restored", server.log())
            self.assertEqual(server.spool_ids(), [])
        self.assertEqual(len(server.delivered()), 3)

    def test_a_recipient_that_cannot_have_it_now_waits_in_the_queue(self):
        # alice's copy would loop: demo has it right after the reply, the queue (given the
        # queue file made from the image in memory) fails alice's and bounces to the sender.
        server = self.new_server(domains=[("localhost", ["demo", "alice"])],
                                 extra_toml=self.AFTER_LOG)
        with server:
            client = server.smtp()
            message = b"Delivered-To: alice@localhost\r\n" + make_message("half", "half@x.org")
            self.assertEqual(client.sendmail("demo@localhost",
                                             ["demo@localhost", "alice@localhost"], message), {})
            client.quit()
            queue_id = re.search(r"event=accepted [^\n]*id=(\w+)", server.log()).group(1)
            server.wait_log(rf"event=delivered id={queue_id} rcpt=demo@localhost "
                            rf"[^\n]*at=after_reply")
            server.wait_log(rf"event=failed id={queue_id} rcpt=alice@localhost [^\n]*loop")
            self.assertIn(queue_id.encode(), log_segments(server))  # committed before the 250
            self.assertNotIn("delivered=yes", server.log())
            server.wait_log(rf"event=removed id={queue_id}")
            messages = server.wait_delivered(2)  # the message once, and the bounce
            self.assertEqual(len([m for m in messages if b"Subject: half" in m
                                  and b"multipart/report" not in m]), 1)
            self.assertEqual(len(re.findall(rf"event=delivered id={queue_id} ", server.log())),
                             1, server.log()[-3000:])
            self.assertEqual(server.delivered("alice@localhost"), [])
            # The bounce leaves queue/ after its copy is in demo's mailbox.
            self.assertEqual(server.wait_spool_empty(), [])

    def test_a_message_too_large_for_memory_goes_from_its_spool_file(self):
        # Over the 256 KiB a writer keeps in memory: it has a file in tmp/, published into
        # queue/ before the reply and removed once the copy is made.
        server = self.new_server(extra_toml=self.AFTER_LOG)
        body = "".join(f"line {n:06d} " + "x" * 60 + "\r\n" for n in range(5000)).encode()
        with server:
            client = server.smtp()
            message = make_message("big", "big@x.org") + body
            self.assertEqual(client.sendmail("you@example.org", ["demo@localhost"], message), {})
            client.quit()
            [copy] = server.wait_delivered(1)
            self.assertIn(body, copy)
            queue_id = server.wait_log(r"event=delivered id=(\S+) rcpt=demo@localhost "
                                       r"[^\n]*at=after_reply").group(1)
            self.assertIn(queue_id.encode(), log_segments(server))
            self.assertEqual(server.wait_spool_empty(), [])

    def test_bad_values_name_the_key(self):
        for toml, detail in (('reply_after = "soon"', 'must be "mailbox" or "log"'),
                             ('reply_after = "log"\ndeliver_at_acceptance = false',
                              "needs deliver_at_acceptance = true")):
            server = self.new_server(extra_toml="[queue]\n" + toml + "\n")
            result = subprocess.run([SMTPSD, "check", "--config", server.config_path],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    timeout=30)
            self.assertNotEqual(result.returncode, 0)
            self.assertRegex(result.stdout, r"smtpsd\.toml:\d+: queue\.reply_after: ")
            self.assertIn(detail, result.stdout)


class SizeLimit(ServerTestCase):
    def test_size_parameter_above_limit_refused_at_mail(self):
        server = self.new_server(limits={"max_message_size": 100000})
        with server:
            client = server.smtp()
            self.assertEqual(client.esmtp_features.get("size"), "100000")
            code, text = client.mail("you@example.org", ["SIZE=100001"])
            self.assertEqual(code, 552, text)
            self.assertIn(b"5.3.4", text)
            code, text = client.mail("you@example.org", ["SIZE=99000"])
            self.assertEqual(code, 250, text)
            client.quit()

    def test_oversized_body_without_size_refused_and_session_continues(self):
        server = self.new_server(limits={"max_message_size": 100000})
        with server:
            client = server.smtp()
            big = make_message("too big", "big@example.org", body="x" * 500 + "\r\n")
            big = big + (b"y" * 900 + b"\r\n") * 200
            self.assertEqual(client.mail("you@example.org")[0], 250)
            self.assertEqual(client.rcpt("demo@localhost")[0], 250)
            code, text = client.data(big)
            self.assertEqual(code, 552, text)
            self.assertIn(b"5.3.4", text)
            # the same connection serves the next transaction
            self.assertEqual(client.noop()[0], 250)
            self.assertEqual(client.mail("you@example.org")[0], 250)
            self.assertEqual(client.rcpt("demo@localhost")[0], 250)
            code, text = client.data(make_message("small", "small@example.org"))
            self.assertEqual(code, 250, text)
            client.quit()
            server.wait_delivered(1)
            server.wait_done()
            time.sleep(0.3)
            messages = server.delivered()
            self.assertEqual(message_ids(messages), ["small@example.org"])
            self.assertEqual(server.spool_ids(), [])


class Pipelining(ServerTestCase):
    def test_pipelined_transaction_in_one_write_after_starttls(self):
        server = self.new_server()
        server.start()  # stopped by tearDown, after the delivery checks
        with RawSession(server.ports["smtp"]) as session:
            session.greeting()
            code, lines = session.cmd("EHLO client.example")
            self.assertIn("PIPELINING", "\n".join(lines))
            session.starttls(server.client_context())
            code, lines = session.cmd("EHLO client.example")
            self.assertEqual(code, 250)
            self.assertIn("PIPELINING", "\n".join(lines))
            body = make_message("pipelined", "pipe@example.org")
            session.send(b"MAIL FROM:<you@example.org>\r\n"
                         b"RCPT TO:<demo@localhost>\r\n"
                         b"RCPT TO:<nobody@localhost>\r\n"
                         b"DATA\r\n" + body + b".\r\nQUIT\r\n")
            codes = [session.reply()[0] for _ in range(6)]
            self.assertEqual(codes, [250, 250, 550, 354, 250, 221])
            self.assertTrue(session.wait_closed(5))
        [message] = server.wait_delivered(1)
        self.assertEqual(strip_trace(message), body)


class Chunking(ServerTestCase):
    def test_bdat_two_chunks_delivered_verbatim(self):
        server = self.new_server()
        chunk1 = b"From: <you@example.org>\r\nSubject: chunked\r\n\r\nfirst part\r\n.\r\n.dot\r\n"
        chunk2 = b"second part\r\n\xc3\xa9t\xc3\xa9\r\n"
        server.start()  # stopped by tearDown, after the delivery checks
        with RawSession(server.ports["smtp"]) as session:
            session.greeting()
            session.cmd("EHLO client.example")
            session.starttls(server.client_context())
            code, lines = session.cmd("EHLO client.example")
            self.assertIn("CHUNKING", "\n".join(lines))
            self.assertEqual(session.cmd("MAIL FROM:<you@example.org>")[0], 250)
            self.assertEqual(session.cmd("RCPT TO:<demo@localhost>")[0], 250)
            session.send(b"BDAT %d\r\n" % len(chunk1) + chunk1)
            code, lines = session.reply()
            self.assertEqual(code, 250, lines)
            session.send(b"BDAT %d LAST\r\n" % len(chunk2) + chunk2)
            code, lines = session.reply()
            self.assertEqual(code, 250, lines)
            self.assertRegex(lines[-1], r"queued as \S+")
            self.assertEqual(session.cmd("QUIT")[0], 221)
        [message] = server.wait_delivered(1)
        self.assertEqual(strip_trace(message), chunk1 + chunk2)


class CrashRecovery(ServerTestCase):
    def test_kill9_right_after_250_delivers_exactly_once_after_restart(self):
        server = self.new_server()
        server.start()
        body = make_message("crash", "crash@example.org")
        with RawSession(server.ports["smtp"]) as session:
            session.greeting()
            session.cmd("EHLO client.example")
            session.starttls(server.client_context())
            session.cmd("EHLO client.example")
            session.send(b"MAIL FROM:<you@example.org>\r\nRCPT TO:<demo@localhost>\r\nDATA\r\n")
            self.assertEqual([session.reply()[0] for _ in range(3)], [250, 250, 354])
            session.send(body + b".\r\n")
            code, lines = session.reply()
            server.kill9()
        self.assertEqual(code, 250, lines)
        server.start()
        server.wait_delivered(1)
        self.assertEqual(server.wait_spool_empty(), [])
        time.sleep(0.3)
        messages = server.delivered()
        self.assertEqual(message_ids(messages), ["crash@example.org"])
        self.assertEqual(strip_trace(messages[0]), body)
        self.assertTrue(server.alive())

    def test_messages_queued_before_restart_delivered_exactly_once(self):
        server = self.new_server()
        server.start()
        client = server.smtp()
        for i in range(20):
            refused = client.sendmail("you@example.org", ["demo@localhost"],
                                      make_message(f"n{i}", f"restart-{i}@example.org"))
            self.assertEqual(refused, {})
        client.quit()
        self.assertEqual(server.stop(), 0)
        server.start()
        server.wait_delivered(20)
        self.assertEqual(server.wait_spool_empty(), [])
        time.sleep(0.3)
        ids = message_ids(server.delivered())
        self.assertEqual(len(ids), 20)
        self.assertEqual(sorted(ids), sorted(f"restart-{i}@example.org" for i in range(20)))


if __name__ == "__main__":
    unittest.main()
