"""Committer threads follow the spool's file system (base/file_sync.h
syncs_are_journal_commits): four where every sync is a journal commit (ext4 with its journal),
two elsewhere (ext4 without one). Each server runs on a small ext4 of its own, made and
loop-mounted by the test (root), and takes a message at acceptance there."""

import os
import subprocess

import needs
from harness import Server, ServerTestCase, make_message


@needs.condition(lambda: os.geteuid() == 0, "mounting a loop file system needs root")
@needs.tools("mkfs.ext4", "mount", "umount")
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
        server = Server(point)
        self.servers.append(server)
        with server:
            client = server.smtp()
            client.sendmail("you@example.org", ["demo@localhost"], make_message("j", "j@x.org"))
            client.quit()
            self.assertEqual(len(server.delivered()), 1)
            started = [line for line in server.log().splitlines() if "event=started" in line]
            self.assertEqual(len(started), 1, started)
            self.assertIn(f" commit_threads={threads}", started[0])

    def test_four_committer_threads_on_a_journaled_ext4(self):
        self.check(journal=True, threads=4)

    def test_two_committer_threads_on_an_ext4_without_a_journal(self):
        self.check(journal=False, threads=2)
