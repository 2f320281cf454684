#!/usr/bin/env python3
"""bench/idle_load.py: mail flowing while thousands of TLS connections sit idle.

Starts smtpsd (build/smtpsd serve, a `submissions` listener, the development certificate and
the user demo, Maildir delivery) in a temporary directory, then alternates, per round:
  1. `smtpsctl bench` (1 KiB, implicit TLS with AUTH, --per-connection and --connections as
     given) with nothing else open: messages/s and p99;
  2. N TLS connections opened by this script (handshake, greeting, EHLO) and held idle,
     the server's VmRSS before and after (the difference per connection);
  3. the same bench while they stay open;
then closes them. Prints each run, the memory per idle connection of the first round (later
rounds reuse what the allocator kept) and the median ratio of p99 with and without the idle
connections. Idle connections come from 127.0.4.x (64 addresses), so the per-address limit
stays in force for the bench's 127.0.0.1. Standard library only; root for the descriptors.

    bench/idle_load.py --idle 10000 --rounds 2 --duration 5
"""

import argparse
import json
import os
import resource
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from idle_connections import read_reply, rss_kib  # noqa: E402  (this directory)


def bench(smtpsctl, port, ca, password_file, arguments):
    command = [smtpsctl, "bench", "--server", f"smtps://127.0.0.1:{port}", "--cafile", ca,
               "--user", "demo@localhost", "--password-file", password_file,
               "--connections", str(arguments.connections),
               "--per-connection", str(arguments.per_connection),
               "--duration", str(arguments.duration), "--json"]
    result = subprocess.run(command, capture_output=True, text=True,
                            timeout=arguments.duration + 120)
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n"
                           f"{result.stdout}{result.stderr}")


def open_idle(port, context, count):
    held = []
    for i in range(count):
        raw = socket.create_connection(("127.0.0.1", port), timeout=60,
                                       source_address=(f"127.0.4.{i % 64 + 1}", 0))
        tls = context.wrap_socket(raw, server_hostname="localhost")
        read_reply(tls)
        tls.sendall(b"EHLO idle.example\r\n")
        read_reply(tls)
        held.append(tls)
    return held


def main():
    parser = argparse.ArgumentParser(prog="bench/idle_load.py")
    parser.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    parser.add_argument("--idle", type=int, default=10000, help="idle TLS connections")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per bench run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--per-connection", type=int, default=100)
    arguments = parser.parse_args()
    smtpsd = os.path.abspath(os.path.join(arguments.build, "smtpsd"))
    smtpsctl = os.path.abspath(os.path.join(arguments.build, "smtpsctl"))
    os.environ.setdefault("SMTPSD_BIN", smtpsd)
    import harness  # noqa: E402  (reads SMTPSD_BIN at import)

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < arguments.idle + 500:
        sys.exit(f"the descriptor limit {hard} is below {arguments.idle + 500}")
    directory = tempfile.mkdtemp(prefix="smtpsd-idle-load-")
    server = harness.Server(directory, listeners=[{"role": "submissions"}],
                            limits={"max_connections": arguments.idle + 1000,
                                    "max_connections_per_ip": 1000,
                                    "max_connections_per_minute_per_ip": 0},
                            extra_toml="[sending_limits]\nmessages_per_hour = 0\n",
                            domains=[("localhost", ["demo"])])
    server.start()
    try:
        pid = server.process.pid
        port = server.ports["submissions"]
        password_file = os.path.join(server.dir, "demo.password")
        context = ssl.create_default_context(cafile=server.ca)
        bench(smtpsctl, port, server.ca, password_file,
              argparse.Namespace(**{**vars(arguments), "duration": 1.0}))  # warm-up
        without, with_idle, per_connection = [], [], []
        for round_number in range(arguments.rounds):
            alone = bench(smtpsctl, port, server.ca, password_file, arguments)
            before = rss_kib(pid)
            started = time.monotonic()
            held = open_idle(port, context, arguments.idle)
            opened = time.monotonic() - started
            time.sleep(1.0)
            after = rss_kib(pid)
            loaded = bench(smtpsctl, port, server.ca, password_file, arguments)
            for sock in held:
                sock.close()
            per_connection.append((after - before) / arguments.idle)
            without.append(alone)
            with_idle.append(loaded)
            for name, report in (("alone", alone), (f"{arguments.idle} idle", loaded)):
                print(f"round {round_number + 1} {name:>11}: "
                      f"{report['messages_per_second']:8.1f} msg/s p99 "
                      f"{report['latency_ms']['p99']:.1f} ms failures {report['failures']}")
            print(f"round {round_number + 1}: {arguments.idle} idle opened in {opened:.1f} s, "
                  f"VmRSS {before} -> {after} KiB, {per_connection[-1]:.1f} KiB per connection")
            time.sleep(2.0)  # the server closes its side
        p99 = [b["latency_ms"]["p99"] / a["latency_ms"]["p99"] for a, b in zip(without, with_idle)]
        rate = [b["messages_per_second"] / a["messages_per_second"]
                for a, b in zip(without, with_idle)]
        # Only the first round counts for memory: later rounds reuse what the allocator kept.
        print(f"first round: {per_connection[0]:.1f} KiB per idle connection; median "
              f"p99 with/without {statistics.median(p99):.2f}; "
              f"msg/s with/without {statistics.median(rate):.2f}")
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)  # its mailbox holds every message sent


if __name__ == "__main__":
    main()
