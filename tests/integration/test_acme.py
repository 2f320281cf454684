"""[acme]: smtpsd gets its certificates from an ACME CA (Pebble) and renews them.

What an administrator sees: the server starts at once with a self-signed placeholder, then
serves a certificate that Pebble issued (a real TLS client on port 465 verifies the chain
against Pebble's root); `smtpsctl cert status` names the issuer; `smtpsctl cert renew` gets a
new certificate for the same key (a TLSA "3 1 1" record stays valid); a short-lived certificate
renews under a `smtpsctl bench` load without a failed connection. Failures (the CA
unreachable, a challenge the CA cannot validate) are logged with the step and the reason,
retried with backoff, and the certificate in service stays.
"""

import hashlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import time
import unittest
import urllib.request

import needs
from dns_server import DnsServer
from dynamic_zone import DynamicZone
from harness import SMTPSD, ServerTestCase
from pebble import Pebble
from ports import free_port

SMTPSCTL = os.environ.get("SMTPSCTL_BIN") or os.path.join(os.path.dirname(SMTPSD), "smtpsctl")
NAME = "mail.acme.test"
SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def served_certificate(port, cafile=None, ecdsa=False):
    """The DER leaf smtpsd serves on implicit TLS for NAME (verified against cafile if given;
    ecdsa: the ECDSA one, by TLS 1.2 ECDSA suites only)."""
    if cafile:
        context = ssl.create_default_context(cafile=cafile)
    else:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if ecdsa:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with context.wrap_socket(sock, server_hostname=NAME) as tls:
            return tls.getpeercert(binary_form=True)


def served_serials(port, cafile):
    """The serial numbers (hex) of the ECDSA and the RSA leaf served on implicit TLS for NAME,
    each on a new connection (TLS 1.2 with only that key type's suites), verified against
    cafile."""
    serials = []
    for suites in ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384",
                   "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384"):
        context = ssl.create_default_context(cafile=cafile)
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(suites)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            with context.wrap_socket(sock, server_hostname=NAME) as tls:
                serials.append(tls.getpeercert()["serialNumber"])
    return tuple(serials)


def maildir_count(server, address="demo@localhost"):
    """How many messages the mailbox holds (new/ and cur/), without reading them."""
    return sum(len(os.listdir(os.path.join(server.maildir(address), sub)))
               for sub in ("new", "cur")
               if os.path.isdir(os.path.join(server.maildir(address), sub)))


def wait_delivered_count(server, count, load=None, timeout=30):
    """Waits until the mailbox holds count messages; load: the process sending them, whose
    end (a failed run) stops the wait with what it said."""
    deadline = time.monotonic() + timeout
    while maildir_count(server) < count:
        if load is not None and load.poll() is not None:
            out, err = load.communicate()
            raise AssertionError(f"the load ended (exit {load.returncode}) before {count} "
                                 f"messages: {err.decode()}{out.decode()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{maildir_count(server)} of {count} messages delivered:\n"
                                 + server.log()[-4000:])
        time.sleep(0.02)


def public_key_digest(der):
    """SHA-256 of the leaf's SubjectPublicKeyInfo: the data of a TLSA 3 1 1 record."""
    pem = ssl.DER_cert_to_PEM_cert(der)
    spki = subprocess.run(["openssl", "x509", "-pubkey", "-noout"], input=pem.encode(),
                          check=True, capture_output=True).stdout
    der_key = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=spki,
                             check=True, capture_output=True).stdout
    return hashlib.sha256(der_key).hexdigest()


def wait_count(server, pattern, count, timeout=30):
    """Waits until the log has at least count lines matching pattern."""
    deadline = time.monotonic() + timeout
    while len(re.findall(pattern, server.log())) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {count} lines match {pattern!r}:\n"
                                 + server.log()[-4000:])
        time.sleep(0.02)


def issuer_of(der):
    pem = ssl.DER_cert_to_PEM_cert(der)
    return subprocess.run(["openssl", "x509", "-noout", "-issuer"], input=pem,
                          check=True, capture_output=True, text=True).stdout


