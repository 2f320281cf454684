"""The kill -9 loop: a steady load of a few thousand messages, half for a local Maildir and
half relayed to a second smtpsd over verified TLS, while the sending server is killed with
SIGKILL at random moments and restarted, several times. At the end every message that got
a 250 is in the local Maildir exactly once or at the remote at least once (counted by
Message-ID), and the duplicates on the onward path are counted and reported.

The counts are printed (acknowledged, delivered, duplicates, lost) for the stop note.
"""

import collections
import os
import random
import re
import smtplib
import threading
import time
import unittest

from harness import ServerTestCase, make_message
from test_onward import delivery_toml, demo_password

MESSAGE_ID = re.compile(rb"^Message-ID: <([^>]+)>", re.M | re.I)

TOTAL = int(os.environ.get("SMTPSD_CRASH_MESSAGES", "2000"))
KILLS = int(os.environ.get("SMTPSD_CRASH_KILLS", "8"))


class KillNineLoop(ServerTestCase):
    def test_no_acknowledged_message_is_lost_or_delivered_twice_to_maildir(self):
        remote = self.new_server(domains=[("remote.test", ["bob"])])
        remote.start()
        local = self.new_server(extra_toml=delivery_toml(
            relay=f"smtp://127.0.0.1:{remote.ports['smtp']}", ca_file=remote.ca, retry=(1,)))
        local.start()
        password = demo_password(local)

        acknowledged = {}  # message id -> "local" | "remote"
        lock = threading.Lock()
        next_index = [0]
        done = threading.Event()

        def client_loop():
            client = None
            while not done.is_set():
                with lock:
                    i = next_index[0]
                    if i >= TOTAL:
                        break
                    next_index[0] += 1
                where = "local" if i % 2 == 0 else "remote"
                rcpt = "demo@localhost" if where == "local" else "bob@remote.test"
                message_id = f"crash-{i}@test"
                try:
                    if client is None:
                        port = local.ports.get("submissions")
                        if port is None:
                            raise OSError("server restarting")
                        client = smtplib.SMTP_SSL("localhost", port, timeout=10,
                                                  context=local.client_context())
                        client.login("demo@localhost", password)
                    client.sendmail("demo@localhost", [rcpt],
                                    make_message(subject=f"crash {i}", message_id=message_id,
                                                 sender="demo@localhost", to=rcpt))
                    with lock:
                        acknowledged[message_id] = where
                except (OSError, smtplib.SMTPException):
                    # Killed mid-transaction: this one was never acknowledged. Try the next.
                    client = None
                    time.sleep(0.05)
            if client is not None:
                try:
                    client.quit()
                except (OSError, smtplib.SMTPException):
                    pass

        clients = [threading.Thread(target=client_loop) for _ in range(2)]
        for thread in clients:
            thread.start()
        rng = random.Random(int(os.environ.get("SMTPSD_CRASH_SEED", "4")))
        kills = 0
        while kills < KILLS and any(t.is_alive() for t in clients):
            time.sleep(rng.uniform(0.3, 1.5))
            local.kill9()
            kills += 1
            local.ports = {}
            local.start()
        for thread in clients:
            thread.join(300)
        done.set()

        # Let the queue drain, then count.
        deadline = time.time() + 120
        while time.time() < deadline and (local.spool_ids() or remote.spool_ids()):
            time.sleep(0.2)
        self.assertEqual(local.spool_ids(), [], local.log()[-3000:])
        self.assertEqual(remote.spool_ids(), [], remote.log()[-3000:])

        def ids(messages):
            counter = collections.Counter()
            for message in messages:
                match = MESSAGE_ID.search(message)
                if match:
                    counter[match.group(1).decode()] += 1
            return counter

        local_ids = ids(local.delivered("demo@localhost"))
        remote_ids = ids(remote.delivered("bob@remote.test"))
        acked_local = [m for m, w in acknowledged.items() if w == "local"]
        acked_remote = [m for m, w in acknowledged.items() if w == "remote"]
        lost_local = [m for m in acked_local if local_ids[m] == 0]
        lost_remote = [m for m in acked_remote if remote_ids[m] == 0]
        dup_local = [m for m, n in local_ids.items() if n > 1]
        dup_remote = [m for m, n in remote_ids.items() if n > 1]
        print(f"\nkill -9 loop: {kills} kills, {len(acknowledged)} acknowledged "
              f"({len(acked_local)} local, {len(acked_remote)} relayed); delivered "
              f"{sum(local_ids.values())} local, {sum(remote_ids.values())} relayed; "
              f"duplicates {len(dup_local)} local, {len(dup_remote)} relayed; "
              f"lost {len(lost_local)} local, {len(lost_remote)} relayed")
        # The kills happened: each one is a restart of the server on the same data.
        self.assertGreater(kills, 0)
        self.assertEqual(local.log().count("event=started"), kills + 1)
        self.assertGreater(len(acknowledged), TOTAL // 2)
        self.assertEqual(lost_local, [])
        self.assertEqual(lost_remote, [])
        self.assertEqual(dup_local, [])
        # The onward hop can repeat a message only when a kill falls between the remote's 250
        # and the local state update: at most one transaction per delivery thread per kill.
        self.assertLessEqual(len(dup_remote), kills * 8)


if __name__ == "__main__":
    unittest.main()
