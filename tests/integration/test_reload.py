"""Certificates by SNI, reload without restart (SIGHUP and certificate file changes), expiry.

What an administrator notices: the certificate a client gets for the name it asks for; a
renewed certificate served within a second or two of the files changing, while sessions
already open finish on the old one; a broken renewal refused with one log line naming the
file while the old certificate keeps serving; warnings before expiry; SIGHUP adding and
removing listeners and changing limits for new sessions, never dropping one; an invalid
configuration on SIGHUP refused while the old one keeps serving.

Certificates are made with the `openssl` command line (signed by the test's development CA),
served ones are told apart by their DER bytes.
"""

import json
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import threading
import time
import unittest
import urllib.request

from certificates import issue_leaf
from harness import SMTPSD, ServerTestCase, make_message, s_client
from ports import free_port
from processes import end_process

SMTPSCTL = os.environ.get("SMTPSCTL_BIN") or os.path.join(os.path.dirname(SMTPSD), "smtpsctl")

DEV_CERTIFICATES = """[[tls.certificates]]
certificate = "tls/server-ecdsa.pem"
key = "tls/server-ecdsa.key"

[[tls.certificates]]
certificate = "tls/server-rsa.pem"
key = "tls/server-rsa.key"
"""


def issue(directory, name, ca_dir, names, key_type="ec", start=-86400, end=90 * 86400):
    """A leaf certificate for `names` (DNS SANs; CN = name) signed by the dev CA in ca_dir,
    valid from now+start to now+end seconds. Returns (certificate path, key path)."""
    return issue_leaf(os.path.join(directory, "issue-" + name), os.path.join(ca_dir, "ca.pem"),
                      os.path.join(ca_dir, "ca.key"), names, common_name=name,
                      key_type=key_type, start=start, end=end)


