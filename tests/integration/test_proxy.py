"""PROXY protocol behind a real HAProxy (Debian package) on loopback.

HAProxy listens on 127.0.0.1 and balances round-robin over two smtpsd instances: implicit
TLS with `send-proxy-v2`, STARTTLS submission with `send-proxy` (v1). Clients connect from
127.0.0.2, so the address HAProxy names (127.0.0.2) differs from the one smtpsd sees
(127.0.0.1, HAProxy's): the Received header and the log must name the client. Also: a
header from an address not in proxy_from is refused, a listener without proxy_protocol
treats a PROXY line as a bad command, the per-IP limit counts the proxied client, and a
bad header closes the connection with a log line.
"""

import base64
import os
import re
import shutil
import smtplib
import socket
import subprocess
import time
import unittest

import needs

from harness import ServerTestCase, make_message, read_reply
from ports import free_port

# Refused connections are named too: the id ties the refusal to the connect attempt.
REFUSED = r"event=connection_refused session=[0-9a-f]{14} "

CLIENT = "127.0.0.2"
PROXY_FROM = ["127.0.0.1/32"]


def listeners():
    return [
        {"role": "submissions", "proxy_protocol": True, "proxy_from": PROXY_FROM},
        {"role": "submission", "proxy_protocol": True, "proxy_from": PROXY_FROM},
        {"role": "smtp"},  # no PROXY protocol
    ]


def password_of(server):
    with open(os.path.join(server.dir, "demo.password")) as f:
        return f.read().strip()


def raw(port, source="127.0.0.1"):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    return sock, sock.makefile("rb")


