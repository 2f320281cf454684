"""smtpsctl probe: the TLS report, against smtpsd (well and weakly configured) and against a
tiny fake server that offers AUTH before TLS or is open to STARTTLS command injection.

Loopback only. The fake is standard library: it keeps its own input buffer so that it can
reproduce CVE-2011-0411 on purpose (keeping the bytes that came in clear after STARTTLS).
"""

import json
import os
import socket
import ssl
import subprocess
import threading
import unittest

from fake_smtp import FakeSmtp
from fake_tls import FakeTls
from harness import SMTPSD, ServerTestCase
from loopback_listener import LoopbackListener
from ports import free_port
from testssl_fixtures import assert_covers_testssl
import weak_targets

SMTPSCTL = os.environ.get("SMTPSCTL_BIN") or os.path.join(os.path.dirname(SMTPSD), "smtpsctl")


def probe(*args, timeout=120):
    return subprocess.run([SMTPSCTL, "probe"] + list(args), capture_output=True, text=True,
                          timeout=timeout)


def finding_of(report, check, port_index=0):
    """The first finding of a check, whole: severity, level, testssl_id, text, fix."""
    return next(f for f in report["ports"][port_index]["findings"] if f["check"] == check)


def findings(report, port_index=0):
    """{check: [(severity, text), ...]} of one port."""
    out = {}
    for finding in report["ports"][port_index]["findings"]:
        out.setdefault(finding["check"], []).append((finding["severity"], finding["text"]))
    return out


