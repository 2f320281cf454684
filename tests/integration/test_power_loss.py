"""The power-loss simulation (power_loss.py, docs/testing.md "Power-loss simulation"): the
states a power cut could leave are built from what the real server did, and on each one
the server must recover every acknowledged message exactly once, whole. Then the proof
that it can fail: the same simulation on a server whose syncs are dropped (all of them,
the directory ones, or one chosen sync at a time) finds the loss. And the recorder and the
crash model themselves, on a small program whose states are known.

Bounded for make test (a few seconds of states each); the long run with many random
states is tests/durability/power_loss.py.
"""

import errno
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest

import needs
import power_loss
from harness import ServerTestCase

# CTest runs a fixed seed (a failure is the same failure again); the long run picks one.
SEED = int(os.environ.get("SMTPSD_POWER_SEED", "19"))
RANDOM_STATES = int(os.environ.get("SMTPSD_POWER_RANDOM_STATES", "6"))


# File systems where syncfs stands for fsyncs in smtpsd (base/file_sync.h syncfs_use).
SYNCFS_FILE_SYSTEMS = {0xEF53, 0x58465342, 0x9123683E, 0xF2F52010}


def syncfs_trusted(path):
    """Whether Maildir batches under path are synced with one syncfs: Linux 5.8 or later and
    one of SYNCFS_FILE_SYSTEMS (the type from stat(1), coreutils)."""
    major, minor = (int(x) for x in re.match(r"(\d+)\.(\d+)", os.uname().release).groups())
    kind = subprocess.run(["stat", "-f", "-c", "%t", path], capture_output=True, text=True,
                          check=True).stdout.strip()
    return (major, minor) >= (5, 8) and int(kind, 16) in SYNCFS_FILE_SYSTEMS