def acme_server(test, directory, ca_file, http_port, extra="", tables="", tls_alpn_port=None,
                limits=None):
    """A new (not started) smtpsd of test with [acme] for NAME against the CA's directory:
    http_port the http-01 responder's; tls_alpn_port given: tls-alpn-01 there instead. extra
    goes into [acme], tables after it."""
    if tls_alpn_port:
        challenge = (f'challenge = "tls-alpn-01"\ntls_alpn_address = "127.0.0.1"\n'
                     f'tls_alpn_port = {tls_alpn_port}\n')
    else:
        challenge = f'http_address = "127.0.0.1"\nhttp_port = {http_port}\n'
    return test.new_server(
        listeners=[{"role": "submissions"}],
        tls={"watch_interval": "100ms"}, limits=limits,
        extra_toml=(f'[acme]\ndirectory = "{directory}"\ncontact = "postmaster@acme.test"\n'
                    f'names = ["{NAME}"]\n{challenge}'
                    f'ca_file = "{ca_file}"\n{extra}\n{tables}'))


@needs.tools("pebble", "dnsmasq", "openssl")
class AcmeTest(ServerTestCase):
    def acme_server(self, *args, **kwargs):
        return acme_server(self, *args, **kwargs)

    def cert(self, server, verb):
        return subprocess.run([SMTPSCTL, "cert", verb, "--config", server.config_path],
                              capture_output=True, text=True, timeout=20)

    def test_pebble_issues_the_served_certificate_and_a_renewal_keeps_the_key(self):
        # Then a challenge that fails and the CA down: the certificate in service stays.
        http_port = free_port()
        with DnsServer(a={NAME: "127.0.0.1"}) as dns, \
                Pebble(os.path.join(self.tmp, "pebble"), dns.server, http_port) as ca:
            server = self.acme_server(ca.directory, ca.ca_file, http_port)
            started = time.monotonic()
            server.start()
            port = server.ports["submissions"]
            # Until the first certificate arrives a self-signed placeholder serves the name.
            server.wait_log(r"event=acme_renewed key=ecdsa .*issuer=.*Pebble", timeout=30)
            server.wait_log(r"event=acme_renewed key=rsa ", timeout=30)
            root = os.path.join(self.tmp, "pebble-root.pem")
            with open(root, "w") as f:
                f.write(ca.root_pem())
            # The hot reload puts it in service without a restart: a verifying client
            # (Pebble's root, the name) accepts the served chain.
            server.wait_log(r"event=tls_reloaded file=\S+/acme/rsa\.crt", timeout=10)
            first = served_certificate(port, cafile=root)
            print(f"http-01: start to the served certificate in "
                  f"{time.monotonic() - started:.2f} s")
            self.assertIn("Pebble", issuer_of(first))
            status = self.cert(server, "status")
            self.assertEqual(status.returncode, 0, status.stderr)
            self.assertRegex(status.stdout, r"ecdsa: issuer=.*Pebble.*days_left=\d+")
            self.assertRegex(status.stdout, r"rsa: issuer=.*Pebble")
            # A renewal on request: a new certificate for the same key.
            renewals = len(re.findall(r"event=tls_reloaded file=\S+/acme/rsa", server.log()))
            renewed = self.cert(server, "renew")
            self.assertEqual(renewed.returncode, 0, renewed.stderr)
            wait_count(server, r"event=tls_reloaded file=\S+/acme/rsa", renewals + 1)
            second = served_certificate(port, cafile=root)
            self.assertNotEqual(second, first, "the renewed certificate is not served")
            self.assertEqual(public_key_digest(second), public_key_digest(first))
            # A challenge the CA cannot validate (after a restart the responder listens on
            # another port than the one Pebble connects to): the failure says the CA's reason,
            # the Pebble certificate keeps serving.
            server.stop()
            server.extra_toml = server.extra_toml.replace(f"http_port = {http_port}",
                                                          f"http_port = {free_port()}")
            server.write_config()
            server.start()
            port = server.ports["submissions"]
            self.assertEqual(self.cert(server, "renew").returncode, 0)
            # (Either key: Pebble may reuse the valid authorization for the first order.)
            failed = server.wait_log(r"event=acme_failed key=\w+ step=challenge "
                                     r'error="((?:[^"\\]|\\.)*)"', timeout=30)
            self.assertIn(f"{NAME} is invalid", failed.group(1))
            self.assertIn("connection refused", failed.group(1).lower())
            self.assertEqual(served_certificate(port, cafile=root), second)
            # The CA goes away: a renewal fails, says where and why, and what serves stays.
            ca.stop()
            renewed = self.cert(server, "renew")
            self.assertEqual(renewed.returncode, 0, renewed.stderr)
            # The key whose challenge failed above now fails a second time (either key:
            # the other may have been renewed through the reused authorization).
            server.wait_log(r"level=warning event=acme_failed key=\w+ step=directory "
                            r"error=\S.* failures=2 ")
            self.assertEqual(served_certificate(port, cafile=root), second)
            status = self.cert(server, "status")
            self.assertRegex(status.stdout, r"ecdsa: issuer=.*Pebble.*last=\"failed at directory")
            key_mode = os.stat(os.path.join(self.tmp, "acme", "ecdsa.key")).st_mode & 0o777
            self.assertEqual(key_mode, 0o600)
            self.assertEqual(os.stat(os.path.join(self.tmp, "acme", "account.key")).st_mode
                             & 0o777, 0o600)

    def test_a_short_lived_certificate_renews_under_load_and_no_connection_fails(self):
        # Pebble issues certificates valid 16 seconds; smtpsd renews each at half of its
        # lifetime (renew_before = 10 s is longer than a third, so the half-lifetime floor
        # decides), so about every 8 seconds, both keys, with 8 seconds to spare before the
        # expiry (the renewal and reload take about 0.5 s on an idle machine, a few under the
        # load of a full make test). `smtpsctl bench` sends mail all the while over
        # implicit TLS with AUTH, a new connection (handshake) per message, verifying the chain
        # against Pebble's root and the name on the certificate: --connect takes it to the
        # loopback port while SNI and the check use NAME, which no system resolver knows.
        # Through a renewal and the hot reload that puts it in service, no connection and no
        # message fails, and new connections get the new certificates (other serials).
        http_port = free_port()
        with DnsServer(a={NAME: "127.0.0.1"}) as dns, \
                Pebble(os.path.join(self.tmp, "pebble"), dns.server, http_port,
                       validity_seconds=16) as ca:
            # Hundreds of connections a minute from one address, over a thousand messages an
            # hour from one user on a fast machine: the load the rate limits stop.
            server = self.acme_server(ca.directory, ca.ca_file, http_port,
                                      extra='renew_before = "10s"\n',
                                      limits={"max_connections_per_minute_per_ip": 0},
                                      tables="[sending_limits]\nmessages_per_hour = 0\n")
            server.start()
            port = server.ports["submissions"]
            server.wait_log(r"event=tls_reloaded file=\S+/acme/ecdsa\.crt", timeout=30)
            server.wait_log(r"event=tls_reloaded file=\S+/acme/rsa\.crt", timeout=30)
            root = os.path.join(self.tmp, "pebble-root.pem")
            with open(root, "w") as f:
                f.write(ca.root_pem())
            load = subprocess.Popen(
                [SMTPSCTL, "bench", "--server", f"smtps://{NAME}:465",
                 "--connect", f"127.0.0.1:{port}", "--cafile", root,
                 "--user", "demo@localhost",
                 "--password-file", os.path.join(server.dir, "demo.password"),
                 "--duration", "120", "--connections", "2", "--per-connection", "1",
                 "--threads", "1", "--timeout", "10", "--json"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
            self.addCleanup(lambda: load.poll() is not None or
                            (load.kill(), load.communicate()))
            wait_delivered_count(server, 3, load)  # the load runs

            def reloads():
                log = server.log()
                return tuple(len(re.findall(rf"event=tls_reloaded file=\S+/acme/{key}\.crt ",
                                            log)) for key in ("ecdsa", "rsa"))

            # What is served and how many reloads were logged, read between two looks at
            # what is served that agree: no reload fell between them.
            for _ in range(10):
                before = served_serials(port, root)
                counted = reloads()
                if served_serials(port, root) == before:
                    break
            else:
                self.fail("the served certificates change at every look")
            # The next renewal of both, put in service while the load goes on.
            wait_count(server, r"event=tls_reloaded file=\S+/acme/ecdsa\.crt ", counted[0] + 1)
            wait_count(server, r"event=tls_reloaded file=\S+/acme/rsa\.crt ", counted[1] + 1)
            self.assertRegex(server.log(), r"event=acme_renewed key=ecdsa .*issuer=.*Pebble")
            during = maildir_count(server)
            after = served_serials(port, root)
            self.assertNotEqual(after[0], before[0], "the renewed ECDSA certificate is not served")
            self.assertNotEqual(after[1], before[1], "the renewed RSA certificate is not served")
            wait_delivered_count(server, during + 3, load)  # the load went on after the swap
            load.send_signal(signal.SIGINT)  # ends the run early, with its report
            out, err = load.communicate(timeout=30)
        self.assertEqual(load.returncode, 0, err.decode() + out.decode())
        report = json.loads(out)
        self.assertEqual((report["failures"], report["failures_by_code"]), (0, {}), report)
        self.assertGreaterEqual(report["messages"], during + 3)
        self.assertEqual(report["connections"], report["messages"])
        wait_delivered_count(server, report["messages"])
        print(f"renewal under load: {report['messages']} messages in {report['seconds']:.1f} s, "
              f"{len(re.findall('event=acme_renewed ', server.log()))} certificates issued")

    def test_a_ca_that_requires_external_account_binding(self):
        # RFC 8555 §7.3.4. Without eab_kid the account is refused with a line that says what
        # to configure; with the kid and its MAC key (from a file only the account reads, never
        # logged) the certificate is issued and served.
        mac_key = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
        http_port = free_port()
        with DnsServer(a={NAME: "127.0.0.1"}) as dns, \
                Pebble(os.path.join(self.tmp, "pebble"), dns.server, http_port,
                       eab_keys={"kid-smtpsd": mac_key}) as ca:
            server = self.acme_server(ca.directory, ca.ca_file, http_port,
                                      extra='retry_wait = "10s"')
            server.start()
            failed = server.wait_log(r'event=acme_failed key=ecdsa step=account '
                                     r'error="((?:[^"\\]|\\.)*)"', timeout=30)
            self.assertIn("requires an External Account Binding", failed.group(1))
            self.assertIn("eab_kid and eab_hmac_key_file", failed.group(1))
            server.stop()
            key_file = os.path.join(self.tmp, "eab.key")
            with open(key_file, "w") as f:
                f.write(mac_key + "\n")
            os.chmod(key_file, 0o600)
            server.extra_toml = server.extra_toml.replace(
                'retry_wait = "10s"',
                f'eab_kid = "kid-smtpsd"\neab_hmac_key_file = "{key_file}"')
            server.write_config()
            checked = subprocess.run([SMTPSD, "check", "--config", server.config_path],
                                     capture_output=True, text=True, timeout=30)
            self.assertIn(f"(external account kid-smtpsd, MAC key from {key_file})",
                          checked.stdout)
            started = time.monotonic()
            server.start()
            server.wait_log(r"event=acme_renewed key=ecdsa .*issuer=.*Pebble", timeout=30)
            server.wait_log(r"event=tls_reloaded file=\S+/acme/rsa\.crt", timeout=10)
            print(f"http-01 with EAB: start to the served certificates in "
                  f"{time.monotonic() - started:.2f} s")
            root = os.path.join(self.tmp, "pebble-root.pem")
            with open(root, "w") as f:
                f.write(ca.root_pem())
            self.assertIn("Pebble", issuer_of(served_certificate(server.ports["submissions"],
                                                                 cafile=root)))
            self.assertNotIn(mac_key, server.log())
            self.assertNotIn(mac_key, checked.stdout + checked.stderr)

    def test_revocation_replaces_the_key_and_serves_a_new_certificate(self):
        # smtpsctl cert revoke: the CA revokes the certificate in service (Pebble's management
        # interface says so, with the reason), a NEW key replaces the one that may be
        # compromised, the log gives the TLSA 3 1 1 record that must now be published, and a
        # new certificate for the new key is served. The other key type is left alone.
        http_port = free_port()
        with DnsServer(a={NAME: "127.0.0.1"}) as dns, \
                Pebble(os.path.join(self.tmp, "pebble"), dns.server, http_port) as ca:
            server = self.acme_server(ca.directory, ca.ca_file, http_port)
            server.start()
            port = server.ports["submissions"]
            server.wait_log(r"event=acme_renewed key=ecdsa ", timeout=30)
            server.wait_log(r"event=acme_renewed key=rsa ", timeout=30)
            server.wait_log(r"event=tls_reloaded file=\S+/acme/rsa\.crt", timeout=10)
            root = os.path.join(self.tmp, "pebble-root.pem")
            with open(root, "w") as f:
                f.write(ca.root_pem())
            before = served_certificate(port, cafile=root, ecdsa=True)
            rsa_key = open(os.path.join(self.tmp, "acme", "rsa.key")).read()
            # Bad words are refused by smtpsctl before they reach the server.
            for bad in (["--key", "dsa"], ["--reason", "2"], ["--reason", "x"]):
                refused = subprocess.run([SMTPSCTL, "cert", "revoke", "--config",
                                          server.config_path] + bad,
                                         capture_output=True, text=True, timeout=20)
                self.assertEqual(refused.returncode, 2, bad)
            revoked = subprocess.run([SMTPSCTL, "cert", "revoke", "--key", "ecdsa", "--reason",
                                      "4", "--config", server.config_path],
                                     capture_output=True, text=True, timeout=20)
            self.assertEqual(revoked.returncode, 0, revoked.stderr)
            self.assertIn("revocation started (ecdsa, reason 4)", revoked.stdout)
            serial = server.wait_log(r"level=warning event=acme_revoked key=ecdsa "
                                     r"serial=([0-9a-f]+) reason=4").group(1)
            tlsa = server.wait_log(r"level=warning event=acme_key_replaced key=ecdsa "
                                   r'tlsa="3 1 1 ([0-9a-f]{64})" action="the key changed: a '
                                   r'published TLSA 3 1 1 record').group(1)
            status = ca.certificate_status(serial)
            self.assertEqual((status["Status"], status["Reason"]), ("Revoked", 4))
            served_serial = subprocess.run(["openssl", "x509", "-noout", "-serial"],
                                           input=ssl.DER_cert_to_PEM_cert(before),
                                           capture_output=True, text=True, check=True).stdout
            self.assertEqual(int(serial, 16), int(served_serial.strip().split("=")[1], 16))
            # A new certificate, for the new key, at once (a placeholder for the new key may
            # serve for the moment between the two).
            wait_count(server, r"event=acme_renewed key=ecdsa ", 2)
            deadline = time.monotonic() + 10
            after = served_certificate(port, ecdsa=True)
            while (public_key_digest(after) != tlsa or "Pebble" not in issuer_of(after)) \
                    and time.monotonic() < deadline:
                time.sleep(0.05)  # the reload settles the key and the chain together
                after = served_certificate(port, ecdsa=True)
            self.assertEqual(public_key_digest(after), tlsa)
            self.assertEqual(served_certificate(port, cafile=root, ecdsa=True), after)
            self.assertNotEqual(public_key_digest(before), tlsa)
            self.assertIn("Pebble", issuer_of(after))
            self.assertEqual(open(os.path.join(self.tmp, "acme", "rsa.key")).read(), rsa_key)
            self.assertEqual(os.stat(os.path.join(self.tmp, "acme", "ecdsa.key")).st_mode
                             & 0o777, 0o600)
            self.assertNotIn("event=acme_revoked key=rsa", server.log())
            self.assertRegex(self.cert(server, "status").stdout,
                             r"ecdsa: issuer=.*Pebble.*last=\"renewed at ")

    def test_first_issuance_by_tls_alpn_01_and_other_protocols_are_refused(self):
        # RFC 8737: Pebble validates on its tlsPort, where smtpsd's responder (bound at the
        # start) serves the challenge certificate for "acme-tls/1"; no port 80 is used. A
        # client that asks for another protocol gets no_application_protocol, one for
        # acme-tls/1 without a challenge under way unrecognized_name.
        tls_port = free_port()
        with DnsServer(a={NAME: "127.0.0.1"}) as dns, \
                Pebble(os.path.join(self.tmp, "pebble"), dns.server, free_port(),
                       tls_port=tls_port) as ca:
            server = self.acme_server(ca.directory, ca.ca_file, None, tls_alpn_port=tls_port)
            checked = subprocess.run([SMTPSD, "check", "--config", server.config_path],
                                     capture_output=True, text=True, timeout=30)
            self.assertIn(f"for {NAME}, tls-alpn-01 on 127.0.0.1 port {tls_port}, files in",
                          checked.stdout)
            started = time.monotonic()
            server.start()
            server.wait_log(rf"event=acme_started .*challenge=tls-alpn-01 tls_alpn_port={tls_port}")
            server.wait_log(rf"event=acme_challenge name={re.escape(NAME)} type=tls-alpn-01")
            server.wait_log(r"event=acme_renewed key=ecdsa .*issuer=.*Pebble", timeout=30)
            server.wait_log(r"event=acme_renewed key=rsa .*issuer=.*Pebble", timeout=30)
            server.wait_log(r"event=tls_reloaded file=\S+/acme/rsa\.crt", timeout=10)
            root = os.path.join(self.tmp, "pebble-root.pem")
            with open(root, "w") as f:
                f.write(ca.root_pem())
            served = served_certificate(server.ports["submissions"], cafile=root)
            print(f"tls-alpn-01: start to the served certificate in "
                  f"{time.monotonic() - started:.2f} s")
            self.assertIn("Pebble", issuer_of(served))
            self.assertNotIn("http-01", server.log())

            def alpn_handshake(protocols):
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                if protocols is not None:
                    context.set_alpn_protocols(protocols)
                with socket.create_connection(("127.0.0.1", tls_port), timeout=10) as sock:
                    with context.wrap_socket(sock, server_hostname=NAME):
                        return None

            for protocols in (["h2", "http/1.1"], ["smtp"], None):  # None: no ALPN at all
                with self.assertRaisesRegex(ssl.SSLError, r"(?i)no.application.protocol"):
                    alpn_handshake(protocols)
            with self.assertRaisesRegex(ssl.SSLError, r"(?i)unrecognized.name"):
                alpn_handshake(["acme-tls/1"])

    @needs.tools("named", "nsupdate", "dig")  # bind9, bind9-dnsutils
    def test_first_issuance_by_dns_01_through_the_nsupdate_hook(self):
        # RFC 8555 §8.4: the contrib hook adds the TXT record by a TSIG-signed dynamic update
        # (RFC 2136) to the test's own primary (named); smtpsd waits until its resolver sees
        # the record, then tells Pebble, whose -dnsserver is that primary; the record is
        # removed afterwards. No port is listened on for the challenge. The RSA order reuses
        # the authorization, as Let's Encrypt does: a second challenge for the name at once
        # would wait out the first value in our resolver's cache (at least 5 s, dns01_hook.h).
        with DynamicZone(os.path.join(self.tmp, "zone"), "acme.test",
                         [f"{NAME}. A 127.0.0.1"]) as zone, \
                Pebble(os.path.join(self.tmp, "pebble"), zone.server, free_port(),
                       authz_reuse=100) as ca:
            hook = os.path.join(SOURCE_DIR, "contrib", "acme", "acme-dns-nsupdate")
            extra = (f'challenge = "dns-01"\n'
                     f'dns_hook = ["{hook}", "-s", "{zone.server}", "-k", "{zone.key_file}", '
                     f'"-z", "acme.test", "-t", "1"]\ndns_propagation_timeout = "20s"\n')
            server = self.new_server(
                listeners=[{"role": "submissions"}],
                tls={"watch_interval": "100ms"},
                extra_toml=(f'[acme]\ndirectory = "{ca.directory}"\nnames = ["{NAME}"]\n'
                            f'ca_file = "{ca.ca_file}"\n{extra}\n'
                            f'[dns]\nservers = "{zone.server}"\n'))
            checked = subprocess.run([SMTPSD, "check", "--config", server.config_path],
                                     capture_output=True, text=True, timeout=30)
            self.assertIn(f"for {NAME}, dns-01 by {hook} -s {zone.server}", checked.stdout)
            started = time.monotonic()
            server.start()
            server.wait_log(rf"event=acme_challenge name={re.escape(NAME)} type=dns-01")
            server.wait_log(r"event=acme_dns_record_visible record=_acme-challenge\."
                            + re.escape(NAME) + r" after_ms=\d+")
            server.wait_log(r"event=acme_renewed key=ecdsa .*issuer=.*Pebble", timeout=30)
            server.wait_log(r"event=acme_renewed key=rsa .*issuer=.*Pebble", timeout=30)
            server.wait_log(r"event=tls_reloaded file=\S+/acme/rsa\.crt", timeout=10)
            root = os.path.join(self.tmp, "pebble-root.pem")
            with open(root, "w") as f:
                f.write(ca.root_pem())
            served = served_certificate(server.ports["submissions"], cafile=root)
            print(f"dns-01: start to the served certificate in "
                  f"{time.monotonic() - started:.2f} s")
            self.assertIn("Pebble", issuer_of(served))
            self.assertNotIn("event=acme_dns_record_left", server.log())
            # The record is gone again (removed by the hook after the validation).
            gone = subprocess.run(["dig", "+short", "-p", zone.server.split(":")[1],
                                   "@127.0.0.1", f"_acme-challenge.{NAME}", "TXT"],
                                  capture_output=True, text=True, timeout=10)
            self.assertEqual(gone.stdout.strip(), "", gone.stdout)
            self.assertIn("updating zone 'acme.test/IN': adding an RR", zone.log())

    def test_an_unreachable_ca_is_retried_with_backoff_and_the_placeholder_serves(self):
        # Also what `smtpsd check` says about [acme] before the start.
        closed = free_port()
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            server = self.acme_server(f"https://127.0.0.1:{closed}/dir",
                                      os.path.join(self.tmp, "tls", "ca.pem"), port,
                                      extra='retry_wait = "100ms"\nretry_max_wait = "400ms"',
                                      tables='[metrics]\naddress = "127.0.0.1:0"\n')
            # smtpsd check: the settings; no certificate yet is no error (the start makes the
            # placeholder); the http-01 port another program holds is a warning.
            checked = subprocess.run([SMTPSD, "check", "--config", server.config_path],
                                     capture_output=True, text=True, timeout=30)
        self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)
        self.assertIn(f"acme: https://127.0.0.1:{closed}/dir for {NAME}, http-01 on 127.0.0.1 "
                      f"port {port}, files in {self.tmp}/acme (no certificate yet",
                      checked.stdout)
        self.assertRegex(checked.stdout, rf"warning: http-01 responder: cannot listen on "
                                         rf"127\.0\.0\.1:{port}: Address already in use")
        server.start()
        # Retried: 100 ms, then 200 ms, then 400 ms at most, each failure logged with its step.
        wait_count(server, r"event=acme_failed key=ecdsa step=directory error=\S", 3)
        log = server.log()
        self.assertRegex(log, r"event=acme_failed key=ecdsa step=directory "
                              r"error=\"Failed to connect to 127\.0\.0\.1 port \d+.*\" "
                              r"failures=1 days_left=\d+ retry_in_ms=100\b")
        self.assertRegex(log, r"failures=2 days_left=\d+ retry_in_ms=200\b")
        self.assertRegex(log, r"failures=3 days_left=\d+ retry_in_ms=400\b")
        self.assertNotIn("event=acme_renewed", log)
        # The placeholder (self-signed, for the name) keeps serving.
        served = served_certificate(server.ports["submissions"])
        self.assertIn(f"CN = {NAME}", issuer_of(served))
        # Metrics: the days left of the certificate in service, the failures counted.
        host, metrics_port = re.search(r"event=metrics_listening address=(\S+) port=(\d+)",
                                       log).groups()
        with urllib.request.urlopen(f"http://{host}:{metrics_port}/metrics", timeout=10) as r:
            metrics = r.read().decode()
        # The placeholder is valid 90 days from its making: 89 or 90 whole days are left,
        # depending on whether a second has passed since.
        self.assertRegex(metrics,
                         r'(?m)^smtpsd_acme_certificate_days_left\{key="ecdsa"\} (89|90)$')
        failures = re.search(r'(?m)^smtpsd_acme_renewals_total\{key="ecdsa",result="failure"\} '
                             r'(\d+)$', metrics)
        self.assertIsNotNone(failures, metrics)
        self.assertGreaterEqual(int(failures.group(1)), 3)
        status = self.cert(server, "status")
        self.assertRegex(status.stdout, r"ecdsa: placeholder \(self-signed\).*"
                                        r"last=\"failed at directory: ")
        # [acme] runs from the start: a reload that changes it says it needs a restart and
        # serves on with the certificates of the [acme] in service.
        server.extra_toml = server.extra_toml.replace(f"127.0.0.1:{closed}/dir",
                                                      "127.0.0.1:9/other")
        server.write_config()
        os.kill(server.process.pid, signal.SIGHUP)
        server.wait_log(r"event=reload_needs_restart keys=\S*acme")
        server.wait_log(r"event=reloaded ")
        self.assertEqual(served_certificate(server.ports["submissions"]), served)
        self.assertIn(f"acme directory=https://127.0.0.1:{closed}/dir",
                      self.cert(server, "status").stdout)

    @needs.condition(os.geteuid() == 0, "the account switch needs a start as root")
    def test_as_an_account_it_owns_the_files_and_a_stop_cancels_a_request(self):
        # data_dir already the account's: the start does not walk it, [acme] gives its own.
        os.chmod(self.tmp, 0o711)
        with socket.socket() as silent:  # a CA that accepts connections and never answers
            silent.bind(("127.0.0.1", 0))
            silent.listen()
            server = self.acme_server(f"https://127.0.0.1:{silent.getsockname()[1]}/dir",
                                      os.path.join(self.tmp, "tls", "ca.pem"), free_port())
            server.privileges = {"user": "nobody"}
            server.write_config()
            os.chown(self.tmp, 65534, 65534)
            server.start()
            server.wait_log(r"event=acme_order key=ecdsa")
            acme = os.path.join(self.tmp, "acme")
            for name in [""] + os.listdir(acme):
                self.assertEqual(os.lstat(os.path.join(acme, name)).st_uid, 65534, name)
            self.assertEqual(sorted(os.listdir(acme)),
                             ["account.key", "ecdsa.crt", "ecdsa.key", "rsa.crt", "rsa.key"])
            # The request under way (bounded by 30 s) is cancelled: SIGTERM ends the server
            # within the harness's wait, with exit status 0 and no failure logged.
            self.assertEqual(server.stop(), 0)
        self.assertNotIn("event=acme_failed", server.log())
        self.assertIn("event=stopped", server.log())

    @needs.condition(os.geteuid() == 0, "the account switch needs a start as root")
    def test_a_link_the_account_planted_in_place_of_its_directory_is_not_followed_by_root(self):
        # The account owns data_dir (any start after the first) and replaced acme/ by a link
        # to a directory of root's (/etc in the attack): root neither prepares through it
        # (the account does, and refuses the link) nor gives its entries away.
        os.chmod(self.tmp, 0o711)
        victim = os.path.join(self.tmp, "victim")
        os.mkdir(victim, 0o755)
        with open(os.path.join(victim, "passwd"), "w") as f:
            f.write("root:x:0:0::/root:/bin/sh\n")
        os.symlink(victim, os.path.join(self.tmp, "acme"))
        server = self.acme_server("https://127.0.0.1:9/dir",
                                  os.path.join(self.tmp, "tls", "ca.pem"), free_port())
        server.privileges = {"user": "nobody"}
        server.write_config()
        os.chown(self.tmp, 65534, 65534)
        with self.assertRaises(RuntimeError) as refused:
            server.start()
        self.assertIn("is a symbolic link; refusing to use it", str(refused.exception))
        info = os.stat(victim)
        self.assertEqual((info.st_uid, info.st_mode & 0o7777), (0, 0o755))
        self.assertEqual(os.listdir(victim), ["passwd"])
        self.assertEqual(os.lstat(os.path.join(victim, "passwd")).st_uid, 0)


if __name__ == "__main__":
    unittest.main()
