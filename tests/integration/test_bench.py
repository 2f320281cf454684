"""smtpsctl bench, the load generator, against smtpsd on loopback.

Each run must account for every message: accepted ones land in the Maildir, refused ones are
counted by the server's reply code, and a server that is not there is one clear error.
"""

import json
import os
import subprocess
import unittest

from harness import SMTPSD, ServerTestCase
from ports import free_port

SMTPSCTL = os.environ.get("SMTPSCTL_BIN") or os.path.join(os.path.dirname(SMTPSD), "smtpsctl")


def bench(args, timeout=120):
    return subprocess.run([SMTPSCTL, "bench"] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, start_new_session=True)


class BenchTest(ServerTestCase):
    def setUp(self):
        super().setUp()
        # Hundreds of connections a minute from one address: the load the rate limit stops.
        self.server = self.new_server(limits={"max_connections_per_minute_per_ip": 0})
        self.server.start()

    def run_json(self, args):
        result = bench(["--cafile", self.server.ca, "--json"] + args)
        report = json.loads(result.stdout.decode())
        return result, report

    def assert_all_delivered(self, result, report, count):
        self.assertEqual(result.returncode, 0, result.stderr.decode())
        self.assertEqual(report["messages"], count)
        self.assertEqual(report["failures"], 0)
        self.assertEqual(report["failures_by_code"], {})
        self.assertEqual(len(self.server.wait_delivered(count)), count)

    def test_smtps_with_auth_new_handshake_per_message(self):
        result, report = self.run_json(
            ["--server", f"smtps://127.0.0.1:{self.server.ports['submissions']}",
             "--user", "demo@localhost",
             "--password-file", os.path.join(self.server.dir, "demo.password"),
             "--messages", "200", "--connections", "4", "--per-connection", "1"])
        self.assert_all_delivered(result, report, 200)
        self.assertEqual(report["connections"], 200)
        for key in ("p50", "p90", "p99", "max"):
            self.assertGreater(report["latency_ms"][key], 0)

    def test_smtp_starttls_50_per_connection_pipelined_and_resumed(self):
        result, report = self.run_json(
            ["--server", f"smtp://127.0.0.1:{self.server.ports['smtp']}",
             "--messages", "200", "--connections", "4", "--per-connection", "50",
             "--pipelining", "--resume", "--threads", "2"])
        self.assert_all_delivered(result, report, 200)
        self.assertGreaterEqual(report["connections"], 4)
        self.assertLess(report["connections"], 200)

    def test_resume_reuses_tls_sessions(self):
        for extra in ([], ["--handshake-only"]):
            with self.subTest(extra=extra):
                result, report = self.run_json(
                    ["--server", f"smtps://127.0.0.1:{self.server.ports['submissions']}",
                     "--user", "demo@localhost",
                     "--password-file", os.path.join(self.server.dir, "demo.password"),
                     "--messages", "30", "--connections", "1", "--resume"] + extra)
                self.assertEqual(result.returncode, 0, result.stderr.decode())
                self.assertEqual(report["connections"], 30)
                # The first handshake is full; the ones after it resume with its ticket.
                self.assertGreaterEqual(report["resumed"], 25)
        self.server.wait_delivered(30)

    def test_refused_recipient_counted_by_reply_code(self):
        result, report = self.run_json(
            ["--server", f"smtp://127.0.0.1:{self.server.ports['smtp']}",
             "--to", "nobody@localhost", "--messages", "20", "--connections", "2",
             "--per-connection", "5"])
        self.assertEqual(result.returncode, 1)
        self.assertEqual(report["messages"], 0)
        self.assertEqual(report["failures"], 20)
        self.assertEqual(report["failures_by_code"], {"550": 20})

    def test_text_report(self):
        result = bench(["--server", f"smtp://127.0.0.1:{self.server.ports['smtp']}",
                        "--cafile", self.server.ca, "--messages", "10", "--connections", "2"])
        self.assertEqual(result.returncode, 0, result.stderr.decode())
        text = result.stdout.decode()
        self.assertIn("messages 10  failures 0", text)
        self.assertIn("messages/s", text)
        self.assertIn("p99", text)

    def test_connect_sends_the_connections_elsewhere_and_tls_checks_the_server_name(self):
        # As curl's --connect-to: the --server URL's port 1 is never dialled, the address of
        # --connect is; the certificate must name the --server host ("localhost" is on the
        # dev certificate, "mail.invalid" is not).
        port = self.server.ports["submissions"]
        result, report = self.run_json(
            ["--server", "smtps://localhost:1", "--connect", f"127.0.0.1:{port}",
             "--user", "demo@localhost",
             "--password-file", os.path.join(self.server.dir, "demo.password"),
             "--messages", "5", "--connections", "1"])
        self.assert_all_delivered(result, report, 5)
        refused = bench(["--server", "smtps://mail.invalid:1", "--connect", f"127.0.0.1:{port}",
                         "--cafile", self.server.ca, "--messages", "1"])
        self.assertEqual(refused.returncode, 1)
        self.assertIn("certificate not accepted", refused.stderr.decode())

    def test_untrusted_certificate_is_one_clear_error(self):
        result = bench(["--server", f"smtps://127.0.0.1:{self.server.ports['submissions']}",
                        "--messages", "10"])  # the system store does not know the dev CA
        self.assertEqual(result.returncode, 1)
        self.assertIn("certificate not accepted", result.stderr.decode())


