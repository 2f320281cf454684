"""TLS as a client sees it: versions, certificates, resumption, STARTTLS rules, bad clients."""

import os
import re
import socket
import ssl
import subprocess
import unittest

from harness import RawSession, ServerTestCase, make_message, read_reply, s_client

OLD_CIPHERS = ["-cipher", "DEFAULT@SECLEVEL=0"]


def verify_args(server, port, starttls=False):
    args = ["-connect", f"127.0.0.1:{port}", "-servername", "localhost",
            "-verify_return_error", "-CAfile", server.ca, "-verify_hostname", "localhost",
            "-ign_eof"]
    if starttls:
        args += ["-starttls", "smtp"]
    return args


class Versions(ServerTestCase):
    def check_versions(self, role, starttls):
        server = self.new_server()
        with server:
            port = server.ports[role]
            for flag, name in (("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")):
                result = s_client(verify_args(server, port, starttls) + ["-brief", flag],
                                  b"EHLO client.example\r\nQUIT\r\n")
                out = result.stdout.decode(errors="replace")
                with self.subTest(version=name):
                    self.assertIn(f"Protocol version: {name}", out)
                    self.assertIn("Verification: OK", out)
                    if not starttls:
                        self.assertRegex(out, r"(?m)^220 localhost")
                    self.assertRegex(out, r"(?m)^250[ -]")
                    self.assertRegex(out, r"(?m)^221 ")
            failures_before = server.log().count("event=tls_handshake_failed")
            for flag in ("-tls1_1", "-tls1"):
                result = s_client(verify_args(server, port, starttls) +
                                  ["-brief", flag] + OLD_CIPHERS,
                                  b"EHLO client.example\r\nQUIT\r\n")
                out = result.stdout.decode(errors="replace")
                with self.subTest(version=flag):
                    self.assertNotEqual(result.returncode, 0, out)
                    self.assertNotIn("CONNECTION ESTABLISHED", out)
                    self.assertNotRegex(out, r"(?m)^250[ -]")
                    # the refusal comes from the server (its alert), not from our client
                    self.assertIn("alert protocol version", out)
            self.assertGreaterEqual(
                server.log().count("event=tls_handshake_failed") - failures_before, 2)

    def test_implicit_tls_accepts_tls13_tls12_refuses_older(self):
        self.check_versions("submissions", starttls=False)

    def test_starttls_accepts_tls13_tls12_refuses_older(self):
        self.check_versions("smtp", starttls=True)


class Certificates(ServerTestCase):
    def test_ecdsa_and_rsa_certificates_chosen_by_signature_algorithms(self):
        server = self.new_server()
        with server:
            port = server.ports["submissions"]
            for version in ("-tls1_3", "-tls1_2"):
                with self.subTest(version=version, key="ecdsa"):
                    result = s_client(verify_args(server, port) +
                                      [version, "-sigalgs", "ECDSA+SHA256"], b"QUIT\r\n")
                    out = result.stdout.decode(errors="replace")
                    self.assertIn("Verify return code: 0 (ok)", out)
                    self.assertIn("Peer signature type: ECDSA", out)
                    self.assertIn("Server public key is 256 bit", out)
                    self.assertRegex(out, r"(?m)^220 localhost")
                with self.subTest(version=version, key="rsa"):
                    result = s_client(verify_args(server, port) +
                                      [version, "-sigalgs", "RSA-PSS+SHA256:RSA+SHA256"],
                                      b"QUIT\r\n")
                    out = result.stdout.decode(errors="replace")
                    self.assertIn("Verify return code: 0 (ok)", out)
                    self.assertRegex(out, r"Peer signature type: RSA")
                    self.assertIn("Server public key is 2048 bit", out)
                    self.assertRegex(out, r"(?m)^220 localhost")

    def test_full_chain_sent(self):
        server = self.new_server()
        with server:
            for sigalgs in ("ECDSA+SHA256", "RSA-PSS+SHA256:RSA+SHA256"):
                with self.subTest(sigalgs=sigalgs):
                    result = s_client(verify_args(server, server.ports["submissions"]) +
                                      ["-showcerts", "-sigalgs", sigalgs], b"QUIT\r\n")
                    out = result.stdout.decode(errors="replace")
                    self.assertIn("Verify return code: 0 (ok)", out)
                    self.assertEqual(out.count("-----BEGIN CERTIFICATE-----"), 2, out)
                    self.assertRegex(out, r"(?m)^ 0 s:CN = localhost")
                    self.assertRegex(out, r"(?m)^ 1 s:CN = smtpsd development CA")


