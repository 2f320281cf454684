"""bench/compare smoke test: smtpsd and a private Postfix side by side, a tiny load (about 30 s).

Checks that the script starts both servers, runs the four loads against each and prints
the table: four rows of numbers (messages/s, the ratio, p99) and no failed message, and the
machine probe's two lines (CPU, system call, file creation, disk) around them, and that on
ext4 its directory spreads the servers' directories over block groups (chattr +T). The
figures themselves mean nothing at this length; bench/README.md says how to read a real run.

`--postfix-maildir` adds a Postfix and a fifth run per load (about 12 s more here), so it is
not in the smoke run: PostfixMaildir checks, in about 2 s, that the private Postfix it starts
(postfix.py, maildir=) really delivers into the Maildir and says when its queue is empty.
"""

import os
import re
import shutil
import smtplib
import subprocess
import time
import unittest

from harness import SMTPSD, ServerTestCase
from postfix import POSTFIX, Postfix
import needs

COMPARE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench",
                       "compare")
NUMBER = r"(\d+\.\d+)"
# msg/conn, conns, then msg/s, msg/s, ratio, p99, p99, CPU, CPU, CPU ratio, failures.
# The machine probe, before the first run and after the last (bench/compare --probe-mib).
MACHINE = re.compile(r"^machine (before the runs|after them): ECDSA P-256 signature "
                     r"(\d+\.\d) us, system call (\d+\.\d\d) us, new 1 KiB file "
                     r"(\d+\.\d) us, disk (\d+) MB/s "
                     r"\(16 MiB written, fdatasync\)$", re.MULTILINE)
# The floor under one message a connection: the TLS handshake alone, in the same rounds.
HANDSHAKE = re.compile(r"^TLS handshake alone \(smtpsctl bench --handshake-only: connect, "
                       r"TLS 1\.3, close; 8 connections\): server CPU a connection smtpsd "
                       + NUMBER + r" ms, Postfix " + NUMBER + r" ms, Postfix/smtpsd "
                       + NUMBER + r"$", re.MULTILINE)
ROW = re.compile(r"^\| (1|100) \| (8|64) \| " + r" \| ".join([NUMBER] * 8) +
                 r" \| (\d+)/(\d+) \|$", re.MULTILINE)


@needs.condition(lambda: os.access(POSTFIX, os.X_OK) and os.geteuid() == 0,
                 "needs the postfix package (scripts/install-deps.sh) and root")
