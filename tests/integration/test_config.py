"""`smtpsd check` and `smtpsd dev` as an administrator uses them."""

import os
import random
import re
import signal
import smtplib
import ssl
import stat
import subprocess
import time
import unittest

from harness import SMTPSD, ServerTestCase, make_message
import needs
import ports


def run(args, timeout=30):
    return subprocess.run([SMTPSD] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout)


class Check(ServerTestCase):
    def dev_config(self):
        directory = os.path.join(self.tmp, "cfg")
        subprocess.run([SMTPSD, "dev", "--init-only", "--dir", directory], check=True,
                       stdout=subprocess.DEVNULL, timeout=30)
        path = os.path.join(directory, "smtpsd.toml")
        with open(path) as f:
            return path, f.read().split("\n")

    def write_variant(self, lines, name):
        path = os.path.join(self.tmp, "cfg", name)
        with open(path, "w") as f:
            f.write("\n".join(lines))
        return path

    def test_dev_config_is_ok(self):
        path, _ = self.dev_config()
        result = run(["check", "--config", path])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(b"configuration OK", result.stdout)

    def test_unknown_key_names_file_line_and_key(self):
        _, lines = self.dev_config()
        index = lines.index('hostname = "localhost"') + 1
        lines.insert(index, "hostnmae = \"typo.example\"")
        path = self.write_variant(lines, "unknown.toml")
        result = run(["check", "--config", path])
        self.assertEqual(result.returncode, 2, result.stdout)
        stderr = result.stderr.decode()
        self.assertRegex(stderr, re.escape(path) + f":{index + 1}: " +
                         r"(server\.)?hostnmae: unknown key")
        self.assertNotIn("configuration OK", result.stdout.decode())

    def test_tls1_min_version_refused(self):
        _, lines = self.dev_config()
        index = lines.index('min_version = "TLSv1.2"')
        lines[index] = 'min_version = "TLSv1"'
        path = self.write_variant(lines, "tls1.toml")
        result = run(["check", "--config", path])
        self.assertEqual(result.returncode, 2, result.stdout)
        stderr = result.stderr.decode()
        self.assertIn(path, stderr)
        self.assertRegex(stderr, r"\btls\b")
        self.assertIn("min_version", stderr)
        self.assertNotIn("configuration OK", result.stdout.decode())

    def test_missing_certificate_file_named(self):
        _, lines = self.dev_config()
        index = lines.index('certificate = "tls/server-rsa.pem"')
        lines[index] = 'certificate = "tls/no-such-cert.pem"'
        path = self.write_variant(lines, "nocert.toml")
        result = run(["check", "--config", path])
        self.assertEqual(result.returncode, 2, result.stdout)
        self.assertIn("no-such-cert.pem", result.stderr.decode())
        self.assertNotIn("configuration OK", result.stdout.decode())
        # the server refuses to start with it, too
        serve = run(["serve", "--config", path], timeout=30)
        self.assertNotEqual(serve.returncode, 0)
        self.assertIn("no-such-cert.pem", serve.stderr.decode())

    def test_relay_password_to_an_unverified_relay_refused_by_check_and_serve(self):
        directory = os.path.join(self.tmp, "cfg")
        for relay, relay_tls in (("smtp://relay.example:587", "encrypt"),
                                 ("smtps://relay.example:465", "encrypt"),
                                 ("smtps://relay.example:465", "may")):
            _, lines = self.dev_config()
            lines = [line for line in lines if line.strip() != "[delivery]"]
            with open(os.path.join(directory, "relay.password"), "w") as f:
                f.write("relay-secret\n")
            lines += ["[delivery]", f'relay = "{relay}"', 'relay_user = "me@example.org"',
                      'relay_password_file = "relay.password"', f'relay_tls = "{relay_tls}"']
            line = len(lines)
            path = self.write_variant(lines, "relay.toml")
            for command in ("check", "serve"):
                result = run([command, "--config", path])
                self.assertEqual(result.returncode, 2, (command, result.stdout, result.stderr))
                self.assertRegex(result.stderr.decode(),
                                 re.escape(path) + f":{line}: (delivery\\.)?relay_tls: "
                                 r'must be "verify" when relay_user is set')
            lines[-1] = 'relay_tls = "verify"'
            path = self.write_variant(lines, "relay.toml")
            result = run(["check", "--config", path])
            self.assertEqual(result.returncode, 0, (relay, result.stderr))


