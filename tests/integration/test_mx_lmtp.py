"""Direct delivery to MX hosts found through a DNS server on loopback (dnsmasq, started by
the test), the per-destination TLS policy table, the no-downgrade memory, and local
delivery into a real Dovecot through LMTP (unix socket and TCP).
"""

import os
import subprocess
import time
import unittest

from dns_server import DnsServer
from dovecot import Dovecot
from fake_smtp import FakeSmtp
from harness import ServerTestCase, make_message
from test_onward import SMTPSCTL, dsn_parts, submit, wait_log_after


def issue_certificate(ca_dir, out_dir, name):
    """An ECDSA leaf for `name` signed by the dev CA in ca_dir; returns (chain, key)."""
    os.makedirs(out_dir, exist_ok=True)
    key = os.path.join(out_dir, f"{name}.key")
    csr = os.path.join(out_dir, f"{name}.csr")
    leaf = os.path.join(out_dir, f"{name}.leaf.pem")
    chain = os.path.join(out_dir, f"{name}.pem")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr,
                    "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA",
                    os.path.join(ca_dir, "ca.pem"), "-CAkey", os.path.join(ca_dir, "ca.key"),
                    "-CAcreateserial", "-days", "30", "-copy_extensions", "copy", "-out", leaf],
                   check=True, capture_output=True)
    with open(chain, "wb") as out:
        for part in (leaf, os.path.join(ca_dir, "ca.pem")):
            with open(part, "rb") as f:
                out.write(f.read())
    return chain, key


def mx_toml(dns, port, ca_file="", policy=(), default_tls="may", retry=(1,), lifetime=None,
            connection_cache=None):
    lines = ["[queue]", "retry_schedule = [" + ", ".join(str(r) for r in retry) + "]"]
    if lifetime is not None:
        lines.append(f"max_lifetime = {lifetime}")
    lines += ["", "[dns]", f'servers = "{dns.server}"', 'validation = "no"',
              "", "[delivery]", f"mx_port = {port}",
              f'default_tls = "{default_tls}"', "connect_timeout = 5", "command_timeout = 10"]
    if ca_file:
        lines.append(f'ca_file = "{ca_file}"')
    if connection_cache is not None:
        lines.append(f"connection_cache = {connection_cache}")
    for domain, level in policy:
        lines += ["", "[[delivery.tls_policy]]", f'domain = "{domain}"', f'level = "{level}"']
    return "\n".join(lines) + "\n"


