"""MTA-STS (RFC 8461) policy discovery with the real binary: `smtpsctl mta-sts check` looks a
domain's policy up as delivery does (delivery/mta_sts.h): the `_mta-sts` TXT record from the
test DNS server (dnsmasq), the policy from a small HTTPS server on a free loopback port with a
certificate from the test's CA ([delivery] ca_file, mta_sts_port), the on-disk cache (--cache).

Covered: a policy fetched, then served from the cache with the HTTPS server gone; a new TXT id
fetches again; a redirect, a policy not served as text/plain and an oversized one are refused
(sts-policy-fetch-error / sts-policy-invalid); a certificate not from the trusted CA, or for
another name, is refused (sts-webpki-invalid); a server that never answers, or trickles its
answer, is given up on at the fetch timeout. `smtpsctl mta-sts policy` prints what we
publish, and the policy it prints is one the check accepts. The server applies policies to
delivery (StsDelivery, with the TLS report of a testing-mode mismatch) and refreshes the
cached ones before they expire without any mail (StsRefresh).
"""

import http.server
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from certificates import issue_leaf
from dns_server import DnsServer
from harness import SMTPSD, Server, ServerTestCase
from test_mx_lmtp import issue_certificate, mx_toml
from test_onward import submit
from test_tls_reports import tls_reports_toml, wait_mailed_report

SMTPSCTL = os.environ.get("SMTPSCTL_BIN") or os.path.join(os.path.dirname(SMTPSD), "smtpsctl")

POLICY_ONE = b"version: STSv1\r\nmode: enforce\r\nmx: mx.example.test\r\nmax_age: 86400\r\n"
POLICY_TWO = b"version: STSv1\nmode: testing\nmx: *.example.test\nmax_age: 3600\n"


