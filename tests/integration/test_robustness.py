"""Misbehaving clients get clear errors, lose nothing and never disturb other clients."""

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import unittest

from harness import (RawSession, ServerTestCase, make_message, raw_connect, read_reply,
                     strip_trace)


def tls_session(server, role="smtp"):
    session = RawSession(server.ports[role])
    session.greeting()
    session.cmd("EHLO client.example")
    session.starttls(server.client_context())
    code, lines = session.cmd("EHLO client.example")
    assert code == 250, lines
    return session


def start_data(test, session, rcpt="demo@localhost"):
    test.assertEqual(session.cmd("MAIL FROM:<you@example.org>")[0], 250)
    test.assertEqual(session.cmd(f"RCPT TO:<{rcpt}>")[0], 250)
    test.assertEqual(session.cmd("DATA")[0], 354)


def send_message(test, session, body):
    start_data(test, session)
    session.send(body + b".\r\n")
    return session.reply()


def client_hello(server):
    """The first flight of a real TLS handshake (a ClientHello record)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = server.client_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def subjects(messages):
    return [m.group(1).decode() if (m := re.search(rb"(?m)^Subject: ([^\r\n]*)", msg))
            else None for msg in messages]


class LongLines(ServerTestCase):
    def test_10000_byte_command_line_refused_and_session_continues(self):
        server = self.new_server()
        with server, RawSession(server.ports["smtp"]) as session:
            session.greeting()
            session.cmd("EHLO client.example")
            line = "NOOP " + "a" * (10000 - 7)
            self.assertEqual(len(line) + 2, 10000)
            code, lines = session.cmd(line)
            self.assertEqual(code, 500, lines)
            self.assertRegex(lines[-1], r"^500 5\.5\.\d")
            code, lines = session.cmd("NOOP")
            self.assertEqual(code, 250, lines)
            other = server.smtp()
            self.assertEqual(other.noop()[0], 250)
            other.quit()
            self.assertEqual(session.cmd("QUIT")[0], 221)


class Abuse(ServerTestCase):
    def test_garbage_and_abrupt_disconnects_leave_server_serving(self):
        server = self.new_server()
        with server:
            # binary garbage on every port
            for role in ("smtp", "submission", "submissions", "smtp", "submissions"):
                sock = raw_connect(server.ports[role])
                try:
                    sock.sendall(os.urandom(64 * 1024))
                    sock.settimeout(2)
                    while sock.recv(65536):
                        pass
                except OSError:
                    pass
                finally:
                    sock.close()
            # connect and close at once
            for role in ("smtp", "submission", "submissions"):
                for _ in range(3):
                    raw_connect(server.ports[role]).close()
            # close in the middle of DATA
            session = tls_session(server)
            start_data(self, session)
            session.send(b"From: <you@example.org>\r\nSubject: middata\r\n\r\npartial body\r\n")
            time.sleep(0.2)
            session.close()
            # close in the middle of a TLS handshake, implicit and after STARTTLS
            hello = client_hello(server)
            sock = raw_connect(server.ports["submissions"])
            sock.sendall(hello[: len(hello) // 2])
            sock.close()
            sock = raw_connect(server.ports["submissions"])
            sock.sendall(hello)
            time.sleep(0.1)
            sock.close()
            with RawSession(server.ports["smtp"]) as half:
                half.greeting()
                half.cmd("EHLO client.example")
                self.assertEqual(half.cmd("STARTTLS")[0], 220)
                half.send(hello[:40])
            # the server still serves
            self.assertTrue(server.alive())
            client = server.smtp()
            refused = client.sendmail("you@example.org", ["demo@localhost"],
                                      make_message("after abuse", "after@example.org"))
            self.assertEqual(refused, {})
            client.quit()
            server.wait_delivered(1)
            server.wait_done()
            time.sleep(0.3)
            self.assertEqual(subjects(server.delivered()), ["after abuse"])
            self.assertEqual(server.log().count("event=accepted "), 1)
            self.assertEqual(server.spool_ids(), [])
            self.assertTrue(server.alive())


SMUGGLED = (b"From: <you@example.org>\r\nSubject: smuggle\r\n\r\nhello\n.\r\n"
            b"MAIL FROM:<evil@example.com>\r\nRCPT TO:<demo@localhost>\r\nDATA\r\n"
            b"From: <evil@example.com>\r\nSubject: smuggled\r\n\r\nevil\r\n")


def socket_queues(port, client_port):
    """For the connection between `client_port` and `port`, from `ss -tmn` (iproute2): each
    side's Recv-Q, Send-Q and send buffer size (skmem tb)."""
    out = subprocess.run(["ss", "-tmn", "state", "established",
                          f"( sport = :{port} or dport = :{port} )"],
                         stdout=subprocess.PIPE, text=True, timeout=10).stdout
    found = {}
    for m in re.finditer(r"(?m)^\s*(\d+)\s+(\d+)\s+\S+:(\d+)\s+\S+:(\d+)\s*\n\s*skmem:\(([^)]*)\)",
                         out):
        recv_q, send_q, local, peer, skmem = m.groups()
        if (int(local), int(peer)) == (port, client_port):
            side = "server"
        elif (int(local), int(peer)) == (client_port, port):
            side = "client"
        else:
            continue  # another test's connection that happens to use the same port number
        tb = re.search(r"\btb(\d+)", skmem)
        found[side] = {"recv_q": int(recv_q), "send_q": int(send_q),
                       "tb": int(tb.group(1)) if tb else 0}
    return found


