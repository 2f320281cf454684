"""SASL EXTERNAL with TLS client certificates (mutual TLS, RFC 4422 Appendix A).

A submission listener with `client_ca` asks for a client certificate and trusts only that
CA for it. A certificate the CA issued, whose rfc822Name SAN is a user of the users file,
authenticates with `AUTH EXTERNAL =`; one from another CA connects (and may still use a
password) but EXTERNAL gets 535 5.7.8; no certificate is the same. The smtp role never
offers AUTH, and a client_ca there is a configuration error.

The certificates are made with the `openssl` command line in the test's directory, so
neither side of the test shares code with the server.
"""

import base64
import os
import re
import select
import shutil
import signal
import socket
import smtplib
import subprocess
import time
import unittest

from harness import SMTPSD, RawSession, ServerTestCase, make_message, read_reply

AUTH_EXTERNAL_OK = re.compile(
    r"event=auth session=\S+ client=127\.0\.0\.1 user=demo@localhost mechanism=EXTERNAL")
AUTH_EXTERNAL_FAILED = re.compile(r"event=auth_failed [^\n]*mechanism=EXTERNAL reason=([^\n]*)")


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def make_ca(directory, name, subject):
    """A self-signed P-256 CA: NAME.pem and NAME.key."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", subject,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    return os.path.join(directory, f"{name}.pem")


def make_client_certificate(directory, name, ca, subject, alt_names):
    """A client certificate (clientAuth) signed by CA: NAME.pem and NAME.key."""
    extensions = os.path.join(directory, f"{name}.ext")
    with open(extensions, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=clientAuth\n")
        if alt_names:
            f.write(f"subjectAltName={alt_names}\n")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=directory)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "2",
            "-extfile", extensions, "-out", f"{name}.pem", cwd=directory)
    return os.path.join(directory, f"{name}.pem"), os.path.join(directory, f"{name}.key")


def b64(text):
    return base64.b64encode(text.encode()).decode()


class ExternalTestCase(ServerTestCase):
    """A server whose submissions and submission listeners trust a test client CA."""

    def setUp(self):
        super().setUp()
        pki = os.path.join(self.tmp, "client-pki")
        os.makedirs(pki)
        self.client_ca = make_ca(pki, "client-ca", "/CN=smtpsd test client CA")
        self.demo_cert = make_client_certificate(pki, "demo", "client-ca", "/CN=demo device",
                                                 "email:demo@localhost")
        make_ca(pki, "other-ca", "/CN=unrelated CA")
        self.stranger_cert = make_client_certificate(pki, "stranger", "other-ca",
                                                     "/CN=demo@localhost",
                                                     "email:demo@localhost")
        self.nobody_cert = make_client_certificate(pki, "nobody", "client-ca", "/CN=nobody",
                                                   "email:nobody@localhost")

    def external_server(self):
        return self.new_server(listeners=[
            {"role": "submissions", "client_ca": self.client_ca},
            {"role": "submission", "client_ca": self.client_ca},
            {"role": "smtp"},
        ])

    def smtps_with(self, server, certificate):
        context = server.client_context()
        if certificate is not None:
            context.load_cert_chain(*certificate)
        client = smtplib.SMTP_SSL("localhost", server.ports["submissions"], timeout=10,
                                  context=context)
        client.ehlo("client.example")
        return client

    def demo_password(self, server):
        with open(os.path.join(server.dir, "demo.password")) as f:
            return f.read().strip()


class ExternalWithClientCertificate(ExternalTestCase):
    def test_certificate_from_client_ca_authenticates_and_sends(self):
        server = self.external_server()
        with server:
            client = self.smtps_with(server, self.demo_cert)
            self.assertIn("EXTERNAL", client.esmtp_features["auth"].split())
            code, text = client.docmd("AUTH", "EXTERNAL =")
            self.assertEqual(code, 235, text)
            refused = client.sendmail("demo@localhost", ["demo@localhost"],
                                      make_message("by certificate", sender="demo@localhost"))
            self.assertEqual(refused, {})
            client.quit()
            [message] = server.wait_delivered(1)
            self.assertIn(b"Subject: by certificate", message)
            self.assertRegex(server.log(), AUTH_EXTERNAL_OK)

    def test_authzid_must_be_the_certificate_user(self):
        server = self.external_server()
        with server:
            client = self.smtps_with(server, self.demo_cert)
            code, text = client.docmd("AUTH", "EXTERNAL " + b64("DEMO@localhost"))
            self.assertEqual(code, 235, text)
            client.quit()
            client = self.smtps_with(server, self.demo_cert)
            code, text = client.docmd("AUTH", "EXTERNAL " + b64("postmaster@localhost"))
            self.assertEqual((code, text[:5]), (535, b"5.7.8"), text)
            client.quit()
            match = server.wait_log(AUTH_EXTERNAL_FAILED.pattern)
            self.assertIn("authorization identity differs", match.group(1))

    def test_without_initial_response_empty_challenge_then_success(self):
        server = self.external_server()
        with server:
            client = self.smtps_with(server, self.demo_cert)
            code, text = client.docmd("AUTH", "EXTERNAL")
            self.assertEqual((code, text), (334, b""))
            code, text = client.docmd("")
            self.assertEqual(code, 235, text)
            client.quit()

    def test_starttls_on_submission_with_certificate(self):
        server = self.external_server()
        with server:
            context = server.client_context()
            context.load_cert_chain(*self.demo_cert)
            client = smtplib.SMTP("localhost", server.ports["submission"], timeout=10)
            client.ehlo("client.example")
            self.assertNotIn("auth", client.esmtp_features, "no AUTH before TLS")
            client.starttls(context=context)
            client.ehlo("client.example")
            self.assertIn("EXTERNAL", client.esmtp_features["auth"].split())
            code, text = client.docmd("AUTH", "EXTERNAL =")
            self.assertEqual(code, 235, text)
            client.quit()

    def test_openssl_s_client_with_certificate(self):
        server = self.external_server()
        with server:
            certificate, key = self.demo_cert
            process = subprocess.Popen(
                ["openssl", "s_client", "-connect", f"127.0.0.1:{server.ports['submissions']}",
                 "-servername", "localhost", "-CAfile", server.ca, "-verify_return_error",
                 "-cert", certificate, "-key", key, "-crlf", "-quiet"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            buffer = b""

            def expect(prefix):
                """Reads lines (bounded in time) until one starts with prefix; returns all."""
                nonlocal buffer
                seen = []
                deadline = time.time() + 10
                while time.time() < deadline:
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        seen.append(line.decode().rstrip("\r"))
                        if seen[-1].startswith(prefix):
                            return seen
                    ready, _, _ = select.select([process.stdout], [], [], 0.2)
                    if ready:
                        chunk = os.read(process.stdout.fileno(), 4096)
                        self.assertTrue(chunk, f"s_client output ended before {prefix!r}: {seen}")
                        buffer += chunk
                self.fail(f"no {prefix!r} from the server: {seen}")

            def send(line):
                process.stdin.write((line + "\n").encode())
                process.stdin.flush()

            try:
                expect("220 ")
                send("EHLO client.example")
                ehlo = expect("250 ")
                auth = [line for line in ehlo if line[4:].startswith("AUTH ")]
                self.assertEqual(len(auth), 1, ehlo)
                self.assertIn("EXTERNAL", auth[0].split())
                send("AUTH EXTERNAL =")
                expect("235 ")
                send("QUIT")
                expect("221 ")
            finally:
                process.stdin.close()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                process.stdout.close()
            self.assertRegex(server.log(), AUTH_EXTERNAL_OK)


class ClientCaChange(ExternalTestCase):
    """A session verified under one client CA set is not resumed under another: removing a CA
    from client_ca (here: the same path, other contents) and reloading refuses the
    certificates it issued, resumption included."""

    def external_login(self, server, session=None):
        """(AUTH EXTERNAL reply code, resumed?, the session to resume next time)."""
        if session is None:  # a session resumes only through the context that made it
            self.context = server.client_context()
            self.context.load_cert_chain(*self.demo_cert)
        context = self.context
        raw = socket.create_connection(("127.0.0.1", server.ports["submissions"]), timeout=10)
        with context.wrap_socket(raw, server_hostname="localhost", session=session) as tls:
            replies = tls.makefile("rb")
            self.assertEqual(read_reply(replies)[0], 220)
            tls.sendall(b"EHLO client.example\r\n")
            self.assertEqual(read_reply(replies)[0], 250)
            tls.sendall(b"AUTH EXTERNAL =\r\n")
            code = read_reply(replies)[0]
            tls.sendall(b"QUIT\r\n")
            self.assertEqual(read_reply(replies)[0], 221)  # TLS 1.3 tickets have come in
            replies.close()
            return code, tls.session_reused, tls.session

    def reload(self, server):
        reloads = server.log().count("event=reloaded")
        server.process.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while server.log().count("event=reloaded") <= reloads:
            self.assertLess(time.time(), deadline, server.log())
            time.sleep(0.05)

    def test_session_from_a_removed_ca_is_not_resumed_after_reload(self):
        server = self.external_server()
        with server:
            code, resumed, session = self.external_login(server)
            self.assertEqual((code, resumed), (235, False))
            self.reload(server)  # client_ca unchanged: resumption goes on
            code, resumed, session = self.external_login(server, session)
            self.assertEqual((code, resumed), (235, True))
            shutil.copyfile(os.path.join(self.tmp, "client-pki", "other-ca.pem"),
                            self.client_ca)
            self.reload(server)
            code, resumed, _ = self.external_login(server, session)
            self.assertEqual((code, resumed), (535, False))


class ExternalRefused(ExternalTestCase):
    def test_certificate_from_another_ca_gets_535(self):
        server = self.external_server()
        with server:
            client = self.smtps_with(server, self.stranger_cert)
            code, text = client.docmd("AUTH", "EXTERNAL =")
            self.assertEqual((code, text[:5]), (535, b"5.7.8"), text)
            # The connection stays usable: a password still works on it.
            code, text = client.login("demo@localhost", self.demo_password(server))
            self.assertEqual(code, 235, text)
            client.quit()
            match = server.wait_log(AUTH_EXTERNAL_FAILED.pattern)
            self.assertIn("client certificate not verified", match.group(1))

    def test_no_certificate_external_535_but_plain_works(self):
        server = self.external_server()
        with server:
            client = self.smtps_with(server, None)
            self.assertIn("EXTERNAL", client.esmtp_features["auth"].split())
            code, text = client.docmd("AUTH", "EXTERNAL =")
            self.assertEqual((code, text[:5]), (535, b"5.7.8"), text)
            client.quit()
            client = self.smtps_with(server, None)
            code, text = client.login("demo@localhost", self.demo_password(server))
            self.assertEqual(code, 235, text)
            refused = client.sendmail("demo@localhost", ["demo@localhost"],
                                      make_message("by password", sender="demo@localhost"))
            self.assertEqual(refused, {})
            client.quit()
            server.wait_delivered(1)
            match = server.wait_log(AUTH_EXTERNAL_FAILED.pattern)
            self.assertIn("no client certificate", match.group(1))

    def test_certificate_for_an_unknown_user_gets_535(self):
        server = self.external_server()
        with server:
            client = self.smtps_with(server, self.nobody_cert)
            code, text = client.docmd("AUTH", "EXTERNAL =")
            self.assertEqual((code, text[:5]), (535, b"5.7.8"), text)
            client.quit()
            match = server.wait_log(AUTH_EXTERNAL_FAILED.pattern)
            self.assertIn("no rfc822Name of the client certificate is a user", match.group(1))

    def test_listener_without_client_ca_does_not_offer_external(self):
        server = self.new_server(listeners=[{"role": "submissions"}])
        with server:
            client = self.smtps_with(server, self.demo_cert)
            self.assertNotIn("EXTERNAL", client.esmtp_features["auth"].split())
            code, text = client.docmd("AUTH", "EXTERNAL =")
            self.assertEqual((code, text[:5]), (504, b"5.5.4"), text)
            client.quit()


class ExternalSmtpRole(ExternalTestCase):
    def test_smtp_role_never_offers_auth(self):
        server = self.external_server()
        with server:
            session = RawSession(server.ports["smtp"])
            session.greeting()
            code, lines = session.cmd("EHLO client.example")
            self.assertEqual(code, 250)
            self.assertFalse(any("AUTH" in line for line in lines), lines)
            session.cmd("QUIT")
            client = server.smtp(role="smtp")  # after STARTTLS
            self.assertNotIn("auth", client.esmtp_features)
            code, text = client.docmd("AUTH", "EXTERNAL =")
            self.assertEqual(code, 502, text)
            client.quit()

    def test_client_ca_on_smtp_role_is_a_configuration_error(self):
        server = self.new_server(listeners=[{"role": "smtp", "client_ca": self.client_ca}])
        result = subprocess.run([SMTPSD, "check", "--config", server.config_path],
                                capture_output=True, text=True)
        self.assertNotEqual(result.returncode, 0)
        self.assertRegex(result.stderr, r"smtpsd\.toml:\d+: listeners\[0\]\.client_ca: only for "
                                        r"the submission roles")
        with self.assertRaises(RuntimeError):
            server.start()


if __name__ == "__main__":
    unittest.main()
