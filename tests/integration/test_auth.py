"""SMTP AUTH (RFC 4954) on the submission roles, driven by real clients: smtplib, swaks,
curl, msmtp and GNU SASL's gsasl (SCRAM-SHA-256 and SCRAM-SHA-256-PLUS, a SCRAM
implementation nobody here wrote); bad input, the failure limiter, reloading the users
file, the fail2ban filter over real log lines, and secrets kept out of the log."""

import base64
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import stat
import subprocess
import threading
import time
import unittest

from harness import SMTPSD, RawSession, ServerTestCase, SyslogSocket, make_message
import needs

SMTPSCTL = os.environ.get("SMTPSCTL_BIN") or os.path.join(os.path.dirname(SMTPSD), "smtpsctl")

QUEUED = re.compile(r"queued as (\S+)")
AUTH_FAILED_LINE = re.compile(r"(?m)^\S+ level=warning event=auth_failed session=\S+ "
                              r"client=(\S+) user=(\"(?:[^\"\\]|\\.)*\"|\S*) mechanism=(\S+) "
                              r"reason=(.*)$")
F2B_LINES = re.compile(r"Lines: (\d+) lines, (\d+) ignored, (\d+) matched, (\d+) missed")
FAIL2BAN_FILTER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                               "contrib", "fail2ban", "filter.d", "smtpsd.conf")


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def plain(user, password, authzid=""):
    return b64(f"{authzid}\0{user}\0{password}")


def demo_password(server):
    with open(os.path.join(server.dir, "demo.password")) as f:
        return f.read().strip()


def users_file(server):
    return os.path.join(server.dir, "users")


def smtpsctl(*args, password=None):
    """Runs smtpsctl; a password goes to stdin (never the command line)."""
    result = subprocess.run([SMTPSCTL] + list(args),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30,
                            input=(password + "\n").encode() if password is not None else b"")
    if result.returncode != 0:
        raise AssertionError(f"smtpsctl {args} failed ({result.returncode}): {result.stdout!r}")
    return result.stdout.decode()


def tls_session(server):
    """Raw session on the submissions port (implicit TLS), after EHLO."""
    session = RawSession(server.ports["submissions"],
                         implicit_tls_context=server.client_context())
    session.greeting()
    code, lines = session.cmd("EHLO client.example")
    assert code == 250, lines
    return session


def login_reply(server, user, password, mechanism="PLAIN", role="submissions"):
    """(code, text) of one fresh login with smtplib; 235 on success."""
    client = (server.smtps() if role == "submissions" else server.smtp(role=role))
    try:
        client.user, client.password = user, password
        method = client.auth_plain if mechanism == "PLAIN" else client.auth_login
        try:
            code, text = client.auth(mechanism, method, initial_response_ok=True)
        except smtplib.SMTPAuthenticationError as error:
            code, text = error.smtp_code, error.smtp_error
        return code, text.decode() if isinstance(text, bytes) else text
    finally:
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()


def auth_log_lines(server):
    return AUTH_FAILED_LINE.findall(server.log())


def received_header(message):
    headers = message.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    match = re.search(r"(?m)^Received: [^\r\n]*(?:\r\n[ \t][^\r\n]*)*", headers)
    assert match, headers
    return match.group(0)


class TlsTerminatingRelay:
    """A man in the middle between gsasl and the submission port, for one connection: it
    relays the plaintext dialog up to the 220 to STARTTLS, then terminates TLS itself with
    a certificate the client trusts (the server's own) and opens a second TLS connection to
    smtpsd — the attacker that SCRAM-SHA-256-PLUS defeats."""

    def __init__(self, server):
        self.server = server
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(30)
        self.port = self.listener.getsockname()[1]
        self.sockets = [self.listener]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @staticmethod
    def _reply(reader):
        lines = []
        while True:
            line = reader.readline()
            if not line:
                return lines
            lines.append(line)
            if line[3:4] != b"-":
                return lines

    def _relay(self, from_client, from_server, client, upstream, until_starttls):
        """SMTP and SASL are lockstep: one reply per client line. True at a 220 to
        STARTTLS when until_starttls."""
        while True:
            line = from_client.readline()
            if not line:
                return False
            upstream.sendall(line)
            reply = self._reply(from_server)
            if not reply:
                return False
            client.sendall(b"".join(reply))
            if (until_starttls and line.strip().upper() == b"STARTTLS" and
                    reply[0].startswith(b"220")):
                return True

    def _run(self):
        try:
            client, _ = self.listener.accept()
            upstream = socket.create_connection(("127.0.0.1",
                                                 self.server.ports["submission"]), timeout=30)
            self.sockets += [client, upstream]
            client.settimeout(30)
            from_client = client.makefile("rb", buffering=0)
            from_server = upstream.makefile("rb", buffering=0)
            client.sendall(b"".join(self._reply(from_server)))  # greeting
            if not self._relay(from_client, from_server, client, upstream, True):
                return
            server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            server_side.load_cert_chain(os.path.join(self.server.dir, "tls", "server-ecdsa.pem"),
                                        os.path.join(self.server.dir, "tls", "server-ecdsa.key"))
            client = server_side.wrap_socket(client, server_side=True)
            upstream = self.server.client_context().wrap_socket(upstream,
                                                                server_hostname="localhost")
            self.sockets += [client, upstream]
            self._relay(client.makefile("rb"), upstream.makefile("rb"), client, upstream, False)
        except (OSError, ssl.SSLError):
            return
        finally:
            self.close()

    def close(self):
        for sock in self.sockets:
            try:
                sock.close()
            except OSError:
                pass


def gsasl(server, mechanism, user, password, mitm=False, no_cb=False):
    """gsasl as an SMTP client against the submission port, verified with the test CA;
    returns CompletedProcess with text stdout (the SMTP dialog) and stderr. gsasl 2.2
    (src/smtp.c) only sees STARTTLS on a "250-STARTTLS" line, never as the last line of the
    EHLO reply where smtpsd puts it, so it is told to use STARTTLS (--starttls), and then
    sends it right after the greeting, before any EHLO. mitm=True puts a TLS-terminating
    relay in between."""
    relay = TlsTerminatingRelay(server) if mitm else None
    port = relay.port if relay else server.ports["submission"]
    args = ["gsasl", "--client", "--smtp", f"--connect=127.0.0.1:{port}", "--starttls",
            "--mechanism", mechanism, "--authentication-id", user, "--password", password,
            "--x509-ca-file", server.ca, "--quiet"]
    if no_cb:
        args.append("--no-cb")
    try:
        return subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=30, text=True)
    finally:
        if relay:
            relay.thread.join(10)
            relay.close()