class Resumption(ServerTestCase):
    def connect_twice(self, server, role, starttls):
        session_file = os.path.join(server.dir, f"session-{role}.pem")
        first = s_client(verify_args(server, server.ports[role], starttls) +
                         ["-sess_out", session_file], b"NOOP\r\nQUIT\r\n")
        first_out = first.stdout.decode(errors="replace")
        self.assertIn("New, TLSv1.3", first_out)
        self.assertRegex(first_out, r"(?m)^221 ")
        if not os.path.exists(session_file):
            return first_out, None
        second = s_client(verify_args(server, server.ports[role], starttls) +
                          ["-sess_in", session_file], b"NOOP\r\nQUIT\r\n")
        second_out = second.stdout.decode(errors="replace")
        self.assertRegex(second_out, r"(?m)^221 ")
        return first_out, second_out

    def test_session_ticket_resumes_on_submissions(self):
        server = self.new_server()
        with server:
            first, second = self.connect_twice(server, "submissions", starttls=False)
            # One ticket per handshake (the client holds one connection), and a fresh one
            # on the resumed handshake too, so the client always has one it has not used.
            self.assertEqual(first.count("Post-Handshake New Session Ticket arrived"), 1, first)
            self.assertIsNotNone(second, "no session was saved: no ticket issued")
            self.assertIn("Reused, TLSv1.3", second)
            self.assertEqual(second.count("Post-Handshake New Session Ticket arrived"), 1, second)
            server.wait_log(r"event=tls .*resumed=yes")

    def test_no_resumption_on_smtp_role_by_default(self):
        server = self.new_server()
        with server:
            first, second = self.connect_twice(server, "smtp", starttls=True)
            self.assertNotIn("Post-Handshake New Session Ticket arrived", first)
            # No ticket, so nothing a client could resume with (s_client saves no session).
            self.assertIsNone(second, "a session was saved on the smtp role")
            self.assertNotIn("resumed=yes", server.log())


class StartTls(ServerTestCase):
    def test_commands_pipelined_after_starttls_are_discarded(self):
        # CVE-2011-0411: "STARTTLS\r\nRSET\r\n" in one packet; the RSET must not be
        # executed inside the TLS session.
        server = self.new_server()
        with server, RawSession(server.ports["smtp"]) as session:
            session.greeting()
            code, lines = session.cmd("EHLO client.example")
            self.assertIn("STARTTLS", "\n".join(lines))
            session.send(b"STARTTLS\r\nRSET\r\n")
            code, lines = session.reply()
            self.assertEqual(code, 220, lines)
            session.wrap(server.client_context())
            self.assertIsNone(session.read_some(1.0), "server answered the injected command")
            code, lines = session.cmd("EHLO client.example")
            self.assertEqual(code, 250, lines)
            self.assertNotIn("STARTTLS", "\n".join(lines))
            self.assertEqual(session.cmd("NOOP")[0], 250)
            self.assertEqual(session.cmd("QUIT")[0], 221)

    def test_starttls_inside_tls_gets_503(self):
        server = self.new_server()
        with server:
            client = server.smtp()
            code, text = client.docmd("STARTTLS")
            self.assertEqual(code, 503, text)
            self.assertIn(b"5.5.1", text)
            self.assertEqual(client.noop()[0], 250)
            client.quit()
            implicit = server.smtps()
            code, text = implicit.docmd("STARTTLS")
            self.assertEqual(code, 503, text)
            implicit.quit()

    def test_starttls_with_argument_gets_501(self):
        server = self.new_server()
        with server, RawSession(server.ports["smtp"]) as session:
            session.greeting()
            session.cmd("EHLO client.example")
            code, lines = session.cmd("STARTTLS now")
            self.assertEqual(code, 501, lines)
            self.assertIn("5.5.4", lines[-1])
            # still plaintext: the next command is answered in the clear
            self.assertEqual(session.cmd("NOOP")[0], 250)
            session.starttls(server.client_context())
            self.assertEqual(session.cmd("EHLO client.example")[0], 250)


