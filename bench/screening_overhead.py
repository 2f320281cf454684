#!/usr/bin/env python3
"""bench/screening_overhead.py: the port 25 (MX role) load with and without the early-talker
screen ([screening] pregreet_wait = "1s", improper_pipelining = "refuse"), in alternation.

Starts two smtpsd (build/smtpsd serve) with one `smtp` listener each, warms each up (the
first connection from 127.0.0.1 to the screened one waits the pre-greet wait once and is
remembered), then for each round runs `smtpsctl bench` against one and the other (the order
swaps every round) for two loads: one message per STARTTLS connection (the screen's cost is
per connection) and 100 pipelined messages per connection. Prints the median messages/s of
each and their ratio. A client the pass table remembers skips the wait, so the ratio measures
what a returning MX pays; a first contact waits `pregreet_wait` by design.

    bench/screening_overhead.py [--duration 4] [--rounds 5]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))


def main():
    parser = argparse.ArgumentParser(prog="bench/screening_overhead.py")
    parser.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ["SMTPSD_BIN"] = os.path.join(args.build, "smtpsd")
    from harness import Server  # after SMTPSD_BIN is set
    smtpsctl = os.path.join(args.build, "smtpsctl")
    configs = {
        "plain": "",
        "screened": '[screening]\npregreet_wait = "1s"\nimproper_pipelining = "refuse"\n',
    }
    servers = {}
    try:
        for name, toml in configs.items():
            server = Server(tempfile.mkdtemp(prefix=f"screening-bench-{name}-"),
                            listeners=[{"role": "smtp"}], extra_toml=toml,
                            limits={"max_connections_per_minute_per_ip": 0,
                                    "max_connections_per_ip": 1000})
            servers[name] = server.start()

        def bench(server, per_connection, connections, extra=()):
            command = [smtpsctl, "bench", "--server", f"smtp://localhost:{server.ports['smtp']}",
                       "--cafile", server.ca, "--connections", str(connections),
                       "--per-connection", str(per_connection), "--duration",
                       str(args.duration), "--json", *extra]
            result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
            return json.loads(result.stdout)

        for server in servers.values():
            bench(server, 1, 2)
        loads = [(1, 8, ()), (100, 8, ("--pipelining",))]
        results = {}
        for round_number in range(args.rounds):
            order = list(servers) if round_number % 2 == 0 else list(reversed(servers))
            for per_connection, connections, extra in loads:
                for name in order:
                    report = bench(servers[name], per_connection, connections, extra)
                    results.setdefault((per_connection, name), []).append(report)
        for per_connection, connections, _ in loads:
            medians = {}
            for name in servers:
                runs = [r.get("messages_per_second", 0) for r in results[(per_connection, name)]]
                medians[name] = statistics.median(runs)
                print(f"{per_connection:3} per connection, {connections} connections, {name:8}: "
                      f"{medians[name]:7.1f} msg/s (runs {[round(r, 1) for r in runs]})")
            print(f"    ratio screened / plain: {medians['screened'] / medians['plain']:.3f}")
    finally:
        for server in servers.values():
            server.stop()


if __name__ == "__main__":
    main()
