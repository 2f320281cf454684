"""Metrics: the Prometheus endpoint ([metrics] address) with the real binary.

The counters a monitoring user would watch move when mail flows, AUTH fails and a TLS
handshake fails; the queue gauges follow the queue; the endpoint answers only GET /metrics,
refuses a non-loopback address unless told, and keeps serving SMTP while a scraper stalls."""

import base64
import os
import re
import smtplib
import socket
import ssl
import subprocess
import time
import unittest
import urllib.error
import urllib.request
import warnings

from certificates import install_chain, issue_leaf
from harness import SMTPSD, ServerTestCase, make_message

METRICS_LISTENING = re.compile(r"event=metrics_listening address=(\S+) port=(\d+)")
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$')


def demo_password(server):
    with open(os.path.join(server.dir, "demo.password")) as f:
        return f.read().strip()


def parse(text):
    """{(name, frozenset of label pairs): value}, checking the 0.0.4 format on the way."""
    samples = {}
    typed = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram"), line
            typed.add(name)
            continue
        if line.startswith("# HELP ") or not line:
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, labels, value = match.groups()
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in typed or base in typed, f"sample without TYPE: {line!r}"
        pairs = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels or ""))
        samples[(name, pairs)] = float(value)
    return samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


class MetricsTestCase(ServerTestCase):
    def metrics_server(self, address="127.0.0.1:0", **kwargs):
        extra = kwargs.pop("extra_toml", "")
        server = self.new_server(extra_toml=f'[metrics]\naddress = "{address}"\n' + extra,
                                 **kwargs)
        return server

    def metrics_url(self, server, path="/metrics"):
        host, port = METRICS_LISTENING.search(server.log()).groups()
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}{path}"

    def scrape(self, server):
        with urllib.request.urlopen(self.metrics_url(server), timeout=10) as response:
            self.assertEqual(response.status, 200)
            self.assertEqual(response.headers["Content-Type"],
                             "text/plain; version=0.0.4; charset=utf-8")
            return parse(response.read().decode())

    def wait_for(self, server, predicate, timeout=10):
        deadline = time.time() + timeout
        while True:
            samples = self.scrape(server)
            if predicate(samples) or time.time() > deadline:
                return samples
            time.sleep(0.05)


