"""Logs: [log] format = "json" and output = "syslog", and the session id on every line of
a session, with the real binary."""

import calendar
import json
import os
import re
import signal
import smtplib
import socket
import subprocess
import time
import unittest

from harness import SMTPSD, ServerTestCase, SyslogSocket, make_message

SMTPSCTL = os.environ.get("SMTPSCTL_BIN") or os.path.join(os.path.dirname(SMTPSD), "smtpsctl")


def demo_password(server):
    with open(os.path.join(server.dir, "demo.password")) as f:
        return f.read().strip()


def start_with(server, read_text, started, listening, timeout=20):
    """Starts smtpsd like harness.Server.start, for logs that are not key=value on stderr:
    read_text() returns the log so far, started/listening say how to find the lines."""
    log = open(server.log_path, "ab")
    server.process = subprocess.Popen([SMTPSD, "serve", "--config", server.config_path],
                                      stdout=log, stderr=log)
    log.close()
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = read_text()
        if started(text):
            server.ports = listening(text)
            return server
        if server.process.poll() is not None:
            raise RuntimeError(f"smtpsd exited with {server.process.returncode}:\n{text}")
        time.sleep(0.02)
    raise RuntimeError("smtpsd did not start in time:\n" + read_text())


def exercise(test, server):
    """A session with everything a log reader cares about: TLS, a failed and a good AUTH,
    an accepted message, a refused recipient, a value with quotes and a non-UTF-8 byte."""
    client = server.smtps()
    with test.assertRaises(smtplib.SMTPAuthenticationError) as refused:
        client.login('we"ird\\user', "wrong")
    test.assertEqual(refused.exception.smtp_code, 535)
    client.login("demo@localhost", demo_password(server))
    client.sendmail("demo@localhost", ["demo@localhost"],
                    make_message("logs", sender="demo@localhost"))
    client.quit()
    client = server.smtp("smtp")
    refused = client.sendmail("you@example.org", ["demo@localhost", "nobody@localhost"],
                              make_message("two"))
    test.assertIn("nobody@localhost", refused)
    client.quit()
    server.wait_delivered(2)


