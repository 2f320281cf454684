#!/usr/bin/env python3
"""Onward delivery throughput: how fast a queue of N messages drains through a relay over
verified TLS, with connection reuse (connection_cache > 0) against one connection per
message (connection_cache = 0). Both runs use the same two smtpsd processes' setup on
loopback and alternate, so the ratio is measured in one session on one machine.

    python3 bench/relay_throughput.py --messages 1000 --rounds 3

How: the sending server is started with its relay pointing at a closed port, N messages
are submitted (they wait in the queue), the server is stopped, its relay is pointed at the
receiving smtpsd, and it is started again: the time from its start to the last message
removed from its queue is the drain time. The receiver writes every message to its
Maildir with fsync, as in production.
"""

import argparse
import os
import re
import shutil
import smtplib
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from harness import Server, make_message  # noqa: E402
from ports import free_port  # noqa: E402

STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z .*event=(started|removed)", re.M)


def parse_time(text):
    return time.mktime(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + text[19:])


def toml(relay_port, ca, cache, threads):
    return (f"[queue]\nretry_schedule = [3600]\ndelivery_threads = {threads}\n\n"
            f"[delivery]\nrelay = \"smtp://127.0.0.1:{relay_port}\"\nca_file = \"{ca}\"\n"
            f"connection_cache = {cache}\nmax_per_destination = {threads}\n")


def one_round(root, messages, cache, threads):
    base = tempfile.mkdtemp(dir=root)
    os.makedirs(os.path.join(base, "remote"))
    remote = Server(os.path.join(base, "remote"), domains=[("remote.test", ["bob"])])
    remote.start()
    os.makedirs(os.path.join(base, "local"))
    local = Server(os.path.join(base, "local"),
                   extra_toml=toml(free_port(), remote.ca, cache, threads))
    local.start()
    with open(os.path.join(local.dir, "demo.password")) as f:
        password = f.read().strip()
    client = smtplib.SMTP_SSL("localhost", local.ports["submissions"],
                              context=local.client_context())
    client.login("demo@localhost", password)
    body = ("x" * 98 + "\r\n") * 10  # 1 KiB
    for i in range(messages):
        client.sendmail("demo@localhost", ["bob@remote.test"],
                        make_message(message_id=f"b{i}@bench", body=body))
    client.quit()
    local.stop()
    local.extra_toml = toml(remote.ports["smtp"], remote.ca, cache, threads)
    local.write_config()
    offset = len(local.log())
    local.start()
    deadline = time.time() + 600
    while local.spool_ids() and time.time() < deadline:
        time.sleep(0.05)
    local.stop()
    sessions = remote.log().count("event=tls ")
    remote.stop()
    stamps = STAMP.findall(local.log()[offset:])
    start = next(parse_time(t) for t, e in stamps if e == "started")
    end = max(parse_time(t) for t, e in stamps if e == "removed")
    delivered = len(remote.delivered("bob@remote.test"))
    shutil.rmtree(base, ignore_errors=True)
    return delivered / (end - start), sessions, delivered


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="relay-bench-")
    results = {"reuse": [], "one per message": []}
    try:
        for _ in range(args.rounds):
            for name, cache in (("reuse", 5), ("one per message", 0)):
                rate, sessions, delivered = one_round(root, args.messages, cache, args.threads)
                results[name].append(rate)
                print(f"{name:16} {rate:8.1f} msg/s  {sessions:5} TLS sessions at the remote  "
                      f"{delivered} delivered", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    best = {name: max(rates) for name, rates in results.items()}
    print(f"best: reuse {best['reuse']:.1f} msg/s, one per message "
          f"{best['one per message']:.1f} msg/s, ratio {best['reuse'] / best['one per message']:.2f}")


if __name__ == "__main__":
    main()
