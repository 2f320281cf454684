"""[screening] on the smtp role: DNS block/allow lists (RFC 5782) answered by a dnsmasq on
loopback (dns_server.py), the pre-greet wait (early talkers), improper pipelining, and the
clients that must pass both (Python's smtplib, swaks, smtpsctl send). Every client of these
tests is 127.0.0.1 (or ::1), so the lists publish 1.0.0.127.<zone> (or its nibbles)."""

import os
import re
import smtplib
import subprocess
import time
import urllib.request

import needs
from dns_server import DnsServer
from harness import LISTENING, SMTPSD, RawSession, ServerTestCase, make_message

SMTPSCTL = os.environ.get("SMTPSCTL_BIN") or os.path.join(os.path.dirname(SMTPSD), "smtpsctl")

V4 = "1.0.0.127"
V6 = ".".join("1" + "0" * 31)  # ::1, nibbles reversed (RFC 5782 §2.4)

# A list's reason, as providers publish it, with non-ASCII and more than a reply may carry.
LONG_REASON = ("Listed: caf\u00e9 " + "x" * 200, "x" * 100)


def screening_toml(dns, lists, **settings):
    lines = ["[dns]", f'servers = "{dns.server}"', 'validation = "no"', "",
             "[metrics]", 'address = "127.0.0.1:0"', "", "[screening]"]
    for key, value in settings.items():
        lines.append(f"{key} = {value}")
    for zone, weight in lists:
        lines += ["[[screening.dns_lists]]", f'zone = "{zone}"', f"weight = {weight}"]
    return "\n".join(lines) + "\n"


class DnsListTest(ServerTestCase):
    def server_with(self, dns, lists, listeners=None, **settings):
        server = self.new_server(extra_toml=screening_toml(dns, lists, **settings),
                                 listeners=listeners)
        server.start()
        return server

    def dns(self, **records):
        dns = DnsServer(**records)
        self.addCleanup(dns.stop)
        return dns

    @staticmethod
    def port_of(server, address):
        return next(int(port) for role, at, port in LISTENING.findall(server.log())
                    if role == "smtp" and at == address)

    def test_listed_refused_at_rcpt_postmaster_reachable_reason_escaped_error_code_not_listed(self):
        # bl.test lists the client with a long non-ASCII reason; err.test answers a provider
        # error code (weight 3, which would list it alone): a warning, not a listing;
        # none.test does not know the client.
        dns = self.dns(a={f"{V4}.bl.test": "127.0.0.2", f"{V4}.err.test": "127.255.255.254"},
                       txt={f"{V4}.bl.test": LONG_REASON})
        server = self.server_with(dns, [("bl.test", 1), ("err.test", 3), ("none.test", 1)])
        with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10) as client:
            client.ehlo("client.example")
            client.mail("sender@example.org")
            code, text = client.rcpt("demo@localhost")
            self.assertEqual(code, 550, text)
            text = text.decode()
            self.assertTrue(text.startswith(
                "5.7.1 Service unavailable; client [127.0.0.1] blocked using bl.test; "
                "Listed: caf?? xxx"), text)
            self.assertTrue(text.endswith("x..."), text)
            self.assertLess(len(text), 300)
            # RFC 5321 §4.5.1: postmaster stays reachable for a listed client.
            code, text = client.rcpt("postmaster@localhost")
            self.assertEqual(code, 250, text)
        server.wait_log(r"event=dnsbl session=\S+ client=127\.0\.0\.1 stage=rcpt "
                        r"recipient=demo@localhost result=listed score=1 threshold=1 "
                        r"lists=bl\.test:127\.0\.0\.2:1\n")
        server.wait_log(r"level=warning event=dnsbl_list_error .*zone=err\.test "
                        r"answer=127\.255\.255\.254")
        port = server.wait_log(r"event=metrics_listening address=\S+ port=(\d+)").group(1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            metrics = response.read().decode()
        self.assertIn('smtpsd_dnsbl_decisions_total{result="listed"} 1\n', metrics)
        self.assertIn("smtpsd_dnsbl_list_errors_total 1\n", metrics)

    def test_allowed_network_never_looked_up_and_ipv6_client_asked_by_nibbles(self):
        dns = self.dns(a={f"{V4}.bl.test": "127.0.0.2", f"{V6}.bl.test": "127.0.0.2"})
        server = self.server_with(dns, [("bl.test", 1)], allow_networks='["127.0.0.0/8"]',
                                  listeners=[{"role": "smtp"},
                                             {"role": "smtp", "address": "::1"}])
        with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10) as client:
            client.ehlo("client.example")
            client.mail("sender@example.org")
            self.assertEqual(client.rcpt("demo@localhost")[0], 250)
        server.wait_log(r"event=dnsbl session=\S+ client=127\.0\.0\.1 result=allowlisted "
                        r"network=127\.0\.0\.0/8")
        self.assertNotIn(f"{V4}.bl.test", dns.log())
        with smtplib.SMTP("::1", self.port_of(server, "::1"), timeout=10) as client:
            client.ehlo("client.example")
            client.mail("sender@example.org")
            code, text = client.rcpt("demo@localhost")
            self.assertEqual(code, 550, text)
            self.assertIn(b"client [::1] blocked using bl.test", text)

    def test_refused_at_connect_then_503_until_quit_and_not_listed_passes(self):
        dns = self.dns(a={f"{V4}.bl.test": "127.0.0.2"}, txt={f"{V4}.bl.test": "see bl.test"})
        server = self.server_with(dns, [("bl.test", 1)], refuse_at='"connect"',
                                  listeners=[{"role": "smtp"}, {"role": "submission"},
                                             {"role": "smtp", "address": "::1"}])
        with RawSession(server.ports["smtp"]) as session:
            code, lines = session.reply()
            self.assertEqual(code, 554, lines)
            self.assertIn("blocked using bl.test; see bl.test", lines[-1])
            self.assertEqual(session.cmd("EHLO client.example")[0], 503)
            self.assertEqual(session.cmd("MAIL FROM:<a@example.org>")[0], 503)
            self.assertEqual(session.cmd("QUIT")[0], 221)
            self.assertTrue(session.wait_closed())
        # ::1 is not listed: greeted and served.
        with smtplib.SMTP("::1", self.port_of(server, "::1"), timeout=10) as client:
            client.ehlo("client.example")
            client.mail("sender@example.org")
            self.assertEqual(client.rcpt("demo@localhost")[0], 250)
        # The submission roles are never screened.
        with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=10) as client:
            self.assertEqual(client.ehlo("client.example")[0], 250)