class JsonFormat(ServerTestCase):
    def test_every_line_is_a_json_object_with_the_usual_keys(self):
        server = self.new_server(extra_toml='[log]\nformat = "json"\n')

        def listening(text):
            ports = {}
            for line in text.splitlines():
                entry = json.loads(line)
                if entry["event"] == "listening":
                    ports.setdefault(entry["role"], int(entry["port"]))
            return ports

        start_with(server, server.log, lambda t: '"event":"started"' in t, listening)
        exercise(self, server)
        server.stop()
        lines = server.log().splitlines()
        self.assertGreater(len(lines), 10)
        entries = [json.loads(line) for line in lines]  # every line parses
        for entry in entries:
            self.assertRegex(entry["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertIn(entry["level"], ("debug", "info", "warning", "error"))
            self.assertIsInstance(entry["event"], str)
        events = {e["event"] for e in entries}
        for event in ("listening", "started", "connect", "tls", "auth_failed", "auth",
                      "accepted", "delivered", "session_end", "stopped"):
            self.assertIn(event, events)
        failed = next(e for e in entries if e["event"] == "auth_failed")
        self.assertEqual(failed["client"], "127.0.0.1")
        self.assertEqual(failed["user"], 'we"ird\\user')  # escaped and back, intact
        accepted = next(e for e in entries if e["event"] == "accepted")
        self.assertIsInstance(accepted["size"], int)  # numbers stay numbers
        delivered = next(e for e in entries if e["event"] == "delivered")  # from the queue
        self.assertEqual(delivered["rcpt"], "demo@localhost")


class SyslogOutput(ServerTestCase):
    def test_lines_go_to_the_syslog_socket_with_the_mail_facility(self):
        path = os.path.join(self.tmp, "log.sock")
        syslog = SyslogSocket(path)
        datagrams = syslog.datagrams
        try:
            server = self.new_server(
                extra_toml=f'[log]\noutput = "syslog"\nfacility = "mail"\n'
                           f'syslog_socket = "{path}"\n')
            text = lambda: "\n".join(d.decode("utf-8", "replace") for d in list(datagrams))

            def listening(t):
                return {role: int(port) for role, port in
                        re.findall(r"event=listening role=(\S+) address=\S+ port=(\d+)", t)}

            start_with(server, text, lambda t: "event=started" in t, listening)
            exercise(self, server)
            server.stop()
        finally:
            syslog.close()
        self.assertEqual(server.log(), "")  # nothing left on stderr
        frame = re.compile(r"^<(\d+)>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d smtpsd\[\d+\]: "
                           r"level=(\w+) event=\S+")
        for datagram in datagrams:
            line = datagram.decode("utf-8", "replace")
            self.assertNotIn("\n", line)  # one event, one datagram
            match = frame.match(line)
            self.assertTrue(match, line)
            priority, level = int(match.group(1)), match.group(2)
            self.assertEqual(priority >> 3, 2, line)  # LOG_MAIL
            self.assertEqual(priority & 7, {"debug": 7, "info": 6, "warning": 4,
                                            "error": 3}[level], line)
        self.assertTrue(any(" event=auth_failed " in d.decode() for d in datagrams))
        # The summary reads the datagrams as a syslog daemon files them too.
        filed = os.path.join(self.tmp, "mail.log")
        with open(filed, "w") as f:
            for datagram in datagrams:
                f.write(datagram.decode("utf-8", "replace") + "\n")
        summary = subprocess.run([SMTPSCTL, "log", "summary", filed], capture_output=True,
                                 text=True, check=True).stdout
        self.assertRegex(summary, r"\n  received +2 ")
        self.assertRegex(summary, r"\n  logins +2 ")  # smtplib tries PLAIN, then LOGIN

    def test_missing_socket_falls_back_to_stderr(self):
        path = os.path.join(self.tmp, "nobody-listens.sock")
        server = self.new_server(extra_toml=f'[log]\noutput = "syslog"\n'
                                            f'syslog_socket = "{path}"\n')
        with server:
            pass
        self.assertIn("event=started", server.log())


class SessionIds(ServerTestCase):
    def test_every_line_about_a_connection_names_its_session(self):
        with self.new_server() as server:
            exercise(self, server)
        log = server.log()
        connection_events = ("connect", "tls", "tls_handshake_failed", "auth", "auth_failed",
                             "accepted", "spool_failed", "http_refused", "session_end",
                             "connection_refused", "session_crashed")
        seen = set()
        for line in log.splitlines():
            event = re.search(r" event=(\S+)", line).group(1)
            if event in connection_events:
                seen.add(event)
                self.assertRegex(line, r" event=\S+ session=\S+ ", line)
        self.assertTrue({"connect", "tls", "auth", "auth_failed", "accepted",
                         "session_end"} <= seen, seen)


class Summary(ServerTestCase):
    def test_the_summary_counts_a_scripted_run(self):  # smtpsctl log summary
        # The next hop of the relay domain branch.test: a second server, over verified TLS.
        remote = self.new_server(domains=[("branch.test", ["bob"])])
        remote.start()
        server = self.new_server(
            domains=[("localhost", ["demo"]),
                     ("branch.test", [], {"kind": "relay", "recipients": ["bob"],
                                          "next_hop": f"smtp://127.0.0.1:{remote.ports['smtp']}"})],
            extra_toml=f'[delivery]\nca_file = "{remote.ca}"\n')
        with server:
            exercise(self, server)  # a failed login, 2 messages delivered, a refused recipient
            client = server.smtps()
            client.login("demo@localhost", demo_password(server))
            client.sendmail("demo@localhost", ["someone@remote.test"],
                            make_message("away", sender="demo@localhost"))
            client.quit()
            # The test's DNS is a closed port: a temporary failure, the message waits.
            server.wait_log(r"event=deferred id=\S+ rcpt=someone@remote\.test ")
            client = server.smtp("smtp")
            client.sendmail("partner@sender.test", ["bob@branch.test"], make_message("onward"))
            client.quit()
            remote.wait_delivered(1, "bob@branch.test")
            server.wait_log(r"event=delivered id=\S+ rcpt=bob@branch\.test ")
            # Refusals of other kinds: a TLS handshake that is not one, and (after a reload
            # that allows one connection per client address) a second connection from an
            # address of its own, 127.0.0.2, while its first is open.
            with socket.create_connection(("127.0.0.1", server.ports["submissions"]),
                                          timeout=10) as garbage:
                garbage.sendall(b"EHLO not-tls\r\n")
                while garbage.recv(4096):
                    pass
            server.wait_log(r"event=tls_handshake_failed ")
            server.limits = {"max_connections_per_ip": 1}
            server.write_config()
            server.process.send_signal(signal.SIGHUP)
            server.wait_log(r"event=reloaded")
            first = socket.create_connection(("127.0.0.1", server.ports["smtp"]), timeout=10,
                                             source_address=("127.0.0.2", 0))
            self.addCleanup(first.close)
            self.assertTrue(first.recv(4096).startswith(b"220 "))
            with socket.create_connection(("127.0.0.1", server.ports["smtp"]), timeout=10,
                                          source_address=("127.0.0.2", 0)) as second:
                self.assertTrue(second.recv(4096).startswith(b"421 4.7.0 "))
            server.wait_log(r"event=connection_refused ")
            first.close()

        def summary(*args):
            return subprocess.run([SMTPSCTL, "log", "summary", server.log_path, *args],
                                  capture_output=True, text=True, timeout=60)

        found = summary()
        self.assertEqual(found.returncode, 0, found.stderr)
        out = found.stdout
        for pattern in (r"\n  received +4 +\d+\.\d KiB\n",
                        r"\n  delivered +3 +maildir 2, relay 1\n",
                        r"\n  deferred +1 +attempts, for 1 recipient\(s\)\n",
                        r"\n  failed +0\n",
                        # Refused, by reason: the limit, the login's reason, the event.
                        r"\nRefused\n  connections +1 +per_ip 1\n",
                        # smtplib tries PLAIN, then LOGIN: two refused logins
                        r"\n  logins +2 +invalid credentials 2\n",
                        r"\n  authenticity +0\n",
                        r"\n  other +1 +tls_handshake_failed 1\n",
                        r"\nDeferrals by destination\n  remote\.test +1 +last: \S",
                        r"\nTop senders\n  demo@localhost +2\n  you@example\.org +1\n"
                        r"  partner@sender\.test +1\n",
                        r"\nTop recipients\n  demo@localhost +2\n  bob@branch\.test +1\n",
                        r"\nDelivery delays \(accepted to delivered, 3 deliveries\)\n",
                        r"\n  inbound sessions   TLSv1\.3 \d+\n",
                        # The hop to branch.test's next hop: its TLS version and policy.
                        r"\n  outbound delivered TLSv1\.3 1\n",
                        r"\n  outbound policies  static 1\n"):
            self.assertRegex(out, pattern)
        today = time.strftime("%Y-%m-%d", time.gmtime())
        self.assertRegex(summary("--day", today).stdout, r"\n  received +4 ")
        self.assertRegex(summary("--day", "2001-01-01").stdout, r"\n  received +0 ")
        bad = summary("--day", "yesterday")
        self.assertEqual(bad.returncode, 2)
        self.assertIn("--day yesterday: not YYYY-MM-DD", bad.stderr)
        # --since (included) and --until (excluded), cut at the second of the last message
        # received: each side counts the lines the log itself puts there.
        with open(server.log_path) as f:
            received = [line.split()[0] for line in f if " event=accepted " in line]
        self.assertEqual(len(received), 4)
        cut = received[-1][:19] + "Z"  # YYYY-MM-DDTHH:MM:SSZ
        after = sum(1 for when in received if when[:19] + "Z" >= cut)
        self.assertRegex(summary("--since", cut).stdout, rf"\n  received +{after} ")
        self.assertRegex(summary("--until", cut).stdout, rf"\n  received +{4 - after} ")
        first, last = received[0][:19] + "Z", received[-1][:19] + "Z"
        self.assertRegex(summary("--since", first, "--until", "2100-01-01").stdout,
                         r"\n  received +4 ")
        self.assertRegex(summary("--until", first).stdout, r"\n  received +0 ")
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                              time.gmtime(calendar.timegm(time.strptime(last, "%Y-%m-%dT%H:%M:%SZ")) + 1))
        self.assertRegex(summary("--since", later).stdout, r"\n  received +0 ")
        bad = summary("--since", "noon")
        self.assertEqual(bad.returncode, 2)
        self.assertIn("smtpsctl log: noon: not YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ\n", bad.stderr)
        both = summary("--day", today, "--since", first)
        self.assertEqual(both.returncode, 2)
        self.assertIn("smtpsctl log: --day or --since/--until, not both\n", both.stderr)
        missing = summary(os.path.join(self.tmp, "no-such.log"))
        self.assertEqual(missing.returncode, 1)
        self.assertIn("cannot read", missing.stderr)


class BadLogSettings(ServerTestCase):
    def test_unknown_values_name_file_line_and_key(self):
        for toml, key in (('format = "xml"', "log.format"), ('output = "file"', "log.output"),
                          ('facility = "kern"', "log.facility"),
                          ('syslog_socket = "relative"', "log.syslog_socket")):
            server = self.new_server(extra_toml="[log]\n" + toml + "\n")
            result = subprocess.run([SMTPSD, "check", "--config", server.config_path],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    timeout=30)
            self.assertNotEqual(result.returncode, 0)
            self.assertRegex(result.stdout, r"smtpsd\.toml:\d+: " + re.escape(key) + ": ")


if __name__ == "__main__":
    unittest.main()