class HAProxy:
    """haproxy -db in the foreground, as a child process stopped by its pid."""

    def __init__(self, directory, backends):
        self.smtps_port = free_port()
        self.submission_port = free_port()
        self.config = os.path.join(directory, "haproxy.cfg")
        self.log_path = os.path.join(directory, "haproxy.log")
        lines = ["global", "    maxconn 200", "", "defaults", "    mode tcp",
                 "    timeout connect 5s", "    timeout client 30s", "    timeout server 30s", "",
                 "frontend smtps", f"    bind 127.0.0.1:{self.smtps_port}",
                 "    default_backend smtps", "",
                 "frontend submission", f"    bind 127.0.0.1:{self.submission_port}",
                 "    default_backend submission", "",
                 "backend smtps", "    balance roundrobin"]
        for i, server in enumerate(backends):
            lines.append(f"    server s{i} 127.0.0.1:{server.ports['submissions']} send-proxy-v2 "
                         "check check-send-proxy inter 300ms")
        lines += ["", "backend submission", "    balance roundrobin"]
        for i, server in enumerate(backends):
            lines.append(f"    server s{i} 127.0.0.1:{server.ports['submission']} send-proxy")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.process = None

    def start(self):
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(["haproxy", "-f", self.config, "-db"], stdout=log,
                                        stderr=log)
        log.close()
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.process.poll() is not None:
                with open(self.log_path) as f:
                    raise RuntimeError("haproxy exited:\n" + f.read())
            try:
                socket.create_connection(("127.0.0.1", self.submission_port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("haproxy did not start listening")

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@needs.tools("haproxy")
class BehindHAProxy(ServerTestCase):
    def setUp(self):
        super().setUp()
        self.a = self.new_server(listeners=listeners())
        self.b = self.new_server(listeners=listeners())
        # One users file and one certificate for both instances (README "Scaling past one
        # machine"); each keeps its own spool.
        shutil.copy(os.path.join(self.a.dir, "users"), os.path.join(self.b.dir, "users"))
        shutil.rmtree(os.path.join(self.b.dir, "tls"))
        shutil.copytree(os.path.join(self.a.dir, "tls"), os.path.join(self.b.dir, "tls"))
        self.password = password_of(self.a)
        self.a.start()
        self.b.start()
        self.haproxy = HAProxy(self.tmp, [self.a, self.b]).start()

    def tearDown(self):
        self.haproxy.stop()
        super().tearDown()

    def smtps(self):
        client = smtplib.SMTP_SSL("localhost", self.haproxy.smtps_port, timeout=10,
                                  context=self.a.client_context(),
                                  source_address=(CLIENT, 0))
        client.ehlo("client.example")
        client.login("demo@localhost", self.password)
        return client

    def starttls(self):
        client = smtplib.SMTP("localhost", self.haproxy.submission_port, timeout=10,
                              source_address=(CLIENT, 0))
        client.ehlo("client.example")
        client.starttls(context=self.a.client_context())
        client.ehlo("client.example")
        client.login("demo@localhost", self.password)
        return client

    def test_mail_through_haproxy_reaches_both_instances_naming_the_client(self):
        for i in range(4):
            with self.smtps() as client:
                client.sendmail("demo@localhost", ["demo@localhost"],
                                make_message(subject=f"v2-{i}", sender="demo@localhost"))
        for i in range(2):
            with self.starttls() as client:
                client.sendmail("demo@localhost", ["demo@localhost"],
                                make_message(subject=f"v1-{i}", sender="demo@localhost"))
        # Round robin: three messages each (two over v2, one over v1).
        messages = self.a.wait_delivered(3) + self.b.wait_delivered(3)
        self.assertEqual(len(messages), 6)
        for message in messages:
            received = message.split(b"\r\n\r\n")[0]
            self.assertIn(b"[127.0.0.2]", received, received)
        for server in (self.a, self.b):
            # HAProxy's health checks (check-send-proxy: a v2 LOCAL header, then a reset)
            # are no failed headers worth a warning.
            self.assertNotIn("event=proxy_header_failed", server.log())
            for role in ("submissions", "submission"):
                server.wait_log(rf"event=connect session=\S+ role={role} client=127\.0\.0\.2 "
                                r"client_port=\d+ proxy=127\.0\.0\.1")
            self.assertRegex(server.log(), r"event=auth session=\S+ client=127\.0\.0\.2 ")
            # Logged just after the socket is closed: wait for it rather than race it.
            server.wait_log(r"event=session_end session=\S+ role=submissions "
                            r"client=127\.0\.0\.2 ", timeout=5)


class ProxyProtocolListener(ServerTestCase):
    """The PROXY listener itself, spoken to directly (no HAProxy needed)."""

    def setUp(self):
        super().setUp()
        # The PROXY header is due within 500 ms here (5 s by default).
        self.a = self.new_server(listeners=listeners(),
                                 extra_toml='[timeouts]\nproxy_header = "500ms"\n')
        self.a.start()

    def test_header_from_an_address_not_in_proxy_from_is_refused(self):
        # Straight to an instance from 127.0.0.3, claiming to be a proxy.
        sock, f = raw(self.a.ports["submission"], source="127.0.0.3")
        with sock, f:
            sock.sendall(b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 587\r\n")
            code, lines = read_reply(f)
            self.assertEqual(code, 421)
            self.assertIn("4.7.0", lines[0])
            self.assertEqual(f.read(), b"")  # closed
        self.a.wait_log(REFUSED + r"role=submission client=127\.0\.0\.3 "
                        r"limit=proxy_from ")
        self.assertNotIn("192.0.2.7", self.a.log())

    def test_listener_without_proxy_protocol_treats_the_line_as_a_bad_command(self):
        sock, f = raw(self.a.ports["smtp"])
        with sock, f:
            self.assertEqual(read_reply(f)[0], 220)
            sock.sendall(b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 25\r\n")
            code, lines = read_reply(f)
            self.assertEqual(code, 500, lines)
            sock.sendall(b"QUIT\r\n")
            self.assertEqual(read_reply(f)[0], 221)
        self.assertNotIn("client=192.0.2.7", self.a.log())

    def test_bad_header_from_the_proxy_address_closes_with_a_log_line(self):
        for data in (b"EHLO client.example\r\n", b"PROXY TCP4 1.2.3.4\r\n",
                     b"PROXY TCP4 " + b"x" * 200):
            sock, f = raw(self.a.ports["submission"])
            with sock, f:
                sock.sendall(data)
                self.assertEqual(f.read(), b"")  # closed without a greeting
        self.a.wait_log(r"event=proxy_header_failed session=\S+ role=submission "
                        r"proxy=127\.0\.0\.1 reason=\"not a PROXY protocol header\"")
        self.a.wait_log(r"event=proxy_header_failed .*reason=\"v1 header longer than 107")

    def test_silent_peer_is_cut_after_the_header_timeout(self):
        sock, f = raw(self.a.ports["submissions"])
        started = time.time()
        with sock, f:
            self.assertEqual(f.read(), b"")  # nothing is sent, the server closes
        self.assertLess(time.time() - started, 9)  # 18 times the 500 ms configured
        self.a.wait_log(r"level=warning event=proxy_header_failed session=\S+ role=submissions "
                        r"proxy=127\.0\.0\.1 reason=timeout")


@needs.tools("haproxy")
class ProxiedLimits(ServerTestCase):
    def test_per_ip_limit_counts_the_proxied_client(self):
        server = self.new_server(listeners=listeners(), limits={"max_connections_per_ip": 2})
        server.start()
        port = server.ports["submission"]
        held = []
        try:
            for _ in range(2):  # two sessions of 192.0.2.7, through the trusted proxy address
                sock, f = raw(port)
                sock.sendall(b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 587\r\n")
                self.assertEqual(read_reply(f)[0], 220)
                held.append((sock, f))
            sock, f = raw(port)
            with sock, f:
                sock.sendall(b"PROXY TCP4 192.0.2.7 127.0.0.1 40001 587\r\n")
                code, lines = read_reply(f)
                self.assertEqual(code, 421, lines)
                self.assertIn("4.7.0", lines[0])
            server.wait_log(REFUSED + r"role=submission client=192\.0\.2\.7 "
                            r"limit=per_ip ")
            # Another client behind the same proxy is not affected (v2 header this time).
            sock, f = raw(port)
            with sock, f:
                header = (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c" +
                          socket.inet_aton("192.0.2.8") + socket.inet_aton("127.0.0.1") +
                          (40002).to_bytes(2, "big") + (587).to_bytes(2, "big"))
                sock.sendall(header)
                self.assertEqual(read_reply(f)[0], 220)
            server.wait_log(r"event=connect session=\S+ role=submission client=192\.0\.2\.8 "
                            r"client_port=40002 proxy=127\.0\.0\.1")
        finally:
            for sock, f in held:
                f.close()
                sock.close()


SMTPSCTL = os.environ.get("SMTPSCTL_BIN") or os.path.join(
    os.path.dirname(os.environ.get("SMTPSD_BIN") or
                    os.path.join(os.path.dirname(__file__), "..", "..", "build", "smtpsd")),
    "smtpsctl")


def proxy_v1(source, port=587):
    family, destination = ("TCP6", "::1") if ":" in source else ("TCP4", "127.0.0.1")
    return f"PROXY {family} {source} {destination} 40000 {port}\r\n".encode()


def proxy_v2(source, port=465):
    if ":" in source:  # TCP over IPv6 (0x21), also for an IPv4-mapped address
        family = 0x21
        addresses = socket.inet_pton(socket.AF_INET6, source) + \
            socket.inet_pton(socket.AF_INET6, "::1")
    else:
        family = 0x11
        addresses = socket.inet_aton(source) + socket.inet_aton("127.0.0.1")
    body = addresses + (40000).to_bytes(2, "big") + port.to_bytes(2, "big")
    return b"\r\n\r\n\x00\r\nQUIT\n\x21" + bytes([family]) + len(body).to_bytes(2, "big") + body


def proxied_login(server, source, password):
    """(code, text) of AUTH PLAIN on the submissions listener, the PROXY v2 header naming
    `source` as the client."""
    sock = socket.create_connection(("127.0.0.1", server.ports["submissions"]), timeout=20)
    sock.sendall(proxy_v2(source))
    tls = server.client_context().wrap_socket(sock, server_hostname="localhost")
    with tls, tls.makefile("rb") as f:
        assert read_reply(f)[0] == 220
        tls.sendall(b"EHLO client.example\r\n")
        assert read_reply(f)[0] == 250
        response = base64.b64encode(f"\0demo@localhost\0{password}".encode())
        tls.sendall(b"AUTH PLAIN " + response + b"\r\n")
        code, lines = read_reply(f)
        tls.sendall(b"QUIT\r\n")
        return code, lines[0][4:]


class Ipv6ClientsBehindAProxy(ServerTestCase):
    """An IPv6 client is its /64 for every per-client limit ([limits] ipv6_prefix): it
    cannot escape a lockout or the connection limit by taking the next address of its own
    network. An IPv4-mapped address is its IPv4 client."""

    def test_lockout_covers_the_whole_slash64_not_the_next_one(self):
        server = self.new_server(listeners=listeners(),
                                 extra_toml="[auth]\nmax_failures_per_user = 3\n")
        with server:
            password = password_of(server)
            for i in (1, 2, 3):  # three addresses of one /64, one wrong password each
                code, text = proxied_login(server, f"2001:db8::{i}", f"Wrong-Guess-{i}")
                self.assertEqual(code, 535, text)
            # A fourth address of that /64 is locked out, even with the right password.
            code, text = proxied_login(server, "2001:db8::b", password)
            self.assertEqual(code, 454, text)
            self.assertTrue(text.startswith("4.7.0"), text)
            # Another /64 is another client.
            self.assertEqual(proxied_login(server, "2001:db8:0:1::1", password)[0], 235)
            lockouts = subprocess.run(
                [SMTPSCTL, "auth", "lockouts", "--config", server.config_path],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20, text=True)
            self.assertEqual(lockouts.returncode, 0, lockouts.stdout)
            self.assertRegex(lockouts.stdout, r"(?m)^2001:db8::/64 demo@localhost 3 \d+$")
            unlock = subprocess.run(
                [SMTPSCTL, "auth", "unlock", "--config", server.config_path, "2001:db8::/64"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20, text=True)
            self.assertEqual(unlock.returncode, 0, unlock.stdout)
            self.assertEqual(proxied_login(server, "2001:db8::c", password)[0], 235)

    def test_connection_limit_counts_the_slash64_and_mapped_ipv4(self):
        server = self.new_server(listeners=listeners(), limits={"max_connections_per_ip": 2})
        server.start()
        port = server.ports["submission"]
        held = []

        def connect(header):
            sock, f = raw(port)
            sock.sendall(header)
            return sock, f, read_reply(f)

        try:
            for source in ("2001:db8::1", "2001:db8::2"):
                sock, f, (code, lines) = connect(proxy_v1(source))
                self.assertEqual(code, 220, lines)
                held.append((sock, f))
            sock, f, (code, lines) = connect(proxy_v1("2001:db8::3"))
            with sock, f:
                self.assertEqual(code, 421, lines)
                self.assertIn("4.7.0", lines[0])
            server.wait_log(REFUSED + r"role=submission client=2001:db8::3 limit=per_ip ")
            sock, f, (code, lines) = connect(proxy_v1("2001:db8:0:1::1"))  # another /64
            held.append((sock, f))
            self.assertEqual(code, 220, lines)
            # IPv4, and the same address IPv4-mapped in a v2 header: one client.
            sock, f, (code, lines) = connect(proxy_v1("192.0.2.7"))
            held.append((sock, f))
            self.assertEqual(code, 220, lines)
            sock, f, (code, lines) = connect(proxy_v2("::ffff:192.0.2.7", port=587))
            held.append((sock, f))
            self.assertEqual(code, 220, lines)
            server.wait_log(r"event=connect session=\S+ role=submission client=192\.0\.2\.7 "
                            r"client_port=40000 proxy=127\.0\.0\.1")
            sock, f, (code, lines) = connect(proxy_v1("192.0.2.7"))
            with sock, f:
                self.assertEqual(code, 421, lines)
        finally:
            for sock, f in held:
                f.close()
                sock.close()


if __name__ == "__main__":
    unittest.main()