class MxDelivery(ServerTestCase):
    def remote_for(self, name):
        """A second smtpsd for example.test whose ECDSA certificate names `name`."""
        remote = self.new_server(domains=[("example.test", ["carol"])])
        tls_dir = os.path.join(remote.dir, "tls")
        chain, key = issue_certificate(tls_dir, os.path.join(remote.dir, "issued"), name)
        os.replace(chain, os.path.join(tls_dir, "server-ecdsa.pem"))
        os.replace(key, os.path.join(tls_dir, "server-ecdsa.key"))
        return remote.start()

    def test_mx_in_preference_order_falls_back_past_a_dead_host(self):
        remote = self.remote_for("mx.example.test")
        with DnsServer(mx={"example.test": [(20, "mx.example.test"), (10, "dead.example.test")]},
                       a={"mx.example.test": "127.0.0.1", "dead.example.test": "127.0.0.2"},
                       directory=self.tmp) as dns:
            local = self.new_server(extra_toml=mx_toml(dns, remote.ports["smtp"],
                                                       ca_file=remote.ca))
            local.start()
            submit(local, ["carol@example.test"], message_id="mx@test")
            delivered = remote.wait_delivered(1, "carol@example.test")
            self.assertIn(b"Message-ID: <mx@test>", delivered[0])
            # The remote delivers at acceptance: its mailbox has the copy before its 250
            # reaches us.
            local.wait_log(r"event=delivered id=\S+ rcpt=carol@example.test ")
            log = local.log()
            # The preferred (10) host was tried first, then the next one (RFC 5321 §5.1).
            self.assertRegex(log, r"event=connect_failed domain=example.test "
                                  r"host=dead.example.test\[127.0.0.2\]:\d+")
            self.assertRegex(log, r"event=delivered id=\S+ rcpt=carol@example.test to=smtp "
                                  r"detail=\"relay=mx.example.test\[127.0.0.1\]:\d+ "
                                  r"tls=TLSv1.3 \S+ verified")
            self.assertLess(log.index("connect_failed"), log.index("event=delivered"))

    def test_null_mx_bounces_at_once(self):
        with DnsServer(null_mx=["nomail.test"], directory=self.tmp) as dns:
            local = self.new_server(extra_toml=mx_toml(dns, 25))
            local.start()
            submit(local, ["someone@nomail.test"])
            dsn = local.wait_delivered(1, "demo@localhost")[0]
            fields, _ = dsn_parts(dsn)
            self.assertIn("Status: 5.1.10", fields)
            self.assertIn("Action: failed", fields)
            local.wait_log(r"level=warning event=failed id=\S+ rcpt=someone@nomail.test "
                           r".*null MX")

    def test_unknown_domain_bounces_and_dns_failure_is_retried(self):
        with DnsServer(directory=self.tmp) as dns:
            local = self.new_server(extra_toml=mx_toml(dns, 25, retry=(60,)))
            local.start()
            submit(local, ["x@no-such-domain.test"])
            dsn = local.wait_delivered(1, "demo@localhost")[0]
            self.assertIn("Status: 5.1.2", dsn_parts(dsn)[0])
            # A domain the DNS server refuses to answer for is a temporary failure.
            submit(local, ["x@elsewhere.org"])
            local.wait_log(r"event=deferred id=\S+ rcpt=x@elsewhere.org")
            self.assertEqual(len(local.delivered("demo@localhost")), 1)

    def test_verify_policy_defers_on_a_name_mismatch(self):
        remote = self.remote_for("localhost")  # the certificate does not name the MX host
        with DnsServer(mx={"example.test": [(10, "mx.example.test")]},
                       a={"mx.example.test": "127.0.0.1"}, directory=self.tmp) as dns:
            local = self.new_server(extra_toml=mx_toml(
                dns, remote.ports["smtp"], ca_file=remote.ca, retry=(60,),
                policy=[("example.test", "verify")]))
            local.start()
            submit(local, ["carol@example.test"])
            local.wait_log(r"event=deferred id=\S+ rcpt=carol@example.test detail=.*TLS policy "
                           r"verify: the certificate of mx.example.test\[127.0.0.1\]:\d+ does not "
                           r"verify: .*expected mx.example.test; the certificate names localhost")
            self.assertEqual(remote.delivered("carol@example.test"), [])

    def test_encrypt_policy_is_per_destination(self):
        with FakeSmtp(starttls=False) as remote, DnsServer(
                mx={"strict.test": [(10, "mx.strict.test")],
                    "relaxed.test": [(10, "mx.relaxed.test")]},
                a={"mx.strict.test": "127.0.0.1", "mx.relaxed.test": "127.0.0.1"},
                directory=self.tmp) as dns:
            local = self.new_server(extra_toml=mx_toml(dns, remote.port, retry=(60,),
                                                       policy=[("strict.test", "encrypt")]))
            local.start()
            submit(local, ["a@strict.test"])
            submit(local, ["b@relaxed.test"])
            local.wait_log(r"event=delivered id=\S+ rcpt=b@relaxed.test .*tls=none")
            local.wait_log(r"event=deferred id=\S+ rcpt=a@strict.test detail=.*TLS is required "
                           r"\(policy encrypt\) but mx.strict.test\[127.0.0.1\]:\d+ did not offer "
                           r"STARTTLS")
            self.assertEqual([m[1] for m in remote.messages], [["b@relaxed.test"]])

    def test_may_falls_back_to_plain_text_when_the_handshake_fails(self):
        with FakeSmtp(broken_tls=True) as remote, DnsServer(
                mx={"old.test": [(10, "mx.old.test")]}, a={"mx.old.test": "127.0.0.1"},
                directory=self.tmp) as dns:
            local = self.new_server(extra_toml=mx_toml(dns, remote.port, retry=(60,)))
            local.start()
            submit(local, ["a@old.test"])
            local.wait_log(r"event=tls_fallback domain=old.test host=mx.old.test\[127.0.0.1\]")
            local.wait_log(r"event=delivered id=\S+ rcpt=a@old.test .*tls=none")
            self.assertEqual(len(remote.messages), 1)

    def test_no_silent_downgrade_after_verified_tls(self):
        local = self.new_server()
        tls_dir = os.path.join(local.dir, "tls")
        cert, key = issue_certificate(tls_dir, os.path.join(local.dir, "issued"),
                                      "mx.example.test")
        with FakeSmtp(cert=cert, key=key) as remote, DnsServer(
                mx={"example.test": [(10, "mx.example.test")]},
                a={"mx.example.test": "127.0.0.1"}, directory=self.tmp) as dns:
            # No connection reuse: the second message must meet the changed server.
            local.extra_toml = mx_toml(dns, remote.port, ca_file="tls/ca.pem", retry=(3600,),
                                       connection_cache=0)
            local.write_config()
            local.start()
            submit(local, ["carol@example.test"], subject="first")
            local.wait_log(r"event=delivered id=\S+ rcpt=carol@example.test .*verified")
            local.wait_log(r"event=tls_memory domain=example.test level=verified")
            # The memory outlives a restart (data_dir/tls-memory).
            local.stop()
            local.start()

            # The MX stops offering STARTTLS (a stripping attacker, or a misconfiguration).
            remote.set_starttls(False)
            second = submit(local, ["carol@example.test"], subject="second")
            local.wait_log(r"event=tls_refused domain=example.test .*remembered=verified")
            local.wait_log(r"event=deferred id=" + second + r" rcpt=carol@example.test "
                           r"detail=.*TLS downgrade refused")
            self.assertEqual(len(remote.messages), 1)

            memory = subprocess.run([SMTPSCTL, "tls", "memory", "--config", local.config_path],
                                    capture_output=True, timeout=20)
            self.assertEqual(memory.stdout.decode(), "example.test verified\n")
            # The operator accepts the change: forget, flush, and it goes (level may).
            forgot = subprocess.run([SMTPSCTL, "tls", "forget", "example.test", "--config",
                                     local.config_path], capture_output=True, timeout=20)
            self.assertEqual(forgot.returncode, 0, forgot.stderr)
            offset = len(local.log())
            subprocess.run([SMTPSCTL, "queue", "flush", "--config", local.config_path],
                           check=True, capture_output=True, timeout=20)
            wait_log_after(local, offset, r"event=delivered id=" + second + r" .*tls=none")
            self.assertEqual(len(remote.messages), 2)
            again = subprocess.run([SMTPSCTL, "tls", "forget", "example.test", "--config",
                                    local.config_path], capture_output=True, timeout=20)
            self.assertEqual(again.returncode, 1)
            self.assertIn(b"nothing remembered for example.test", again.stderr)


