#!/usr/bin/env python3
"""bench/ab_binaries.py: two smtpsd binaries, the same smtpsctl bench load alternated.

Starts each binary (A and B) as its own server (harness.Server: a submissions listener, the
development certificate, the user demo, Maildir delivery), then runs the load against A and
B in turn (the order swaps every round), waits for each run's mail to leave the queue, and
prints per binary the median (min-max) messages/s and server CPU per message (from /proc),
and B/A. Standard library only; the load generator is build/smtpsctl.

    bench/ab_binaries.py OLD/smtpsd build/smtpsd 100 8 5 6   # per_conn conns seconds rounds
    SIZE=10485760 bench/ab_binaries.py A B 1 2 5 4            # 10 MiB messages
    EXTRA='[queue]\ndeliver_at_acceptance = false\n' ...       # appended to both configs
    B_LISTENER='{"session_tickets": false}' ...                # listener keys for B (or A_)
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from procstat import cpu_seconds  # noqa: E402

SMTPSCTL = os.path.join(HERE, "..", "build", "smtpsctl")


def positive(kind):
    def parse(text):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text}: must be positive")
        return value
    return parse


def parse_arguments():
    parser = argparse.ArgumentParser(prog="bench/ab_binaries.py",
                                     description="two smtpsd binaries, one load alternated")
    parser.add_argument("a", help="smtpsd binary A")
    parser.add_argument("b", help="smtpsd binary B")
    parser.add_argument("per_connection", type=positive(int))
    parser.add_argument("connections", type=positive(int))
    parser.add_argument("seconds", type=positive(float))
    parser.add_argument("rounds", type=positive(int))
    arguments = parser.parse_args()
    for binary in (arguments.a, arguments.b):
        if not os.access(binary, os.X_OK):
            parser.error(f"{binary}: not an executable")
    try:
        arguments.size = positive(int)(os.environ.get("SIZE", "1024"))
        arguments.listeners = {name: json.loads(os.environ.get(name + "_LISTENER", "{}"))
                               for name in ("A", "B")}
    except (ValueError, argparse.ArgumentTypeError) as error:
        parser.error(f"SIZE or A_/B_LISTENER: {error}")
    return arguments


def bench(server, per_connection, connections, seconds, size):
    """smtpsctl bench --json against server: its report (a clear error if it failed)."""
    command = [SMTPSCTL, "bench", "--server", f"smtps://127.0.0.1:{server.ports['submissions']}",
               "--cafile", server.ca, "--user", "demo@localhost",
               "--password-file", os.path.join(server.dir, "demo.password"),
               "--connections", str(connections), "--per-connection", str(per_connection),
               "--size", str(size), "--duration", str(seconds), "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"bench/ab_binaries.py: smtpsctl bench failed ({result.returncode}): "
                         f"{result.stderr}")


def main():
    arguments = parse_arguments()
    os.environ["SMTPSD_BIN"] = arguments.a
    import harness  # noqa: E402  (reads SMTPSD_BIN at import)
    directory = tempfile.mkdtemp(prefix="ab-")
    servers = {}
    for name, binary in (("A", arguments.a), ("B", arguments.b)):
        os.makedirs(os.path.join(directory, name))
        server = harness.Server(
            os.path.join(directory, name),
            listeners=[{"role": "submissions", **arguments.listeners[name]}],
            limits={"max_connections_per_ip": 1000, "max_connections_per_minute_per_ip": 0},
            extra_toml="[sending_limits]\nmessages_per_hour = 0\n" +
                       os.environ.get("EXTRA", "").replace("\\n", "\n"),
            domains=[("localhost", ["demo"])])
        server.binary = binary
        servers[name] = server
    rates = {"A": [], "B": []}
    cpu = {"A": [], "B": []}
    try:
        for server in servers.values():
            harness.SMTPSD = server.binary
            server.start()
            bench(server, 1, 8, 1.0, arguments.size)  # warm-up: the first password check
        for round_number in range(arguments.rounds):
            for name in ("A", "B") if round_number % 2 == 0 else ("B", "A"):
                server = servers[name]
                os.sync()  # nothing of the run before left to write during this one
                before = cpu_seconds([server.process.pid])
                report = bench(server, arguments.per_connection, arguments.connections,
                               arguments.seconds, arguments.size)
                deadline = time.monotonic() + 30  # the run's deliveries are part of its cost
                while server.spool_ids() and time.monotonic() < deadline:
                    time.sleep(0.05)
                time.sleep(0.2)
                messages = max(report["messages"], 1)
                rates[name].append(report["messages_per_second"])
                cpu[name].append(1000 * (cpu_seconds([server.process.pid]) - before) / messages)
        median = {name: (statistics.median(rates[name]), statistics.median(cpu[name]))
                  for name in rates}
        for name in ("A", "B"):
            print(f"{name}: {median[name][0]:.0f} msg/s ({min(rates[name]):.0f}-"
                  f"{max(rates[name]):.0f}), cpu {median[name][1]:.3f} ms/msg "
                  f"({min(cpu[name]):.3f}-{max(cpu[name]):.3f})")
        if median["A"][0] > 0 and median["A"][1] > 0:
            print(f"B/A: {median['B'][0] / median['A'][0]:.2f}x msg/s, "
                  f"{median['B'][1] / median['A'][1]:.2f}x cpu/msg")
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