class BenchCompare(unittest.TestCase):
    def test_tiny_run_prints_four_rows(self):
        result = subprocess.run([COMPARE, "--build", os.path.dirname(os.path.abspath(SMTPSD)),
                                 "--duration", "1", "--rounds", "1", "--probe-mib", "16",
                                 "--keep"], capture_output=True, text=True, timeout=240)
        kept = re.search(r"^kept (\S+)$", result.stderr, re.MULTILINE)
        self.assertIsNotNone(kept, result.stderr)
        self.addCleanup(shutil.rmtree, kept.group(1), True)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        # Each server's directory in a block group of its own where the file system has them
        # (ext4: one server's removed files make the next one's new files dearer).
        kind = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "-T", kept.group(1)],
                              capture_output=True, text=True).stdout.strip()
        if kind in ("ext2", "ext3", "ext4"):
            listing = subprocess.run(["lsattr", "-d", kept.group(1)], capture_output=True,
                                     text=True, check=True).stdout
            self.assertIn("T", listing.split()[0], listing)
        # The machine as it was around the runs, so that figures of two hours compare.
        probes = MACHINE.findall(result.stdout)
        self.assertEqual([probe[0] for probe in probes], ["before the runs", "after them"],
                         result.stdout)
        for _, sign_us, syscall_us, file_us, disk in probes:
            self.assertGreater(float(sign_us), 0)
            self.assertGreater(float(syscall_us), 0)
            self.assertGreater(float(file_us), 0)
            self.assertGreater(int(disk), 0)
        floor = HANDSHAKE.search(result.stdout)
        self.assertIsNotNone(floor, result.stdout)
        smtpsd_floor, postfix_floor, floor_ratio = (float(value) for value in floor.groups())
        self.assertGreater(smtpsd_floor, 0)
        self.assertGreater(postfix_floor, 0)
        self.assertAlmostEqual(floor_ratio, postfix_floor / smtpsd_floor,
                               delta=max(0.01, 0.05 * floor_ratio))
        rows = ROW.findall(result.stdout)
        self.assertEqual([(row[0], row[1]) for row in rows],
                         [("1", "8"), ("1", "64"), ("100", "8"), ("100", "64")], result.stdout)
        for row in rows:
            smtpsd_rate, postfix_rate, ratio = (float(value) for value in row[2:5])
            self.assertGreater(smtpsd_rate, 0, row)
            self.assertGreater(postfix_rate, 0, row)
            self.assertAlmostEqual(ratio, smtpsd_rate / postfix_rate,
                                   delta=max(0.01, 0.05 * ratio))  # rates are rounded
            # Server CPU per message, from /proc: smtpsd's process, Postfix's whole tree.
            smtpsd_cpu, postfix_cpu, cpu_ratio = (float(value) for value in row[7:10])
            self.assertGreater(smtpsd_cpu, 0, row)
            self.assertGreater(postfix_cpu, 0, row)
            self.assertAlmostEqual(cpu_ratio, postfix_cpu / smtpsd_cpu,
                                   delta=max(0.01, 0.05 * cpu_ratio))
            self.assertEqual((row[10], row[11]), ("0", "0"), "messages refused: " + result.stdout)

    def test_bad_arguments_are_refused(self):
        result = subprocess.run([COMPARE, "--rounds", "0"], capture_output=True, text=True,
                                timeout=30)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("--rounds", result.stderr)
        result = subprocess.run([COMPARE, "--loads", "1x8,100"], capture_output=True, text=True,
                                timeout=30)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("--loads 1x8,100: expected e.g. 1x8,100x8", result.stderr)
        result = subprocess.run([COMPARE, "--probe-mib", "-1"], capture_output=True, text=True,
                                timeout=30)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("--probe-mib -1: a number of MiB, 0 or more", result.stderr)
        # Past smtpsd's default max_message_size every message would be a 552: refused.
        result = subprocess.run([COMPARE, "--size", str(36 * 1024 * 1024)], capture_output=True,
                                text=True, timeout=30)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("at most 36700160, smtpsd's default max_message_size", result.stderr)
        # --milter names one of the milters the bench can start privately.
        result = subprocess.run([COMPARE, "--milter", "clamav"], capture_output=True,
                                text=True, timeout=30)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("argument --milter: invalid choice: 'clamav' (choose from 'rspamd', "
                      "'spamassassin')", result.stderr)


@needs.condition(lambda: os.access(POSTFIX, os.X_OK) and os.geteuid() == 0,
                 "needs the postfix package (scripts/install-deps.sh) and root")
class PostfixMaildir(ServerTestCase):
    def test_mail_to_the_domain_lands_in_the_maildir(self):
        # STARTTLS is offered but not used; smtpd only needs a certificate to start.
        key, cert = (os.path.join(self.tmp, name) for name in ("key.pem", "cert.pem"))
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True)
        base = os.path.join(self.tmp, "mail")
        with Postfix(self.tmp, cert, key, maildir=base) as postfix:
            with smtplib.SMTP("127.0.0.1", postfix.ports["smtp"], timeout=10) as client:
                client.sendmail("sender@example.org", ["demo@localhost"],
                                b"Subject: to the Maildir\r\n\r\nDelivered, not discarded.\r\n")
                # Only the mailboxes of the map exist, as on a real server.
                with self.assertRaises(smtplib.SMTPRecipientsRefused) as refused:
                    client.sendmail("sender@example.org", ["other@localhost"], b"\r\n")
                self.assertEqual(refused.exception.recipients["other@localhost"][0], 550)
            deadline = time.monotonic() + 15
            while (postfix.queued() or not postfix.delivered()) and time.monotonic() < deadline:
                time.sleep(0.05)
            new = os.path.join(base, "localhost", "demo", "new")
            files = os.listdir(new) if os.path.isdir(new) else []
            self.assertEqual(len(files), 1, postfix.log()[-3000:])
            self.assertEqual((postfix.delivered(), postfix.queued()), (1, 0))
            with open(os.path.join(new, files[0]), "rb") as f:
                message = f.read()
            self.assertIn(b"Delivered-To: demo@localhost\n", message)
            self.assertIn(b"Subject: to the Maildir\n", message)  # Postfix adds headers after it
            self.assertTrue(message.endswith(b"\n\nDelivered, not discarded.\n"), message)


if __name__ == "__main__":
    unittest.main()