class ProbeSmtpsd(ServerTestCase):
    def test_default_config_passes_on_each_role(self):
        server = self.new_server().start()
        for role in ("smtp", "submission", "submissions"):
            with self.subTest(role=role):
                result = probe(f"localhost:{server.ports[role]}", "--cafile", server.ca, "--json")
                self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
                report = json.loads(result.stdout)
                self.assertEqual(report["verdict"], "PASS")
                # The default connection budget covers the whole scan, and it is counted.
                self.assertLess(20, report["connections"])
                self.assertLess(report["connections"], report["max_connections"])
                port = report["ports"][0]
                self.assertEqual((port["not_tested"], port["not_tested_reason"]), ([], ""))
                self.assertEqual(port["mode"], "implicit" if role == "submissions" else "starttls")
                versions = port["versions"]
                self.assertFalse(versions["TLSv1"]["accepted"])
                self.assertFalse(versions["TLSv1.1"]["accepted"])
                self.assertTrue(versions["TLSv1.2"]["accepted"])
                self.assertTrue(versions["TLSv1.3"]["accepted"])
                self.assertTrue(versions["TLSv1.2"]["ciphers"])
                self.assertIn("TLS_AES_256_GCM_SHA384", versions["TLSv1.3"]["ciphers"])
                self.assertEqual(port["auth_before_tls"], [])
                if role != "submissions":
                    self.assertIs(port["starttls_injection_vulnerable"], False)
                    self.assertIn("STARTTLS", port["extensions_before_tls"])
                self.assertTrue(port["extensions_after_tls"])
                certificate = port["certificate"]
                self.assertIs(certificate["name_matches"], True)
                self.assertIs(certificate["chain_verified"], True)
                self.assertGreater(certificate["days_left"], 14)
                self.assertTrue(certificate["chain"])
                self.assertEqual(certificate["key_type"], "EC")
                # The RSA certificate beside it, which only clients without ECDSA see.
                (other,) = port["other_certificates"]
                self.assertEqual((other["key_type"], other["key_bits"]), ("RSA", 2048))
                self.assertIs(other["chain_verified"], True)
                self.assertIs(other["name_matches"], True)
                self.assertIn(("PASS", "(RSA certificate) RSA key of 2048 bits"),
                              findings(report)["certificate_key"])
                # A TLS 1.2 hello flagged as a fallback (TLS 1.3 is there) is refused, and the
                # server picks suites by its own order.
                self.assertEqual(findings(report)["tls_fallback_scsv"][0][0], "PASS")
                self.assertEqual(findings(report)["cipher_order"],
                                 [("INFO", "TLSv1.2: the server chooses the suite by its own "
                                           "order")])
                self.assertIsNotNone(port["session_resumed"])
                # Key exchange: the groups of [tls] groups (X25519:P-256:P-384), each found
                # with a hand-built hello (TLS 1.3: an empty key_share and the
                # HelloRetryRequest); no DHE suite at all.
                self.assertEqual(sorted(port["groups_before_tls13"]),
                                 ["secp256r1", "secp384r1", "x25519"])
                self.assertEqual(sorted(port["groups_tls13"]),
                                 ["secp256r1", "secp384r1", "x25519"])
                self.assertIsNone(port["dh_prime_bits"])
                # What OpenSSL 3 is not open to, each tested (never a PASS untested).
                self.assertIs(port["sslv2_accepted"], False)
                self.assertIs(port["heartbleed_vulnerable"], False)
                self.assertIs(port["ccs_injection_vulnerable"], False)
                self.assertIs(port["client_renegotiation_accepted"], False)
                checks = findings(report)
                for check in ("tls_SSLv2", "heartbleed", "ccs_injection",
                              "client_renegotiation"):
                    self.assertEqual(checks[check][0][0], "PASS", (check, checks[check]))
                self.assertIn("alert unexpected_message", checks["ccs_injection"][0][1])
                self.assertNotIn("weak_group", checks)
                # Nothing above INFO, and no fix to give.
                self.assertIn(report["worst_level"], ("OK", "INFO"))
                for finding in port["findings"]:
                    self.assertIn(finding["level"], ("OK", "INFO"), finding)
                    self.assertEqual(finding["fix"], "", finding)
                self.assertEqual(checks["tls_TLSv1"][0][0], "PASS")
                self.assertEqual(checks["certificate_name"][0][0], "PASS")

    def test_text_report_and_untrusted_chain(self):
        server = self.new_server().start()
        # Without --cafile the development CA is unknown: the chain fails to verify.
        result = probe(f"localhost:{server.ports['submission']}")
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        self.assertIn("FAIL certificate chain does not verify", result.stdout)
        # The level, testssl.sh's id and the fix on the line below.
        self.assertIn("HIGH (testssl.sh cert_chain_of_trust); fix: serve the whole chain",
                      result.stdout)
        self.assertIn("PASS TLS 1.0 refused", result.stdout)
        self.assertIn("verdict: FAIL (worst: HIGH)", result.stdout)

    def test_name_mismatch_fails(self):
        server = self.new_server().start()
        result = probe(f"127.0.0.1:{server.ports['submissions']}", "--cafile", server.ca,
                       "--name", "mail.example.org", "--json")
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        report = json.loads(result.stdout)
        self.assertEqual(findings(report)["certificate_name"][0][0], "FAIL")
        self.assertIn("mail.example.org", findings(report)["certificate_name"][0][1])

    def test_tls10_accepted_fails(self):
        server = self.new_server(tls={"min_version": "TLSv1",
                                      "allow_unsafe_tls_versions": True}).start()
        result = probe(f"localhost:{server.ports['submissions']}", "--cafile", server.ca,
                       "--json")
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        report = json.loads(result.stdout)
        self.assertTrue(report["ports"][0]["versions"]["TLSv1"]["accepted"])
        self.assertEqual(report["verdict"], "FAIL")
        severity, text = findings(report)["tls_TLSv1"][0]
        self.assertEqual(severity, "FAIL")
        self.assertIn("TLS 1.0 accepted", text)

    def test_certificate_expiring_in_five_days_warns(self):
        server = self.new_server()
        tls = os.path.join(server.dir, "tls")
        key, csr, pem = (os.path.join(tls, name) for name in
                         ("server-ecdsa.key", "short.csr", "server-ecdsa.pem"))
        extensions = os.path.join(tls, "short.ext")
        with open(extensions, "w") as f:
            f.write("subjectAltName=DNS:localhost\n")
        subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                        "-subj", "/CN=localhost", "-out", csr],
                       check=True, capture_output=True)
        subprocess.run(["openssl", "x509", "-req", "-days", "5", "-in", csr,
                        "-CA", os.path.join(tls, "ca.pem"), "-CAkey", os.path.join(tls, "ca.key"),
                        "-CAcreateserial", "-extfile", extensions, "-out", pem],
                       check=True, capture_output=True)
        server.start()
        result = probe(f"localhost:{server.ports['submissions']}", "--cafile", server.ca,
                       "--json")
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        report = json.loads(result.stdout)
        self.assertEqual(report["verdict"], "WARN")
        self.assertEqual(report["ports"][0]["certificate"]["days_left"], 5)
        severity, text = findings(report)["certificate_expiry"][0]
        self.assertEqual(severity, "WARN")
        self.assertIn("expires in 5 days", text)


class LimitedImplicitTls(LoopbackListener):
    """An implicit TLS server (Python's ssl, a minimal SMTP inside) that serves its first
    `serve` connections, then refuses every other as a server at its connection limit does
    on an implicit TLS port: closes it at once, or writes `reply` in clear first. With
    `counter` (an OpenConnections, shared by several), counts the connections open."""

    def __init__(self, cert, key, serve, reply=None, counter=None):
        self.serve, self.reply, self.counter = serve, reply, counter
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self._listen()

    def _accept(self):
        count = 0
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            count += 1  # counted here, in the order of arrival
            if self.counter:
                self.counter.accepted()
            threading.Thread(target=self._serve, args=(conn, count <= self.serve),
                             daemon=True).start()

    def _serve(self, conn, served=True):
        with conn:
            if not served:
                if self.reply:
                    conn.sendall(self.reply.encode() + b"\r\n")
                return
            conn.settimeout(30)
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"220 limited.test ESMTP\r\n")
                    for line in tls.makefile("rb"):
                        if line[:4].upper() == b"QUIT":
                            tls.sendall(b"221 bye\r\n")
                            return
                        tls.sendall(b"250-limited.test\r\n250 AUTH PLAIN\r\n"
                                    if line[:4].upper() == b"EHLO" else b"250 ok\r\n")
            except (OSError, ssl.SSLError, ValueError):
                pass