class PowerLoss(ServerTestCase):
    def test_power_loss_every_acknowledged_message_survives_every_crash_state(self):
        self.every_crash_state(at_acceptance=True)

    def test_power_loss_through_the_spool_every_acknowledged_message_survives(self):
        # The first two steps (three messages, two committed together) keep it short: the
        # standard workload through the spool is the long run's (--through-spool).
        self.every_crash_state(at_acceptance=False, workload="short")

    def test_power_loss_after_the_log_every_acknowledged_message_survives(self):
        # reply_after = "log": the 250 vouches for the commit log alone, the mailbox copy
        # comes after it, and in a crash state between the two recovery must make it.
        self.every_crash_state(at_acceptance="after_log")

    def every_crash_state(self, at_acceptance, workload="standard"):
        recording = power_loss.record_run(os.path.join(self.tmp, "run"), seed=SEED,
                                          at_acceptance=at_acceptance, workload=workload)
        messages = 7 if workload == "standard" else 3
        with open(recording.server_log, errors="replace") as f:
            log = f.read()
        delivered_now = log.count("delivered=yes")
        # All but the message to demo and bob (whose mailbox could not be written then).
        self.assertEqual(delivered_now, messages - (workload == "standard")
                         if at_acceptance is True else 0)
        # The recorder saw every 250 (standard: seven, one through TLS) and the syncs of the
        # commits and deliveries.
        self.assertEqual(len(recording.replay.acks), messages)
        self.assertEqual(sorted(q for _s, q in recording.replay.acks),
                         sorted(m.queue_id for m in recording.messages))
        self.assertGreaterEqual(len(recording.replay.syncs), 20 if messages == 7 else 8)
        if workload == "standard":
            # The message to demo and bob: deferred for bob (his mailbox a file where new/
            # should be) and kept in the queue until his mailbox was repaired; demo's copy
            # made once (at acceptance, or by the queue through the spool), never again.
            # Without the "delivered 0" line committed with it the queue delivers demo's
            # again: Maildir finds its own file name in new/ and writes nothing, so only the
            # log shows it (a mail reader that had moved the copy to cur/ would get two).
            [both] = [m for m in recording.messages if power_loss.UNUSABLE in m.recipients]
            # By the queue (an attempt count), whether or not it failed at acceptance first.
            self.assertRegex(log, rf"event=deferred id={both.queue_id} rcpt=bob@localhost "
                                  rf"[^\n]* attempt=")
            self.assertEqual(re.findall(rf"event=delivered id={both.queue_id} rcpt=(\S+) "
                                        rf"[^\n]*?(at=acceptance|at=after_reply)?\n", log),
                             [("demo@localhost", {True: "at=acceptance", False: "",
                                                  "after_log": "at=after_reply"}[at_acceptance]),
                              ("bob@localhost", "")], log[-3000:])
        outcome = power_loss.simulate(recording, self.tmp, random_points=RANDOM_STATES,
                                      seed=SEED)
        print(f"\npower loss, seed {SEED}: {outcome.summary()}")
        self.assertEqual(outcome.failures, [], outcome.report() + "\nagain: SMTPSD_BIN=... "
                         f"tests/durability/power_loss.py --recording {self.tmp}/run "
                         f"--seed {SEED} --points {RANDOM_STATES}")
        self.assertGreaterEqual(outcome.states, 20)

    def test_power_loss_a_bounce_brings_exactly_one_failure_dsn(self):
        """A message that bounces: in every crash state its sender gets exactly one failure
        DSN. The simulation found two before the fix: the DSN was committed (its commit log
        record synced) before the bounced message's "failed" state line and its D record, and
        a power cut in between made recovery fail the message again, into a second DSN with
        another id. Now the DSN is spooled as a notice about the bounced message (its id is the
        message's id, N and 8 characters; its spool file names the state lines it stands for),
        recovery writes those lines back before delivering either, and the DSN is handed over
        only once they are durable (docs/architecture.md, "Notices")."""
        recording = power_loss.record_run(os.path.join(self.tmp, "run"), seed=SEED,
                                          workload="bounce")
        # The DSN's record in the commit log, after the bounced message's: a notice about it.
        records = sorted((seq, bytes(rest[1])) for node in recording.replay.nodes
                         for seq, kind, *rest in node.ops
                         if kind == "W" and bytes(rest[1]).startswith(b"M ")
                         and b"\nsmtpsd-spool " in bytes(rest[1]))
        self.assertEqual(len(records), 2, [r[1][:40] for r in records])
        bounced = recording.messages[0].queue_id
        dsn_commit, dsn_record = records[1]
        self.assertTrue(dsn_record.startswith(f"M {bounced}N".encode()), dsn_record[:60])
        self.assertIn(f"\nnotice {bounced} failed%200\n".encode(), dsn_record)
        outcome = power_loss.simulate(recording, self.tmp, seed=SEED, from_first_ack=True)
        print(f"\nbounce: {outcome.summary()}")
        self.assertEqual(outcome.failures, [], outcome.report() + "\nagain: SMTPSD_BIN=... "
                         f"tests/durability/power_loss.py --recording {self.tmp}/run "
                         f"--seed {SEED}")
        # The states that found the second DSN were checked: those from the DSN's commit on.
        later = [p for p in power_loss.crash_points(recording.replay) if p[0] > dsn_commit]
        self.assertGreaterEqual(len(later), 3, later)
        self.assertGreater(outcome.states, 3)

    def caught(self, mutation, env=None, expected=("lost",), workload="one", at_acceptance=True):
        """A recorded run with the mutation shim preloaded before the recorder; the
        simulation must find a failing state whose problems include the expected kinds.
        At acceptance, a Maildir sync dropped is one the 250 relied on."""
        shim = power_loss.build_shim(mutation)
        recording = power_loss.record_run(os.path.join(self.tmp, "run"), preload=[shim],
                                          env=env, seed=SEED, workload=workload,
                                          at_acceptance=at_acceptance)
        if mutation == "drop_sync":
            with open(recording.server_log, errors="replace") as f:
                dropped = [line for line in f if line.startswith("drop_sync: dropped")]
            self.assertEqual(len(dropped), 1, dropped)
        outcome = power_loss.simulate(recording, self.tmp, seed=SEED,
                                      stop_at_first_failure=True, from_first_ack=True)
        print(f"\n{mutation} {env or ''}: {outcome.report(limit=1)}")
        self.assertTrue(outcome.failures, "the simulation found no loss: " + outcome.summary())
        for kind in expected:
            self.assertIn(kind, outcome.kinds(), outcome.report())
        return outcome

    def test_power_loss_finds_the_loss_when_fsync_does_nothing(self):
        self.caught("no_fsync")

    def test_power_loss_finds_the_loss_without_directory_fsyncs(self):
        self.caught("no_dir_fsync")

    def test_power_loss_finds_the_loss_of_one_commit_log_sync(self):
        # The first batch's records in the commit log (spool/log/*.seg): the queue file is
        # never synced, so after the 250 nothing durable holds the message (lost).
        self.caught("drop_sync", {"SMTPSD_DROP_SYNC_KIND": "file",
                                  "SMTPSD_DROP_SYNC_MATCH": "/spool/log/",
                                  "SMTPSD_DROP_SYNC_NTH": "1"}, at_acceptance=False)

    def test_power_loss_after_the_log_finds_the_loss_of_one_commit_log_sync(self):
        # reply_after = "log": the same sync is all the 250 has (the mailbox copy comes
        # after the reply), so dropping it loses the message in some crash state.
        self.caught("drop_sync", {"SMTPSD_DROP_SYNC_KIND": "file",
                                  "SMTPSD_DROP_SYNC_MATCH": "/spool/log/",
                                  "SMTPSD_DROP_SYNC_NTH": "1"}, at_acceptance="after_log")

    def test_power_loss_finds_the_loss_of_the_commit_log_directory_fsync(self):
        # The fsync of spool/log after its segment was created: the segment's name, and
        # every record in it, may be gone.
        self.caught("drop_sync", {"SMTPSD_DROP_SYNC_KIND": "dir",
                                  "SMTPSD_DROP_SYNC_MATCH": "/spool/log",
                                  "SMTPSD_DROP_SYNC_NTH": "1"}, at_acceptance=False)

    def test_power_loss_finds_the_loss_of_one_maildir_file_fsync(self):
        # The first delivery's file: its name in new/ is durable, its content is not, and
        # the queue forgets the message once a later commit syncs queue/.
        self.caught("drop_sync", {"SMTPSD_DROP_SYNC_KIND": "file",
                                  "SMTPSD_DROP_SYNC_MATCH": "/mail/localhost/demo/tmp/",
                                  "SMTPSD_DROP_SYNC_NTH": "1"}, expected=("corrupt",),
                    at_acceptance=False)

    def test_power_loss_finds_the_loss_of_one_maildir_directory_fsync(self):
        # The first delivery's rename into new/ is not durable; the next commit makes the
        # removal of the queue file durable: the message is gone from both.
        self.caught("drop_sync", {"SMTPSD_DROP_SYNC_KIND": "dir",
                                  "SMTPSD_DROP_SYNC_MATCH": "/mail/localhost/demo/new",
                                  "SMTPSD_DROP_SYNC_NTH": "1"}, workload="short",
                    at_acceptance=False)

    def test_power_loss_at_acceptance_finds_the_loss_of_the_maildir_file_fsync(self):
        # Delivered at acceptance: the 250 vouches for the mailbox copy alone, whose content
        # was never synced.
        self.caught("drop_sync", {"SMTPSD_DROP_SYNC_KIND": "file",
                                  "SMTPSD_DROP_SYNC_MATCH": "/mail/localhost/demo/tmp/",
                                  "SMTPSD_DROP_SYNC_NTH": "1"}, expected=("corrupt",))

    def need_batch_syncfs(self):
        """Skips (a reviewed environmental reason) where Maildir would fsync each copy; else
        writes out what other work left unwritten, so that the server finds little of it."""
        if not syncfs_trusted(self.tmp):
            needs.environmental(self, "syncfs", self.tmp)
        os.sync()

    def test_power_loss_at_acceptance_finds_the_loss_of_the_batch_syncfs(self):
        # Two copies of one message, made durable by one syncfs(2) of the mail file system
        # (delivery.MaildirBatch) instead of an fsync each: without it the 250 vouches for
        # copies whose content never reached the disk. (Only while the machine holds under
        # 64 MiB of unwritten data; above, Maildir fsyncs each file and nothing is dropped.)
        self.need_batch_syncfs()
        self.caught("drop_sync", {"SMTPSD_DROP_SYNC_CALL": "syncfs",
                                  "SMTPSD_DROP_SYNC_MATCH": "/mail/localhost/",
                                  "SMTPSD_DROP_SYNC_NTH": "1"}, expected=("corrupt",),
                    workload="pair")

    def failed_sync_run(self, call, directory):
        """A recorded "pair" run (one message to demo and alice) under directory, whose first
        `call` on a Maildir file fails with EIO (drop_sync.c), checked: the call failed once,
        and no crash state from the first 250 on loses or tears a message. Skipped (a
        reviewed environmental reason) where smtpsd would not use syncfs there. syncfs is
        used only while under 64 MiB is waiting to be written, which tests running beside
        this one may exceed (the batch then gets an fsync each): up to 3 runs, each after
        os.sync(). Returns the server's log."""
        if not syncfs_trusted(directory):
            needs.environmental(self, "syncfs", directory)
        shim = power_loss.build_shim("drop_sync")
        for attempt in range(3):
            os.sync()
            recording = power_loss.record_run(
                os.path.join(directory, f"run{attempt}"), preload=[shim], seed=SEED,
                workload="pair",
                env={"SMTPSD_DROP_SYNC_CALL": call, "SMTPSD_DROP_SYNC_MATCH": "/mail/localhost/",
                     "SMTPSD_DROP_SYNC_NTH": "1", "SMTPSD_DROP_SYNC_FAIL": str(errno.EIO)})
            with open(recording.server_log, errors="replace") as f:
                log = f.read()
            if "drop_sync: failed" in log:
                break
        failed = [line for line in log.splitlines() if line.startswith("drop_sync: failed")]
        self.assertEqual(len(failed), 1, failed)
        self.assertTrue(failed[0].startswith(f"drop_sync: failed {call} "), failed)
        outcome = power_loss.simulate(recording, self.tmp, seed=SEED, from_first_ack=True)
        print(f"\nfailed {call}: {outcome.summary()}")
        self.assertEqual(outcome.failures, [], outcome.report())
        self.assertGreater(outcome.states, 1)
        return log

    def test_power_loss_at_acceptance_a_failed_batch_syncfs_falls_back_to_fsyncs(self):
        # The same batch's syncfs fails (EIO, synced nothing): each copy gets its own fsync
        # before its rename, and no crash state loses or tears either.
        self.failed_sync_run("syncfs", self.tmp)

    @needs.condition(os.geteuid() == 0, "mounting a loop file system needs root")
    @needs.tools("mkfs.ext4", "mount", "umount")
    def test_power_loss_at_acceptance_a_failed_flush_after_the_batch_syncfs_fails_one_copy(self):
        # On an ext4 without a journal (made here), the batch's syncfs is followed by an
        # fdatasync of the first copy for the flush syncfs owes; it fails (EIO). That copy has
        # its failure, which a second sync of the file would not see again (fdatasync reports
        # a write error once): it goes to the queue, the other copy is fsynced on its own.
        # The log shows which (the crash model counts syncfs as covering every file, so the
        # simulation cannot tell the flush's absence); no crash state loses or tears either.
        log = self.failed_sync_run("fdatasync", self.mounted_ext4("plain", journal=False))
        # The operator reads why; the queue then delivers that copy, the other was delivered
        # at acceptance.
        self.assertRegex(log, r"event=deferred id=\S+ rcpt=demo@localhost detail=\"fdatasync "
                              r"[^\"]*/demo/tmp/[^\"]*: Input/output error\" at=acceptance")
        self.assertRegex(log, r"event=delivered id=\S+ rcpt=demo@localhost .*S=\d+\"\n")
        self.assertRegex(log, r"event=delivered id=\S+ rcpt=alice@localhost .* at=acceptance")

    def test_power_loss_at_acceptance_finds_the_loss_of_the_new_directory_fsync(self):
        # Delivered at acceptance: the rename into new/ is not durable, and nothing was
        # queued: after the 250 the message is nowhere.
        self.caught("drop_sync", {"SMTPSD_DROP_SYNC_KIND": "dir",
                                  "SMTPSD_DROP_SYNC_MATCH": "/mail/localhost/demo/new",
                                  "SMTPSD_DROP_SYNC_NTH": "1"})

    def test_power_loss_finds_the_loss_of_the_last_maildir_directory_fsync(self):
        # A run of one message: no commit follows its delivery to sync queue/, so no state
        # with only what is durable loses it; the state with everything done but the unsynced
        # changes of new/ (the rename lost, the queue file's removal kept) does.
        outcome = self.caught("drop_sync", {"SMTPSD_DROP_SYNC_KIND": "dir",
                                            "SMTPSD_DROP_SYNC_MATCH": "/mail/localhost/demo/new",
                                            "SMTPSD_DROP_SYNC_NTH": "1"}, workload="one",
                              at_acceptance=False)
        self.assertIn("but the unsynced changes in mail/localhost/demo/new lost",
                      outcome.failures[0][0])