class EarlyTalkerTest(ServerTestCase):
    def start_server(self, domains=None, **settings):
        lines = ["[metrics]", 'address = "127.0.0.1:0"', "[screening]"]
        lines += [f"{key} = {value}" for key, value in settings.items()]
        server = self.new_server(extra_toml="\n".join(lines) + "\n", domains=domains)
        server.start()
        return server

    def greeting_lines(self, server):
        with RawSession(server.ports["smtp"]) as session:
            code, lines = session.reply()
            session.cmd("QUIT")
            return code, lines

    def test_early_talkers_refused_and_passes_remembered(self):
        server = self.start_server(pregreet_wait='"300ms"', improper_pipelining='"refuse"')
        # A client that talks before the last line of the greeting.
        with RawSession(server.ports["smtp"]) as session:
            self.assertEqual(session.readline(), b"220-localhost ESMTP smtpsd\r\n")
            session.send("EHLO bot.example\r\n")
            self.assertEqual(session.reply(),
                             (554, ["554 localhost Protocol error: talked before the greeting"]))
            self.assertEqual(session.reply()[0], 503)  # the EHLO
            self.assertEqual(session.cmd("QUIT")[0], 221)
        server.wait_log(r"level=warning event=early_talker session=\S+ client=127\.0\.0\.1 "
                        r"reason=pregreet")
        # One that waits gets both lines, and is remembered: the plain greeting at once.
        started = time.monotonic()
        code, lines = self.greeting_lines(server)
        self.assertGreaterEqual(time.monotonic() - started, 0.3)
        self.assertEqual((code, lines), (220, ["220-localhost ESMTP smtpsd",
                                               "220 localhost ESMTP smtpsd"]))
        self.assertEqual(self.greeting_lines(server), (220, ["220 localhost ESMTP smtpsd"]))
        # Improper pipelining: behind EHLO, and anything after HELO.
        with RawSession(server.ports["smtp"]) as session:
            session.greeting()
            session.send("EHLO bot.example\r\nMAIL FROM:<a@bot.example>\r\n")
            code, lines = session.reply()
            self.assertEqual(code, 550, lines)
            self.assertIn("5.5.1 Protocol error: commands sent before the reply to EHLO",
                          lines[-1])
            self.assertTrue(session.wait_closed())
        with RawSession(server.ports["smtp"]) as session:
            session.greeting()
            self.assertEqual(session.cmd("HELO client.example")[0], 250)
            session.send("MAIL FROM:<a@client.example>\r\nRCPT TO:<demo@localhost>\r\n")
            self.assertEqual(session.reply()[0], 550)
            self.assertTrue(session.wait_closed())
        server.wait_log(r"level=warning event=early_talker .*reason=pipelining")
        port = server.wait_log(r"event=metrics_listening address=\S+ port=(\d+)").group(1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            metrics = response.read().decode()
        for sample in ('smtpsd_early_talkers_total{reason="pregreet"} 1',
                       'smtpsd_early_talkers_total{reason="pipelining"} 2',
                       'smtpsd_pregreet_total{result="passed"} 1',
                       'smtpsd_pregreet_total{result="skipped"} 3'):
            self.assertIn(sample + "\n", metrics)

    @needs.tools("swaks")
    def test_real_clients_pass_the_wait_and_the_pipelining_screen(self):
        # Without the pass cache (TTL 0) every client waits the pre-greet wait itself.
        server = self.start_server(pregreet_wait='"200ms"', pregreet_pass_ttl="0",
                                   improper_pipelining='"refuse"',
                                   domains=[("localhost", ["demo"]), ("remote.test", ["bob"])])
        port = server.ports["smtp"]
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.ehlo("client.example")
            client.starttls(context=server.client_context())
            client.ehlo("client.example")
            client.sendmail("a@example.org", ["demo@localhost"], make_message("smtplib"))
        result = subprocess.run(
            ["swaks", "--server", "127.0.0.1", "--port", str(port), "--tls", "--tls-verify",
             "--tls-ca-path", server.ca, "--from", "a@example.org", "--to", "demo@localhost",
             "--header", "Subject: swaks", "--pipeline"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30, text=True)
        self.assertEqual(result.returncode, 0, result.stdout)
        result = subprocess.run(
            [SMTPSCTL, "send", "--server", f"smtp://localhost:{port}", "--cafile", server.ca,
             "--from", "a@example.org", "--to", "demo@localhost", "--subject", "smtpsctl",
             "--body", "Hello."],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30, text=True)
        self.assertEqual(result.returncode, 0, result.stdout)
        messages = server.wait_delivered(3)
        subjects = sorted(re.search(rb"(?m)^Subject: (.*)\r$", m).group(1).decode()
                          for m in messages)
        self.assertEqual(subjects, sorted(["smtplib", "swaks", "smtpsctl"]))
        # smtpsd's own client, onward delivery to a relay (two messages: a reused connection
        # sends its second MAIL after RSET or at once, never behind a group ender).
        local = self.new_server(extra_toml=(
            "[queue]\nretry_schedule = [1]\n[delivery]\n"
            f'relay = "smtp://127.0.0.1:{port}"\nrelay_tls = "verify"\nca_file = "{server.ca}"\n'))
        local.start()
        with open(os.path.join(local.dir, "demo.password")) as f:
            password = f.read().strip()
        with local.smtps() as client:
            client.login("demo@localhost", password)
            for subject in ("onward 1", "onward 2"):
                client.sendmail("demo@localhost", ["bob@remote.test"],
                                make_message(subject, sender="demo@localhost",
                                             to="bob@remote.test"))
        self.assertEqual(len(server.wait_delivered(2, "bob@remote.test")), 2)
        self.assertNotIn("event=early_talker", server.log())

    def test_check_and_config_errors(self):
        server = self.new_server(extra_toml='[screening]\npregreet_wait = "1s"\n'
                                            'improper_pipelining = "refuse"\n'
                                            '[[screening.dns_lists]]\nzone = "bl.test"\n'
                                            'answers = ["127.0.0.2", { answer = "127.0.0.4/30", '
                                            'weight = 3 }]\n')
        result = subprocess.run([SMTPSD, "check", "--config", server.config_path],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.assertEqual(result.returncode, 0, result.stdout)
        self.assertIn("screening: port 25 clients looked up in bl.test (1); listed at score 1, "
                      "refused at RCPT", result.stdout)
        self.assertIn("screening: port 25 pre-greet wait 1s", result.stdout)
        self.assertIn("screening: improper pipelining on port 25 refused", result.stdout)
        bad = [
            ('[screening]\npregreet_wait = "1 minute"\n', r"screening\.pregreet_wait"),
            ('[screening]\nimproper_pipelining = "drop"\n', r"screening\.improper_pipelining: "
                                                              r"must be \"log\" or \"refuse\""),
            ('[screening]\nrefuse_at = "data"\n', r"screening\.refuse_at: must be \"rcpt\""),
            ('[screening]\nallow_networks = ["localhost"]\n', r"screening\.allow_networks"),
            ('[[screening.dns_lists]]\nzone = "bad zone"\n', r"screening\.dns_lists\.zone: "
                                                             r"not a DNS zone"),
            ('[[screening.dns_lists]]\nzone = "bl.test"\nweight = 0\n',
             r"screening\.dns_lists\.weight: must not be 0"),
            ('[[screening.dns_lists]]\nzone = "bl.test"\nanswers = ["10.0.0.2"]\n',
             r"screening\.dns_lists\.answers: '10\.0\.0\.2' is not an answer of a DNS list"),
            ('[[screening.dns_lists]]\nzone = "bl.test"\n[[screening.dns_lists]]\n'
             'zone = "BL.test."\n', r"screening\.dns_lists\.zone: 'bl\.test' is listed twice"),
            ('[screening]\nunknown = 1\n', r"screening\.unknown: unknown key"),
        ]
        for toml, message in bad:
            with self.subTest(toml=toml):
                server.extra_toml = toml
                server.write_config()
                result = subprocess.run([SMTPSD, "check", "--config", server.config_path],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True)
                self.assertNotEqual(result.returncode, 0, result.stdout)
                self.assertRegex(result.stdout, r"smtpsd\.toml:\d+: " + message)