class DevMode(ServerTestCase):
    def free_offset(self):
        """An offset whose three dev ports are out of the ephemeral range, free and locked
        for this test (ports.py): the dev server binds them later."""
        candidates = set(ports.candidate_ports())
        offsets = [offset for offset in range(0, 60001)
                   if all(base + offset in candidates for base in (2465, 2587, 2525))]
        rng = random.Random()
        for _ in range(200 if offsets else 0):
            offset = rng.choice(offsets)
            if ports.claim(2465 + offset, 2587 + offset, 2525 + offset):
                return offset
        needs.environmental(self, "port-offset")

    def test_dev_server_creates_files_and_receives_mail(self):
        directory = os.path.join(self.tmp, "dev")
        offset = self.free_offset()
        out_path = os.path.join(self.tmp, "dev.out")
        err_path = os.path.join(self.tmp, "dev.err")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            # --dns: tests never ask real DNS (a closed loopback port, no DNSSEC probe).
            process = subprocess.Popen([SMTPSD, "dev", "--dir", directory, "--port-offset",
                                        str(offset), "--dns", "127.0.0.1:9"],
                                       stdout=out, stderr=err)
        try:
            deadline = time.time() + 20
            while time.time() < deadline:
                with open(err_path, "rb") as f:
                    if b"event=started" in f.read():
                        break
                if process.poll() is not None:
                    with open(err_path) as f:
                        self.fail(f"dev server exited with {process.returncode}:\n{f.read()}")
                time.sleep(0.05)
            else:
                with open(err_path) as f:
                    self.fail("dev server did not start:\n" + f.read())
            smtp_port = 2525 + offset
            # The instructions are printed once the server has started (after its "started"
            # line): wait for their last part.
            instructions = ""
            deadline = time.time() + 20
            while time.time() < deadline and "openssl s_client -connect" not in instructions:
                with open(out_path) as f:
                    instructions = f.read()
                time.sleep(0.05)
            self.assertIn(os.path.join(directory, "tls", "ca.pem"), instructions)
            self.assertIn(f"127.0.0.1:{smtp_port}", instructions)
            self.assertIn(f"127.0.0.1:{2465 + offset}", instructions)
            self.assertIn(f"127.0.0.1:{2587 + offset}", instructions)
            self.assertIn("demo@localhost", instructions)
            self.assertRegex(instructions, r"(?m)^  checks +received-loop \(end of headers, "
                             r"554 5\.4\.6 at 50 Received fields\), authenticity \(.*port 25: "
                             r"SPF dmarc, DKIM, DMARC enforce.*\), dkim-sign \(.*signs mail of "
                             r"localhost \(rsa-sha256, ed25519-sha256\)\)$")
            self.assertRegex(instructions, r"dkim/localhost\.zone")
            # How a real server gets its certificates: ACME, turned on by [acme].
            self.assertRegex(instructions, r"(?m)^  certificates +from the dev CA; .*ACME.*\n"
                             r".*with an \[acme\] table")
            # The sending limits: the message rate is off for load tests, the recipient
            # bounds are the defaults.
            self.assertIn("  sending limits per user: no message rate; distinct external "
                          "recipients: 50 an hour, 200 a day (then held: smtpsctl queue "
                          "release --user USER)\n", instructions)
            # Where local mail is at the 250, and the setting that changes it.
            self.assertIn("  local mail     in the mailbox when the 250 comes; [queue] "
                          "reply_after = \"log\" answers\n", instructions)
            # The DANE records it points at are this server's: one per certificate.
            command = re.search(r"smtpsctl (dane tlsa --config \S+)", instructions).group(1)
            smtpsctl = os.path.join(os.path.dirname(SMTPSD), "smtpsctl")
            records = subprocess.run([smtpsctl] + command.split(), capture_output=True,
                                     text=True, check=True).stdout
            self.assertEqual(len(re.findall(r"(?m)^_25\._tcp\.localhost\. IN TLSA 3 1 1 "
                                            r"[0-9a-f]{64} ", records)), 2, records)
            # The records check it points at names this configuration (not run here: the
            # file's [dns] is the system's resolver, and tests ask no DNS beyond loopback).
            self.assertIn("smtpsctl dns check DOMAIN --config "
                          + os.path.join(directory, "smtpsd.toml"), instructions)

            with open(err_path) as f:
                self.assertRegex(f.read(), r'event=dns mode=forward validating=no '
                                           r'detail="forward to 127\.0\.0\.1:9, not validating"')

            for name in ("tls/ca.pem", "smtpsd.toml", "demo.password"):
                self.assertTrue(os.path.isfile(os.path.join(directory, name)), name)
            mode = stat.S_IMODE(os.stat(os.path.join(directory, "demo.password")).st_mode)
            self.assertEqual(mode, 0o600)
            maildir = os.path.join(directory, "mail", "localhost", "demo")
            for sub in ("tmp", "new", "cur"):
                self.assertTrue(os.path.isdir(os.path.join(maildir, sub)), sub)

            context = ssl.create_default_context(cafile=os.path.join(directory, "tls", "ca.pem"))
            with smtplib.SMTP("localhost", smtp_port, timeout=10) as client:
                client.starttls(context=context)
                refused = client.sendmail("you@example.org", ["demo@localhost"],
                                          make_message("dev mode", "dev@example.org"))
                self.assertEqual(refused, {})
            deadline = time.time() + 15
            names = []
            while time.time() < deadline and not names:
                names = os.listdir(os.path.join(maildir, "new"))
                time.sleep(0.05)
            self.assertEqual(len(names), 1)
            with open(os.path.join(maildir, "new", names[0]), "rb") as f:
                self.assertIn(b"Message-ID: <dev@example.org>", f.read())
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                code = None
        self.assertEqual(code, 0)

    def test_existing_directory_keeps_its_ports_says_so_and_prints_the_bound_ones(self):
        directory = os.path.join(self.tmp, "dev")
        first = self.free_offset()
        subprocess.run([SMTPSD, "dev", "--dir", directory, "--port-offset", str(first),
                        "--init-only"], check=True, stdout=subprocess.DEVNULL)
        config = os.path.join(directory, "smtpsd.toml")
        with open(config) as f:
            text = f.read()
        # the developer's own edit: the kernel picks the smtp port
        with open(config, "w") as f:
            f.write(text.replace(f"port = {2525 + first}", "port = 0"))
        second = self.free_offset()
        out_path = os.path.join(self.tmp, "dev.out")
        err_path = os.path.join(self.tmp, "dev.err")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            process = subprocess.Popen([SMTPSD, "dev", "--dir", directory, "--port-offset",
                                        str(second), "--dns", "127.0.0.1:9"],
                                       stdout=out, stderr=err)
        try:
            def read(path):
                with open(path) as f:
                    return f.read()

            deadline = time.time() + 20
            while "Stop with Ctrl-C" not in read(out_path):
                self.assertIsNone(process.poll(), read(err_path))
                self.assertLess(time.time(), deadline, read(err_path))
                time.sleep(0.05)
            instructions, log = read(out_path), read(err_path)
            smtp_port = int(re.search(r"event=listening role=smtp address=\S+ port=(\d+)",
                                      log).group(1))
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
                self.assertEqual(client.noop()[0], 250)  # the port printed is the one serving
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=15)
        self.assertNotIn(smtp_port, (2525 + first, 2525 + second))
        listeners = re.search(r"(?m)^  listeners +(.*)$", instructions).group(1)
        self.assertEqual(listeners, f"submissions 127.0.0.1:{2465 + first} (implicit TLS), "
                                    f"submission 127.0.0.1:{2587 + first}, "
                                    f"smtp 127.0.0.1:{smtp_port}")
        self.assertIn(f"--server 127.0.0.1:{smtp_port} --tls ", instructions)
        self.assertIn(f"-connect 127.0.0.1:{2465 + first} ", instructions)
        for port in (2465 + second, 2587 + second, 2525 + second):
            self.assertNotIn(f":{port}", instructions)
        # said once, before the server starts, on stderr
        self.assertIn(f"smtpsd dev: note: {config} exists and is used as it is: its listener "
                      f"ports (submissions {2465 + first}, submission {2587 + first}, smtp 0) "
                      f"win over --port-offset {second}.", log)


if __name__ == "__main__":
    unittest.main()