class LmtpToDovecot(ServerTestCase):
    def setUp(self):
        super().setUp()
        # Running as root, Dovecot writes mail as "nobody", which must reach its homes.
        os.chmod(self.tmp, 0o711)

    def run_lmtp(self, use_socket):
        os.makedirs(os.path.join(self.tmp, "dovecot"))
        dovecot = Dovecot(os.path.join(self.tmp, "dovecot"), users=["alice", "bob"])
        self.addCleanup(dovecot.stop)
        target = f"unix:{dovecot.lmtp_socket}" if use_socket else f"127.0.0.1:{dovecot.lmtp_port}"
        local = self.new_server(domains=[("localhost", ["demo", "alice", "bob", "ghost"])],
                                extra_toml=f'[delivery]\nlmtp = "{target}"\n')
        local.start()
        client = local.smtp()
        client.sendmail("bob@localhost", ["alice@localhost", "ghost@localhost"],
                        make_message(subject="via lmtp", message_id="lmtp@test",
                                     sender="bob@localhost", to="alice@localhost"))
        client.quit()
        deadline = time.time() + 15
        while time.time() < deadline and not dovecot.messages("alice"):
            time.sleep(0.05)
        messages = dovecot.messages("alice")
        self.assertEqual(len(messages), 1, dovecot.log()[-2000:])
        self.assertIn(b"Message-ID: <lmtp@test>", messages[0])
        self.assertIn(b"by localhost (smtpsd)", messages[0])  # our trace header
        local.wait_log(r"event=delivered id=\S+ rcpt=alice@localhost to=lmtp")
        # Dovecot refuses ghost (no such user) for that recipient only (RFC 2033 §4.2):
        # the sender, bob, gets a DSN, itself delivered through LMTP.
        local.wait_log(r"event=failed id=\S+ rcpt=ghost@localhost detail=.*550 5.1.1")
        deadline = time.time() + 15
        while time.time() < deadline and not dovecot.messages("bob"):
            time.sleep(0.05)
        self.assertEqual(len(dovecot.messages("bob")), 1, local.log()[-3000:])
        fields, _ = dsn_parts(dovecot.messages("bob")[0])
        self.assertIn("ghost@localhost", fields)
        self.assertIn("Status: 5.1.1", fields)

    def test_delivers_into_dovecot_over_a_unix_socket(self):
        self.run_lmtp(use_socket=True)

    def test_delivers_into_dovecot_over_tcp(self):
        self.run_lmtp(use_socket=False)

    def test_lmtp_server_down_defers_then_delivers(self):
        os.makedirs(os.path.join(self.tmp, "dovecot"))
        dovecot = Dovecot(os.path.join(self.tmp, "dovecot"), users=["alice"])
        self.addCleanup(dovecot.stop)
        dovecot._kill()  # down, its socket path kept for the restart
        local = self.new_server(domains=[("localhost", ["alice"])],
                                extra_toml=f'[queue]\nretry_schedule = [1]\n\n[delivery]\n'
                                           f'lmtp = "unix:{dovecot.lmtp_socket}"\n')
        local.start()
        client = local.smtp()
        client.sendmail("x@example.org", ["alice@localhost"], make_message(message_id="down@test"))
        client.quit()
        local.wait_log(r"event=deferred id=\S+ rcpt=alice@localhost detail=\"LMTP server "
                       r"unix:\S+: cannot connect")
        self.assertEqual(len(local.spool_ids()), 1)
        self.assertEqual(dovecot.messages("alice"), [])
        # Dovecot comes back: the next retry delivers, once, and the queue empties.
        dovecot.start()
        deadline = time.time() + 20
        while time.time() < deadline and not dovecot.messages("alice"):
            time.sleep(0.05)
        messages = dovecot.messages("alice")
        self.assertEqual(len(messages), 1, local.log()[-3000:])
        self.assertIn(b"Message-ID: <down@test>", messages[0])
        local.wait_log(r"event=delivered id=\S+ rcpt=alice@localhost to=lmtp")
        deadline = time.time() + 10
        while local.spool_ids() and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(local.spool_ids(), [])

if __name__ == "__main__":
    unittest.main()
