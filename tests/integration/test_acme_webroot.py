"""[acme] http_webroot: http-01 through the web server a host already runs on port 80. smtpsd
binds no port; it writes the token file under <webroot>/.well-known/acme-challenge/, the web
server (here Python's http.server) serves it to Pebble, and the file is gone once the CA has
validated. Bad settings are refused with the file, line and key."""

import http.server
import os
import subprocess
import threading

import needs
from dns_server import DnsServer
from harness import SMTPSD, ServerTestCase
from pebble import Pebble
from ports import free_port
from test_acme import NAME, issuer_of, served_certificate


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    served = []

    def log_message(self, *args):
        QuietHandler.served.append(self.path)


@needs.tools("pebble", "dnsmasq", "openssl")
class AcmeWebrootTest(ServerTestCase):
    def acme_toml(self, directory, ca_file, webroot, extra=""):
        return (f'[acme]\ndirectory = "{directory}"\nnames = ["{NAME}"]\n'
                f'http_webroot = "{webroot}"\nca_file = "{ca_file}"\n{extra}')

    def test_the_web_server_serves_the_token_and_smtpsd_binds_no_port(self):
        webroot = os.path.join(self.tmp, "www")
        os.makedirs(webroot)
        http_port = free_port()
        handler = lambda *a, **k: QuietHandler(*a, directory=webroot, **k)  # noqa: E731
        web = http.server.ThreadingHTTPServer(("127.0.0.1", http_port), handler)
        self.addCleanup(web.server_close)
        threading.Thread(target=web.serve_forever, daemon=True).start()
        self.addCleanup(web.shutdown)
        with DnsServer(a={NAME: "127.0.0.1"}) as dns, \
                Pebble(os.path.join(self.tmp, "pebble"), dns.server, http_port) as ca:
            server = self.new_server(listeners=[{"role": "submissions"}],
                                     tls={"watch_interval": "100ms"},
                                     extra_toml=self.acme_toml(ca.directory, ca.ca_file, webroot))
            checked = subprocess.run([SMTPSD, "check", "--config", server.config_path],
                                     capture_output=True, text=True, timeout=20)
            self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)
            self.assertIn(f"http-01 by files in {webroot}/.well-known/acme-challenge (your web "
                          "server serves them on port 80)", checked.stdout)
            server.start()
            server.wait_log(r"event=acme_renewed key=ecdsa ", timeout=30)
            server.wait_log(r"event=acme_renewed key=rsa ", timeout=30)
            self.assertRegex(server.log(), r"event=acme_started .*http_webroot=\S+/www/"
                                           r"\.well-known/acme-challenge")
            # Pebble fetched the tokens from the web server; they are gone afterwards.
            self.assertTrue(any(p.startswith("/.well-known/acme-challenge/")
                                for p in QuietHandler.served), QuietHandler.served)
            self.assertEqual(os.listdir(os.path.join(webroot, ".well-known", "acme-challenge")),
                             [])
            server.wait_log(r"event=tls_reloaded file=\S+/acme/rsa\.crt", timeout=10)
            self.assertIn("Pebble", issuer_of(served_certificate(server.ports["submissions"],
                                                                 ecdsa=True)))

    def test_bad_webroot_settings_name_the_key(self):
        missing = os.path.join(self.tmp, "no-such-dir")
        cases = [
            (f'http_webroot = "{missing}"\n',
             f"acme.http_webroot: must be the existing directory your web server serves on port "
             f"80, not '{missing}'"),
            (f'http_webroot = "{self.tmp}"\nhttp_port = 8080\n',
             "acme.http_port: not with http_webroot: the web server answers on port 80"),
            (f'http_webroot = "{self.tmp}"\nchallenge = "dns-01"\ndns_hook = "/bin/true"\n',
             'acme.http_webroot: only for challenge = "http-01" (this is "dns-01")'),
        ]
        for settings, message in cases:
            with self.subTest(settings=settings):
                server = self.new_server(extra_toml=(
                    '[acme]\ndirectory = "https://127.0.0.1:1/dir"\n'
                    f'names = ["{NAME}"]\n{settings}'))
                server.write_config()
                checked = subprocess.run([SMTPSD, "check", "--config", server.config_path],
                                         capture_output=True, text=True, timeout=20)
                self.assertEqual(checked.returncode, 2, checked.stdout + checked.stderr)
                self.assertRegex(checked.stderr, r"smtpsd\.toml:\d+: " + message.replace(
                    "(", r"\(").replace(")", r"\)"))