class Counters(MetricsTestCase):
    def test_counters_move_with_mail_auth_and_handshakes(self):
        with self.metrics_server() as server:
            before = self.scrape(server)
            self.assertEqual(value(before, "smtpsd_messages_accepted_total"), 0)
            self.assertEqual(value(before, "smtpsd_connections_open", role="smtp"), 0)

            # Two messages on the MX port over STARTTLS, one of them to two recipients,
            # and one recipient refused (unknown user: 550).
            client = server.smtp("smtp")
            client.sendmail("you@example.org", ["demo@localhost"], make_message("one"))
            refused = client.sendmail("you@example.org", ["demo@localhost", "nobody@localhost"],
                                      make_message("two"))
            self.assertIn("nobody@localhost", refused)
            client.quit()

            # AUTH: one failure and one success on submissions (implicit TLS).
            client = server.smtps()
            with self.assertRaises(smtplib.SMTPAuthenticationError) as refused:
                client.login("demo@localhost", "not-the-password")
            self.assertEqual(refused.exception.smtp_code, 535)
            client.quit()
            client = server.smtps()
            client.login("demo@localhost", demo_password(server))
            client.sendmail("demo@localhost", ["demo@localhost"],
                            make_message("three", sender="demo@localhost"))
            client.quit()

            # A failed handshake: TLS 1.1 only is refused (protocol_version), and a client
            # that closes in the middle of one (eof).
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            with warnings.catch_warnings():  # deprecated: that is the point
                warnings.simplefilter("ignore", DeprecationWarning)
                context.minimum_version = ssl.TLSVersion.TLSv1
                context.maximum_version = ssl.TLSVersion.TLSv1_1
            try:
                context.set_ciphers("ALL:@SECLEVEL=0")
            except ssl.SSLError:
                pass
            with socket.create_connection(("127.0.0.1", server.ports["submissions"]), 10) as s:
                with self.assertRaises((ssl.SSLError, OSError)):
                    context.wrap_socket(s).do_handshake()
            with socket.create_connection(("127.0.0.1", server.ports["submissions"]), 10) as s:
                s.sendall(b"\x16\x03\x01\x00")  # half a record header, then gone
            server.wait_delivered(3)

            after = self.wait_for(server, lambda m: value(
                m, "smtpsd_tls_handshake_failures_total", role="submissions", reason="eof") >= 1
                and value(m, "smtpsd_connections_open", role="submissions") == 0
                and value(m, "smtpsd_delivery_attempts_total", result="delivered",
                          transport="maildir") >= 3
                # the attempt is counted before the scheduler forgets the message
                and value(m, "smtpsd_queue_messages") == 0)
            self.assertEqual(value(after, "smtpsd_connections_accepted_total", role="smtp"), 1)
            self.assertEqual(value(after, "smtpsd_connections_accepted_total",
                                   role="submissions"), 4)
            self.assertEqual(value(after, "smtpsd_connections_open", role="smtp"), 0)
            self.assertEqual(value(after, "smtpsd_tls_handshakes_total", role="smtp",
                                   version="TLSv1.3"), 1)
            self.assertEqual(value(after, "smtpsd_tls_handshakes_total", role="submissions",
                                   version="TLSv1.3"), 2)
            self.assertEqual(value(after, "smtpsd_tls_handshake_failures_total",
                                   role="submissions", reason="protocol_version"), 1)
            self.assertEqual(value(after, "smtpsd_tls_handshake_failures_total",
                                   role="submissions", reason="eof"), 1)
            self.assertGreaterEqual(value(after, "smtpsd_auth_total", mechanism="PLAIN",
                                          result="failure")
                                    + value(after, "smtpsd_auth_total", mechanism="LOGIN",
                                            result="failure"), 1)
            self.assertEqual(value(after, "smtpsd_auth_total", mechanism="PLAIN",
                                   result="success")
                             + value(after, "smtpsd_auth_total", mechanism="LOGIN",
                                     result="success"), 1)
            self.assertEqual(value(after, "smtpsd_messages_accepted_total"), 3)
            self.assertEqual(value(after, "smtpsd_recipients_accepted_total"), 3)
            self.assertEqual(value(after, "smtpsd_smtp_replies_total", code="550"), 1)
            # smtplib tries PLAIN, then LOGIN: one or two 535s
            self.assertGreaterEqual(value(after, "smtpsd_smtp_replies_total", code="535"), 1)
            self.assertEqual(value(after, "smtpsd_accept_to_250_seconds_count"), 3)
            self.assertEqual(value(after, "smtpsd_accept_to_250_seconds_bucket", le="+Inf"), 3)
            self.assertGreater(value(after, "smtpsd_accept_to_250_seconds_sum"), 0)
            self.assertEqual(value(after, "smtpsd_delivery_attempts_total", result="delivered",
                                   transport="maildir"), 3)
            self.assertGreaterEqual(value(after, "smtpsd_delivery_seconds_count",
                                          transport="maildir"), 3)
            self.assertEqual(value(after, "smtpsd_queue_messages"), 0)

    def test_queue_gauges_show_waiting_mail(self):
        # Mail for another domain waits in the queue (the test's DNS is a closed port).
        with self.metrics_server() as server:
            client = server.smtps()
            client.login("demo@localhost", demo_password(server))
            client.sendmail("demo@localhost", ["someone@example.net"],
                            make_message("waits", sender="demo@localhost"))
            client.quit()
            time.sleep(1.2)
            samples = self.wait_for(server, lambda m: value(
                m, "smtpsd_delivery_attempts_total", result="deferred", transport="other")
                + value(m, "smtpsd_delivery_attempts_total", result="deferred",
                        transport="smtp") >= 1)
            self.assertEqual(value(samples, "smtpsd_queue_messages"), 1)
            self.assertGreaterEqual(value(samples, "smtpsd_queue_oldest_age_seconds"), 1)
            self.assertLess(value(samples, "smtpsd_queue_oldest_age_seconds"), 120)


    def test_certificate_expiry_seconds_per_certificate_follow_a_renewal(self):
        with self.metrics_server() as server:
            samples = self.scrape(server)
            expiry = {dict(labels)["file"]: v for (name, labels), v in samples.items()
                      if name == "smtpsd_certificate_expiry_seconds"}
            self.assertEqual(sorted(os.path.basename(f) for f in expiry),
                             ["server-ecdsa.pem", "server-rsa.pem"])
            for seconds in expiry.values():  # the dev certificates: 825 days
                self.assertGreater(seconds, 800 * 86400)
            # A renewal with a 5-day certificate shows at the next scrape after the reload.
            tls = os.path.join(server.dir, "tls")
            leaf, _ = issue_leaf(os.path.join(tls, "short"), server.ca,
                                 os.path.join(tls, "ca.key"), ["localhost"],
                                 key=os.path.join(tls, "server-ecdsa.key"), start=0,
                                 end=5 * 86400)
            install_chain(leaf, server.ca, os.path.join(tls, "server-ecdsa.pem"))
            samples = self.wait_for(server, lambda m: any(
                name == "smtpsd_certificate_expiry_seconds" and v < 6 * 86400
                for (name, _), v in m.items()))
            short = [v for (name, labels), v in samples.items()
                     if name == "smtpsd_certificate_expiry_seconds"
                     and dict(labels)["file"].endswith("server-ecdsa.pem")]
            self.assertEqual(len(short), 1)
            self.assertGreater(short[0], 4 * 86400)
            self.assertLess(short[0], 5 * 86400 + 60)