class PolicyHost:
    """https://mta-sts.example.test:PORT/ on 127.0.0.1: answers with `self.reply` (status,
    headers, body), which a test changes between fetches. A context manager."""

    def __init__(self, certificate, key):
        self.reply = (200, {"Content-Type": "text/plain"}, POLICY_ONE)
        self.replies = {}  # by the Host asked for, instead of reply
        self.requests = 0
        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                host.requests += 1
                status, headers, body = host.replies.get(
                    (self.headers.get("Host") or "").split(":")[0], host.reply)
                if self.path != "/.well-known/mta-sts.txt":
                    status, headers, body = 404, {"Content-Type": "text/plain"}, b"not here\n"
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate, key)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class MtaStsCheck(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="smtpsd-mta-sts-")
        self.server = Server(os.path.join(self.tmp, "server"))  # its config and test CA only
        self.tls = os.path.join(self.server.dir, "tls")
        self.certificate, self.key = issue_leaf(os.path.join(self.tmp, "leaf"), self.server.ca,
                                                os.path.join(self.tls, "ca.key"),
                                                ["mta-sts.example.test"])
        self.cache = os.path.join(self.tmp, "cache")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def dns(self, sts_id="one"):
        txt = {"_mta-sts.example.test": f"v=STSv1; id={sts_id};"}
        return DnsServer(txt=txt, a={"mta-sts.example.test": "127.0.0.1"})

    def configure(self, dns, port):
        self.server.extra_toml = "\n".join([
            "[dns]", f'servers = "{dns.server}"', 'validation = "no"', "",
            "[delivery]", f'ca_file = "{self.server.ca}"', f"mta_sts_port = {port}", ""])
        self.server.write_config()

    def check(self, cache=True):
        args = [SMTPSCTL, "mta-sts", "check", "example.test", "--config", self.server.config_path]
        if cache:
            args += ["--cache", self.cache]
        return subprocess.run(args, capture_output=True, text=True, timeout=60)

    def test_fetched_then_cached_then_refetched_on_a_new_id(self):
        with PolicyHost(self.certificate, self.key) as host, self.dns("one") as dns:
            port = host.port
            self.configure(dns, port)
            first = self.check()
            self.assertEqual(first.returncode, 0, first.stdout + first.stderr)
            self.assertIn("example.test: MTA-STS policy id one from "
                          "https://mta-sts.example.test/.well-known/mta-sts.txt", first.stdout)
            self.assertIn("  mode: enforce\n  mx: mx.example.test\n  max_age: 86400\n",
                          first.stdout)
            self.assertEqual(host.requests, 1)
            with open(os.path.join(self.cache, "example.test"), "rb") as f:
                self.assertTrue(f.read().endswith(POLICY_ONE))
            self.assertEqual(os.stat(self.cache).st_mode & 0o777, 0o700)
        # The HTTPS server is gone (its port closed): the cached policy serves.
        with self.dns("one") as dns:
            self.configure(dns, port)
            cached = self.check()
            self.assertEqual(cached.returncode, 0, cached.stdout + cached.stderr)
            self.assertIn(f"policy id one from the cache {self.cache}", cached.stdout)
            self.assertIn("  mode: enforce\n", cached.stdout)
        # A new id in DNS: fetched again, the new policy replaces the cached one.
        with PolicyHost(self.certificate, self.key) as host, self.dns("two") as dns:
            host.reply = (200, {"Content-Type": "text/plain; charset=utf-8"}, POLICY_TWO)
            self.configure(dns, host.port)
            changed = self.check()
            self.assertEqual(changed.returncode, 0, changed.stdout + changed.stderr)
            self.assertIn("policy id two from https://", changed.stdout)
            self.assertIn("  mode: testing\n  mx: *.example.test\n  max_age: 3600\n",
                          changed.stdout)
            self.assertEqual(host.requests, 1)

    def test_redirect_wrong_type_and_oversized_policy_are_refused(self):
        with PolicyHost(self.certificate, self.key) as host, self.dns() as dns:
            self.configure(dns, host.port)
            cases = [
                ((301, {"Location": "https://elsewhere.example.test/policy.txt"}, b""),
                 "fetch failed: sts-policy-fetch-error: https://mta-sts.example.test:"
                 f"{host.port}/.well-known/mta-sts.txt: HTTP 301 (a redirect: not followed)"),
                ((200, {"Content-Type": "text/html"}, POLICY_ONE),
                 "fetch failed: sts-policy-invalid: https://mta-sts.example.test:"
                 f"{host.port}/.well-known/mta-sts.txt: Content-Type must be text/plain, "
                 "not text/html"),
                ((200, {"Content-Type": "text/plain"}, POLICY_ONE + b"x: " + b"y" * 70000 + b"\n"),
                 "fetch failed: sts-policy-invalid: policy larger than 65536 bytes"),
            ]
            for reply, failure in cases:
                with self.subTest(reply=reply[:2]):
                    host.reply = reply
                    result = self.check(cache=False)
                    self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
                    self.assertIn("example.test: no MTA-STS policy\n", result.stdout)
                    self.assertIn(failure, result.stdout)

    def test_untrusted_or_misnamed_certificate_is_refused(self):
        other_ca = os.path.join(self.tmp, "other-ca")
        os.makedirs(other_ca)
        ca_cert, ca_key = os.path.join(other_ca, "ca.pem"), os.path.join(other_ca, "ca.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca_key, "-out", ca_cert,
                        "-days", "2", "-subj", "/CN=Other test CA"],
                       check=True, capture_output=True)
        untrusted = issue_leaf(os.path.join(self.tmp, "untrusted"), ca_cert, ca_key,
                               ["mta-sts.example.test"])
        misnamed = issue_leaf(os.path.join(self.tmp, "misnamed"), self.server.ca,
                              os.path.join(self.tls, "ca.key"), ["www.example.test"])
        for certificate, key in (untrusted, misnamed):
            with self.subTest(certificate=certificate), PolicyHost(certificate, key) as host, \
                    self.dns() as dns:
                self.configure(dns, host.port)
                result = self.check(cache=False)
                self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
                self.assertIn("example.test: no MTA-STS policy\n", result.stdout)
                self.assertIn("fetch failed: sts-webpki-invalid: ", result.stdout)
                self.assertEqual(host.requests, 0)

    def test_a_policy_host_that_never_answers_or_trickles_is_given_up_on_in_time(self):
        # It accepts the connection and says nothing (no TLS handshake): the fetch ends at
        # its timeout as a fetch error, never hangs delivery (default 20 s; 1 s here).
        with socket.socket() as silent, self.dns() as dns:
            silent.bind(("127.0.0.1", 0))
            silent.listen(8)
            self.configure(dns, silent.getsockname()[1])
            started = time.monotonic()
            result = subprocess.run([SMTPSCTL, "mta-sts", "check", "example.test", "--config",
                                     self.server.config_path, "--timeout", "1"],
                                    capture_output=True, text=True, timeout=60)
            elapsed = time.monotonic() - started
            self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
            self.assertIn("example.test: no MTA-STS policy\n", result.stdout)
            self.assertIn("fetch failed: sts-policy-fetch-error: ", result.stdout)
            self.assertGreaterEqual(elapsed, 1)  # the timeout ended it
            self.assertLess(elapsed, 15)  # 15 times the timeout, below the 20 s default

            # TLS and the headers at once, then the policy a byte every 0.2 s (whole after
            # ~14 s, and accepted if it got that far): the fetch's bound covers the transfer,
            # not only the connection, so a slow server cannot hold a delivery thread.
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.certificate, self.key)
            stop = threading.Event()
            self.addCleanup(stop.set)

            def trickle(listener):
                try:
                    connection, _ = listener.accept()
                    with context.wrap_socket(connection, server_side=True) as tls:
                        request = b""
                        while b"\r\n\r\n" not in request:
                            chunk = tls.recv(4096)
                            if not chunk:
                                return
                            request += chunk
                        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                    b"Content-Length: %d\r\n\r\n" % len(POLICY_ONE))
                        for octet in POLICY_ONE:
                            if stop.wait(0.2):
                                return
                            tls.sendall(bytes([octet]))
                except OSError:
                    pass  # the client gave up and closed

            with socket.socket() as slow:
                slow.bind(("127.0.0.1", 0))
                slow.listen(8)
                server = threading.Thread(target=trickle, args=(slow,), daemon=True)
                server.start()
                self.configure(dns, slow.getsockname()[1])
                result = subprocess.run([SMTPSCTL, "mta-sts", "check", "example.test",
                                         "--config", self.server.config_path, "--timeout", "1"],
                                        capture_output=True, text=True, timeout=60)
                stop.set()
                server.join(timeout=10)
            self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
            self.assertIn("example.test: no MTA-STS policy\n", result.stdout)
            self.assertRegex(result.stdout, r"fetch failed: sts-policy-fetch-error: .*[Tt]ime")

    def test_the_published_policy_is_one_the_check_accepts(self):
        policy_file = os.path.join(self.tmp, "mta-sts.txt")
        printed = subprocess.run(
            [SMTPSCTL, "mta-sts", "policy", "example.test", "--mode", "enforce", "--mx",
             "MX.example.test.", "--mx", "*.backup.example.test", "--max-age", "1209600",
             "--rua", "mailto:tlsrpt@example.test", "--output", policy_file],
            capture_output=True, text=True, timeout=30)
        self.assertEqual(printed.returncode, 0, printed.stderr)
        self.assertRegex(printed.stdout,
                         r'\n_mta-sts\.example\.test\. IN TXT "v=STSv1; id=\d{8}T\d{6}Z"\n')
        self.assertIn('_smtp._tls.example.test. IN TXT "v=TLSRPTv1; '
                      'rua=mailto:tlsrpt@example.test"\n', printed.stdout)
        with open(policy_file, "rb") as f:
            published = f.read()
        self.assertEqual(published, b"version: STSv1\r\nmode: enforce\r\nmx: mx.example.test\r\n"
                                    b"mx: *.backup.example.test\r\nmax_age: 1209600\r\n")
        with PolicyHost(self.certificate, self.key) as host, self.dns() as dns:
            host.reply = (200, {"Content-Type": "text/plain"}, published)
            self.configure(dns, host.port)
            result = self.check(cache=False)
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
            self.assertIn("  mx: mx.example.test\n  mx: *.backup.example.test\n", result.stdout)