class AuthTestCase(ServerTestCase):
    def assert_still_serving(self, server, count=None):
        """A fresh client logs in and its mail is delivered: the server still serves."""
        before = len(server.delivered()) if count is None else count
        client = server.smtps()
        client.login("demo@localhost", demo_password(server))
        refused = client.sendmail("demo@localhost", ["demo@localhost"],
                                  make_message("still serving", sender="demo@localhost"))
        self.assertEqual(refused, {})
        client.quit()
        server.wait_delivered(before + 1)

    def assert_no_secret_in_log(self, server, *secrets):
        log = server.log()
        for secret in secrets:
            self.assertNotIn(secret, log)
            self.assertNotIn(b64(secret), log)


# --- Python smtplib ---------------------------------------------------------------------

class SmtplibSubmission(AuthTestCase):
    def _send_local_and_remote(self, server, client, mechanism):
        self.assertEqual(client.mail("demo@localhost")[0], 250)
        self.assertEqual(client.rcpt("demo@localhost")[0], 250)
        code, text = client.data(make_message(f"local {mechanism}", sender="demo@localhost"))
        self.assertEqual(code, 250, text)
        self.assertEqual(client.mail("demo@localhost")[0], 250)
        self.assertEqual(client.rcpt("someone@example.com")[0], 250)
        code, text = client.data(make_message(f"remote {mechanism}", sender="demo@localhost",
                                              to="someone@example.com"))
        self.assertEqual(code, 250, text)
        return QUEUED.search(text.decode()).group(1)

    def _check(self, server, role):
        password = demo_password(server)
        remote_ids = []
        for mechanism in ("PLAIN", "LOGIN"):
            for initial_response in (True, False):
                client = server.smtps() if role == "submissions" else server.smtp(role=role)
                self.assertEqual(client.sock.version(), "TLSv1.3")
                self.assertIn(mechanism, client.esmtp_features["auth"].split())
                client.user, client.password = "demo@localhost", password
                method = client.auth_plain if mechanism == "PLAIN" else client.auth_login
                code, text = client.auth(mechanism, method,
                                         initial_response_ok=initial_response)
                self.assertEqual((code, text), (235, b"2.7.0 Authentication successful"))
                remote_ids.append(self._send_local_and_remote(server, client, mechanism))
                client.quit()
        # login() picks a mechanism itself (PLAIN among those smtpsd offers)
        client = server.smtps() if role == "submissions" else server.smtp(role=role)
        self.assertEqual(client.login("demo@localhost", password)[0], 235)
        remote_ids.append(self._send_local_and_remote(server, client, "login()"))
        client.quit()
        messages = server.wait_delivered(5)
        self.assertEqual(len(messages), 5)
        for message in messages:
            received = received_header(message)
            self.assertIn("with ESMTPSA", received)
            self.assertNotIn("authenticated as", received)  # off by default
            self.assertTrue(message.startswith(b"Return-Path: <demo@localhost>\r\n"))
        spool = server.spool_ids()
        for queue_id in remote_ids:
            self.assertTrue(any(name.startswith(queue_id) for name in spool),
                            f"{queue_id} not waiting in the spool {spool}")
        self.assertEqual(server.delivered("someone@example.com"), [])
        for mechanism in ("PLAIN", "LOGIN"):
            self.assertRegex(server.log(), r"event=auth session=\S+ client=127\.0\.0\.1 "
                             rf"user=demo@localhost mechanism={mechanism}\b")
        self.assert_no_secret_in_log(server, password)

    def test_plain_and_login_over_implicit_tls_deliver_local_and_spool_remote(self):
        with self.new_server() as server:
            self._check(server, "submissions")

    def test_plain_and_login_over_starttls_deliver_local_and_spool_remote(self):
        with self.new_server() as server:
            self._check(server, "submission")

    def test_received_header_names_user_when_configured(self):
        server = self.new_server(extra_toml="[auth]\nreceived_names_user = true\n")
        with server:
            client = server.smtps()
            client.login("demo@localhost", demo_password(server))
            client.sendmail("demo@localhost", ["demo@localhost"],
                            make_message("named", sender="demo@localhost"))
            client.quit()
            [message] = server.wait_delivered(1)
            received = received_header(message)
            self.assertIn("with ESMTPSA", received)
            self.assertIn("(authenticated as demo@localhost)", received)


# --- swaks, curl, msmtp ----------------------------------------------------------------