class Endpoint(MetricsTestCase):
    def test_other_paths_methods_and_garbage_are_refused(self):
        with self.metrics_server() as server:
            url = self.metrics_url(server, "/")
            with self.assertRaises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(url, timeout=10)
            self.assertEqual(caught.exception.code, 404)
            request = urllib.request.Request(self.metrics_url(server), data=b"x", method="POST")
            with self.assertRaises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(request, timeout=10)
            self.assertEqual(caught.exception.code, 405)
            host, port = METRICS_LISTENING.search(server.log()).groups()
            with socket.create_connection((host, int(port)), 10) as s:
                s.sendall(b"EHLO metrics\r\n\r\n")
                self.assertTrue(s.recv(100).startswith(b"HTTP/1.1 400 "))
            with socket.create_connection((host, int(port)), 10) as s:  # oversized head
                s.sendall(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 10000)
                self.assertTrue(s.recv(100).startswith(b"HTTP/1.1 431 "))
            self.scrape(server)  # still serving

    def test_a_silent_scraper_neither_blocks_scrapes_nor_mail(self):
        with self.metrics_server() as server:
            host, port = METRICS_LISTENING.search(server.log()).groups()
            silent = [socket.create_connection((host, int(port)), 10) for _ in range(3)]
            try:
                self.scrape(server)
                client = server.smtp("smtp")
                client.sendmail("you@example.org", ["demo@localhost"], make_message("flows"))
                client.quit()
                server.wait_delivered(1)
                # The read timeout (5 s) ends a silent connection with 408.
                silent[0].settimeout(15)
                self.assertTrue(silent[0].recv(100).startswith(b"HTTP/1.1 408 "))
            finally:
                for s in silent:
                    s.close()

    def assert_check_refuses(self, server, error):
        """`smtpsd check` fails on the configuration, with error (a pattern) in its output."""
        result = subprocess.run([SMTPSD, "check", "--config", server.config_path],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                timeout=30)
        self.assertNotEqual(result.returncode, 0)
        self.assertRegex(result.stdout, error)

    def test_non_loopback_address_is_refused_unless_allowed(self):
        server = self.metrics_server(address="0.0.0.0:0")
        self.assert_check_refuses(server, r"smtpsd\.toml:\d+: metrics\.address: '0\.0\.0\.0' is "
                                          r"not a loopback address.*allow_non_loopback")
        with self.assertRaises(RuntimeError):
            server.start(timeout=10)
        server.extra_toml = '[metrics]\naddress = "0.0.0.0:0"\nallow_non_loopback = true\n'
        server.write_config()
        server.start()
        port = METRICS_LISTENING.search(server.log()).group(2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            self.assertEqual(r.status, 200)

    def test_malformed_address_names_file_line_and_key(self):
        server = self.metrics_server(address="localhost:9464")
        self.assert_check_refuses(server, r"smtpsd\.toml:\d+: metrics\.address: must be a "
                                          r"numeric address and a port")

    def test_no_endpoint_without_the_table(self):
        with self.new_server() as server:
            self.assertNotIn("event=metrics_listening", server.log())


if __name__ == "__main__":
    unittest.main()
