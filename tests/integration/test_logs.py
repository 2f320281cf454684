"""Logs: [log] format = "json" and output = "syslog", and the session id on every line of
a session, with the real binary."""

import json
import os
import re
import smtplib
import socket
import subprocess
import threading
import time
import unittest

from harness import SMTPSD, ServerTestCase, make_message

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
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        receiver.bind(path)
        datagrams = []
        done = threading.Event()

        def receive():
            receiver.settimeout(0.2)
            while not done.is_set():
                try:
                    datagrams.append(receiver.recv(65536))
                except socket.timeout:
                    continue

        thread = threading.Thread(target=receive, daemon=True)
        thread.start()
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
            done.set()
            thread.join()
            receiver.close()
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
        with self.new_server() as server:
            exercise(self, server)  # a failed login, 2 messages delivered, a refused recipient
            client = server.smtps()
            client.login("demo@localhost", demo_password(server))
            client.sendmail("demo@localhost", ["someone@remote.test"],
                            make_message("away", sender="demo@localhost"))
            client.quit()
            # The test's DNS is a closed port: a temporary failure, the message waits.
            server.wait_log(r"event=deferred id=\S+ rcpt=someone@remote\.test ")

        def summary(*args):
            return subprocess.run([SMTPSCTL, "log", "summary", server.log_path, *args],
                                  capture_output=True, text=True, timeout=60)

        found = summary()
        self.assertEqual(found.returncode, 0, found.stderr)
        out = found.stdout
        for pattern in (r"\n  received +3 +\d+\.\d KiB\n",
                        r"\n  delivered +2 +maildir 2\n",
                        r"\n  deferred +1 +attempts, for 1 recipient\(s\)\n",
                        r"\n  failed +0\n",
                        # smtplib tries PLAIN, then LOGIN: two refused logins
                        r"\n  logins +2 +invalid credentials 2\n",
                        r"\nDeferrals by destination\n  remote\.test +1 +last: \S",
                        r"\nTop senders\n  demo@localhost +2\n  you@example\.org +1\n",
                        r"\nTop recipients\n  demo@localhost +2\n",
                        r"\nDelivery delays \(accepted to delivered, 2 deliveries\)\n",
                        r"\n  inbound sessions   TLSv1\.3 \d+\n"):
            self.assertRegex(out, pattern)
        today = time.strftime("%Y-%m-%d", time.gmtime())
        self.assertRegex(summary("--day", today).stdout, r"\n  received +3 ")
        self.assertRegex(summary("--day", "2001-01-01").stdout, r"\n  received +0 ")
        bad = summary("--day", "yesterday")
        self.assertEqual(bad.returncode, 2)
        self.assertIn("--day yesterday: not YYYY-MM-DD", bad.stderr)
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