class StsDelivery(ServerTestCase):
    """MTA-STS applied to MX delivery (RFC 8461 §4-5): an enforce policy keeps mail away from
    an MX host it does not name and requires a certificate valid for the one it does (a
    named host whose certificate names another host gets nothing, not even in plain); a
    testing policy only reports, in the TLS report (RFC 8460) of its domain. Once fetched, a
    policy is applied from the cache with the policy host down (RFC 8461 §5.1). The receiver is
    a second smtpsd whose certificate names mx.sts.test, from its CA, which the sender trusts
    for HTTPS and SMTP alike."""

    def test_enforce_skips_unnamed_hosts_and_defers_when_none_is_named(self):
        remote = self.new_server(domains=[("sts.test", ["carol"]), ("rogue.test", ["carol"]),
                                          ("loose.test", ["carol"]), ("badcert.test", ["carol"])])
        tls = os.path.join(remote.dir, "tls")
        chain, key = issue_certificate(tls, os.path.join(remote.dir, "issued"), "mx.sts.test")
        os.replace(chain, os.path.join(tls, "server-ecdsa.pem"))
        os.replace(key, os.path.join(tls, "server-ecdsa.key"))
        remote.start()
        domains = ("sts.test", "rogue.test", "loose.test", "badcert.test")
        names = [f"mta-sts.{domain}" for domain in domains]
        certificate, host_key = issue_leaf(os.path.join(self.tmp, "https"), remote.ca,
                                           os.path.join(tls, "ca.key"), names)
        enforce = b"version: STSv1\nmode: enforce\nmx: mx.sts.test\nmax_age: 86400\n"
        testing = b"version: STSv1\nmode: testing\nmx: mx.sts.test\nmax_age: 86400\n"
        # It names its MX host, whose certificate (the receiver's) is for mx.sts.test.
        badcert = b"version: STSv1\nmode: enforce\nmx: mx.badcert.test\nmax_age: 86400\n"
        with PolicyHost(certificate, host_key) as host, DnsServer(
                mx={"sts.test": [(5, "other.sts.test"), (10, "mx.sts.test")],
                    "rogue.test": [(10, "other.sts.test")],
                    "loose.test": [(10, "other.sts.test")],
                    "badcert.test": [(10, "mx.badcert.test")]},
                a={"mx.sts.test": "127.0.0.1", "other.sts.test": "127.0.0.1",
                   "mx.badcert.test": "127.0.0.1",
                   **{name: "127.0.0.1" for name in names}},
                txt={**{f"_mta-sts.{domain}": "v=STSv1; id=1;"
                        for domain in domains},
                     "_smtp._tls.loose.test": "v=TLSRPTv1; rua=mailto:demo@localhost"},
                directory=self.tmp) as dns:
            host.replies = {"mta-sts.sts.test": (200, {"Content-Type": "text/plain"}, enforce),
                            "mta-sts.rogue.test": (200, {"Content-Type": "text/plain"}, enforce),
                            "mta-sts.loose.test": (200, {"Content-Type": "text/plain"}, testing),
                            "mta-sts.badcert.test": (200, {"Content-Type": "text/plain"},
                                                     badcert)}
            # No connection is reused: each message is routed by the policy again.
            local = self.new_server(extra_toml=mx_toml(dns, remote.ports["smtp"],
                                                       ca_file=remote.ca, retry=(60,),
                                                       connection_cache=0)
                                    + f"mta_sts_port = {host.port}\n"
                                    + tls_reports_toml(2))
            local.start()
            for domain in domains:
                submit(local, [f"carol@{domain}"], subject=domain)
            # The named host, verified, though the unnamed one is preferred.
            remote.wait_delivered(1, "carol@sts.test")
            local.wait_log(r"event=sts_mx_refused domain=sts\.test host=other\.sts\.test "
                           r"mode=enforce")
            local.wait_log(r"event=delivered id=\S+ rcpt=carol@sts\.test to=smtp detail=\"relay="
                           r"mx\.sts\.test\[127\.0\.0\.1\]:\d+ tls=TLSv1\.3 \S+ verified .*"
                           r"policy=mta-sts")
            # No named host: deferred, never sent to the unnamed one.
            local.wait_log(r"event=deferred id=\S+ rcpt=carol@rogue\.test detail=\"MX host "
                           r"other\.sts\.test is not named by the MTA-STS policy of rogue\.test\""
                           r" policy=mta-sts")
            # Testing: delivered to the unnamed host all the same (its certificate does not
            # name it: unverified), only reported.
            remote.wait_delivered(1, "carol@loose.test")
            local.wait_log(r"event=sts_mx_mismatch domain=loose\.test host=other\.sts\.test "
                           r"mode=testing")
            local.wait_log(r"event=delivered id=\S+ rcpt=carol@loose\.test .* unverified .*"
                           r"policy=mta-sts")
            self.assertEqual(remote.delivered("carol@rogue.test"), [])
            # Named, but its certificate does not verify for its name: deferred, saying why;
            # neither sent over that TLS nor in plain text.
            local.wait_log(r"event=tls_refused domain=badcert\.test host=mx\.badcert\.test"
                           r"\[127\.0\.0\.1\]:\d+ stage=\S+ level=verify ")
            local.wait_log(r"event=deferred id=\S+ rcpt=carol@badcert\.test detail=\"TLS policy "
                           r"verify: the certificate of mx\.badcert\.test\[127\.0\.0\.1\]:\d+ "
                           r"does not verify: [^\"]*mismatch[^\"]*\" policy=mta-sts")
            self.assertEqual(remote.delivered("carol@badcert.test"), [])
            self.assertNotRegex(local.log(), r"event=(tls_fallback|delivered) [^\n]*badcert\.test")
            # The testing-mode session is reported (RFC 8460 §4.3.2.1 via RFC 8461 §5): the
            # policy as it stood, one failed session for the host the policy does not name,
            # none successful.
            (report,) = wait_mailed_report(local, "loose.test")
            (entry,) = report["policies"]
            self.assertEqual(entry["policy"]["policy-type"], "sts")
            self.assertEqual(entry["policy"]["policy-domain"], "loose.test")
            self.assertIn("mode: testing", entry["policy"]["policy-string"])
            self.assertIn("mx: mx.sts.test", entry["policy"]["policy-string"])
            self.assertEqual(entry["summary"], {"total-successful-session-count": 0,
                                                "total-failure-session-count": 1})
            self.assertEqual(entry["failure-details"], [
                {"result-type": "validation-failure", "receiving-mx-hostname": "other.sts.test",
                 "receiving-ip": "127.0.0.1", "failed-session-count": 1}])
            policy = subprocess.run([SMTPSCTL, "tls", "policy", "sts.test", "--config",
                                     local.config_path], capture_output=True, text=True,
                                    timeout=60).stdout
            self.assertIn("MTA-STS: mode enforce, mx mx.sts.test, id 1 (", policy)
            self.assertIn("host other.sts.test (preference 5): 127.0.0.1\n", policy)
            self.assertIn("policy mta-sts (enforce): NOT named by the policy; this host is not "
                          "used", policy)
            self.assertIn("policy mta-sts (enforce): named by the policy; STARTTLS and a "
                          "certificate valid for mx.sts.test required", policy)

            # The policy host goes away: the policies fetched above, cached, still decide
            # (RFC 8461 §5.1): the named host gets the mail, the unnamed one nothing.
            host.stop()
            requests = host.requests
            offset = len(local.log())
            cached = submit(local, ["carol@sts.test"], subject="cached")
            refused = submit(local, ["carol@rogue.test"], subject="cached rogue")
            remote.wait_delivered(2, "carol@sts.test")
            local.wait_log(rf"event=delivered id={cached} rcpt=carol@sts\.test to=smtp detail="
                           r"\"relay=mx\.sts\.test\[127\.0\.0\.1\]:\d+ tls=TLSv1\.3 \S+ verified "
                           r".*policy=mta-sts")
            local.wait_log(rf"event=deferred id={refused} rcpt=carol@rogue\.test detail=\"MX "
                           r"host other\.sts\.test is not named by the MTA-STS policy of "
                           r"rogue\.test\" policy=mta-sts")
            later = local.log()[offset:]
            self.assertRegex(later, r"event=sts_mx_refused domain=sts\.test host=other\.sts\.test ")
            self.assertNotIn("event=sts_policy_failed", later)  # not even looked for
            self.assertEqual(host.requests, requests)
            self.assertEqual(remote.delivered("carol@rogue.test"), [])


