"""Faults an administrator meets: a full disk, a spool that is not writable, a full
mailbox file system, and slow clients.

The disk tests mount a small tmpfs (they need root, as CI has; otherwise they are skipped
with the reason) over the spool or the Maildir root of a fresh server, fill it with a
file, and check what a client sees: 452 4.3.1 for new mail, nothing acknowledged lost,
and mail flowing again by itself once the filler is removed.
"""

import os
import smtplib
import subprocess
import time
import unittest

from harness import RawSession, ServerTestCase, make_message
import needs

MiB = 1024 * 1024


def mount_tmpfs(test, path, size_bytes):
    os.makedirs(path, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0755",
                             "tmpfs", path], capture_output=True)
    if result.returncode != 0:
        needs.missing("cannot mount a tmpfs here (needs root): " +
                      result.stderr.decode(errors="replace").strip())
    # Unmounted by tearDown once the servers stopped, before the test's directory is removed
    # (a cleanup would come after: the mount point and the directories above it were left).
    test.mounts.append(path)


def free_bytes(path):
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize


def fill(path, leave_bytes):
    """Writes a filler file so that about leave_bytes stay free on path's file system."""
    filler = os.path.join(path, "filler")
    size = max(0, free_bytes(path) - leave_bytes)
    with open(filler, "wb") as f:
        chunk = b"\0" * MiB
        while size > 0:
            n = min(size, len(chunk))
            try:
                f.write(chunk[:n])
                f.flush()
            except OSError:
                break
            size -= n
    return filler


def send(server, body=b"Subject: t\r\n\r\nhello\r\n", to="demo@localhost", declare_size=True):
    client = server.smtp()
    if not declare_size:
        client.esmtp_features.pop("size", None)  # MAIL without SIZE=: the disk fills in DATA
    try:
        return client.sendmail("you@example.org", [to], body)
    finally:
        try:
            client.quit()
        except smtplib.SMTPException:
            pass