def reply_bytes(lines):
    return sum(len(line) + 2 for line in lines)


class PipeliningBackPressure(ServerTestCase):
    """A client that pipelines and never reads its replies: the server reads commands 1 KiB
    at a time and writes their replies before it reads more (back-pressure: the write waits
    for the client), and its socket's send buffer is capped at 64 KiB (the kernel would
    grow it to 4 MiB), so such a client costs a bounded amount; once it reads, every reply
    comes, in order."""

    def test_client_that_never_reads_is_stopped_then_served_in_order(self):
        server = self.new_server()
        with server:
            port = server.ports["smtp"]
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            # Small client-side buffers (Linux doubles both values).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
            sock.settimeout(10)
            sock.connect(("127.0.0.1", port))
            f = sock.makefile("rb")
            self.assertEqual(read_reply(f)[0], 220)
            # EHLO makes the largest reply per byte of command (~40x): the worst case.
            ehlo, help_ = b"EHLO a\r\n", b"HELP\r\n"
            sock.sendall(ehlo)
            code, lines = read_reply(f)
            self.assertEqual(code, 250)
            ehlo_reply = reply_bytes(lines)
            sock.sendall(help_)
            code, lines = read_reply(f)
            self.assertEqual(code, 214)
            help_reply = reply_bytes(lines)
            # EHLO/HELP pairs (250 and 214: the order shows in the replies), sent without
            # reading until the server stops taking them.
            pair = ehlo + help_
            block = pair * 4096
            sock.setblocking(False)
            sent = 0
            quiet_rounds = 0
            while quiet_rounds < 3 and sent < 64 * 1024 * 1024:
                before = sent
                try:
                    while True:
                        offset = sent % len(block)
                        sent += sock.send(block[offset:] if offset else block)
                except BlockingIOError:
                    pass
                quiet_rounds = quiet_rounds + 1 if sent == before else 0
                time.sleep(0.2)
            queues = socket_queues(port, sock.getsockname()[1])
            self.assertIn("server", queues, queues)
            self.assertIn("client", queues, queues)
            # The send buffer is capped (64 KiB, doubled by Linux) instead of growing to 4 MiB.
            self.assertLessEqual(queues["server"]["tb"], 2 * 64 * 1024 + 4096, queues)
            # What the server read made replies; those not in a socket queue are held in
            # the server's memory. Back-pressure keeps that to the replies of one 1 KiB read
            # (one 8 KiB read of EHLOs made ~140 KiB of them before).
            parsed = sent - queues["client"]["send_q"] - queues["server"]["recv_q"]
            pairs, rest = divmod(parsed, len(pair))
            made = pairs * (ehlo_reply + help_reply) + (ehlo_reply if rest >= len(ehlo) else 0)
            held = made - queues["server"]["send_q"] - queues["client"]["recv_q"]
            print(f"\nsent {sent}, parsed {parsed}, replies made {made}, held by the server "
                  f"{held}; {queues}", file=sys.stderr)
            self.assertLess(held, 32 * 1024, queues)
            self.assertLess(sent, 1024 * 1024)
            # Reading resumes the session: every command is answered, in order.
            sock.setblocking(True)
            sock.settimeout(20)
            commands = 2 * (sent // len(pair)) + (1 if sent % len(pair) >= len(ehlo) else 0)
            partial = sent % len(pair)
            cut = b""
            if partial and partial != len(ehlo):  # the rest of the line the last send cut
                cut = pair[partial:len(ehlo)] if partial < len(ehlo) else pair[partial:]
                commands += 1
            codes = []
            reader = threading.Thread(
                target=lambda: codes.extend(read_reply(f)[0] for _ in range(commands + 1)))
            reader.start()
            sock.sendall(cut + b"QUIT\r\n")
            reader.join(60)
            self.assertFalse(reader.is_alive())
            self.assertEqual(codes, [250, 214] * (commands // 2) + [250] * (commands % 2) + [221])
            f.close()
            sock.close()
            self.assertTrue(server.alive())


class BareLineEndings(ServerTestCase):
    def test_bare_lf_in_data_refused_by_default(self):
        server = self.new_server()
        with server:
            session = tls_session(server)
            code, lines = send_message(
                self, session, b"From: <you@example.org>\r\nSubject: bare\r\n\r\nline\nmore\r\n")
            self.assertEqual(code // 100, 5, lines)
            # nothing of it was queued; the session goes on
            code, lines = send_message(self, session, make_message("sentinel"))
            self.assertEqual(code, 250, lines)
            self.assertEqual(session.cmd("QUIT")[0], 221)
            session.close()
            server.wait_delivered(1)
            server.wait_done()
            # The session's end is logged after all it did: one message accepted, no other.
            server.wait_log(r"event=session_end ")
            self.assertEqual(server.log().count("event=accepted "), 1)
            self.assertEqual(subjects(server.delivered()), ["sentinel"])

    def test_bare_lf_normalized_when_configured(self):
        server = self.new_server(limits={"normalize_bare_line_endings": True})
        with server:
            session = tls_session(server)
            code, lines = send_message(
                self, session, b"From: <you@example.org>\r\nSubject: bare\r\n\r\nline\nmore\r\n")
            self.assertEqual(code, 250, lines)
            session.cmd("QUIT")
            session.close()
            [message] = server.wait_delivered(1)
            self.assertEqual(strip_trace(message),
                             b"From: <you@example.org>\r\nSubject: bare\r\n\r\nline\r\nmore\r\n")

    def test_smuggled_transaction_not_executed_strict(self):
        server = self.new_server()
        with server:
            session = tls_session(server)
            code, lines = send_message(self, session, SMUGGLED)
            self.assertEqual(code // 100, 5, lines)
            # the very next reply answers our NOOP: no hidden transaction was run
            code, lines = session.cmd("NOOP")
            self.assertEqual(code, 250, lines)
            self.assertNotIn("queued", lines[-1])
            code, lines = send_message(self, session, make_message("sentinel"))
            self.assertEqual(code, 250, lines)
            session.cmd("QUIT")
            session.close()
            server.wait_delivered(1)
            server.wait_done()
            server.wait_log(r"event=session_end ")  # logged after all the session did
            self.assertEqual(subjects(server.delivered()), ["sentinel"])
            self.assertEqual(server.log().count("event=accepted "), 1)
            self.assertNotIn("evil@example.com", server.log())

    def test_smuggled_transaction_not_executed_when_normalizing(self):
        server = self.new_server(limits={"normalize_bare_line_endings": True})
        with server:
            session = tls_session(server)
            code, lines = send_message(self, session, SMUGGLED)
            self.assertEqual(code, 250, lines)
            self.assertIn("queued as", lines[-1])
            code, lines = session.cmd("NOOP")
            self.assertEqual(code, 250, lines)
            self.assertNotIn("queued", lines[-1])
            session.cmd("QUIT")
            session.close()
            [message] = server.wait_delivered(1)
            server.wait_done()
            server.wait_log(r"event=session_end ")  # logged after all the session did
            self.assertEqual(server.done_count(), 1)
            self.assertEqual(len(server.delivered()), 1)
            self.assertIn(b"Subject: smuggle\r\n", message)
            self.assertIn(b"\r\nMAIL FROM:<evil@example.com>\r\n", message)
            self.assertEqual(server.log().count("event=accepted "), 1)
            self.assertNotRegex(server.log(), r"event=accepted .*from=evil@example\.com")


class ErrorLimit(ServerTestCase):
    def test_too_many_errors_closes_session(self):
        server = self.new_server(limits={"max_errors": 3})
        with server, RawSession(server.ports["smtp"]) as session:
            session.greeting()
            session.cmd("EHLO client.example")
            codes, last = [], None
            for i in range(4):
                session.send(f"BOGUS{i}\r\n")
                try:
                    code, lines = session.reply()
                except ConnectionError:
                    break
                codes.append(code)
                last = lines
                if code == 421:
                    break
            self.assertEqual(codes[:3], [500, 500, 500])
            self.assertEqual(codes[-1], 421, codes)
            self.assertLessEqual(len(codes), 4)
            self.assertIn("4.7.0", last[-1])
            self.assertTrue(session.wait_closed(5))
            other = server.smtp()
            self.assertEqual(other.noop()[0], 250)
            other.quit()


class Timeouts(ServerTestCase):
    """Short timeouts ("300ms"); the 421 is waited for with a deadline far beyond them, and
    elapsed time is asserted only as a lower bound (load can delay a timer, never hasten it)."""

    def test_idle_command_timeout(self):
        server = self.new_server(timeouts={"command": "300ms"})
        with server:
            started = time.monotonic()  # before the connection: the timer starts after it
            session = RawSession(server.ports["smtp"])
            self.addCleanup(session.close)
            session.greeting()
            session.sock.settimeout(10)
            try:
                code, lines = session.reply()
            except TimeoutError:
                self.fail("no reply 10 s into an idle session (timeouts.command = 300ms)")
            self.assertGreaterEqual(time.monotonic() - started, 0.3)
            self.assertEqual(code, 421, lines)
            self.assertIn("4.4.2", lines[-1])
            self.assertTrue(session.wait_closed(10))
            server.wait_log(r"event=session_end .*reason=timeout")

    def test_slow_sender_in_data_times_out(self):
        server = self.new_server(timeouts={"data": "300ms"})
        with server:
            session = tls_session(server)
            started = time.monotonic()  # before DATA: its timer starts at the 354
            start_data(self, session)
            session.send(b"From: <you@example.org>\r\nSubject: slow\r\n\r\nstarted\r\n")
            session.sock.settimeout(10)
            try:
                code, lines = session.reply()
            except TimeoutError:
                self.fail("no reply 10 s after the sender stalled in DATA (timeouts.data = 300ms)")
            self.assertGreaterEqual(time.monotonic() - started, 0.3)
            self.assertEqual(code, 421, lines)
            self.assertIn("4.4.2", lines[-1])
            self.assertTrue(session.wait_closed(10))
            session.close()
            # the session's end is logged after its close: then nothing of it can be queued
            server.wait_log(r"event=session_end .*reason=timeout")
            self.assertEqual(server.delivered(), [])
            self.assertEqual(server.spool_ids(), [])
            self.assertNotIn("event=accepted ", server.log())


class Shutdown(ServerTestCase):
    def test_sigterm_during_idle_session(self):
        server = self.new_server()
        server.start()
        session = tls_session(server)
        self.assertEqual(session.cmd("NOOP")[0], 250)
        server.process.send_signal(signal.SIGTERM)
        server.wait_log(r"event=stopping")
        code, lines = session.cmd("NOOP")
        self.assertEqual(code, 421, lines)
        self.assertIn("4.3.2", lines[-1])
        self.assertTrue(session.wait_closed(5))
        session.close()
        self.assertEqual(server.process.wait(timeout=12), 0)
        with self.assertRaises(OSError):
            raw_connect(server.ports["smtp"], timeout=2).close()

    def test_sigterm_lets_a_message_in_progress_finish_then_421(self):
        server = self.new_server()
        server.start()
        sending = tls_session(server)
        idle = tls_session(server)
        start_data(self, sending)
        sending.send(b"From: <you@example.org>\r\nSubject: in flight\r\n\r\nfirst half\r\n")
        server.process.send_signal(signal.SIGTERM)
        server.wait_log(r"event=stopping")
        # The idle session is told at once, without having to send anything.
        code, lines = idle.reply()
        self.assertEqual(code, 421, lines)
        self.assertIn("4.3.2", lines[-1])
        self.assertTrue(idle.wait_closed(5))
        # The new connection is refused: the listeners are closed.
        with self.assertRaises(OSError):
            raw_connect(server.ports["smtp"], timeout=2).close()
        # The message being sent is finished and acknowledged, then the session ends.
        time.sleep(0.5)
        sending.send(b"second half\r\n.\r\n")
        code, lines = sending.reply()
        self.assertEqual(code, 250, lines)
        code, lines = sending.reply()
        self.assertEqual(code, 421, lines)
        self.assertIn("4.3.2", lines[-1])
        self.assertTrue(sending.wait_closed(5))
        self.assertEqual(server.process.wait(timeout=12), 0)
        # Acknowledged means durable: delivered before the exit when the scheduler got to it
        # in time, else still queued and delivered by the next start.
        if not server.delivered():
            server.start()
            server.wait_delivered(1)
        [message] = server.delivered()
        self.assertIn(b"first half\r\nsecond half\r\n", message)

    def test_sigterm_grace_period_ends_a_stalled_transaction(self):
        server = self.new_server(timeouts={"shutdown_grace": "300ms"})
        server.start()
        session = tls_session(server)
        start_data(self, session)
        session.send(b"Subject: never finished\r\n\r\n")
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        session.sock.settimeout(20)
        code, lines = session.reply()
        # the grace period is a lower bound; load may only make it longer
        self.assertGreaterEqual(time.monotonic() - started, 0.3)
        self.assertEqual(code, 421, lines)
        self.assertIn("4.3.2", lines[-1])
        self.assertEqual(server.process.wait(timeout=20), 0)
        self.assertRegex(server.log(), r"event=shutdown_grace_over sessions=1")
        # Never acknowledged, so never stored: the client still has it and will retry.
        self.assertNotIn("event=accepted ", server.log())
        self.assertEqual(server.spool_ids(), [])


if __name__ == "__main__":
    unittest.main()