class BenchWithoutServerTest(unittest.TestCase):
    def test_closed_port_is_a_clear_error(self):
        port = free_port()
        result = bench(["--server", f"smtp://127.0.0.1:{port}", "--messages", "10"], timeout=30)
        self.assertEqual(result.returncode, 1)
        self.assertIn(f"cannot connect to 127.0.0.1:{port}", result.stderr.decode())
        self.assertEqual(result.stdout, b"")

    def test_bad_options_are_usage_errors(self):
        for args in (["--messages", "10"],  # no --server
                     ["--server", "http://127.0.0.1:1"],
                     ["--server", "smtp://127.0.0.1:1", "--bogus"],
                     ["--server", "smtp://127.0.0.1:1", "--connections", "0"],
                     ["--server", "smtp://127.0.0.1:1", "--messages", "5", "--duration", "1"],
                     ["--server", "smtp://127.0.0.1:1", "--handshake-only"],
                     ["--server", "smtp://127.0.0.1:1", "--user", "demo@localhost"]):
            with self.subTest(args=args):
                result = bench(args, timeout=30)
                self.assertEqual(result.returncode, 2, result.stderr.decode())
                self.assertTrue(result.stderr, args)

    def test_a_malformed_connect_address_is_a_usage_error(self):
        # An IP literal and a port, nothing else: a name would need the resolver --connect
        # is there to avoid.
        for address, reason in (("127.0.0.1", "missing :PORT"),
                                ("localhost:465", "not an IP address"),
                                ("127.0.0.1:0", "the port must be 1 to 65535"),
                                ("127.0.0.1:70000", "the port must be 1 to 65535"),
                                ("::1:465", "an IPv6 address goes in brackets: [IPv6]:PORT"),
                                ("[::1:465", "missing ']' after the IPv6 address"),
                                ("", "no host")):
            with self.subTest(address=address):
                result = bench(["--server", "smtps://mail.example.org:465", "--connect", address,
                                "--messages", "1"], timeout=30)
                self.assertEqual(result.returncode, 2, result.stderr.decode())
                self.assertEqual(result.stderr.decode(),
                                 f"smtpsctl bench: --connect {address}: {reason} (expected "
                                 f"ADDRESS:PORT, e.g. 127.0.0.1:465 or [::1]:465)\n")
                self.assertEqual(result.stdout, b"")

    def test_connect_to_a_closed_port_names_both_addresses(self):
        port = free_port()
        result = bench(["--server", "smtp://mail.example.org:587", "--connect",
                        f"127.0.0.1:{port}", "--messages", "1"], timeout=30)
        self.assertEqual(result.returncode, 1)
        self.assertIn(f"cannot connect to 127.0.0.1:{port} (--connect, for "
                      f"mail.example.org:587)", result.stderr.decode())

    def test_help(self):
        result = bench(["--help"], timeout=30)
        self.assertEqual(result.returncode, 0)
        self.assertIn("--per-connection", result.stdout.decode())
        self.assertIn("--connect", result.stdout.decode())


if __name__ == "__main__":
    unittest.main()
