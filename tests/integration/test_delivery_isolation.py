"""Remote delivery cannot stall the server: a silent MX (a tarpit that accepts connections
and never says a word) reached through forged senders' success notices must not delay local
mail, hold more connections than the per-host limit whatever domains point at it, or keep a
delivery thread past the attempt's time limit; and those success notices carry nothing of
the message.
"""

import socket
import threading
import time

from dns_server import DnsServer
from fake_smtp import FakeSmtp
from harness import ServerTestCase, make_message
from test_onward import dsn_parts


class Tarpit:
    """Accepts TCP connections on 127.0.0.1 and never answers; counts them."""

    def __init__(self, host="127.0.0.1", port=0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.held.append(conn)

    def open_now(self):
        """Connections the server still holds open."""
        with self.lock:
            alive = []
            for conn in self.held:
                conn.setblocking(False)
                try:
                    closed = conn.recv(1) == b""
                except BlockingIOError:
                    closed = False
                except OSError:
                    closed = True
                if not closed:
                    alive.append(conn)
            return len(alive)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.sock.close()
        with self.lock:
            for conn in self.held:
                conn.close()


def queue_toml(dns, port, attempt_timeout):
    return "\n".join([
        "[queue]", "retry_schedule = [60]", "delivery_threads = 3",
        "",
        "[dns]", f'servers = "{dns.server}"', 'validation = "no"', "",
        "[delivery]", f"mx_port = {port}",
        'default_tls = "may"', "connect_timeout = 5", "command_timeout = 60",
        f"attempt_timeout = {attempt_timeout}", "max_per_host = 1", "connection_cache = 0",
    ]) + "\n"


def ask_for_success_notice(server, sender):
    """From port 25, unauthenticated: a mail to our postmaster asking for a success DSN."""
    client = server.smtp()
    try:
        client.sendmail(sender, ["postmaster@localhost"],
                        make_message(subject="secret subject", sender=sender,
                                     to="postmaster@localhost"),
                        rcpt_options=["NOTIFY=SUCCESS"])
    finally:
        client.quit()


def wait_for(predicate, what, server, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}\n{server.log()[-3000:]}")


class DeliveryIsolation(ServerTestCase):
    def test_silent_mx_hosts_delay_neither_local_mail_nor_other_hosts(self):
        with Tarpit() as tarpit_a, \
                Tarpit(host="127.0.0.3", port=tarpit_a.port) as tarpit_b, \
                FakeSmtp(host="127.0.0.2", port=tarpit_a.port) as sink, \
                DnsServer(mx={"slow1.test": [(10, "tarpit-a.test")],
                              "slow2.test": [(10, "tarpit-b.test")],
                              "slow3.test": [(10, "tarpit-a.test")],
                              "fine.test": [(10, "sink.test")]},
                          a={"tarpit-a.test": "127.0.0.1", "tarpit-b.test": "127.0.0.3",
                             "sink.test": "127.0.0.2"},
                          directory=self.tmp) as dns:
            server = self.new_server(extra_toml=queue_toml(dns, tarpit_a.port,
                                                           attempt_timeout=10))
            server.start()
            # Forged senders whose domains' MX hosts never answer: each success notice holds
            # a remote delivery thread (3 of them) for as long as an attempt may last.
            ask_for_success_notice(server, "victim@slow1.test")
            ask_for_success_notice(server, "victim@slow2.test")
            wait_for(lambda: tarpit_a.open_now() == 1 and tarpit_b.open_now() == 1,
                     "the notices never reached the silent hosts", server)
            # A third domain on host A: one transaction at a time with that address
            # (max_per_host = 1), so this one waits and is deferred as busy.
            ask_for_success_notice(server, "victim@slow3.test")
            started = time.monotonic()
            client = server.smtp()
            client.sendmail("someone@example.org", ["demo@localhost"],
                            make_message(subject="local", to="demo@localhost"))
            client.quit()
            server.wait_delivered(1, "demo@localhost", timeout=30)
            local_delay = time.monotonic() - started
            self.assertLess(local_delay, 3.0, "local mail waited behind remote delivery")
            server.wait_log(r"event=host_busy domain=slow3.test host=127.0.0.1", timeout=20)
            self.assertEqual(tarpit_a.open_now(), 1)
            # A success notice to a healthy host goes out meanwhile, without the message.
            ask_for_success_notice(server, "someone@fine.test")
            wait_for(lambda: sink.messages, "no notice reached the healthy host", server)
            mail_from, rcpts, data, _ = sink.messages[0]
            self.assertEqual((mail_from, rcpts), ("", ["someone@fine.test"]))
            report, _ = dsn_parts(data)
            self.assertIn("Action: delivered", report)
            self.assertNotIn(b"secret subject", data)
            # The silent hosts' attempts end at the attempt's limit (10 s), not the 60 s
            # per-reply timeout, and each host is marked slow.
            server.wait_log(r"event=deferred id=\S+ rcpt=victim@slow1.test detail=\"[^\"]*"
                            r"time limit", timeout=30)
            server.wait_log(r"event=host_slow host=127.0.0.1 timeouts=1 max_connections=1",
                            timeout=20)
            self.assertTrue(server.alive())


if __name__ == "__main__":
    import unittest
    unittest.main()
