"""The syncs follow the file system (base/file_sync.h). Committer threads
(syncs_are_journal_commits): four where every sync is a journal commit (ext4 with its journal),
two elsewhere (ext4 without one). The Maildir copies of a batch (syncfs_use): one syncfs, and
where there is no journal an fdatasync of the first file right after it, for the disk flush
that syncfs sends before it has waited for the inode and directory blocks. Each server runs
on a small ext4 of its own, made and loop-mounted by the test (root), under strace, and takes
a message for two mailboxes at acceptance there."""

import glob
import os
import re
import time

import needs
from harness import Server, ServerTestCase, make_message, run_under_strace

# "syncfs(12) = 0", "renameat(11, \"a\", 12, \"a\") = 0": one thread's calls (strace -ff).
CALL = re.compile(r"^(syncfs|fdatasync|fsync|renameat2?)\((\d+)[,)].* = (-?\d+)")


@needs.condition(lambda: os.geteuid() == 0, "mounting a loop file system needs root")
@needs.tools("mkfs.ext4", "mount", "umount", "strace")
class CommitThreads(ServerTestCase):
    def check(self, journal, threads):
        point = self.mounted_ext4("journal" if journal else "plain", journal)
        server = Server(point, domains=[("localhost", ["demo", "ann"])])
        trace = os.path.join(self.tmp, "syncs")
        run_under_strace(server, ["-ff", "-e", "trace=syncfs,fdatasync,fsync,renameat,renameat2",
                                  "-o", trace])
        self.servers.append(server)
        with server:
            # Five messages, each after a sync of the machine and a sample of what is left
            # unwritten: syncfs is used only under 64 MiB of it (mkfs leaves more; so may
            # tests running beside this one).
            for n in range(5):
                os.sync()
                time.sleep(0.15)
                client = server.smtp()
                client.sendmail("you@example.org", ["demo@localhost", "ann@localhost"],
                                make_message(f"j{n}", "j@x.org"))
                client.quit()
            self.assertEqual(len(server.delivered()), 5)
            self.assertEqual(len(server.delivered("ann@localhost")), 5)
            started = [line for line in server.log().splitlines() if "event=started" in line]
            self.assertEqual(len(started), 1, started)
            self.assertIn(f" commit_threads={threads}", started[0])
        # Each batch of two copies: one syncfs, then on that thread, before the renames into
        # new/, an fdatasync of the same file where there is no journal, nothing with one.
        batches = 0
        for path in glob.glob(trace + ".*"):
            with open(path) as f:
                calls = [m.groups() for m in map(CALL.match, f) if m]
            for at, (name, fd, result) in enumerate(calls):
                if name != "syncfs":
                    continue
                batches += 1
                self.assertEqual(result, "0", calls)
                after = calls[at + 1:]
                if not journal:
                    self.assertEqual(after[:1], [("fdatasync", fd, "0")], calls)
                    after = after[1:]
                self.assertTrue(after and after[0][0].startswith("renameat"), calls)
        self.assertGreaterEqual(batches, 1)

    def test_four_committer_threads_on_a_journaled_ext4(self):
        self.check(journal=True, threads=4)

    def test_two_committer_threads_on_an_ext4_without_a_journal(self):
        self.check(journal=False, threads=2)
