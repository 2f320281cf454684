#!/usr/bin/env python3
"""What [metrics] costs smtpsd, two ways in one run (README "Metrics", bench/README.md).

1. Counting: build/metrics_bench (Google Benchmark) times every metrics call one message
   causes (BM_MetricsPerMessage) and one scrape of the whole page (BM_Scrape); the script
   divides them by the server's own CPU per message, measured just after by loading a real
   smtpsd with `smtpsctl bench` (utime + stime of the server process / messages accepted).
2. End to end: the same server with the endpoint on and scraped once a second ("on")
   against no [metrics] table ("off"), alternating in each round so that neighbouring runs
   share the machine's background load; messages/s and server CPU per message, paired.

  python3 bench/metrics_overhead.py [--rounds 3] [--duration 8] [--connections 8]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import harness  # noqa: E402
from procstat import cpu_seconds  # noqa: E402


def micro(build):
    out = subprocess.run([os.path.join(build, "metrics_bench"), "--benchmark_format=json",
                          "--benchmark_min_time=0.5"], check=True, capture_output=True,
                         text=True).stdout
    return {b["name"]: b["cpu_time"] for b in json.loads(out)["benchmarks"]}  # ns


def run_once(build, variant, per_connection, args):
    directory = tempfile.mkdtemp(prefix=f"smtpsd-metrics-{variant}-")
    extra = '[metrics]\naddress = "127.0.0.1:0"\n' if variant == "on" else ""
    server = harness.Server(directory, listeners=[{"role": "smtp"}],
                            limits={"max_connections_per_minute_per_ip": 0},
                            extra_toml=extra)
    server.start()
    stop = threading.Event()
    scrapes = []
    if variant == "on":
        match = server.wait_log(r"event=metrics_listening address=\S+ port=(\d+)")
        url = f"http://127.0.0.1:{match.group(1)}/metrics"

        def scrape():
            while not stop.wait(1.0):
                with urllib.request.urlopen(url, timeout=5) as response:
                    scrapes.append(len(response.read()))

        threading.Thread(target=scrape, daemon=True).start()
    try:
        before = cpu_seconds([server.process.pid])
        report = subprocess.run(
            [os.path.join(build, "smtpsctl"), "bench",
             "--server", f"smtp://127.0.0.1:{server.ports['smtp']}", "--cafile", server.ca,
             "--connections", str(args.connections), "--duration", str(args.duration),
             "--per-connection", str(per_connection), "--size", "1024", "--json"],
            capture_output=True, text=True)
        cpu = cpu_seconds([server.process.pid]) - before
    finally:
        stop.set()
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)  # each run's mailbox: thousands of files
    result = json.loads(report.stdout)
    messages = max(result["messages"], 1)
    return {"rate": result["messages_per_second"], "cpu_ms": cpu * 1000 / messages,
            "failures": result["failures"], "scrapes": len(scrapes)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    for name in ("rounds", "duration", "connections"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    build = os.path.abspath(args.build)
    harness.SMTPSD = os.path.join(build, "smtpsd")

    ns = micro(build)
    per_message_ns = ns["BM_MetricsPerMessage"]
    print(f"metrics calls per message: {per_message_ns:.0f} ns CPU "
          f"(4 threads sharing the counters: {ns['BM_MetricsPerMessageFourThreads/threads:4']:.0f}"
          f" ns); one scrape: {ns['BM_Scrape'] / 1000:.1f} us")

    runs = {}
    for round_ in range(1, args.rounds + 1):
        for per in (100, 1):
            for variant in ("off", "on"):
                r = run_once(build, variant, per, args)
                runs.setdefault((per, variant), []).append(r)
                print(f"round {round_} per_connection={per:3} {variant:3}: {r['rate']:7.1f} msg/s, "
                      f"server {r['cpu_ms']:.3f} ms CPU/msg, failures {r['failures']}, "
                      f"scrapes {r['scrapes']}", flush=True)

    print()
    print("| msg/conn | off msg/s | on msg/s | on/off paired (median) | server CPU/msg off | "
          "on | metrics calls / server CPU |")
    print("|---|---|---|---|---|---|---|")
    for per in (100, 1):
        off, on = runs[(per, "off")], runs[(per, "on")]
        paired = [b["rate"] / a["rate"] for a, b in zip(off, on) if a["rate"] > 0]
        cpu_off = statistics.median(r["cpu_ms"] for r in off)
        cpu_on = statistics.median(r["cpu_ms"] for r in on)
        print(f"| {per} | {statistics.median(r['rate'] for r in off):.0f} | "
              f"{statistics.median(r['rate'] for r in on):.0f} | "
              f"{statistics.median(paired):.3f} ({', '.join(f'{p:.2f}' for p in paired)}) | "
              f"{cpu_off:.3f} ms | {cpu_on:.3f} ms | "
              f"{per_message_ns / (cpu_off * 1e6):.5f} |")
    print(f"\none scrape a second: {ns['BM_Scrape'] / 1e9:.6f} of one core")
    failed = sum(r["failures"] for rs in runs.values() for r in rs)
    if failed:
        sys.exit(f"{failed} messages were not accepted: the figures above are not comparable")


if __name__ == "__main__":
    main()