class DiskFull(ServerTestCase):
    def spool_on_tmpfs(self, size, min_free_space, extra_toml=""):
        # The free space is measured again for each MAIL 10 ms after the last measure.
        server = self.new_server(limits={"min_free_space": min_free_space,
                                         "free_space_check_interval": "10ms"},
                                 extra_toml=extra_toml)
        spool = os.path.join(server.dir, "spool")
        mount_tmpfs(self, spool, size)
        return server, spool

    def test_low_space_refuses_mail_with_452_and_resumes_when_space_returns(self):
        server, spool = self.spool_on_tmpfs(8 * MiB, 4 * MiB)
        with server:
            send(server, b"Subject: before\r\n\r\nfits\r\n")
            filler = fill(spool, 3 * MiB)  # below the 4 MiB reserve
            time.sleep(0.1)  # ten times the measure's age: the next MAIL measures again
            client = server.smtp()
            with self.assertRaises(smtplib.SMTPSenderRefused) as refused:
                client.sendmail("you@example.org", ["demo@localhost"], b"Subject: x\r\n\r\n.\r\n")
            self.assertEqual(refused.exception.smtp_code, 452)
            self.assertIn(b"4.3.1", refused.exception.smtp_error)
            # A declared SIZE that does not fit is refused the same way.
            client.ehlo("client.example")
            self.assertEqual(client.mail("you@example.org", ["SIZE=1000"])[0], 452)
            server.wait_log(r"level=warning event=storage_low spool=\S+ free=\d+ needed=\d+")
            # Space returns: the same session, with no restart, may send again.
            os.remove(filler)
            client.rset()
            client.sendmail("you@example.org", ["demo@localhost"],
                            b"Subject: after\r\n\r\nback\r\n")
            client.quit()
            messages = server.wait_delivered(2)
            self.assertIn(b"Subject: before", messages[0] + messages[1])
            self.assertIn(b"Subject: after", messages[0] + messages[1])

    def test_disk_full_during_data_gets_452_and_leaves_nothing_behind(self):
        server, spool = self.spool_on_tmpfs(3 * MiB, 0)
        server.expected_errors = [r"event=spool_failed .*No space left on device"]
        with server:
            filler = fill(spool, 256 * 1024)
            big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 1024  # 1 MiB
            with self.assertRaises(smtplib.SMTPDataError) as refused:
                send(server, big, declare_size=False)
            self.assertEqual(refused.exception.smtp_code, 452)
            self.assertIn(b"4.3.1 Insufficient system storage", refused.exception.smtp_error)
            self.assertIn("event=spool_failed", server.log())
            self.assertEqual(os.listdir(os.path.join(spool, "tmp")), [])
            self.assertEqual(server.spool_ids(), [])
            self.assertNotIn("event=accepted ", server.log())
            os.remove(filler)
            send(server, big)
            [message] = server.wait_delivered(1)
            self.assertIn(b"Subject: big", message)
            self.assertGreater(len(message), 1000 * 1024)

    def test_read_only_spool_gets_452_then_resumes(self):
        server, spool = self.spool_on_tmpfs(8 * MiB, 0)
        server.expected_errors = [r"event=spool_failed .*Read-only file system"]
        with server:
            subprocess.run(["mount", "-o", "remount,ro", spool], check=True)
            # A small message for a local mailbox never needs the spool (it is delivered at
            # acceptance from memory): it still gets its 250, durably in the Maildir.
            send(server, b"Subject: small\r\n\r\nstraight to the mailbox\r\n")
            [small] = server.wait_delivered(1)
            self.assertIn(b"Subject: small", small)
            # Over 256 KiB a message must be written to the spool (smaller ones are held in
            # memory while the server's budget for them lasts): refused.
            big = b"Subject: ro\r\n\r\n" + (b"z" * 998 + b"\r\n") * 1100
            with self.assertRaises(smtplib.SMTPDataError) as refused:
                send(server, big)
            self.assertEqual(refused.exception.smtp_code, 452)
            self.assertIn(b"4.3.1", refused.exception.smtp_error)
            self.assertRegex(server.log(), r"event=spool_failed .*Read-only file system")
            subprocess.run(["mount", "-o", "remount,rw", spool], check=True)
            send(server, big.replace(b"Subject: ro", b"Subject: rw"))
            messages = server.wait_delivered(2)
            self.assertTrue(any(b"Subject: rw" in m for m in messages))
            self.assertFalse(any(b"Subject: ro" in m for m in messages))

    def test_an_idle_server_lets_its_spool_be_remounted_read_only(self):
        # Through the queue: the message's record in the commit log, its queue file, and
        # the record that it was delivered. The log's segment stays open between commits;
        # a second after the last one nothing of the spool is open for writing.
        server, spool = self.spool_on_tmpfs(8 * MiB, 0,
                                            "[queue]\ndeliver_at_acceptance = false\n")
        with server:
            send(server, b"Subject: queued\r\n\r\nthrough the log\r\n")
            server.wait_delivered(1)
            deadline = time.time() + 5
            while True:
                remount = subprocess.run(["mount", "-o", "remount,ro", spool],
                                         capture_output=True, text=True)
                if remount.returncode == 0 or time.time() > deadline:
                    break
                time.sleep(0.1)
            self.assertEqual(remount.returncode, 0,
                             "a spool file stayed open for writing: " + remount.stderr)
            subprocess.run(["mount", "-o", "remount,rw", spool], check=True)

    def test_full_mailbox_disk_defers_delivery_and_delivers_when_space_returns(self):
        server = self.new_server(extra_toml="[queue]\nretry_schedule = [1]\n")
        mail = os.path.join(server.dir, "mail")
        mount_tmpfs(self, mail, 1 * MiB)
        with server:
            filler = fill(mail, 0)
            body = b"Subject: waits\r\n\r\n" + (b"y" * 998 + b"\r\n") * 100
            send(server, body)  # acknowledged: the spool has room
            server.wait_log(r"event=deferred .*No space left on device")
            self.assertEqual(server.delivered(), [])
            self.assertEqual(len(server.spool_ids()), 1)
            os.remove(filler)
            [message] = server.wait_delivered(1, timeout=20)
            self.assertIn(b"Subject: waits", message)


class SlowClients(ServerTestCase):
    """A short command timeout ("300ms") against a client far slower or far quicker than it:
    the test waits for what the client sees (the 421, or each 250), never for a time span."""

    def test_one_byte_at_a_time_is_cut_by_the_command_timeout(self):
        server = self.new_server(timeouts={"command": "300ms"})
        # ~480 octets at one every 20 ms: ~10 s of trickling, some 30 times the timeout
        line = b"EHLO " + b"slow-client." * 39 + b"example\r\n"
        with server, RawSession(server.ports["smtp"]) as session:
            session.greeting()
            sent, reply = 0, None
            for byte in line:
                try:
                    session.send(bytes([byte]))
                except OSError:  # the server closed the connection
                    reply = b""
                    break
                sent += 1
                reply = session.read_some(0.02)
                if reply is not None:  # a reply, or b"" for the close
                    break
            self.assertIsNotNone(reply, "a client sending one byte at a time was never cut")
            self.assertLess(sent, len(line), f"the whole line went through: {reply!r}")
            if reply:
                self.assertRegex(reply, rb"^421 4\.4\.2 ")
            self.assertTrue(session.wait_closed(10))
            # The server closes the socket before it logs the session's end (the client sees
            # the end at once), so the line may come a moment after the close.
            server.wait_log(r"event=session_end .*reason=timeout")

    def test_commands_that_arrive_whole_keep_a_slow_session_alive(self):
        # The timeout is per command: pauses of a tenth of it, for twice its length in all.
        server = self.new_server(timeouts={"command": "1s"})
        with server, RawSession(server.ports["smtp"]) as session:
            session.greeting()
            started = time.monotonic()
            while time.monotonic() - started < 2.0:
                time.sleep(0.1)
                self.assertEqual(session.cmd("NOOP")[0], 250)


if __name__ == "__main__":
    unittest.main()