class OpenConnections:
    """The most connections a client had open at once to some ports, counted each time one
    is accepted: the client's side of each in /proc/net/tcp (and tcp6), established or
    closed by the server only. The kernel knows at once that the client closed one, where a
    serving thread may see it much later. What two readings in a row both show is counted:
    one reading is no snapshot (a connection closed and another opened while it goes on
    could both be seen open), so the count never exceeds the truth."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ports = set()
        self.most = 0

    def _open_now(self):
        connections = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as lines:
                for line in lines.readlines()[1:]:
                    fields = line.split()
                    # 01 ESTABLISHED, 08 CLOSE_WAIT (the server closed, the client not yet)
                    if int(fields[2].rsplit(":", 1)[1], 16) in self.ports and \
                            fields[3] in ("01", "08"):
                        connections.add((fields[1], fields[2]))
        return connections

    def accepted(self):
        with self.lock:
            self.most = max(self.most, len(self._open_now() & self._open_now()))


class ProbeParallel(ServerTestCase):
    """--parallel: the checks that do not need each other, and the ports, at once; the same
    report in the same order as one connection at a time, and never more connections open
    than allowed (counted by the client's sockets the kernel lists)."""

    def test_parallel_probe_reports_the_same_as_one_at_a_time(self):
        # Port 25 refuses the injection test's pipelined STARTTLS with a 421 (screening, as
        # `smtpsd dev` does): that is its answer, not a cut scan.
        server = self.new_server(limits={"max_connections_per_minute_per_ip": 0},
                                 extra_toml='[screening]\nimproper_pipelining = "refuse"\n')
        server.start()
        args = ["localhost", "--cafile", server.ca, "--json"]
        for role in ("submission", "smtp"):
            args += ["--port", str(server.ports[role])]
        one = probe(*args, "--parallel", "1")
        self.assertEqual(one.returncode, 0, one.stdout + one.stderr)
        default = probe(*args)
        self.assertEqual(default.returncode, 0, default.stdout + default.stderr)
        self.assertEqual(json.loads(default.stdout), json.loads(one.stdout))
        report = json.loads(one.stdout)
        self.assertEqual([port["mode"] for port in report["ports"]], ["starttls", "starttls"])
        self.assertEqual(finding_of(report, "starttls_injection", 1)["text"],
                         "not vulnerable to STARTTLS command injection: STARTTLS followed by a "
                         "command in the same packet was refused (421 4.5.0 Protocol error: "
                         "commands sent before the reply to STARTTLS (improper pipelining), "
                         "closing connection)")

    def test_connections_open_at_once_are_bounded(self):
        server = self.new_server()  # only for its development PKI; never started
        tls = os.path.join(server.dir, "tls")
        cert, key = os.path.join(tls, "server-ecdsa.pem"), os.path.join(tls, "server-ecdsa.key")
        counter = OpenConnections()
        fakes = [LimitedImplicitTls(cert, key, serve=1000, counter=counter) for _ in range(2)]
        counter.ports = {fake.port for fake in fakes}
        args = ["localhost", "--cafile", server.ca, "--parallel", "3"]
        for fake in fakes:
            fake.__enter__()
            self.addCleanup(fake.__exit__, None, None, None)
            args += ["--port", str(fake.port)]
        result = probe(*args)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        # Unbounded: two ports, three checks each at once.
        self.assertEqual(counter.most, 3)


class ProbeIncompleteScan(ServerTestCase):
    """A scan that could not run every check is INCONCLUSIVE (exit 4), never a PASS."""

    def assert_cut_not_judged(self, result, reason):
        """Exit 4, INCONCLUSIVE, the reason given, and nothing judged from the refusals."""
        self.assertEqual(result.returncode, 4, result.stdout + result.stderr)
        report = json.loads(result.stdout)
        self.assertEqual(report["verdict"], "INCONCLUSIVE", result.stdout)
        port = report["ports"][0]
        self.assertIn(reason, port["not_tested_reason"])
        self.assertTrue(port["not_tested"])
        judged = [(f["level"], f["text"]) for f in port["findings"]
                  if f["level"] not in ("OK", "INFO")]
        self.assertEqual(judged, [])
        return report

    def test_implicit_tls_port_closing_new_connections_is_inconclusive(self):
        # smtpsd's rate limit on its implicit TLS port: past 5 connections a minute, each
        # new one is closed at once (no 421 can be said before TLS). Not a failed handshake.
        server = self.new_server(limits={"max_connections_per_minute_per_ip": 5}).start()
        result = probe(f"localhost:{server.ports['submissions']}", "--cafile", server.ca,
                       "--json")
        report = self.assert_cut_not_judged(
            result, "the server closes new connections at once, without a TLS answer (a "
                    "connection or rate limit)")
        self.assertEqual(report["ports"][0]["mode"], "implicit")
        self.assertNotIn("tls", findings(report))

    def test_implicit_tls_port_refusing_with_421_or_a_close_is_inconclusive(self):
        server = self.new_server()  # only for its development PKI; never started
        tls = os.path.join(server.dir, "tls")
        cert, key = os.path.join(tls, "server-ecdsa.pem"), os.path.join(tls, "server-ecdsa.key")
        busy = "421 4.7.0 too many connections from you"
        # Cut after the default handshake, in the middle of the versions and suites; both
        # servers probed at once (each probe first waits 2 s for a greeting in clear).
        cases = ((busy, f'the server answered "{busy}" in clear instead of TLS'),
                 (None, "the server closes new connections at once"))
        fakes = [LimitedImplicitTls(cert, key, serve=12, reply=reply) for reply, _ in cases]
        running = []
        for fake in fakes:
            fake.__enter__()
            self.addCleanup(fake.__exit__, None, None, None)
            running.append(subprocess.Popen(
                [SMTPSCTL, "probe", f"localhost:{fake.port}", "--cafile", server.ca,
                 "--timeout", "5", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True))
        for (reply, reason), process in zip(cases, running):
            stdout, stderr = process.communicate(timeout=120)
            with self.subTest(reply=reply):
                self.assert_cut_not_judged(
                    subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr),
                    reason)
        # Refused from the first connection: nothing is known, not even the mode.
        with LimitedImplicitTls(cert, key, serve=0) as fake:
            result = probe(f"localhost:{fake.port}", "--cafile", server.ca, "--timeout", "5",
                           "--json")
        report = self.assert_cut_not_judged(
            result, "the server accepts connections and closes them at once, without a greeting "
                    "or a TLS answer (a connection or rate limit)")
        self.assertEqual(report["ports"][0]["not_tested"], ["all checks"])

    def test_rate_limited_server_is_inconclusive(self):
        # smtpsd's own rate limit: past 5 connections a minute, 421 4.7.0 and a close.
        server = self.new_server(limits={"max_connections_per_minute_per_ip": 5}).start()
        result = probe(f"localhost:{server.ports['submission']}", "--cafile", server.ca,
                       "--json")
        self.assertEqual(result.returncode, 4, result.stdout + result.stderr)
        report = json.loads(result.stdout)
        self.assertEqual(report["verdict"], "INCONCLUSIVE")
        port = report["ports"][0]
        self.assertIn("421", port["not_tested_reason"])
        self.assertTrue(port["not_tested"])
        self.assertIn("heartbleed", port["not_tested"])
        self.assertGreater(report["connections"], 5)
        # The checks that did not run say so, and nothing they half-saw is judged.
        self.assertIn("not tested: the server answered 421",
                      findings(report)["heartbleed"][-1][1])
        self.assertEqual(len(findings(report)["heartbleed"]), 1)
        self.assertNotIn("tls_modern", findings(report))

    def test_refused_after_the_first_connection_is_inconclusive(self):
        # A scripted server that greets once (STARTTLS offered), then stops listening.
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]

        def serve_once():
            conn, _ = listener.accept()
            listener.close()
            with conn, conn.makefile("rb") as lines:
                conn.sendall(b"220 fake.test ESMTP\r\n")
                lines.readline()
                conn.sendall(b"250-fake.test\r\n250 STARTTLS\r\n")
                lines.readline()
                conn.sendall(b"221 bye\r\n")

        thread = threading.Thread(target=serve_once, daemon=True)
        thread.start()
        result = probe(f"127.0.0.1:{port}", "--timeout", "5", "--json")
        thread.join(10)
        self.assertEqual(result.returncode, 4, result.stdout + result.stderr)
        report = json.loads(result.stdout)
        self.assertEqual((report["verdict"], report["connections"]), ("INCONCLUSIVE", 2))
        port_report = report["ports"][0]
        self.assertIn("connection failed", port_report["not_tested_reason"])
        self.assertIn("refused", port_report["not_tested_reason"].lower())
        self.assertEqual(port_report["not_tested"][0], "starttls_injection")

    def test_connection_budget_is_inconclusive_and_counted(self):
        server = self.new_server().start()
        target = f"localhost:{server.ports['submission']}"
        result = probe(target, "--cafile", server.ca, "--max-connections", "3", "--json")
        self.assertEqual(result.returncode, 4, result.stdout + result.stderr)
        report = json.loads(result.stdout)
        self.assertEqual((report["verdict"], report["connections"], report["max_connections"]),
                         ("INCONCLUSIVE", 3, 3))
        self.assertIn("connection budget of 3", report["ports"][0]["not_tested_reason"])
        text = probe(target, "--cafile", server.ca, "--max-connections", "3")
        self.assertEqual(text.returncode, 4, text.stdout + text.stderr)
        self.assertIn("connections: 3 (at most 3)", text.stdout)
        self.assertIn("verdict: INCONCLUSIVE", text.stdout)
        self.assertIn("INFO tls_TLSv1.2 not tested: connection budget of 3 exhausted",
                      text.stdout)

    def test_a_weakness_found_before_the_cut_still_fails(self):
        server = self.new_server(tls={"min_version": "TLSv1",
                                      "allow_unsafe_tls_versions": True}).start()
        # Enough connections to reach TLS 1.0 (accepted: HIGH), not to finish.
        result = probe(f"localhost:{server.ports['submissions']}", "--cafile", server.ca,
                       "--max-connections", "30", "--parallel", "1", "--json")
        report = json.loads(result.stdout)
        self.assertTrue(report["ports"][0]["not_tested"], result.stdout)
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        self.assertEqual(report["verdict"], "FAIL")


