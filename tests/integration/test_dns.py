"""The server's one DNS resolver as a user meets it: the start-up line that says its mode,
the deprecated [delivery] dns_servers, a closed DNS port that fails fast (every port-25 test
asks one), and TXT records served by the test DNS server (SPF, DKIM, DMARC need them).
"""

import time
import unittest

from dns_server import TYPE_TXT, DnsServer
from harness import ServerTestCase
from test_onward import submit, wait_log_after


class DnsStartup(ServerTestCase):
    def test_the_mode_is_logged_once_at_start(self):
        server = self.new_server()  # the harness's [dns]: a closed loopback port, no DNSSEC
        server.start()
        server.wait_log(r"event=dns mode=forward validating=no detail=")
        self.assertEqual(server.log().count("event=dns "), 1, server.log())
        self.assertIn('"forward to 127.0.0.1:9, not validating"', server.log())

    def test_deprecated_dns_servers_still_works_without_validation(self):
        server = self.new_server(extra_toml='[delivery]\ndns_servers = "127.0.0.1:9"\n')
        server.start()
        server.wait_log(r"event=deprecated .*delivery\.dns_servers: deprecated: write \[dns\]")
        server.wait_log(r"event=dns mode=forward validating=no")


class ClosedDnsPort(ServerTestCase):
    def test_remote_mail_is_deferred_within_a_second(self):
        # A DNS timeout of 60 s: waiting for it instead of the refusal cannot pass the bound.
        server = self.new_server(extra_toml="[queue]\nretry_schedule = [60]\n[dns]\n"
                                            'servers = "127.0.0.1:9"\nvalidation = "no"\n'
                                            "timeout = 60\n")
        server.start()
        offset = len(server.log())
        started = time.monotonic()
        submit(server, ["someone@remote.test"])
        wait_log_after(server, offset,
                       r"event=deferred id=\S+ rcpt=someone@remote\.test .*connection refused")
        # The lookup fails as soon as the port refuses (ICMP), not at the 60 s timeout.
        self.assertLess(time.monotonic() - started, 20.0)


class TestDnsServerTxt(unittest.TestCase):
    def test_txt_records_keep_their_strings(self):
        with DnsServer(txt={"example.test": "v=spf1 ip4:127.0.0.1 -all",
                            "_dmarc.example.test": "v=DMARC1; p=reject; "
                                                   "rua=mailto:a@example.test,mailto:b@x.test",
                            "sel._domainkey.example.test": [("v=DKIM1; k=ed25519; ",
                                                             "p=11qYAYKxCrfVS/7TyWQHOg7hcvPa")]}
                       ) as dns:
            self.assertEqual(dns.query("example.test", TYPE_TXT),
                             (0, [(TYPE_TXT, ("v=spf1 ip4:127.0.0.1 -all",))]))
            self.assertEqual(dns.query("_dmarc.example.test", TYPE_TXT)[1],
                             [(TYPE_TXT, ("v=DMARC1; p=reject; "
                                          "rua=mailto:a@example.test,mailto:b@x.test",))])
            self.assertEqual(dns.query("sel._domainkey.example.test", TYPE_TXT)[1],
                             [(TYPE_TXT, ("v=DKIM1; k=ed25519; ",
                                          "p=11qYAYKxCrfVS/7TyWQHOg7hcvPa"))])
            self.assertEqual(dns.query("none.example.test", TYPE_TXT), (3, []))


if __name__ == "__main__":
    unittest.main()