# A program whose calls are known, run under the recorder: the crash model, state by state.
PROGRAM = textwrap.dedent("""
    import ctypes, os, sys
    root = sys.argv[1]
    fd = os.open(os.path.join(root, "a"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, b"X" * 5000)
    os.fsync(fd)
    d = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(d)                                  # a, with 5000 X, durable
    os.write(fd, b"Y" * 5000)                    # not synced
    os.close(fd)
    os.rename(os.path.join(root, "a"), os.path.join(root, "b"))   # not synced
    os.mkdir(os.path.join(root, "sub"))
    fd = os.open(os.path.join(root, "sub", "c"), os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"c")
    os.fsync(fd)                                 # c's content, not its name, nor sub
    os.close(fd)
    if len(sys.argv) > 2:                        # a write the recorder cannot see
        libc = ctypes.CDLL(None)
        libc.fopen.restype = ctypes.c_void_p
        f = libc.fopen(os.path.join(root, "hidden").encode(), b"w")
        libc.fwrite(b"hidden", 1, 6, ctypes.c_void_p(f))
        libc.fclose(ctypes.c_void_p(f))
    os.close(d)
""")


class Recorder(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="smtpsd-recorder-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.root = os.path.join(self.tmp, "root")
        os.mkdir(self.root)
        self.snapshot = os.path.join(self.tmp, "snapshot")
        shutil.copytree(self.root, self.snapshot)
        self.log = os.path.join(self.tmp, "record.bin")

    def run_recorded(self, *args, code=None):
        env = dict(os.environ, LD_PRELOAD=power_loss.build_shim("recorder"),
                   SMTPSD_RECORD_LOG=self.log, SMTPSD_RECORD_ROOT=self.root)
        return subprocess.run([sys.executable, *args], env=env, capture_output=True,
                              timeout=60)

    def test_recorder_crash_model_on_a_known_program(self):
        result = self.run_recorded("-c", PROGRAM, self.root)
        self.assertEqual(result.returncode, 0, result.stderr)
        replay = power_loss.Replay(self.root, self.snapshot, power_loss.read_log(self.log))
        self.assertEqual(power_loss.verify_against(replay, self.root), [])
        end = replay.last_seq + 1
        # Only what was synced: a with the first 5000 octets; sub never reached the disk.
        durable = replay.state(end, "durable")
        self.assertEqual(sorted(durable), ["a"])
        self.assertEqual(durable["a"][2], b"X" * 5000)
        # Everything (kill -9): b with both writes, sub/c.
        everything = replay.state(end, "all")
        self.assertEqual(sorted(everything), ["b", "sub", "sub/c"])
        self.assertEqual(everything["b"][2], b"X" * 5000 + b"Y" * 5000)
        # Random: the rename whole or not at all, the file as of some page versions and size.
        import random
        seen_names, seen_contents = set(), set()
        for i in range(200):
            state = replay.state(end, "random", random.Random(i))
            names = [n for n in state if n in ("a", "b")]
            self.assertEqual(len(names), 1, state.keys())
            seen_names.add(names[0])
            content = state[names[0]][2]
            self.assertIn(len(content), (5000, 10000))
            self.assertEqual(content[:4096], b"X" * 4096)  # durable: never torn
            seen_contents.add(content)
            if "sub/c" in state:
                self.assertEqual(state["sub/c"][2], b"c")  # its content was synced
        self.assertEqual(seen_names, {"a", "b"})
        # Pages 4096-8191 and 8192-9999, each old or new, and two sizes: torn states.
        self.assertIn(b"X" * 5000 + bytes(5000), seen_contents)
        self.assertIn(b"X" * 5000 + b"Y" * 5000, seen_contents)
        self.assertIn(b"X" * 5000 + b"Y" * 3192 + bytes(1808), seen_contents)
        self.assertIn(b"X" * 5000 + bytes(3192) + b"Y" * 1808, seen_contents)
        # Before the directory's fsync completed, a is not durable at all.
        dir_sync = [end_seq for end_seq, _start, what in replay.syncs if what == "fsync "][0]
        self.assertEqual(replay.state(dir_sync, "durable"), {})
        self.assertEqual(sorted(replay.state(dir_sync + 1, "durable")), ["a"])

    def test_recorder_a_write_it_cannot_see_fails_the_replay(self):
        result = self.run_recorded("-c", PROGRAM, self.root, "hidden")
        self.assertEqual(result.returncode, 0, result.stderr)
        replay = power_loss.Replay(self.root, self.snapshot, power_loss.read_log(self.log))
        self.assertEqual(power_loss.verify_against(replay, self.root),
                         ["hidden: on disk, not in the replay"])

    def test_recorder_refuses_what_it_cannot_model(self):
        # io_uring: the process is stopped at once, loudly.
        result = self.run_recorded("-c", "import ctypes; ctypes.CDLL(None).syscall(425, 4, 0)")
        self.assertEqual(result.returncode, -6, result.stderr)  # SIGABRT
        self.assertIn(b"io_uring is not observable", result.stderr)
        with self.assertRaisesRegex(power_loss.ReplayError, "io_uring_setup"):
            power_loss.Replay(self.root, self.snapshot, power_loss.read_log(self.log))
        # A shared writable mapping of a file under the root: the replay refuses the log.
        os.unlink(self.log)
        result = self.run_recorded("-c", textwrap.dedent("""
            import mmap, os, sys
            fd = os.open(os.path.join(sys.argv[1], "m"), os.O_RDWR | os.O_CREAT, 0o600)
            os.ftruncate(fd, 4096)
            with mmap.mmap(fd, 4096, mmap.MAP_SHARED, mmap.PROT_WRITE) as m:
                m[0:5] = b"hello"
        """), self.root)
        self.assertEqual(result.returncode, 0, result.stderr)
        with self.assertRaisesRegex(power_loss.ReplayError, "shared writable mapping"):
            power_loss.Replay(self.root, self.snapshot, power_loss.read_log(self.log))


if __name__ == "__main__":
    unittest.main()