class ProbeFakeServer(ServerTestCase):
    def pki(self):
        server = self.new_server()  # only for its development PKI; never started
        tls = os.path.join(server.dir, "tls")
        return (os.path.join(tls, "server-ecdsa.pem"), os.path.join(tls, "server-ecdsa.key"),
                server.ca)

    def test_auth_before_tls_fails(self):
        cert, key, ca = self.pki()
        with FakeSmtp(cert, key, auth="PLAIN LOGIN", auth_before_tls=True) as fake:
            result = probe(f"localhost:{fake.port}", "--cafile", ca, "--json")
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        report = json.loads(result.stdout)
        self.assertEqual(report["ports"][0]["auth_before_tls"], ["PLAIN", "LOGIN"])
        severity, text = findings(report)["auth_before_tls"][0]
        self.assertEqual(severity, "FAIL")
        self.assertIn("before TLS", text)
        self.assertEqual(findings(report)["starttls_injection"][0][0], "PASS")

    def test_starttls_injection_fails(self):
        cert, key, ca = self.pki()
        with FakeSmtp(cert, key, auth="PLAIN LOGIN", injectable=True) as fake:
            result = probe(f"localhost:{fake.port}", "--cafile", ca, "--json")
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        report = json.loads(result.stdout)
        self.assertIs(report["ports"][0]["starttls_injection_vulnerable"], True)
        severity, text = findings(report)["starttls_injection"][0]
        self.assertEqual(severity, "FAIL")
        self.assertIn("CVE-2011-0411", text)
        self.assertEqual(findings(report)["auth_before_tls"][0][0], "PASS")

    def test_hostile_banner_and_ehlo_cannot_drive_the_terminal(self):
        cert, key, ca = self.pki()
        # ESC [ 2 J clears the screen, a bare CR rewrites the line, OSC sets the window
        # title, U+009B is CSI on its own, and RLO reverses what follows.
        with FakeSmtp(cert, key, name="fake.test\x1b[2J\rPASS all good",
                      ehlo_extra=["X-EVIL \x1b]0;pwned\x07 \u009b2J \u202e\x7f"]) as fake:
            result = subprocess.run([SMTPSCTL, "probe", f"localhost:{fake.port}", "--cafile",
                                     ca], capture_output=True, timeout=120)
        out = result.stdout.decode("utf-8")  # still UTF-8
        self.assertIn("greeting: 220 fake.test\\x1b[2J\\rPASS all good ESMTP fake", out)
        self.assertIn("X-EVIL \\x1b]0;pwned\\x07 \\xc2\\x9b2J \\xe2\\x80\\xae\\x7f", out)
        for char in out:
            code = ord(char)
            self.assertFalse((code < 0x20 and char != "\n") or 0x7f <= code <= 0x9f or
                             code == 0x202e, f"raw U+{code:04X} in:\n{out}")

    def test_no_tls_at_all_fails(self):
        cert, key, ca = self.pki()
        with FakeSmtp(cert, key, starttls=False, auth="PLAIN LOGIN",
                      auth_before_tls=True) as fake:
            result = probe(f"localhost:{fake.port}", "--cafile", ca, "--timeout", "3")
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        self.assertIn("port %d: no TLS" % fake.port, result.stdout)
        self.assertIn("FAIL no TLS: no STARTTLS offered and no TLS handshake", result.stdout)
        self.assertIn("FAIL AUTH PLAIN LOGIN offered before TLS", result.stdout)

    def test_421_to_ehlo_is_inconclusive_not_plain(self):
        # A server that greets, then closes the session at EHLO: its mode is unknown, which
        # is no "no TLS" finding.
        cert, key, ca = self.pki()
        with FakeSmtp(cert, key, ehlo_reply="421 4.7.0 too busy, try later") as fake:
            result = probe(f"localhost:{fake.port}", "--cafile", ca, "--timeout", "3",
                           "--json")
        self.assertEqual(result.returncode, 4, result.stdout + result.stderr)
        report = json.loads(result.stdout)
        self.assertEqual(report["verdict"], "INCONCLUSIVE")
        port = report["ports"][0]
        self.assertIn("421 4.7.0 too busy", port["not_tested_reason"])
        self.assertEqual(port["not_tested"], ["all checks"])
        self.assertNotIn("tls", findings(report))

    def test_a_cut_whose_reason_says_accepted_still_lists_the_groups_not_tested(self):
        # Cut after a few connections by a 421 whose text happens to say "accepted": the
        # groups checks are not tested for that reason, and say so.
        cert, key, ca = self.pki()
        busy = "421 4.7.0 no more connections accepted from you"
        with FakeSmtp(cert, key, busy=(4, busy)) as fake:
            result = probe(f"localhost:{fake.port}", "--cafile", ca, "--json")
        self.assertEqual(result.returncode, 4, result.stdout + result.stderr)
        report = json.loads(result.stdout)
        self.assertIn("named_groups and dh_size", report["ports"][0]["not_tested"])
        groups = [text for _, text in findings(report)["named_groups"]]
        self.assertEqual(groups, ["ECDHE groups not tested: the server answered " + busy,
                                  "TLSv1.3 groups not tested: the server answered " + busy])