class StsRefresh(ServerTestCase):
    """The cached policies are refreshed before they expire with no mail going anywhere (RFC
    8461 §10.2): every [delivery] mta_sts_refresh the server fetches again each policy past
    half its max_age; a failed fetch keeps the cached one."""

    def test_a_policy_past_half_its_age_is_fetched_again_without_mail(self):
        server = self.new_server()
        certificate, key = issue_leaf(os.path.join(self.tmp, "https"), server.ca,
                                      os.path.join(server.dir, "tls", "ca.key"),
                                      ["mta-sts.example.test"])
        # A policy fetched 100 s ago with a max_age of 150: past half its age, unexpired.
        cache = os.path.join(server.dir, "mta-sts")
        os.makedirs(cache, mode=0o700)
        fetched = int(time.time()) - 100
        old = b"version: STSv1\nmode: enforce\nmx: mx.example.test\nmax_age: 150\n"
        cached = os.path.join(cache, "example.test")
        with open(cached, "wb") as f:
            f.write(b"smtpsd mta-sts cache 1\nid one\nfetched %d\n\n" % fetched + old)
        with PolicyHost(certificate, key) as host, DnsServer(
                txt={"_mta-sts.example.test": "v=STSv1; id=one;"},
                a={"mta-sts.example.test": "127.0.0.1"}, directory=self.tmp) as dns:
            host.reply = (500, {"Content-Type": "text/plain"}, b"down\n")
            server.extra_toml = "\n".join([
                "[dns]", f'servers = "{dns.server}"', 'validation = "no"', "",
                "[delivery]", f'ca_file = "{server.ca}"', f"mta_sts_port = {host.port}",
                "mta_sts_refresh = 1", ""])
            server.write_config()
            server.start()
            # The policy host fails: the cached policy stays, as it was.
            server.wait_log(r"event=sts_refresh_failed domain=example\.test "
                            r"type=sts-policy-fetch-error expires_at=%d detail=\"\S+ HTTP 500"
                            % (fetched + 150))
            with open(cached, "rb") as f:
                self.assertEqual(f.read().split(b"\n")[2], b"fetched %d" % fetched)
            self.assertGreaterEqual(host.requests, 1)
            # It answers: fetched again, the new policy and fetch time on disk.
            host.reply = (200, {"Content-Type": "text/plain"}, POLICY_TWO)
            before = int(time.time())
            server.wait_log(r"event=sts_policy_refreshed domain=example\.test id=one "
                            r"fetched_at=\d+ expires_at=\d+")
            with open(cached, "rb") as f:
                header, body = f.read().split(b"\n\n", 1)
            self.assertGreaterEqual(int(header.split(b"\n")[2].split()[1]), before)
            self.assertEqual(body, POLICY_TWO)
            requests = host.requests
            # Fresh for another half of 3600 s: not fetched again (two refresh rounds later).
            time.sleep(2.5)
            self.assertEqual(host.requests, requests)
            self.assertNotIn("event=delivered", server.log())


if __name__ == "__main__":
    unittest.main()