def der_of(pem_path):
    with open(pem_path) as f:
        text = f.read()
    first = text[text.index("-----BEGIN CERTIFICATE-----"):]
    first = first[:first.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
    return ssl.PEM_cert_to_DER_cert(first)


def no_verify_context(rsa_only=False):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if rsa_only:  # TLS 1.2 with RSA authentication only: the server must pick its RSA pair
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")
    return context


def served(port, sni=None, starttls=False, rsa_only=False, timeout=5):
    """The DER bytes of the certificate the server presents for `sni` (None: no SNI)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        if starttls:
            f = sock.makefile("rb")
            assert f.readline().startswith(b"220")
            sock.sendall(b"EHLO client.example\r\n")
            while not f.readline().startswith(b"250 "):
                pass
            sock.sendall(b"STARTTLS\r\n")
            assert f.readline().startswith(b"220")
        tls = no_verify_context(rsa_only).wrap_socket(sock, server_hostname=sni)
        der = tls.getpeercert(binary_form=True)
        tls.close()
        return der
    finally:
        sock.close()


def replace_atomically(source, destination):
    """Copy source over destination by rename, as most tools do (a new inode)."""
    temporary = destination + ".new"
    shutil.copyfile(source, temporary)
    os.replace(temporary, destination)


class SniSmtps(smtplib.SMTP_SSL):
    """SMTP over implicit TLS to an address, asking for `sni` (smtplib sends the host)."""

    def __init__(self, sni, *args, **kwargs):
        self.sni = sni
        super().__init__(*args, **kwargs)

    def _get_socket(self, host, port, timeout):
        sock = socket.create_connection((host, port), timeout)
        return self.context.wrap_socket(sock, server_hostname=self.sni)


class ReloadTestCase(ServerTestCase):
    def make_server(self, certificates=None, **kwargs):
        """A server whose [[tls.certificates]] are `certificates` (TOML text)."""
        server = self.new_server(**kwargs)
        self.set_certificates(server, certificates)
        return server

    @staticmethod
    def set_certificates(server, certificates):
        server.write_config()
        if certificates is None:
            return
        with open(server.config_path) as f:
            text = f.read()
        assert DEV_CERTIFICATES in text
        with open(server.config_path, "w") as f:
            f.write(text.replace(DEV_CERTIFICATES, certificates))

    @staticmethod
    def pair(cert, key, names=None):
        text = f'[[tls.certificates]]\ncertificate = "{cert}"\nkey = "{key}"\n'
        if names:
            text += "names = [" + ", ".join(f'"{n}"' for n in names) + "]\n"
        return text + "\n"

    def ca_dir(self, server):
        return os.path.join(server.dir, "tls")

    @staticmethod
    def hangup(server):
        server.process.send_signal(signal.SIGHUP)

    @staticmethod
    def count(server, pattern):
        return len(re.findall(pattern, server.log()))

    def wait_count(self, server, pattern, count, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.count(server, pattern) >= count:
                return
            time.sleep(0.02)
        self.fail(f"{pattern!r} seen {self.count(server, pattern)} times, not {count}:\n"
                  + server.log()[-3000:])

    def wait_served(self, port, expected_der, sni=None, timeout=30):
        """Waits until a new handshake shows expected_der. The deadline is far beyond the
        watcher's settling time (0.2 s) and its poll interval (2 s): a certificate that
        comes at all comes long before it."""
        deadline = time.monotonic() + timeout
        pause = 0.05
        while time.monotonic() < deadline:
            if served(port, sni) == expected_der:
                return
            # backing off: a handshake a second at most once the first second is over, far
            # below the per-address connection rate (120 a minute)
            time.sleep(pause)
            pause = min(pause * 2, 1.0)
        self.fail("the new certificate was never served")


class Sni(ReloadTestCase):
    def setUp(self):
        super().setUp()
        self.server = self.new_server()
        ca = self.ca_dir(self.server)
        self.mail_ec = issue(self.tmp, "mail.example.com", ca, ["mail.example.com"])
        self.mail_rsa = issue(self.tmp, "mail.example.com-rsa", ca, ["mail.example.com"],
                              key_type="rsa")
        self.org_ec = issue(self.tmp, "wild.example.org", ca, ["*.example.org"])
        certificates = (DEV_CERTIFICATES + "\n" +
                        self.pair(*self.mail_ec, names=["mail.example.com"]) +
                        self.pair(*self.mail_rsa, names=["MAIL.example.com"]) +
                        self.pair(*self.org_ec, names=["*.example.org"]))
        self.set_certificates(self.server, certificates)
        self.default_ec = os.path.join(self.server.dir, "tls", "server-ecdsa.pem")
        self.default_rsa = os.path.join(self.server.dir, "tls", "server-rsa.pem")

    def test_server_name_picks_the_set_default_for_none_or_unknown(self):
        with self.server as server:
            for role, starttls in (("submissions", False), ("smtp", True)):
                port = server.ports[role]
                cases = [
                    ("mail.example.com", self.mail_ec[0]),
                    ("Mail.Example.COM", self.mail_ec[0]),
                    ("smtp.example.org", self.org_ec[0]),
                    ("a.b.example.org", self.default_ec),  # a wildcard is one label
                    ("example.org", self.default_ec),
                    ("unknown.example.net", self.default_ec),
                    (None, self.default_ec),
                    ("localhost", self.default_ec),
                ]
                for sni, expected in cases:
                    with self.subTest(role=role, sni=sni):
                        self.assertEqual(served(port, sni, starttls), der_of(expected))
                # ECDSA and RSA per name: an RSA-only client gets the set's RSA pair.
                with self.subTest(role=role, key="rsa"):
                    self.assertEqual(served(port, "mail.example.com", starttls, rsa_only=True),
                                     der_of(self.mail_rsa[0]))
                    self.assertEqual(served(port, None, starttls, rsa_only=True),
                                     der_of(self.default_rsa))
            self.assertRegex(server.log(), r"event=tls session=\S+ client=127\.0\.0\.1 "
                                           r"version=TLSv1\.3 cipher=\S+ sni=mail\.example\.com")

    def test_openssl_s_client_verifies_the_named_certificate_and_mail_flows(self):
        with self.server as server:
            port = server.ports["submissions"]
            result = s_client(["-connect", f"127.0.0.1:{port}", "-servername", "mail.example.com",
                               "-verify_return_error", "-CAfile", server.ca,
                               "-verify_hostname", "mail.example.com", "-ign_eof"],
                              b"EHLO client.example\r\nQUIT\r\n")
            out = result.stdout.decode(errors="replace")
            self.assertIn("Verify return code: 0 (ok)", out)
            self.assertRegex(out, r"subject=CN ?= ?mail\.example\.com")
            self.assertRegex(out, r"(?m)^221 ")
            # STARTTLS on the smtp role with a named set, and a message delivered through it.
            context = ssl.create_default_context(cafile=server.ca)
            with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10) as client:
                client.ehlo("client.example")
                client._host = "smtp.example.org"  # the name smtplib sends as SNI
                client.starttls(context=context)
                client.ehlo("client.example")
                self.assertEqual(client.sendmail("a@example.net", ["demo@localhost"],
                                                 make_message("by sni")), {})
            self.assertIn(b"Subject: by sni", server.wait_delivered(1)[0])

    def test_resumption_works_on_a_named_set(self):
        with self.server as server:
            port = server.ports["submissions"]
            session = os.path.join(self.tmp, "session.pem")
            base = ["-connect", f"127.0.0.1:{port}", "-servername", "mail.example.com",
                    "-CAfile", server.ca, "-ign_eof"]
            first = s_client(base + ["-sess_out", session], b"EHLO a\r\nQUIT\r\n")
            self.assertIn(b"221", first.stdout)
            second = s_client(base + ["-sess_in", session], b"EHLO a\r\nQUIT\r\n")
            out = second.stdout.decode(errors="replace")
            self.assertIn("Reused, TLSv1.3", out)
            self.assertRegex(out, r"(?m)^221 ")

    def test_client_certificate_authenticates_on_a_named_set(self):
        # SASL EXTERNAL needs the client CA on whichever set SNI picked.
        from test_auth_external import make_ca, make_client_certificate
        pki = os.path.join(self.tmp, "client-pki")
        os.makedirs(pki)
        client_ca = make_ca(pki, "client-ca", "/CN=test client CA")
        demo = make_client_certificate(pki, "demo", "client-ca", "/CN=demo",
                                       "email:demo@localhost")
        self.server.listeners = [{"role": "submissions", "client_ca": client_ca}]
        self.set_certificates(self.server, DEV_CERTIFICATES + "\n" +
                              self.pair(*self.mail_ec, names=["mail.example.com"]))
        with self.server as server:
            context = ssl.create_default_context(cafile=server.ca)
            context.load_cert_chain(*demo)
            with SniSmtps("mail.example.com", "127.0.0.1", server.ports["submissions"],
                          timeout=10, context=context) as client:
                self.assertEqual(client.sock.getpeercert(binary_form=True),
                                 der_of(self.mail_ec[0]))
                client.ehlo("client.example")
                self.assertIn("EXTERNAL", client.esmtp_features["auth"].split())
                code, text = client.docmd("AUTH", "EXTERNAL =")
                self.assertEqual(code, 235, text)

    def test_names_in_two_sets_is_a_configuration_error(self):
        certificates = (self.pair(*self.mail_ec, names=["mail.example.com", "a.example.com"]) +
                        self.pair(*self.org_ec, names=["a.example.com"]))
        self.set_certificates(self.server, certificates)
        result = subprocess.run([SMTPSD, "check", "--config", self.server.config_path],
                                capture_output=True)
        self.assertEqual(result.returncode, 2)
        self.assertRegex(result.stderr.decode(),
                         r"smtpsd\.toml:\d+: tls\.certificates\[1\]\.names: 'a\.example\.com' is "
                         r"already in tls\.certificates\[0\]")

    def test_check_lists_the_sets(self):
        result = subprocess.run([SMTPSD, "check", "--config", self.server.config_path],
                                capture_output=True)
        out = result.stdout.decode()
        self.assertEqual(result.returncode, 0, result.stderr.decode())
        self.assertIn("certificate sets: 3", out)
        self.assertRegex(out, r"certificate \S+wild\.example\.org/leaf\.pem: expires in (89|90) days "
                              r"\(ECDSA, \*\.example\.org; serves \*\.example\.org\)")


class CertificateReload(ReloadTestCase):
    """The certificate files change under a running server."""

    def setUp(self):
        super().setUp()
        self.server = self.new_server()
        ca = self.ca_dir(self.server)
        self.live = os.path.join(self.tmp, "live")
        os.makedirs(self.live)
        self.old = issue(self.tmp, "old", ca, ["localhost"])
        self.new = issue(self.tmp, "new", ca, ["localhost"])
        self.cert = os.path.join(self.live, "cert.pem")
        self.key = os.path.join(self.live, "key.pem")
        shutil.copyfile(self.old[0], self.cert)
        shutil.copyfile(self.old[1], self.key)
        self.set_certificates(self.server, self.pair(self.cert, self.key))

    def open_session(self, server):
        """A session opened before the change, inside a transaction."""
        client = server.smtps()
        self.assertEqual(client.sock.getpeercert(binary_form=True), der_of(self.old[0]))
        client.login("demo@localhost", self.password(server))
        self.assertEqual(client.mail("demo@localhost")[0], 250)
        return client

    @staticmethod
    def password(server):
        with open(os.path.join(server.dir, "demo.password")) as f:
            return f.read().strip()

    def finish_session(self, server, client, subject):
        self.assertEqual(client.rcpt("demo@localhost")[0], 250)
        code, text = client.data(make_message(subject, sender="demo@localhost"))
        self.assertEqual(code, 250, text)
        client.quit()
        self.assertTrue(any(f"Subject: {subject}".encode() in m
                            for m in server.wait_delivered(1)))

    def test_replaced_files_serve_at_once_and_an_open_session_finishes(self):
        with self.server as server:
            port = server.ports["submissions"]
            server.wait_log(r"event=certificate_watch files=2 inotify=yes")
            client = self.open_session(server)
            replace_atomically(self.new[0], self.cert)
            replace_atomically(self.new[1], self.key)
            self.wait_served(port, der_of(self.new[0]))
            server.wait_log(r"event=tls_reloaded file=\S+/live/cert\.pem names=localhost "
                            r"set=default key=ECDSA not_after=\d+ days_left=(89|90)")
            self.finish_session(server, client, "opened before the renewal")
            self.assertEqual(self.count(server, "event=tls_reload_refused"), 0)

    def test_certbot_symlink_swap_is_noticed(self):
        # live/cert.pem -> ../archive/cert1.pem; a renewal adds cert2.pem and relinks.
        archive = os.path.join(self.tmp, "archive")
        os.makedirs(archive)
        for number, (cert, key) in ((1, self.old), (2, self.new)):
            shutil.copyfile(cert, os.path.join(archive, f"cert{number}.pem"))
            shutil.copyfile(key, os.path.join(archive, f"privkey{number}.pem"))
        os.remove(self.cert)
        os.remove(self.key)
        os.symlink("../archive/cert1.pem", self.cert)
        os.symlink("../archive/privkey1.pem", self.key)
        with self.server as server:
            port = server.ports["submissions"]
            client = self.open_session(server)
            # certbot's own way: unlink, then symlink (not atomic), one file after the other
            for link, target in ((self.cert, "../archive/cert2.pem"),
                                 (self.key, "../archive/privkey2.pem")):
                os.unlink(link)
                os.symlink(target, link)
            self.wait_served(port, der_of(self.new[0]))
            self.finish_session(server, client, "opened before the symlink swap")
            # and back, atomically (a new link renamed over the old one)
            for link, target in ((self.cert, "../archive/cert1.pem"),
                                 (self.key, "../archive/privkey1.pem")):
                os.symlink(target, link + ".tmp")
                os.replace(link + ".tmp", link)
            self.wait_served(port, der_of(self.old[0]))
            self.assertEqual(self.count(server, "event=tls_reload_refused"), 0)

    def test_broken_files_are_refused_and_the_old_certificate_serves(self):
        ca = self.ca_dir(self.server)
        self.server.expected_errors = [r"event=reload_refused", r"event=tls_reload_refused"]
        # A poll every 100 ms besides inotify: a watcher that did not remember a refused
        # change would refuse it again at each poll (see "one line per broken change").
        self.server.tls["watch_interval"] = "100ms"
        self.set_certificates(self.server, self.pair(self.cert, self.key))
        other = issue(self.tmp, "other", ca, ["localhost"])
        expired = issue(self.tmp, "expired", ca, ["localhost"], start=-10 * 86400, end=-86400)
        future = issue(self.tmp, "future", ca, ["localhost"], start=86400, end=90 * 86400)
        garbage = os.path.join(self.tmp, "garbage.pem")
        with open(garbage, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
        text = os.path.join(self.tmp, "text.pem")
        with open(text, "w") as f:
            f.write("hello\n")
        cases = [
            # (what, certificate source or None, key source or None, file named, reason)
            ("garbage certificate", garbage, None, self.cert, r"not a valid PEM certificate"),
            ("no certificate in the file", text, None, self.cert, r"no PEM certificate"),
            ("garbage key", None, text, self.key, r"no PEM private key"),
            ("empty key", None, os.devnull, self.key, r"the file is empty"),
            ("key of another certificate", None, other[1], self.key,
             r"private key does not match the certificate \S+/live/cert\.pem"),
            ("expired", expired[0], expired[1], self.cert, r"expired on \d{4}-\d\d-\d\dT"),
            ("not yet valid", future[0], future[1], self.cert, r"not valid before \d{4}-"),
            ("unreadable (dangling link)", "dangling", None, self.cert,
             r"cannot read the file: No such file or directory"),
        ]
        with self.server as server:
            port = server.ports["submissions"]
            old_der = der_of(self.old[0])
            for what, cert_source, key_source, named, reason in cases:
                with self.subTest(what=what):
                    refusals = self.count(server, "event=tls_reload_refused")
                    for source, destination in ((cert_source, self.cert), (key_source, self.key)):
                        if source == "dangling":
                            os.remove(destination)
                            os.symlink(os.path.join(self.tmp, "missing.pem"), destination)
                        elif source is not None:
                            replace_atomically(source, destination)
                    # The change alone is seen (inotify), then SIGHUP asks again.
                    self.wait_count(server, "event=tls_reload_refused", refusals + 1)
                    reload_refusals = self.count(server, "event=reload_refused")
                    self.hangup(server)
                    self.wait_count(server, "event=reload_refused", reload_refusals + 1)
                    self.wait_count(server, "event=tls_reload_refused", refusals + 2)
                    # Five polls' time: a watcher that forgot the refused files would have
                    # refused them again by now.
                    time.sleep(0.5)
                    self.assertEqual(self.count(server, "event=tls_reload_refused"),
                                     refusals + 2, "one line per broken change")
                    refused = re.findall(r"[^\n]*event=reload_refused[^\n]*", server.log())[-1]
                    line = re.findall(r"[^\n]*event=tls_reload_refused[^\n]*", server.log())[-1]
                    self.assertIn("level=error", line)
                    self.assertIn(f"file={named} ", line)
                    self.assertRegex(line, "reason=\"?" + reason)
                    self.assertRegex(refused, r"smtpsd\.toml:\d+: tls\.certificates\[0\]: ")
                    self.assertEqual(served(port, "localhost"), old_der)
                    self.assertTrue(server.alive())
                    # Put the good files back (same bytes: nothing to reload).
                    for destination in (self.cert, self.key):
                        if os.path.islink(destination):
                            os.remove(destination)
                    replace_atomically(self.old[0], self.cert)
                    replace_atomically(self.old[1], self.key)
                    # A SIGHUP takes the good files now (the certificates in service: no
                    # tls_reloaded line), so the watcher has nothing left of this case.
                    reloads = self.count(server, "event=reloaded ")
                    self.hangup(server)
                    self.wait_count(server, "event=reloaded ", reloads + 1)
                    self.assertEqual(self.count(server, "event=tls_reloaded"), 0)
            # A good renewal still goes through after all that.
            replace_atomically(self.new[0], self.cert)
            replace_atomically(self.new[1], self.key)
            self.wait_served(port, der_of(self.new[0]))


class Expiry(ReloadTestCase):
    def test_warnings_at_start_and_after_a_reload(self):
        server = self.new_server()
        ca = self.ca_dir(server)
        five = issue(self.tmp, "five", ca, ["five.example.com"], end=5 * 86400 + 3600)
        twenty = issue(self.tmp, "twenty", ca, ["twenty.example.com"], end=20 * 86400 + 3600)
        fresh = issue(self.tmp, "fresh", ca, ["five.example.com"], end=90 * 86400)
        live = os.path.join(self.tmp, "five.pem")
        live_key = os.path.join(self.tmp, "five.key")
        shutil.copyfile(five[0], live)
        shutil.copyfile(five[1], live_key)
        self.set_certificates(server, DEV_CERTIFICATES + "\n" +
                              self.pair(live, live_key, names=["five.example.com"]) +
                              self.pair(*twenty, names=["twenty.example.com"]))
        with server:
            server.wait_log(r"level=warning event=certificate_expiring file=\S+/five\.pem "
                            r"names=five\.example\.com days_left=5 threshold_days=7 not_after=\d+")
            server.wait_log(r"level=warning event=certificate_expiring file=\S+/issue-twenty/leaf\.pem "
                            r"names=twenty\.example\.com days_left=20 threshold_days=30")
            # once per threshold: a reload that changes nothing says nothing again
            self.hangup(server)
            server.wait_log(r"event=reloaded")
            self.assertEqual(self.count(server, r"event=certificate_expiring file=\S+/five\.pem"), 1)
            # the renewed certificate is far from expiry: no warning for it
            replace_atomically(fresh[0], live)
            replace_atomically(fresh[1], live_key)
            server.wait_log(r"event=tls_reloaded file=\S+/five\.pem")
            time.sleep(0.3)
            self.assertEqual(self.count(server, r"event=certificate_expiring file=\S+/five\.pem"), 1)

    def test_expired_certificate_at_start_is_served_with_an_error_and_check_fails(self):
        server = self.new_server()
        server.expected_errors = [r"event=certificate_expired"]
        ca = self.ca_dir(server)
        expired = issue(self.tmp, "expired", ca, ["old.example.com"], start=-30 * 86400,
                        end=-2 * 86400)
        self.set_certificates(server, DEV_CERTIFICATES + "\n" +
                              self.pair(*expired, names=["old.example.com"]))
        check = subprocess.run([SMTPSD, "check", "--config", server.config_path],
                               capture_output=True)
        self.assertEqual(check.returncode, 2)
        self.assertRegex(check.stderr.decode(),
                         r"smtpsd\.toml:\d+: tls\.certificates\[2\]: \S+/leaf\.pem: expired on "
                         r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
        self.assertIn("configuration has errors", check.stdout.decode())
        with server:
            server.wait_log(r"level=error event=certificate_expired file=\S+/issue-expired/leaf\.pem "
                            r"names=old\.example\.com not_after=\d+ expired_seconds_ago=1[78]\d{4}")
            self.assertEqual(served(server.ports["submissions"], "old.example.com"),
                             der_of(expired[0]))
            # a reload does not refuse what already serves, expired or not
            self.hangup(server)
            server.wait_log(r"event=reloaded")
            self.assertEqual(self.count(server, "event=reload_refused"), 0)

    def test_check_refuses_a_certificate_not_yet_valid(self):
        server = self.new_server()
        future = issue(self.tmp, "future", self.ca_dir(server), ["later.example.com"],
                       start=3 * 86400, end=90 * 86400)
        self.set_certificates(server, DEV_CERTIFICATES + "\n" +
                              self.pair(*future, names=["later.example.com"]))
        check = subprocess.run([SMTPSD, "check", "--config", server.config_path],
                               capture_output=True)
        self.assertEqual(check.returncode, 2)
        self.assertRegex(check.stderr.decode(),
                         r"tls\.certificates\[2\]: \S+/leaf\.pem: not valid before \d{4}-")


class ConfigReload(ReloadTestCase):
    def reload_and_wait(self, server, event="reloaded"):
        before = self.count(server, f"event={event}")
        self.hangup(server)
        self.wait_count(server, f"event={event}", before + 1)

    def test_listeners_added_and_removed_open_session_finishes(self):
        removed_port, kept_port, added_port = free_port(), free_port(), free_port()
        server = self.new_server(listeners=[{"role": "smtp", "port": removed_port},
                                            {"role": "submissions", "port": kept_port}])
        with server:
            client = server.smtp("smtp")
            self.assertEqual(client.mail("a@example.net")[0], 250)
            server.listeners = [{"role": "submissions", "port": kept_port},
                                {"role": "smtp", "port": added_port}]
            server.write_config()
            self.reload_and_wait(server)
            self.assertRegex(server.log(), rf"event=listener_closed role=smtp address=127\.0\.0\.1 "
                                           rf"port={removed_port} reason=\"removed from")
            self.assertRegex(server.log(), rf"event=listening role=smtp address=127\.0\.0\.1 "
                                           rf"port={added_port}")
            with self.assertRaises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", removed_port), timeout=5)
            with smtplib.SMTP("127.0.0.1", added_port, timeout=10) as fresh:
                self.assertEqual(fresh.ehlo("client.example")[0], 250)
            served(kept_port)  # the kept one still answers
            # the session opened on the removed listener finishes its mail
            self.assertEqual(client.rcpt("demo@localhost")[0], 250)
            code, _ = client.data(make_message("through a removed listener"))
            self.assertEqual(code, 250)
            client.quit()
            self.assertIn(b"Subject: through a removed listener", server.wait_delivered(1)[0])

    def test_limits_change_for_new_sessions_only(self):
        server = self.new_server(limits={"max_message_size": 100000})
        with server:
            before = server.smtp("smtp")
            self.assertEqual(before.esmtp_features["size"], "100000")
            server.limits = {"max_message_size": 10240}
            server.write_config()
            self.reload_and_wait(server)
            after = server.smtp("smtp")
            self.assertEqual(after.esmtp_features["size"], "10240")
            big = make_message("twenty kilobytes", body=("y" * 78 + "\r\n") * 256)
            with self.assertRaises(smtplib.SMTPResponseException) as refused:  # SIZE at MAIL
                after.sendmail("a@example.net", ["demo@localhost"], big)
            self.assertEqual(refused.exception.smtp_code, 552)
            # the session from before the reload keeps its own limits
            self.assertEqual(before.sendmail("a@example.net", ["demo@localhost"], big), {})
            before.quit()
            self.assertIn(b"Subject: twenty kilobytes", server.wait_delivered(1)[0])

    def test_domains_change_for_new_sessions(self):
        server = self.new_server()
        with server:
            client = server.smtp("smtp")
            code, _ = client.mail("a@example.net")
            self.assertEqual(client.rcpt("bob@new.example")[0], 550)
            client.quit()
            server.domains = [("localhost", ["demo"]), ("new.example", ["bob"])]
            server.write_config()
            self.reload_and_wait(server)
            client = server.smtp("smtp")
            self.assertEqual(client.sendmail("a@example.net", ["bob@new.example"],
                                             make_message("new domain", to="bob@new.example")), {})
            client.quit()
            server.wait_delivered(1, address="bob@new.example")

    def test_invalid_configuration_is_refused_and_the_old_one_serves(self):
        server = self.new_server()
        server.expected_errors = [r"event=reload_refused", r"event=tls_reload_refused"]
        with server:
            with open(server.config_path) as f:
                good = f.read()
            cases = [
                ("parse error", good + "\n[limits\n", r"smtpsd\.toml:\d+: "),
                ("unknown key", good.replace("[server]", "[server]\nno_such_key = 1"),
                 r"smtpsd\.toml:\d+: server\.no_such_key: unknown key"),
                ("missing certificate",
                 good.replace("tls/server-rsa.pem", "tls/no-such.pem"),
                 r"smtpsd\.toml:\d+: tls\.certificates\[1\]: \S+/no-such\.pem: cannot read the "
                 r"file: No such file or directory"),
            ]
            for what, text, error in cases:
                with self.subTest(what=what):
                    with open(server.config_path, "w") as f:
                        f.write(text)
                    self.reload_and_wait(server, "reload_refused")
                    line = re.findall(r"[^\n]*event=reload_refused[^\n]*", server.log())[-1]
                    self.assertIn("level=error", line)
                    self.assertRegex(line, r'error="\S*' + error)
                    client = server.smtp("smtp")
                    self.assertEqual(client.sendmail("a@example.net", ["demo@localhost"],
                                                     make_message(what)), {})
                    client.quit()
            self.assertEqual(len(server.wait_delivered(len(cases))), len(cases))
            self.assertEqual(self.count(server, "event=reloaded"), 0)
            with open(server.config_path, "w") as f:
                f.write(good)
            self.reload_and_wait(server)

    def test_port_that_cannot_be_bound_refuses_the_whole_reload(self):
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        self.addCleanup(busy.close)
        busy_port = busy.getsockname()[1]
        fine_port = free_port()
        server = self.new_server(listeners=[{"role": "smtp"}])
        server.expected_errors = [r"event=reload_refused"]  # the port in use
        with server:
            server.listeners = [{"role": "smtp"}, {"role": "submission", "port": fine_port},
                                {"role": "submissions", "port": busy_port},
                                ]
            server.limits = {"max_message_size": 4096}
            server.write_config()
            self.reload_and_wait(server, "reload_refused")
            self.assertRegex(server.log(), r"event=reload_refused error=\"\S+smtpsd\.toml:\d+: "
                                           r"listeners\[2\]: listener submissions: cannot listen on "
                                           rf"127\.0\.0\.1 port {busy_port}: Address already in use")
            # nothing changed: the listener bound first was closed again, limits stayed
            with self.assertRaises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", fine_port), timeout=5)
            client = server.smtp("smtp")
            self.assertNotEqual(client.esmtp_features["size"], "4096")
            client.quit()

    def test_users_file_moves_and_a_broken_one_is_refused(self):
        server = self.new_server()
        server.expected_errors = [r"event=reload_refused"]  # the broken users file
        with server:
            password = CertificateReload.password(server)
            moved = os.path.join(server.dir, "users-moved")
            shutil.copyfile(os.path.join(server.dir, "users"), moved)
            broken = os.path.join(server.dir, "users-broken")
            with open(broken, "w") as f:
                f.write("not a users file\n")
            for path, event in ((broken, "reload_refused"), (moved, "reloaded")):
                server.extra_toml = f'[auth]\nusers_file = "{path}"\n'
                server.write_config()
                self.reload_and_wait(server, event)
            self.assertRegex(server.log(), r"event=reload_refused error=\"\S+smtpsd\.toml: "
                                           r"auth\.users_file: \S+users-broken:1")
            server.wait_log(r"event=users_loaded file=\S+/users-moved users=1")
            os.remove(os.path.join(server.dir, "users"))  # the old file is not used any more
            client = server.smtps()
            self.assertEqual(client.login("demo@localhost", password)[0], 235)
            client.quit()

    def test_settings_that_need_a_restart_are_named(self):
        server = self.new_server()
        with server:
            with open(server.config_path) as f:
                text = f.read()
            text = text.replace("io_threads = 2", "io_threads = 3")
            text += "\n[queue]\ndelivery_threads = 3\n"
            with open(server.config_path, "w") as f:
                f.write(text)
            self.reload_and_wait(server)
            self.assertRegex(server.log(), r"level=warning event=reload_needs_restart "
                                           r"keys=server\.io_threads,queue ")


    def test_log_format_and_output_follow_a_reload(self):
        path = os.path.join(self.tmp, "log.sock")
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        receiver.bind(path)
        receiver.settimeout(10)
        self.addCleanup(receiver.close)
        server = self.new_server()
        with server:
            # key=value to JSON: the reloaded line is already JSON, and so is a new session's
            server.extra_toml = '[log]\nformat = "json"\n'
            server.write_config()
            self.hangup(server)
            self.wait_count(server, r'"event":"reloaded"', 1)
            server.smtp("smtp").quit()
            self.wait_count(server, r'"event":"session_end"', 1)
            tail = server.log()[server.log().index('"event":"reloaded"'):]
            for line in tail.splitlines()[1:]:
                self.assertIsInstance(json.loads(line), dict, line)  # raises if not JSON

            # a syslog socket path too long for a socket address: refused, stderr stays
            server.extra_toml = f'[log]\noutput = "syslog"\nsyslog_socket = "/{"x" * 200}"\n'
            server.write_config()
            self.hangup(server)
            self.wait_count(server, r'"event":"reload_refused"', 1)
            self.assertRegex(server.log(), r'"error":"\S+smtpsd\.toml: log\.syslog_socket: '
                                           r'cannot use /x{200}"')

            # stderr to syslog: from the reloaded line on, lines are datagrams
            server.extra_toml = (f'[log]\noutput = "syslog"\nfacility = "local3"\n'
                                 f'syslog_socket = "{path}"\n')
            server.write_config()
            self.hangup(server)
            deadline = time.time() + 10
            datagrams = []
            while not any(" event=reloaded " in d for d in datagrams):
                self.assertLess(time.time(), deadline, datagrams)
                datagrams.append(receiver.recv(65536).decode())
            stderr_before = server.log()
            server.smtp("smtp").quit()
            while not any(" event=session_end " in d for d in datagrams):
                self.assertLess(time.time(), deadline, datagrams)
                datagrams.append(receiver.recv(65536).decode())
            for datagram in datagrams:
                self.assertEqual(int(re.match(r"<(\d+)>", datagram).group(1)) >> 3, 19,
                                 datagram)  # LOG_LOCAL3
            self.assertEqual(server.log(), stderr_before)  # nothing more on stderr

    def test_metrics_endpoint_added_moved_and_removed_by_reload(self):
        def scrape(port):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                self.assertEqual(r.status, 200)
                return r.read().decode()

        first, second = free_port(), free_port()
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        self.addCleanup(busy.close)
        server = self.new_server()
        server.expected_errors = [r"event=reload_refused"]  # the port in use
        with server:
            with self.assertRaises(OSError):  # no [metrics]: no endpoint
                scrape(first)
            server.extra_toml = f'[metrics]\naddress = "127.0.0.1:{first}"\n'
            server.write_config()
            self.reload_and_wait(server)
            self.assertIn("smtpsd_connections_open", scrape(first))

            server.extra_toml = f'[metrics]\naddress = "127.0.0.1:{second}"\n'
            server.write_config()
            self.reload_and_wait(server)
            self.assertIn("smtpsd_queue_messages 0", scrape(second))
            with self.assertRaises(OSError):
                scrape(first)
            server.wait_log(rf"event=metrics_closed address=127\.0\.0\.1:{first}")

            # a port that cannot be bound refuses the reload; the endpoint in service stays
            server.extra_toml = f'[metrics]\naddress = "127.0.0.1:{busy.getsockname()[1]}"\n'
            server.write_config()
            self.reload_and_wait(server, "reload_refused")
            self.assertRegex(server.log(), r"event=reload_refused error=\"\S+smtpsd\.toml: "
                                           r"metrics\.address: [^\"]*Address already in use")
            self.assertIn("smtpsd_connections_open", scrape(second))

            server.extra_toml = ""
            server.write_config()
            self.reload_and_wait(server)
            with self.assertRaises(OSError):
                scrape(second)


class ReloadUnderLoad(ReloadTestCase):
    """Ten SIGHUPs (each one also rebuilding every TLS context) under a steady load: no
    connection dropped, every message accepted. Prints the figures.

    Paced by events, not by the clock: between two reloads the server must have accepted
    more mail (its log says so), and the load runs until the tenth reload is done and more
    mail has come after it (then SIGINT ends `smtpsctl bench` with its report)."""

    RELOADS = 10
    ACCEPTED_BETWEEN = 20  # messages accepted before each reload and after the last

    def test_ten_sighups_under_load_drop_nothing(self):
        # Tickets on, so that resumption across reloads is measured too.
        # Hundreds of connections a minute from 127.0.0.1: the connection rate is off.
        server = self.new_server(listeners=[{"role": "smtp", "session_tickets": True}],
                                 limits={"max_connections_per_minute_per_ip": 0})
        with server:
            bench = subprocess.Popen(
                [SMTPSCTL, "bench", "--server", f"smtp://127.0.0.1:{server.ports['smtp']}",
                 "--cafile", server.ca, "--connections", "8", "--duration", "600",
                 "--per-connection", "5", "--resume", "--threads", "1", "--json"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self.addCleanup(end_process, bench)
            reloads = 0
            # Reads only what the log gained (it grows by megabytes under this load).
            with open(server.log_path, "rb") as log:
                log.seek(0, os.SEEK_END)
                tail = b""

                def wait_for(needle, count, timeout=60):
                    nonlocal tail
                    deadline = time.monotonic() + timeout
                    seen = 0
                    while True:
                        chunk = tail + log.read()
                        seen += chunk.count(needle)
                        # a line cut at the end of the read is counted with the next read
                        cut = chunk.rfind(b"\n") + 1
                        seen -= chunk[cut:].count(needle)
                        tail = chunk[cut:]
                        if seen >= count:
                            return
                        self.assertIsNone(bench.poll(), "smtpsctl bench ended early")
                        self.assertLess(time.monotonic(), deadline,
                                        f"{needle!r} seen {seen} times, not {count}")
                        time.sleep(0.02)

                for _ in range(self.RELOADS):
                    wait_for(b"event=accepted ", self.ACCEPTED_BETWEEN)
                    self.hangup(server)
                    wait_for(b"event=reloaded ", 1)
                    reloads += 1
                wait_for(b"event=accepted ", self.ACCEPTED_BETWEEN)
            bench.send_signal(signal.SIGINT)
            stdout, stderr = bench.communicate(timeout=60)
            report = json.loads(stdout.decode())
            print(f"\nreload under load: {reloads} reloads, messages={report['messages']} "
                  f"failures={report['failures']} by code={report['failures_by_code']} "
                  f"connections={report['connections']} resumed={report.get('resumed')}")
            self.assertEqual(bench.returncode, 0, stderr.decode())
            self.assertEqual(report["failures"], 0)
            self.assertEqual(report["failures_by_code"], {})
            self.assertGreaterEqual(report["messages"],
                                    (self.RELOADS + 1) * self.ACCEPTED_BETWEEN)
            self.assertEqual(self.count(server, "event=reload_refused"), 0)
            self.assertEqual(self.count(server, "event=tls_handshake_failed"), 0)
            # Ticket keys survive a reload: most connections still resume.
            self.assertGreater(report["resumed"], report["connections"] * 0.7)


if __name__ == "__main__":
    unittest.main()