class ProbeVulnerableFakes(ServerTestCase):
    """What OpenSSL 3 never answers, from a scripted server (fake_tls.py). The answers of
    servers that are not vulnerable come from real ones: smtpsd (ProbeSmtpsd) and
    `openssl s_server` (ProbeOpenSslServer)."""

    def test_heartbleed_ccs_injection_sslv2_and_drown_across_ports_are_found(self):
        server = self.new_server()  # only for its development PKI; never started
        tls = os.path.join(server.dir, "tls")
        cert, key = os.path.join(tls, "server-ecdsa.pem"), os.path.join(tls, "server-ecdsa.key")
        # A second port with the same key and no SSL 2.0 of its own, probed in the same run.
        with FakeTls(cert, key, heartbleed=True, ccs=True, ssl2=True) as fake, \
                FakeTls(cert, key) as same_key:
            result = probe(f"localhost:{fake.port}", "--port", str(same_key.port), "--cafile",
                           server.ca, "--json")
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        # Only the size of the leak is reported: nothing of the "memory" it sent.
        self.assertNotIn("SECRET", result.stdout)
        report = json.loads(result.stdout)
        port = report["ports"][0]
        checks = findings(report)
        self.assertIs(port["heartbleed_vulnerable"], True)
        self.assertEqual(checks["heartbleed"][0][0], "FAIL")
        self.assertIn("16403 bytes of the server's memory (not shown)", checks["heartbleed"][0][1])
        self.assertIs(port["ccs_injection_vulnerable"], True)
        self.assertEqual(checks["ccs_injection"][0][0], "FAIL")
        self.assertIn("CVE-2014-0224", checks["ccs_injection"][0][1])
        self.assertIs(port["sslv2_accepted"], True)
        self.assertEqual(checks["tls_SSLv2"][0][0], "FAIL")
        self.assertEqual(checks["drown"][0][0], "FAIL")
        # Its TLS 1.2, by hand: one suite on secp256r1.
        self.assertEqual(port["versions"]["TLSv1.2"]["ciphers"], ["ECDHE-RSA-AES128-GCM-SHA256"])
        self.assertEqual(port["groups_before_tls13"], ["secp256r1"])
        # One severity model: testssl.sh's levels and ids, a fix, the verdict from the worst.
        heartbleed = finding_of(report, "heartbleed")
        self.assertEqual((heartbleed["level"], heartbleed["testssl_id"]),
                         ("CRITICAL", "heartbleed"))
        self.assertIn("update OpenSSL", heartbleed["fix"])
        self.assertEqual(finding_of(report, "ccs_injection")["testssl_id"], "CCS")
        self.assertEqual(finding_of(report, "drown")["level"], "CRITICAL")
        self.assertEqual(report["worst_level"], "CRITICAL")
        self.assertEqual(report["verdict"], "FAIL")
        # DROWN reaches the other port through the key they share (CVE-2016-0800).
        other = report["ports"][1]
        self.assertEqual(other["port"], same_key.port)
        self.assertIs(other["sslv2_accepted"], False)
        drown = finding_of(report, "drown", port_index=1)
        self.assertEqual(drown["severity"], "FAIL")
        self.assertIn(f"port {fake.port} speaks SSL 2.0 with this port's key", drown["text"])

    def test_robot_oracles_are_found_strong_and_weak(self):
        # Two scripted Bleichenbacher oracles on RSA key exchange (fake_tls.py), one run: one
        # tells bad paddings apart (a reset for wrong first bytes, decrypt_error for a bad
        # separator): CRITICAL; one only tells good padding from bad: HIGH. A correct server
        # answers the five key exchanges alike (ProbeOpenSslServer, test_probe_vs_testssl).
        server = self.new_server()  # only for its development PKI; never started
        tls = os.path.join(server.dir, "tls")
        cert, key = os.path.join(tls, "server-rsa.pem"), os.path.join(tls, "server-rsa.key")
        with FakeTls(cert, key, robot="strong") as strong, FakeTls(cert, key, robot="weak") as weak:
            result = probe(f"localhost:{strong.port}", "--port", str(weak.port), "--cafile",
                           server.ca, "--json")
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        report = json.loads(result.stdout)
        self.assertEqual(report["verdict"], "FAIL")
        bad_record_mac = "alert bad_record_mac, then closed"
        decrypt_error = "alert decrypt_error, then closed"
        for index, level, answers in (
                (0, "CRITICAL", [bad_record_mac, "reset", decrypt_error, decrypt_error,
                                 bad_record_mac]),
                (1, "HIGH", [bad_record_mac, decrypt_error, decrypt_error, decrypt_error,
                             bad_record_mac])):
            with self.subTest(level=level):
                port = report["ports"][index]
                # TLS_RSA_WITH_AES_128_GCM_SHA256 beside the fake's ECDHE suite.
                self.assertIn("AES128-GCM-SHA256", port["versions"]["TLSv1.2"]["ciphers"])
                self.assertIs(port["robot_vulnerable"], True, result.stdout)
                self.assertEqual(port["robot_answers"], answers)
                robot = finding_of(report, "robot", port_index=index)
                self.assertEqual((robot["severity"], robot["level"], robot["testssl_id"]),
                                 ("FAIL", level, "ROBOT"))
                self.assertIn("vulnerable to ROBOT", robot["text"])
                self.assertIn("disable RSA key exchange", robot["fix"])
                self.assertIn("kRSA", robot["fix"])
        self.assertIn("strong oracle", finding_of(report, "robot", 0)["text"])
        self.assertIn("weak oracle", finding_of(report, "robot", 1)["text"])

    def test_odd_heartbeat_answers_are_not_tested_not_pass_or_fail(self):
        # Application data, or a heartbeat request rather than a response, back to the
        # overlong heartbeat: neither a refusal (PASS) nor a leak (FAIL). Two ports, one run.
        server = self.new_server()  # only for its development PKI; never started
        tls = os.path.join(server.dir, "tls")
        cert, key = os.path.join(tls, "server-ecdsa.pem"), os.path.join(tls, "server-ecdsa.key")
        with FakeTls(cert, key, heartbleed=True, heartbeat_answer=23) as data, \
                FakeTls(cert, key, heartbleed=True, heartbeat_answer=24) as request:
            result = probe(f"localhost:{data.port}", "--port", str(request.port), "--cafile",
                           server.ca, "--json")
        report = json.loads(result.stdout)
        for index, why in ((0, "an unexpected answer to the heartbeat (record type 23)"),
                           (1, "an unexpected answer to the heartbeat (record type 24)")):
            with self.subTest(port=report["ports"][index]["port"]):
                self.assertIsNone(report["ports"][index]["heartbleed_vulnerable"], result.stdout)
                heartbleed = finding_of(report, "heartbleed", port_index=index)
                self.assertEqual(heartbleed["severity"], "INFO")
                self.assertIn("not tested: " + why, heartbleed["text"])

    def test_endless_handshake_records_are_not_an_answer(self):
        # A server that streams handshake records after the heartbeat and the early
        # ChangeCipherSpec: the probe reads a bounded amount, then calls both "not tested".
        server = self.new_server()  # only for its development PKI; never started
        tls = os.path.join(server.dir, "tls")
        cert, key = os.path.join(tls, "server-ecdsa.pem"), os.path.join(tls, "server-ecdsa.key")
        with FakeTls(cert, key, heartbleed=True, stream=True) as fake:
            result = probe(f"localhost:{fake.port}", "--cafile", server.ca, "--json")
        report = json.loads(result.stdout)
        port = report["ports"][0]
        self.assertIsNone(port["heartbleed_vulnerable"], result.stdout)
        self.assertIsNone(port["ccs_injection_vulnerable"], result.stdout)
        checks = findings(report)
        self.assertIn("not tested: no answer to the heartbeat in 65536 bytes",
                      checks["heartbleed"][0][1])
        self.assertIn("not tested: no answer to an early ChangeCipherSpec in 65536 bytes",
                      checks["ccs_injection"][0][1])


