"""The syncs follow the file system (base/file_sync.h). Committer threads
(syncs_are_journal_commits): four where every sync is a journal commit (ext4 with its journal),
two elsewhere (ext4 without one). The Maildir copies of a batch (syncfs_use): one syncfs, and
where there is no journal an fdatasync of the first file right after it, for the disk flush
that syncfs sends before it has waited for the inode and directory blocks. Each server runs
on a small ext4 of its own, made and loop-mounted by the test (root), under strace, and takes
a message for two mailboxes at acceptance there."""

import os
import re
import subprocess

import needs
from harness import Server, ServerTestCase, make_message, run_under_strace

# "<pid> syncfs(12) = 0" in strace -f output.
SYNC_CALL = re.compile(r"^(\d+) +(syncfs|fdatasync|fsync)\((\d+)\) += (-?\d+)")


@needs.condition(lambda: os.geteuid() == 0, "mounting a loop file system needs root")
@needs.tools("mkfs.ext4", "mount", "umount", "strace")
class CommitThreads(ServerTestCase):
    def mounted_ext4(self, name, journal):
        image = os.path.join(self.tmp, name + ".img")
        with open(image, "wb") as f:
            f.truncate(512 << 20)  # sparse; room for the spool reserve and its free-space floor
        features = [] if journal else ["-O", "^has_journal"]
        subprocess.run(["mkfs.ext4", "-q", "-F", *features, image], check=True,
                       capture_output=True)
        point = os.path.join(self.tmp, name)
        os.mkdir(point)
        subprocess.run(["mount", "-o", "loop", image, point], check=True, capture_output=True)
        self.addCleanup(subprocess.run, ["umount", point], capture_output=True)
        return point

    def check(self, journal, threads):
        point = self.mounted_ext4("journal" if journal else "plain", journal)
        server = Server(point, domains=[("localhost", ["demo", "ann"])])
        trace = os.path.join(self.tmp, "syncs.trace")
        run_under_strace(server, ["-e", "trace=syncfs,fdatasync,fsync", "-o", trace])
        self.servers.append(server)
        with server:
            # Three messages, each after a sync of the machine: syncfs is used only while
            # under 64 MiB is waiting to be written (mkfs leaves more; so may parallel tests).
            for n in range(3):
                os.sync()
                client = server.smtp()
                client.sendmail("you@example.org", ["demo@localhost", "ann@localhost"],
                                make_message(f"j{n}", "j@x.org"))
                client.quit()
            self.assertEqual(len(server.delivered()), 3)
            self.assertEqual(len(server.delivered("ann@localhost")), 3)
            started = [line for line in server.log().splitlines() if "event=started" in line]
            self.assertEqual(len(started), 1, started)
            self.assertIn(f" commit_threads={threads}", started[0])
        with open(trace) as f:
            calls = [m.groups() for m in map(SYNC_CALL.match, f) if m]
        # Each message's two copies: one syncfs, then on the same thread what follows it.
        syncfs = [i for i, call in enumerate(calls) if call[1] == "syncfs"]
        self.assertGreaterEqual(len(syncfs), 1, calls)
        for at in syncfs:
            pid, _, fd, result = calls[at]
            self.assertEqual(result, "0", calls)
            after = [call[1:] for call in calls[at + 1:] if call[0] == pid]
            flushed = bool(after) and after[0] == ("fdatasync", fd, "0")
            self.assertEqual(flushed, not journal, calls)

    def test_four_committer_threads_on_a_journaled_ext4(self):
        self.check(journal=True, threads=4)

    def test_two_committer_threads_on_an_ext4_without_a_journal(self):
        self.check(journal=False, threads=2)