class ExternalClients(AuthTestCase):
    @needs.tools("swaks")
    def test_swaks_plain_and_login_over_implicit_tls_and_starttls(self):
        with self.new_server() as server:
            password = demo_password(server)
            runs = [("PLAIN", "submissions"), ("LOGIN", "submission"),
                    ("LOGIN", "submissions"), ("PLAIN", "submission")]
            for mechanism, role in runs:
                tls = "--tls-on-connect" if role == "submissions" else "--tls"
                result = subprocess.run(
                    ["swaks", "--server", "127.0.0.1", "--port", str(server.ports[role]), tls,
                     "--tls-verify", "--tls-ca-path", server.ca, "--auth", mechanism,
                     "--auth-user", "demo@localhost", "--auth-password", password,
                     "--from", "demo@localhost", "--to", "demo@localhost,someone@example.com",
                     "--header", f"Subject: swaks {mechanism} {role}"],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30, text=True)
                self.assertEqual(result.returncode, 0, result.stdout)
                self.assertIn(f"~> AUTH {mechanism}", result.stdout)
                self.assertIn("<~  235 2.7.0", result.stdout)
                self.assertRegex(result.stdout, r"<~  250 2\.0\.0 Ok: queued as \S+")
            messages = server.wait_delivered(len(runs))
            subjects = sorted(re.search(rb"(?m)^Subject: (.*)\r$", m).group(1).decode()
                              for m in messages)
            self.assertEqual(subjects, sorted(f"swaks {m} {r}" for m, r in runs))
            self.assertEqual(len(server.spool_ids()), len(runs))  # the example.com copies
            self.assertEqual(len(re.findall(r"event=auth session=", server.log())), len(runs))

    @needs.tools("curl")
    def test_curl_user_over_implicit_tls_and_starttls(self):
        with self.new_server() as server:
            password = demo_password(server)
            body = os.path.join(self.tmp, "curl-message.txt")
            with open(body, "wb") as f:
                f.write(make_message("curl", sender="demo@localhost"))
            variants = [
                ([f"smtps://127.0.0.1:{server.ports['submissions']}"], None),
                ([f"smtps://127.0.0.1:{server.ports['submissions']}"], "AUTH=PLAIN"),
                ([f"smtps://127.0.0.1:{server.ports['submissions']}"], "AUTH=LOGIN"),
                ([f"smtp://127.0.0.1:{server.ports['submission']}", "--ssl-reqd"], None),
            ]
            for url, login_options in variants:
                args = ["curl", "--silent", "--show-error", "--url", url[0]] + url[1:] + [
                    "--cacert", server.ca, "--user", f"demo@localhost:{password}",
                    "--mail-from", "demo@localhost", "--mail-rcpt", "demo@localhost",
                    "--upload-file", body]
                if login_options:
                    args += ["--login-options", login_options]
                result = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        timeout=30, text=True)
                self.assertEqual(result.returncode, 0, (login_options, result.stdout))
            messages = server.wait_delivered(len(variants))
            self.assertEqual(len(messages), len(variants))
            log = server.log()
            self.assertEqual(len(re.findall(r"event=auth session=", log)), len(variants))
            self.assertIn("mechanism=LOGIN", log)
            self.assertIn("mechanism=PLAIN", log)
            self.assert_no_secret_in_log(server, password)

    @needs.tools("msmtp")
    def test_msmtp_starttls_and_implicit_tls(self):
        with self.new_server() as server:
            password_file = os.path.join(server.dir, "demo.password")
            for role, starttls in (("submission", "on"), ("submissions", "off")):
                config = os.path.join(self.tmp, f"msmtprc-{role}")
                with open(config, "w") as f:
                    f.write("defaults\n"
                            "account test\n"
                            "host 127.0.0.1\n"
                            f"port {server.ports[role]}\n"
                            "tls on\n"
                            f"tls_starttls {starttls}\n"
                            f"tls_trust_file {server.ca}\n"
                            "auth on\n"
                            "user demo@localhost\n"
                            f'passwordeval "cat {password_file}"\n'
                            "from demo@localhost\n"
                            "account default : test\n")
                os.chmod(config, 0o600)
                result = subprocess.run(
                    ["msmtp", "-C", config, "demo@localhost"],
                    input=make_message(f"msmtp {role}", sender="demo@localhost"),
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
                self.assertEqual(result.returncode, 0, result.stdout)
            messages = server.wait_delivered(2)
            self.assertEqual(len(messages), 2)
            for message in messages:
                self.assertIn("with ESMTPSA", received_header(message))


# --- gsasl: SCRAM-SHA-256 and SCRAM-SHA-256-PLUS ------------------------------------------

@needs.tools("gsasl")
class GsaslScram(AuthTestCase):
    def test_scram_sha_256_plus_with_tls_exporter_and_scram_sha_256(self):
        with self.new_server() as server:
            password = demo_password(server)
            result = gsasl(server, "SCRAM-SHA-256-PLUS", "demo@localhost", password)
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
            self.assertIn("235 2.7.0", result.stdout)
            # the client-first message carries the tls-exporter channel binding
            first = re.search(r"(?m)^AUTH SCRAM-SHA-256-PLUS\r?\n334 \r?\n(\S+)",
                              result.stdout).group(1)
            self.assertTrue(base64.b64decode(first).startswith(b"p=tls-exporter,,n=demo@"))
            server.wait_log(r"event=auth session=\S+ client=127\.0\.0\.1 "
                            r"user=demo@localhost mechanism=SCRAM-SHA-256-PLUS\b")
            # gsasl 2.2 uses plain SCRAM-SHA-256 over TLS only without channel binding data
            # (--no-cb; with it, its client gives up before sending the client-first message)
            result = gsasl(server, "SCRAM-SHA-256", "demo@localhost", password, no_cb=True)
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
            self.assertIn("235 2.7.0", result.stdout)
            server.wait_log(r"event=auth session=\S+ client=127\.0\.0\.1 "
                            r"user=demo@localhost mechanism=SCRAM-SHA-256\s")
            self.assert_no_secret_in_log(server, password)

    def test_scram_wrong_password_and_unknown_user_fail_with_535(self):
        with self.new_server() as server:
            for mechanism, user, no_cb in (("SCRAM-SHA-256-PLUS", "demo@localhost", False),
                                           ("SCRAM-SHA-256", "ghost@localhost", True)):
                result = gsasl(server, mechanism, user, "Wrong-Scram-Password-1", no_cb=no_cb)
                self.assertNotEqual(result.returncode, 0, result.stdout)
                self.assertIn("535 5.7.8", result.stdout)
                self.assertNotIn("235 ", result.stdout)
            failures = auth_log_lines(server)
            self.assertEqual([(f[1], f[2]) for f in failures],
                             [("demo@localhost", "SCRAM-SHA-256-PLUS"),
                              ("ghost@localhost", "SCRAM-SHA-256")])
            self.assert_no_secret_in_log(server, "Wrong-Scram-Password-1")
            self.assert_still_serving(server)

    def test_scram_plus_refused_through_tls_terminating_relay(self):
        # A relay that holds a certificate the client trusts sees the exchange in clear;
        # plain SCRAM passes through it, -PLUS must not (the tls-exporter values differ).
        with self.new_server() as server:
            password = demo_password(server)
            result = gsasl(server, "SCRAM-SHA-256", "demo@localhost", password, mitm=True,
                           no_cb=True)
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
            self.assertIn("235 2.7.0", result.stdout)
            result = gsasl(server, "SCRAM-SHA-256-PLUS", "demo@localhost", password, mitm=True)
            self.assertNotEqual(result.returncode, 0, result.stdout)
            self.assertIn("535 5.7.8", result.stdout)
            self.assertRegex(server.log(), r"event=auth_failed session=\S+ client=127\.0\.0\.1 "
                             r"user=\S+ mechanism=SCRAM-SHA-256-PLUS "
                             r"reason=\"channel binding mismatch\"")


# --- bad input --------------------------------------------------------------------------

class BadInput(AuthTestCase):
    def test_auth_before_starttls_on_submission_530_then_accepted_after(self):
        with self.new_server() as server:
            password = demo_password(server)
            with RawSession(server.ports["submission"]) as session:
                session.greeting()
                code, lines = session.cmd("EHLO client.example")
                self.assertFalse(any("AUTH" in line for line in lines), lines)
                code, lines = session.cmd("AUTH PLAIN " + plain("demo@localhost", password))
                self.assertEqual(code, 530, lines)
                self.assertTrue(lines[0].startswith("530 5.7.0"), lines)
                self.assertEqual(session.cmd("MAIL FROM:<demo@localhost>")[0], 530)
                session.starttls(server.client_context())
                code, lines = session.cmd("EHLO client.example")
                self.assertIn("250 AUTH SCRAM-SHA-256-PLUS SCRAM-SHA-256 PLAIN LOGIN",
                              lines)
                code, lines = session.cmd("AUTH PLAIN " + plain("demo@localhost", password))
                self.assertEqual(code, 235, lines)
            self.assert_still_serving(server)

    def test_smtp_role_never_offers_auth(self):
        with self.new_server() as server:
            with RawSession(server.ports["smtp"]) as session:
                session.greeting()
                code, lines = session.cmd("EHLO client.example")
                self.assertFalse(any("AUTH" in line for line in lines), lines)
                code, lines = session.cmd("AUTH PLAIN " + plain("demo@localhost", "x"))
                # Before TLS: refused (502 5.5.1: the command does not exist on this role).
                self.assertIn(code, (502, 530), lines)
                session.starttls(server.client_context())
                code, lines = session.cmd("EHLO client.example")
                self.assertFalse(any("AUTH" in line for line in lines), lines)
                code, lines = session.cmd("AUTH PLAIN " + plain("demo@localhost",
                                                                demo_password(server)))
                self.assertEqual(lines, ["502 5.5.1 AUTH not supported on this port"])
                code, lines = session.cmd("AUTH LOGIN")
                self.assertEqual(code, 502, lines)
            self.assertNotIn("event=auth ", server.log())
            self.assert_still_serving(server)

    def test_truncated_plain_without_nuls_501(self):
        with self.new_server() as server:
            with tls_session(server) as session:
                code, lines = session.cmd("AUTH PLAIN " + b64("demo@localhost"))
                self.assertEqual(lines, ["501 5.5.2 Malformed authentication response"])
                code, lines = session.cmd("AUTH PLAIN " + b64("\0demo@localhost"))
                self.assertEqual(code, 501, lines)
                code, lines = session.cmd("AUTH PLAIN")
                self.assertEqual(lines, ["334 "])
                code, lines = session.cmd(b64("demo@localhost\0"))
                self.assertEqual(code, 501, lines)
                # The same connection can still authenticate.
                code, lines = session.cmd("AUTH PLAIN " + plain("demo@localhost",
                                                                demo_password(server)))
                self.assertEqual(code, 235, lines)
            self.assert_still_serving(server)

    def test_bad_base64_501_5_5_2(self):
        with self.new_server() as server:
            with tls_session(server) as session:
                code, lines = session.cmd("AUTH PLAIN !!!not-base64")
                self.assertEqual(code, 501, lines)
                self.assertTrue(lines[0].startswith("501 5.5.2"), lines)
                code, lines = session.cmd("AUTH LOGIN")
                self.assertEqual(lines, ["334 " + b64("Username:")])
                code, lines = session.cmd("%%%%")
                self.assertEqual(code, 501, lines)
                self.assertTrue(lines[0].startswith("501 5.5.2"), lines)
                self.assertEqual(session.cmd("AUTH LOGIN")[0], 334)
                code, lines = session.cmd("ZGVtb0Bsb2NhbGhvc3Q")  # not padded
                self.assertEqual(code, 501, lines)
                self.assertTrue(lines[0].startswith("501 5.5.2"), lines)
                self.assertEqual(session.cmd("NOOP")[0], 250)
            self.assert_still_serving(server)

    def test_malformed_responses_count_toward_the_lockout(self):
        # 501s (a PLAIN response without its NULs, undecodable base64 in the AUTH line and
        # after a 334) are failures of the address: after max_failures_per_ip of them AUTH
        # gets 454 4.7.0, even with the right password, on a new connection too.
        server = self.new_server(extra_toml="[auth]\nmax_failures_per_ip = 3\n")
        with server:
            with tls_session(server) as session:
                code, lines = session.cmd("AUTH PLAIN " + b64("demo@localhost"))
                self.assertEqual(lines, ["501 5.5.2 Malformed authentication response"])
                code, lines = session.cmd("AUTH PLAIN !!!not-base64")
                self.assertTrue(lines[0].startswith("501 5.5.2"), lines)
                self.assertEqual(session.cmd("AUTH LOGIN")[0], 334)
                code, lines = session.cmd("%%%%")
                self.assertTrue(lines[0].startswith("501 5.5.2"), lines)
                code, lines = session.cmd("AUTH PLAIN " + plain("demo@localhost",
                                                                demo_password(server)))
                self.assertEqual(code, 454, lines)
                self.assertTrue(lines[0].startswith("454 4.7.0"), lines)
            code, text = login_reply(server, "demo@localhost", demo_password(server))
            self.assertEqual(code, 454, text)
            reasons = [f[3] for f in auth_log_lines(server)]
            self.assertEqual(reasons[:3], ['"PLAIN message needs exactly two NUL separators"',
                                           '"undecodable response"', '"undecodable response"'])

    def test_star_cancels_with_501(self):
        with self.new_server() as server:
            with tls_session(server) as session:
                for mechanism in ("PLAIN", "LOGIN", "SCRAM-SHA-256"):
                    self.assertEqual(session.cmd(f"AUTH {mechanism}")[0], 334)
                    code, lines = session.cmd("*")
                    self.assertEqual(code, 501, lines)
                code, lines = session.cmd("AUTH LOGIN")
                self.assertEqual(code, 334)
                self.assertEqual(session.cmd(b64("demo@localhost"))[0], 334)
                code, lines = session.cmd("*")
                self.assertEqual(code, 501, lines)
                self.assertEqual(session.cmd("MAIL FROM:<demo@localhost>")[0], 530)
            self.assert_still_serving(server)

    def test_response_over_12288_octets_500_5_5_6_and_connection_usable(self):
        with self.new_server() as server:
            password = demo_password(server)
            with tls_session(server) as session:
                # AUTH command line: 12288 octets incl. CRLF is allowed (RFC 4954 §4) ...
                prefix = "AUTH PLAIN "
                fits = b64(b"\0big1@localhost\0" + b"p" * 9188)
                self.assertEqual(len(prefix + fits) + 2, 12285)
                code, lines = session.cmd(prefix + fits)
                self.assertEqual(code, 535, lines)
                # ... one more base64 quantum is over it
                code, lines = session.cmd(prefix + fits + "AAAA")
                self.assertEqual(lines, ["500 5.5.6 Authentication Exchange line is too long"])
                self.assertEqual(session.cmd("NOOP")[0], 250)
                # a continuation line after 334
                self.assertEqual(session.cmd("AUTH PLAIN")[0], 334)
                code, lines = session.cmd("A" * 13000)
                self.assertEqual(code, 500, lines)
                self.assertTrue(lines[0].startswith("500 5.5.6"), lines)
                self.assertEqual(session.cmd("NOOP")[0], 250)
                # a much longer one (arrives in many TLS records)
                self.assertEqual(session.cmd("AUTH LOGIN")[0], 334)
                code, lines = session.cmd("QUFB" * 50000)
                self.assertEqual(code, 500, lines)
                self.assertEqual(session.cmd("NOOP")[0], 250)
                code, lines = session.cmd("AUTH PLAIN " + plain("demo@localhost", password))
                self.assertEqual(code, 235, lines)
                self.assertEqual(session.cmd("MAIL FROM:<demo@localhost>")[0], 250)
            self.assert_still_serving(server)

    def test_auth_twice_503_and_unknown_mechanism_504(self):
        with self.new_server() as server:
            password = demo_password(server)
            with tls_session(server) as session:
                for mechanism in ("CRAM-MD5", "FOO", "SCRAM-SHA-1", "EXTERNALX"):
                    code, lines = session.cmd(f"AUTH {mechanism}")
                    self.assertEqual(code, 504, (mechanism, lines))
                    self.assertTrue(lines[0].startswith("504 5.5.4"), lines)
                code, lines = session.cmd("AUTH PLAIN " + plain("demo@localhost", password))
                self.assertEqual(code, 235, lines)
                code, lines = session.cmd("AUTH PLAIN " + plain("demo@localhost", password))
                self.assertEqual(code, 503, lines)
                self.assertTrue(lines[0].startswith("503 5.5.1"), lines)
                code, lines = session.cmd("AUTH LOGIN")
                self.assertEqual(code, 503, lines)
                self.assertEqual(session.cmd("MAIL FROM:<demo@localhost>")[0], 250)
            self.assert_still_serving(server)

    def test_mail_before_auth_530_and_null_sender_553(self):
        with self.new_server() as server:
            for role in ("submissions", "submission"):
                client = server.smtps() if role == "submissions" else server.smtp(role=role)
                code, text = client.mail("demo@localhost")
                self.assertEqual((code, text[:5]), (530, b"5.7.0"), role)
                client.login("demo@localhost", demo_password(server))
                code, text = client.mail("<>")
                self.assertEqual((code, text[:5]), (553, b"5.7.1"), role)
                client.quit()
            self.assert_still_serving(server)

    def test_scram_downgrade_flag_y_refused(self):
        # RFC 5802 §6: gs2 flag "y" (client supports binding, thinks the server does not)
        # must fail when the server offers -PLUS: someone stripped -PLUS from the list.
        with self.new_server() as server:
            with tls_session(server) as session:
                code, lines = session.cmd("AUTH SCRAM-SHA-256 " +
                                          b64("y,,n=demo@localhost,r=fyko+d2lbbFgONRv9qkxdawL"))
                self.assertEqual(code, 535, lines)
            self.assertIn("reason=\"channel binding downgrade", server.log())
            self.assert_still_serving(server)

    def test_sender_not_owned_553_then_alias_added_with_smtpsctl_accepted(self):
        with self.new_server() as server:
            with tls_session(server) as session:
                code, lines = session.cmd("AUTH PLAIN " + plain("demo@localhost",
                                                                demo_password(server)))
                self.assertEqual(code, 235, lines)
                for sender in ("sales@localhost", "demo@example.com", "Demo@otherhost"):
                    code, lines = session.cmd(f"MAIL FROM:<{sender}>")
                    self.assertEqual(code, 553, lines)
                    self.assertTrue(lines[0].startswith("553 5.7.1"), lines)
                smtpsctl("user", "alias", "add", "--users", users_file(server),
                         "demo@localhost", "sales@localhost")
                self.assertIn("sales@localhost", smtpsctl("user", "list", "--users",
                                                          users_file(server)))
                deadline = time.time() + 5
                while True:
                    code, lines = session.cmd("MAIL FROM:<sales@localhost>")
                    if code == 250 or time.time() > deadline:
                        break
                    time.sleep(0.6)
                self.assertEqual(code, 250, lines)
                self.assertEqual(session.cmd("RCPT TO:<demo@localhost>")[0], 250)
                self.assertEqual(session.cmd("DATA")[0], 354)
                session.send(make_message("from alias", sender="sales@localhost") + b".\r\n")
                self.assertEqual(session.reply()[0], 250)
                # still not any other address
                self.assertEqual(session.cmd("MAIL FROM:<boss@localhost>")[0], 553)
            [message] = server.wait_delivered(1)
            self.assertTrue(message.startswith(b"Return-Path: <sales@localhost>\r\n"))
            self.assert_still_serving(server)


# --- failure limiter --------------------------------------------------------------------

class Lockout(AuthTestCase):
    """The limiter's windows are set short or long as each test needs (durations such as
    "250ms" are valid): a test waits for the event that shows a step (a reply code, the
    server's own list of lockouts) with a deadline far beyond it, and asserts on elapsed time
    only as a lower bound, which load cannot break."""

    def lockouts(self, server):
        """The running server's lockouts as `smtpsctl auth lockouts` prints them (no header)."""
        result = subprocess.run([SMTPSCTL, "auth", "lockouts", "--config", server.config_path],
                                capture_output=True, timeout=30)
        self.assertEqual(result.returncode, 0, result)
        return result.stdout.decode().splitlines()[1:]

    def test_wrong_passwords_lock_out_the_user_on_every_mechanism(self):
        # A window far longer than the test: the lockout is in force for all of it.
        server = self.new_server(
            domains=[("localhost", ["demo", "other"])],
            extra_toml='[auth]\nmax_failures_per_user = 3\nfailure_window = "10m"\n'
                       'failure_delay = "400ms"\n')
        smtpsctl("user", "add", "--users", users_file(server), "other@localhost",
                 password="Other-Pass-42")
        with server:
            password = demo_password(server)
            replies, took = [], []
            for i in range(3):
                started = time.monotonic()
                replies.append(login_reply(server, "demo@localhost", f"Wrong-Guess-{i}"))
                took.append(time.monotonic() - started)
            self.assertEqual([code for code, _ in replies], [535, 535, 535], replies)
            # a growing delay: none, then failure_delay, then twice that (lower bounds)
            self.assertGreaterEqual(took[1], 0.4, took)
            self.assertGreaterEqual(took[2], 0.8, took)
            # the right password is refused during the lockout, on any mechanism
            for mechanism in ("PLAIN", "LOGIN"):
                code, text = login_reply(server, "demo@localhost", password, mechanism)
                self.assertEqual(code, 454, text)
                self.assertTrue(text.startswith("4.7.0"), text)
            # another user behind the same address is not locked out
            self.assertEqual(login_reply(server, "other@localhost", "Other-Pass-42")[0], 235)
            [lockout] = self.lockouts(server)
            self.assertRegex(lockout, r"^127\.0\.0\.1 demo@localhost 3 \d+$")
            failures = auth_log_lines(server)
            reasons = [f[3] for f in failures if f[1] == "demo@localhost"]
            self.assertEqual(reasons, ['"invalid credentials"'] * 3 + ['"locked out"'] * 2)
            self.assert_no_secret_in_log(server, password, "Wrong-Guess-0", "Wrong-Guess-1",
                                         "Wrong-Guess-2", "Other-Pass-42")

    def test_lockout_holds_until_the_window_has_passed_then_lifts(self):
        # The failures come on one session, so that all three fall well inside the window
        # (~0.1 s for a window of 3 s) even on a loaded machine.
        window = 3.0
        server = self.new_server(
            extra_toml='[auth]\nmax_failures_per_user = 3\nfailure_window = "3s"\n'
                       'failure_delay = "10ms"\n')
        with server:
            password = demo_password(server)
            with tls_session(server) as session:
                for i in range(3):
                    third_sent = time.monotonic()
                    code, lines = session.cmd("AUTH PLAIN " + plain("demo@localhost",
                                                                    f"Wrong-Guess-{i}"))
                    self.assertEqual(code, 535, lines)
                # the attempt right after the third failure: locked
                code, lines = session.cmd("AUTH PLAIN " + plain("demo@localhost", password))
                self.assertEqual(code, 454, lines)
                self.assertTrue(lines[0].startswith("454 4.7.0"), lines)
            # The server's own list says when the lockout is over; a login after that works.
            self.assertRegex(" ".join(self.lockouts(server)), r"^127\.0\.0\.1 demo@localhost 3 ")
            deadline = time.monotonic() + 10 * window
            while self.lockouts(server):
                self.assertLess(time.monotonic(), deadline, "the lockout never ended")
                time.sleep(0.05)
            lifted = time.monotonic()
            # not before the window has passed (the lockout began after the third AUTH was sent)
            self.assertGreaterEqual(lifted - third_sent, window)
            self.assertEqual(login_reply(server, "demo@localhost", password)[0], 235)
            reasons = [f[3] for f in auth_log_lines(server)]
            self.assertEqual(reasons, ['"invalid credentials"'] * 3 + ['"locked out"'])

    def test_lockouts_list_escapes_hostile_user_names(self):
        # A user name is whatever an unauthenticated client typed: ESC [ 2 J, a bare CR, a
        # LF that would forge a second lockout line, DEL, a C1 CSI and a byte that is not
        # UTF-8 must reach the operator's terminal as visible escapes.
        server = self.new_server(extra_toml="[auth]\nmax_failures_per_user = 1\n")
        hostile = b"evil\x1b[2J\rroot\n10.6.6.6 forged 9 9\x7f\xc2\x9b\xff@localhost"
        with server:
            with tls_session(server) as session:
                payload = base64.b64encode(b"\0" + hostile + b"\0Wrong-Pass-9").decode()
                code, lines = session.cmd("AUTH PLAIN " + payload)
                self.assertEqual(code, 535, lines)
            result = subprocess.run([SMTPSCTL, "auth", "lockouts", "--config",
                                     server.config_path], capture_output=True, timeout=30)
        self.assertEqual(result.returncode, 0, result)
        out = result.stdout.decode("utf-8")  # still UTF-8
        lines = out.splitlines()
        self.assertEqual(len(lines), 2, out)  # the header and one lockout: nothing forged
        escaped = r"evil\x1b[2J\rroot\n10.6.6.6 forged 9 9\x7f\xc2\x9b\xff@localhost"
        # (the limiter keys users in lower case)
        self.assertRegex(lines[1], "(?i)^127\\.0\\.0\\.1 " + re.escape(escaped) + r" 1 \d+$")
        for char in out:
            self.assertFalse((ord(char) < 0x20 and char != "\n") or 0x7f <= ord(char) <= 0x9f,
                             f"raw U+{ord(char):04X} in:\n{out}")

    @needs.tools("gsasl")
    def test_scram_failures_count_for_the_user_not_the_whole_address(self):
        # Default bounds: 5 per (IP, user), 30 per IP. Three wrong SCRAM passwords for demo
        # must neither lock out another user behind the same address nor demo itself.
        server = self.new_server(domains=[("localhost", ["demo", "other"])],
                                 extra_toml='[auth]\nfailure_delay = "10ms"\n')
        smtpsctl("user", "add", "--users", users_file(server), "other@localhost",
                 password="Other-Pass-42")
        with server:
            for i in range(3):
                result = gsasl(server, "SCRAM-SHA-256-PLUS", "demo@localhost", f"Wrong-Scram-{i}")
                self.assertIn("535 5.7.8", result.stdout)
            other = login_reply(server, "other@localhost", "Other-Pass-42")
            demo = login_reply(server, "demo@localhost", demo_password(server))
            failures = auth_log_lines(server)
            self.assertEqual((other[0], demo[0]), (235, 235),
                             f"other: {other}, demo: {demo}; failure lines: {failures}")
            # the failure line names the user as given, like PLAIN and LOGIN failures do
            self.assertEqual([f[1] for f in failures[:3]], ["demo@localhost"] * 3, failures)

    def test_first_failure_is_answered_at_once_and_a_delayed_one_blocks_no_one(self):
        # A long delay (the second failure waits 4 s): the first failure's 535 comes long
        # before that, and another client logs in while the delayed 535 is still pending.
        server = self.new_server(domains=[("localhost", ["demo", "other"])],
                                 extra_toml='[auth]\nfailure_delay = "4s"\n')
        smtpsctl("user", "add", "--users", users_file(server), "other@localhost",
                 password="Other-Pass-42")
        with server:
            started = time.monotonic()
            self.assertEqual(login_reply(server, "demo@localhost", "bad-0")[0], 535)
            self.assertLess(time.monotonic() - started, 2.0, "the first failure was delayed")
            result = {}
            slow = threading.Thread(target=lambda: result.update(
                reply=login_reply(server, "demo@localhost", "bad-1")))
            started = time.monotonic()
            slow.start()
            # the slow client's failure is on the record (logged before its delay) …
            self.wait_failures(server, 2)
            # … and while its 535 waits, another client is served
            self.assertEqual(login_reply(server, "other@localhost", "Other-Pass-42")[0], 235)
            self.assertTrue(slow.is_alive(), "the delayed 535 came before the other login")
            slow.join(40)
            self.assertEqual(result["reply"][0], 535)
            self.assertGreaterEqual(time.monotonic() - started, 4.0)

    def wait_failures(self, server, count, timeout=30):
        deadline = time.monotonic() + timeout
        while len(auth_log_lines(server)) < count:
            self.assertLess(time.monotonic(), deadline, server.log()[-3000:])
            time.sleep(0.02)

    def test_unknown_user_and_wrong_password_look_the_same(self):
        # A long failure_delay: were the exempt network counted, a delayed 535 would take
        # 10 s or more, far from the ~0.1 s an undelayed one takes.
        server = self.new_server(extra_toml='[auth]\nexempt_networks = ["127.0.0.1/32"]\n'
                                            'failure_delay = "10s"\n')
        with server:
            timings = {"wrong": [], "unknown": []}
            texts = set()
            for _ in range(3):
                for kind, user, mechanism in (("wrong", "demo@localhost", "PLAIN"),
                                              ("unknown", "nobody@localhost", "PLAIN"),
                                              ("wrong", "demo@localhost", "LOGIN"),
                                              ("unknown", "nobody@localhost", "LOGIN")):
                    with tls_session(server) as session:
                        if mechanism == "PLAIN":
                            started = time.time()
                            reply = session.cmd("AUTH PLAIN " + plain(user, "Not-The-Pw-9"))
                        else:
                            self.assertEqual(session.cmd("AUTH LOGIN")[0], 334)
                            self.assertEqual(session.cmd(b64(user))[0], 334)
                            started = time.time()
                            reply = session.cmd(b64("Not-The-Pw-9"))
                        timings[kind].append(time.time() - started)
                        texts.add(tuple(reply[1]))
            self.assertEqual(texts, {("535 5.7.8 Authentication credentials invalid",)})
            # the same work: an unknown user costs an argon2id verification too
            wrong = sorted(timings["wrong"])[len(timings["wrong"]) // 2]
            unknown = sorted(timings["unknown"])[len(timings["unknown"]) // 2]
            self.assertGreater(wrong, 0.01, timings)
            self.assertGreater(unknown, wrong * 0.4, timings)
            # exempt network: never delayed nor locked despite 12 failures
            self.assertLess(max(timings["wrong"] + timings["unknown"]), 5.0, timings)
            self.assertEqual(login_reply(server, "demo@localhost", demo_password(server))[0],
                             235)

    def test_scram_server_first_same_shape_for_unknown_user(self):
        # SCRAM would leak who exists through the salt and iteration count; an unknown user
        # gets a stable fake salt and the real iteration count.
        with self.new_server() as server:
            def server_first(user):
                with tls_session(server) as session:
                    code, lines = session.cmd("AUTH SCRAM-SHA-256 " +
                                              b64(f"n,,n={user},r=rOprNGfwEbeRWgbNEkqO"))
                    self.assertEqual(code, 334, lines)
                    self.assertEqual(session.cmd("*")[0], 501)
                    fields = dict(item.split("=", 1) for item in
                                  base64.b64decode(lines[0][4:]).decode().split(","))
                    self.assertTrue(fields["r"].startswith("rOprNGfwEbeRWgbNEkqO"))
                    return fields["s"], fields["i"]
            known_salt, known_iterations = server_first("demo@localhost")
            with open(users_file(server)) as f:
                self.assertIn(f":{known_salt}:", f.read())
            ghost = server_first("ghost@localhost")
            self.assertEqual(ghost, server_first("ghost@localhost"))
            self.assertEqual(ghost[1], known_iterations)
            self.assertEqual(len(base64.b64decode(ghost[0])),
                             len(base64.b64decode(known_salt)))
            self.assertNotEqual(ghost[0], known_salt)


# --- users file -------------------------------------------------------------------------

class UsersFile(AuthTestCase):
    # The file is looked at every 50 ms ([auth] watch_interval): each change is waited for by
    # its users_loaded line, with a deadline of 200 such intervals.
    WATCH = '[auth]\nwatch_interval = "50ms"\n'

    @staticmethod
    def wait_reloaded(server, before):
        deadline = time.time() + 10
        while server.log().count("event=users_loaded") <= before and time.time() < deadline:
            time.sleep(0.02)
        return server.log().count("event=users_loaded") > before

    def test_user_added_while_running_logs_in_and_sends_then_deleted_gets_535(self):
        server = self.new_server(domains=[("localhost", ["demo", "new"])], extra_toml=self.WATCH)
        with server:
            secret = "Fresh-New-Pass-7"
            self.assertEqual(login_reply(server, "new@localhost", secret)[0], 535)
            loads = server.log().count("event=users_loaded")
            smtpsctl("user", "add", "--users", users_file(server), "new@localhost",
                     password=secret)
            mode = stat.S_IMODE(os.stat(users_file(server)).st_mode)
            self.assertEqual(mode, 0o600)
            with open(users_file(server)) as f:
                content = f.read()
            self.assertIn("new@localhost", content)
            self.assertNotIn(secret, content)
            self.assertNotIn(b64(secret), content)
            self.assertNotIn(demo_password(server), content)
            self.assertTrue(self.wait_reloaded(server, loads), server.log()[-2000:])
            code, text = login_reply(server, "new@localhost", secret)
            self.assertEqual(code, 235, text)
            client = server.smtps()
            client.login("new@localhost", secret)
            self.assertEqual(client.sendmail("new@localhost", ["demo@localhost"],
                                             make_message("from new", sender="new@localhost")),
                             {})
            code, _ = client.mail("demo@localhost")  # not new's address
            self.assertEqual(code, 553)
            client.quit()
            [message] = server.wait_delivered(1)
            self.assertTrue(message.startswith(b"Return-Path: <new@localhost>\r\n"))
            loads = server.log().count("event=users_loaded")
            smtpsctl("user", "del", "--users", users_file(server), "new@localhost")
            self.assertNotIn("new@localhost", smtpsctl("user", "list", "--users",
                                                       users_file(server)))
            self.assertTrue(self.wait_reloaded(server, loads), server.log()[-2000:])
            code, text = login_reply(server, "new@localhost", secret)
            self.assertEqual(code, 535, text)
            self.assertEqual(login_reply(server, "demo@localhost", demo_password(server))[0],
                             235)
            self.assert_no_secret_in_log(server, secret)

    def test_passwd_changes_password_without_restart(self):
        with self.new_server(extra_toml=self.WATCH) as server:
            old = demo_password(server)
            loads = server.log().count("event=users_loaded")
            smtpsctl("user", "passwd", "--users", users_file(server), "demo@localhost",
                     password="Changed-Pass-3")
            self.assertTrue(self.wait_reloaded(server, loads), server.log()[-2000:])
            code, text = login_reply(server, "demo@localhost", "Changed-Pass-3")
            self.assertEqual(code, 235, text)
            self.assertEqual(login_reply(server, "demo@localhost", old)[0], 535)
            self.assert_no_secret_in_log(server, old, "Changed-Pass-3")


# --- fail2ban and secrets in the log ------------------------------------------------------

class LogLines(AuthTestCase):
    @needs.tools("fail2ban-regex")
    def test_fail2ban_filter_matches_every_auth_failure_line(self):
        wrong = "Wrong-Pass-F2B-1"
        with self.new_server() as server:
            password = demo_password(server)
            expected = 0
            with tls_session(server) as session:
                for payload in (plain("demo@localhost", wrong),          # wrong password
                                plain("john smith", wrong),              # user with space
                                b64("demo@localhost"),                   # malformed PLAIN
                                plain("demo@localhost", wrong, "root@localhost"),  # authzid
                                # a forged log line inside the user name
                                plain("x\n2026-11-24T05:00:20.647Z level=warning "
                                      "event=auth_failed session=1 client=10.6.6.6 user=a",
                                      wrong)):
                    code, lines = session.cmd("AUTH PLAIN " + payload)
                    self.assertIn(code, (501, 535), lines)
                    expected += 1
                self.assertEqual(session.cmd("AUTH LOGIN")[0], 334)
                self.assertEqual(session.cmd(b64("nobody@localhost"))[0], 334)
                self.assertEqual(session.cmd(b64(wrong))[0], 535)
                expected += 1
                code, lines = session.cmd("AUTH PLAIN " + plain("demo@localhost", password))
                self.assertEqual(code, 235, lines)  # a success is not a failure line
            if shutil.which("gsasl"):
                result = gsasl(server, "SCRAM-SHA-256", "ghost@localhost", wrong, no_cb=True)
                self.assertIn("535 5.7.8", result.stdout)
                expected += 1
            server.stop()
            log = server.log()
            failures = [line for line in log.splitlines() if " event=auth_failed " in line]
            self.assertEqual(len(failures), expected, "\n".join(failures))
            self.assertEqual(len(auth_log_lines(server)), expected)
            result = subprocess.run(["fail2ban-regex", server.log_path, FAIL2BAN_FILTER],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    timeout=60, text=True)
            self.assertEqual(result.returncode, 0, result.stdout)
            lines, ignored, matched, _missed = map(int, F2B_LINES.search(result.stdout).groups())
            self.assertEqual(lines, len(log.splitlines()))
            self.assertEqual((ignored, matched), (0, expected), result.stdout)
            result = subprocess.run(["fail2ban-regex", "-o", "ip", server.log_path,
                                     FAIL2BAN_FILTER], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, timeout=60, text=True)
            self.assertEqual(result.stdout.split(), ["127.0.0.1"] * expected, result.stdout)
            for line in failures:
                self.assertNotIn(wrong, line)
            self.assert_no_secret_in_log(server, wrong, password)

    def fail_logins(self, server, count=2):
        """count failed AUTH PLAIN (one user name with a space); returns count."""
        with tls_session(server) as session:
            for i in range(count):
                user = "john smith" if i % 2 else "demo@localhost"
                code, lines = session.cmd("AUTH PLAIN " + plain(user, f"Wrong-F2B-{i}"))
                self.assertEqual(code, 535, lines)
        return count

    def assert_fail2ban_bans(self, lines, expected, what):
        """fail2ban-regex with our filter over these log lines finds expected failures,
        each from 127.0.0.1, and matches no other line."""
        path = os.path.join(self.tmp, what + ".log")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        result = subprocess.run(["fail2ban-regex", "-o", "ip", path, FAIL2BAN_FILTER],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                timeout=60, text=True)
        self.assertEqual(result.returncode, 0, result.stdout)
        self.assertEqual(result.stdout.split(), ["127.0.0.1"] * expected,
                         f"{what}:\n{result.stdout}\n" + "\n".join(lines))

    @needs.tools("fail2ban-regex")
    def test_fail2ban_filter_matches_journal_lines(self):
        # systemd.exec(5): stderr connected to the journal comes with $JOURNAL_STREAM
        # naming it ("DEVICE:INODE"); here stderr is the log file, so name that.
        server = self.new_server()
        open(server.log_path, "ab").close()
        status = os.stat(server.log_path)
        server.env = {"JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"}
        with server:
            pid = server.process.pid
            expected = self.fail_logins(server)
            server.stop()
        lines = server.log().splitlines()
        priority = {"error": "3", "warning": "4", "info": "6", "debug": "7"}
        for line in lines:  # sd-daemon(3) priority, and no timestamp of our own
            match = re.match(r"<(\d)>level=(\w+) event=", line)
            self.assertTrue(match, line)
            self.assertEqual(match.group(1), priority[match.group(2)], line)
        # What fail2ban's systemd backend matches: "_HOSTNAME SYSLOG_IDENTIFIER[PID]: MESSAGE",
        # MESSAGE as journald stores it (the "<N>" became PRIORITY).
        journal = [f"mx.example.org smtpsd[{pid}]: " + line[3:] for line in lines]
        self.assert_fail2ban_bans(journal, expected, "journal")
        # The variable inherited by a process whose stderr is elsewhere changes nothing.
        server.env = {"JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino + 1}"}
        with server:
            server.stop()
        self.assertRegex(server.log().splitlines()[-1], r"^\d{4}-\d\d-\d\dT\S+Z level=info ")

    @needs.tools("fail2ban-regex")
    def test_fail2ban_filter_matches_syslog_lines_as_rsyslog_writes_them(self):
        path = os.path.join(self.tmp, "log.sock")
        syslog = SyslogSocket(path)
        try:
            # harness.Server.start reads the ports from stderr: start there, then reload
            # to syslog.
            server = self.new_server().start()
            server.extra_toml = f'[log]\noutput = "syslog"\nsyslog_socket = "{path}"\n'
            server.write_config()
            server.process.send_signal(signal.SIGHUP)
            deadline = time.time() + 10
            while not any(b" event=reloaded " in d for d in list(syslog.datagrams)):
                self.assertLess(time.time(), deadline, server.log())
                time.sleep(0.02)
            expected = self.fail_logins(server)
            server.stop()
        finally:
            syslog.close()
        datagrams = [d.decode() for d in syslog.datagrams]
        # RFC 3164 framing: "<PRI>Mmm dd hh:mm:ss smtpsd[PID]: MSG"; rsyslog drops <PRI>
        # and writes TIMESTAMP HOSTNAME TAG MSG in its two stock file formats.
        frame = re.compile(r"^<\d+>([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) "
                           r"(smtpsd\[\d+\]: .*)$")
        framed = [frame.match(d) for d in datagrams]
        self.assertTrue(all(framed), datagrams)
        traditional = [f"{m.group(1)} mx {m.group(2)}" for m in framed]
        self.assert_fail2ban_bans(traditional, expected, "RSYSLOG_TraditionalFileFormat")
        now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        rfc3339 = [f"{now}.123456+00:00 mx {m.group(2)}" for m in framed]
        self.assert_fail2ban_bans(rfc3339, expected, "RSYSLOG_FileFormat")

    def test_passwords_never_appear_in_the_log(self):
        with self.new_server() as server:
            password = demo_password(server)
            wrong = ["Wrong-Plain-Secret", "Wrong-Login-Secret", "Wrong-Scram-Secret"]
            # wrong then right, so the limiter's delay never grows
            self.assertEqual(login_reply(server, "demo@localhost", wrong[0], "PLAIN")[0], 535)
            self.assertEqual(login_reply(server, "demo@localhost", password, "PLAIN")[0], 235)
            self.assertEqual(login_reply(server, "demo@localhost", wrong[1], "LOGIN",
                                         role="submission")[0], 535)
            self.assertEqual(login_reply(server, "demo@localhost", password, "LOGIN",
                                         role="submission")[0], 235)
            with tls_session(server) as session:  # cancelled mid-exchange
                self.assertEqual(session.cmd("AUTH LOGIN")[0], 334)
                self.assertEqual(session.cmd(b64("demo@localhost"))[0], 334)
                self.assertEqual(session.cmd("*")[0], 501)
                # a password inside an oversize line
                self.assertEqual(session.cmd("AUTH PLAIN " + plain("demo@localhost",
                                                                   password * 600))[0], 500)
            if shutil.which("gsasl"):
                self.assertIn("535 5.7.8", gsasl(server, "SCRAM-SHA-256-PLUS", "demo@localhost",
                                                 wrong[2]).stdout)
                self.assertIn("235 2.7.0", gsasl(server, "SCRAM-SHA-256-PLUS", "demo@localhost",
                                                 password).stdout)
            server.stop()
            log = server.log()
            self.assertIn("event=auth_failed", log)
            for secret in [password] + wrong:
                self.assertNotIn(secret, log)
                self.assertNotIn(b64(secret), log)
            self.assertNotIn(plain("demo@localhost", password), log)


if __name__ == "__main__":
    unittest.main()