class ProbeUsage(unittest.TestCase):
    def test_closed_port_exits_3(self):
        port = free_port()
        result = probe(f"127.0.0.1:{port}", "--timeout", "3")
        self.assertEqual(result.returncode, 3, result.stdout + result.stderr)
        self.assertIn(f"port {port} does not answer", result.stderr)
        self.assertIn("refused", result.stderr.lower())

    def test_usage_errors_exit_3(self):
        for args in ([], ["localhost:notaport"], ["localhost", "--timeout", "0"],
                     ["localhost", "--bogus"], ["localhost", "--max-connections", "0"],
                     ["localhost", "--max-connections", "many"],
                     ["localhost", "--parallel", "0"], ["localhost", "--parallel", "65"]):
            with self.subTest(args=args):
                result = probe(*args)
                self.assertEqual(result.returncode, 3, result.stderr)
                self.assertIn("usage: smtpsctl probe", result.stderr)


class ProbeOpenSslServer(unittest.TestCase):
    """`openssl s_server` as an implicit-TLS server with an RSA-1024 self-signed certificate
    (at OpenSSL security level 0, so it serves it)."""

    def test_a_weak_untrusted_chain_is_reported_as_both(self):
        target = weak_targets.s_server_rsa1024(self)
        result = probe(f"localhost:{target.port}", *target.probe_args, "--json")
        report = json.loads(result.stdout)
        checks = findings(report)
        # Untrusted (self-signed) and too small: two findings, each for what it is. OpenSSL
        # at its default level said only "EE certificate key too weak" for the chain.
        self.assertEqual(checks["certificate_chain"][0][0], "FAIL")
        self.assertIn("self-signed certificate", checks["certificate_chain"][0][1])
        self.assertNotIn("too weak", checks["certificate_chain"][0][1])
        self.assertEqual(checks["certificate_key"][0], ("FAIL", "RSA key of 1024 bits: too weak"))
        # OpenSSL 3 refuses a renegotiation the client starts, by default.
        self.assertEqual(checks["client_renegotiation"][0][0], "PASS")
        # Its DEFAULT suites include RSA key exchange (AES256-GCM-SHA384 and others), and
        # OpenSSL answers every badly padded premaster as a good one (RFC 5246 §7.4.7.1):
        # not a ROBOT oracle. The five answers are alike, each the Finished failing its MAC.
        port = report["ports"][0]
        self.assertIs(port["robot_vulnerable"], False, result.stdout)
        self.assertEqual(len(port["robot_answers"]), 5)
        self.assertEqual(set(port["robot_answers"]), {"alert bad_record_mac, then closed"})
        self.assertEqual(checks["robot"][0][0], "PASS")
        self.assertIn("not vulnerable to ROBOT", checks["robot"][0][1])
        # Whatever testssl.sh rated MEDIUM or worse on this server, the probe reports.
        assert_covers_testssl(self, report, target.name)

    def test_weak_dh_weak_curve_and_client_renegotiation(self):
        # A 1024-bit DH group (RFC 5114's, made at once), secp192r1 beside secp384r1, and
        # client-initiated renegotiation allowed: LOGJAM-weak DHE fails, the curve warns,
        # the renegotiation warns (a denial of service for one client to drive).
        target = weak_targets.s_server_dh1024(self)
        result = probe(f"localhost:{target.port}", *target.probe_args, "--json")
        report = json.loads(result.stdout)
        checks = findings(report)
        ports = report["ports"][0]
        self.assertEqual(ports["dh_prime_bits"], 1024)
        self.assertEqual(checks["dh_size"][0][0], "FAIL")
        self.assertIn("1024-bit prime: too weak (LOGJAM)", checks["dh_size"][0][1])
        self.assertEqual(sorted(ports["groups_before_tls13"]), ["secp192r1", "secp384r1"])
        self.assertEqual(checks["weak_group"][0][0], "WARN")
        self.assertIn("secp192r1", checks["weak_group"][0][1])
        self.assertEqual(ports["groups_tls13"], ["secp384r1"])  # 1.3 never takes secp192r1
        self.assertIs(ports["client_renegotiation_accepted"], True)
        self.assertEqual(checks["client_renegotiation"][0][0], "WARN")
        # Levels as testssl.sh rates them (a 1024-bit DH group: HIGH here, LOGJAM), its ids,
        # and a fix on each finding that is not OK or INFO.
        for check, level, testssl_id in (("dh_size", "HIGH", "LOGJAM"),
                                         ("weak_group", "LOW", "PFS_ECDHE_curves"),
                                         ("client_renegotiation", "MEDIUM",
                                          "secure_client_renego")):
            finding = finding_of(report, check)
            self.assertEqual((finding["level"], finding["testssl_id"]), (level, testssl_id))
            self.assertTrue(finding["fix"], finding)
        self.assertEqual(finding_of(report, "named_groups")["fix"], "")
        self.assertIs(ports["heartbleed_vulnerable"], False)
        self.assertIs(ports["ccs_injection_vulnerable"], False)
        assert_covers_testssl(self, report, target.name)


if __name__ == "__main__":
    unittest.main()