class BadClients(ServerTestCase):
    def test_plaintext_client_on_implicit_tls_port(self):
        server = self.new_server()
        with server:
            with RawSession(server.ports["submissions"]) as session:
                session.send(b"EHLO x\r\n")
                data = b""
                session.sock.settimeout(5)
                try:
                    while True:
                        chunk = session.sock.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                except ConnectionResetError:
                    pass
                self.assertNotRegex(data, rb"(?m)^(220|250)[ -]")
            server.wait_log(r"event=tls_handshake_failed .*client=127\.0\.0\.1")
            client = server.smtps()
            self.assertEqual(client.noop()[0], 250)
            client.quit()
            self.assertTrue(server.alive())

    def test_http_request_as_first_command_closes_without_reply(self):
        server = self.new_server()
        with server, RawSession(server.ports["smtp"]) as session:
            session.greeting()
            session.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while True:
                chunk = session.read_some(5)
                self.assertIsNotNone(chunk, "connection still open 5 s after an HTTP request")
                if chunk == b"":
                    break
                data += chunk
            self.assertEqual(data, b"")
            server.wait_log(r"event=http_refused .*client=127\.0\.0\.1")

    def test_quit_ends_tls_with_close_notify(self):
        # RFC 8446 6.1: each party MUST send close_notify before closing its write side;
        # without it `openssl s_client` reports "unexpected eof while reading" and exits 1.
        server = self.new_server()
        with server:
            sock = socket.create_connection(("127.0.0.1", server.ports["submissions"]), 10)
            tls = server.client_context().wrap_socket(sock, server_hostname="localhost",
                                                      suppress_ragged_eofs=False)
            with tls, tls.makefile("rb") as reader:
                self.assertEqual(read_reply(reader)[0], 220)
                tls.sendall(b"QUIT\r\n")
                self.assertEqual(read_reply(reader)[0], 221)
                try:
                    rest = tls.recv(100)
                except ssl.SSLEOFError as error:
                    self.fail(f"connection closed without close_notify: {error}")
                self.assertEqual(rest, b"")


class RequireTls(ServerTestCase):
    def test_smtp_require_tls_refuses_mail_before_starttls(self):
        server = self.new_server(listeners=[{"role": "smtp", "require_tls": True}])
        server.start()  # stopped by tearDown, after the delivery checks
        with RawSession(server.ports["smtp"]) as session:
            session.greeting()
            session.cmd("EHLO client.example")
            code, lines = session.cmd("MAIL FROM:<you@example.org>")
            self.assertEqual(code, 530, lines)
            self.assertIn("5.7.0", lines[-1])
            session.starttls(server.client_context())
            session.cmd("EHLO client.example")
            self.assertEqual(session.cmd("MAIL FROM:<you@example.org>")[0], 250)
            self.assertEqual(session.cmd("RCPT TO:<demo@localhost>")[0], 250)
            self.assertEqual(session.cmd("DATA")[0], 354)
            session.send(make_message("required tls") + b".\r\n")
            self.assertEqual(session.reply()[0], 250)
        server.wait_delivered(1)

    def test_submission_refuses_mail_before_and_after_starttls(self):
        server = self.new_server(listeners=[{"role": "submission"}])
        with server, RawSession(server.ports["submission"]) as session:
            session.greeting()
            session.cmd("EHLO client.example")
            code, lines = session.cmd("MAIL FROM:<you@example.org>")
            self.assertEqual(code, 530, lines)
            self.assertIn("5.7.0", lines[-1])
            session.starttls(server.client_context())
            session.cmd("EHLO client.example")
            code, lines = session.cmd("MAIL FROM:<you@example.org>")
            self.assertEqual(code, 530, lines)
            self.assertEqual(session.cmd("RCPT TO:<demo@localhost>")[0] // 100, 5)
        self.assertEqual(server.spool_ids(), [])
        self.assertNotIn("event=accepted ", server.log())


class SessionLog(ServerTestCase):
    def test_one_session_end_line_per_session_with_tls_details(self):
        server = self.new_server()
        with server:
            ports = []
            for _ in range(2):
                client = server.smtp()
                ports.append(client.sock.getsockname()[1])
                client.noop()
                client.quit()
            for port in ports:
                session_id = server.wait_log(
                    rf"event=connect session=(\S+) role=smtp client=127\.0\.0\.1 "
                    rf"client_port={port}\b").group(1)
                line = server.wait_log(
                    rf"event=session_end session={session_id} [^\n]*").group(0)
                self.assertRegex(line, r"role=smtp client=127\.0\.0\.1 tls=TLSv1\.3 "
                                       r"cipher=TLS_\S+ sni=localhost ")
                self.assertIn("reason=quit", line)
                self.assertEqual(
                    server.log().count(f"event=session_end session={session_id} "), 1)


class Swaks(ServerTestCase):
    def test_swaks_verified_starttls_delivers(self):
        server = self.new_server()
        with server:
            result = subprocess.run(
                ["swaks", "--server", f"127.0.0.1:{server.ports['smtp']}", "--tls",
                 "--tls-verify", "--tls-ca-path", server.ca, "--from", "you@example.org",
                 "--to", "demo@localhost", "--header", "Subject: sent by swaks",
                 "--timeout", "10"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
            out = result.stdout.decode(errors="replace")
            self.assertEqual(result.returncode, 0, out)
            self.assertRegex(out, r"<~\s+250 2\.0\.0 .*queued as \S+")
            [message] = server.wait_delivered(1)
            self.assertIn(b"Subject: sent by swaks", message)
            self.assertIn(b"with ESMTPS", message)


if __name__ == "__main__":
    unittest.main()
