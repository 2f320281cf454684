#!/usr/bin/env python3
"""bench/handshake_cost.py: the server CPU of one TLS handshake, smtpsd against OpenSSL's own
`openssl s_server` with the same library, certificates and ticket count, in one run.

The floor under smtpsd's cost per connection is the handshake, and most of the handshake is
the TLS library. This measures both servers with the same client (`smtpsctl bench
--handshake-only`: connect, TLS 1.3 handshake, close; no SMTP), alternated, and prints the
median (min-max) CPU per handshake of each from /proc, and smtpsd / s_server. s_server gets
smtpsd's development certificates (ECDSA P-256 and RSA, as smtpsd serves them), TLS 1.3 and
one session ticket per handshake (smtpsd's setting). s_server serves one connection at a time
with one thread, so it gets one client connection and smtpsd eight: CPU per handshake, not
handshakes per second, is the comparison.

    bench/handshake_cost.py [rounds] [seconds]      # default 3 rounds of 4 s
"""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("BUILD", os.path.join(HERE, "..", "build"))
os.environ.setdefault("SMTPSD_BIN", os.path.join(BUILD, "smtpsd"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402
from ports import free_port  # noqa: E402
from procstat import cpu_seconds  # noqa: E402
from processes import end_process  # noqa: E402


def wait_listening(port, process, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"bench/handshake_cost.py: openssl s_server exited "
                             f"({process.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("bench/handshake_cost.py: openssl s_server did not listen")


def handshakes(port, ca, connections, seconds):
    command = [os.path.join(BUILD, "smtpsctl"), "bench", "--server",
               f"smtps://127.0.0.1:{port}", "--cafile", ca, "--connections", str(connections),
               "--handshake-only", "--duration", str(seconds), "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if result.returncode != 0:
        raise SystemExit(f"bench/handshake_cost.py: smtpsctl bench failed: {result.stderr}")
    return json.loads(result.stdout)["connections"]


def main():
    try:
        rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
        seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 4.0
    except ValueError as error:
        raise SystemExit(f"usage: bench/handshake_cost.py [rounds] [seconds]: {error}")
    if len(sys.argv) > 3 or rounds < 1 or not seconds > 0:
        raise SystemExit("usage: bench/handshake_cost.py [rounds] [seconds], both positive")
    directory = tempfile.mkdtemp(prefix="handshake-cost-")
    server = harness.Server(directory, listeners=[{"role": "submissions"}],
                            limits={"max_connections_per_ip": 1000,
                                    "max_connections_per_minute_per_ip": 0},
                            domains=[("localhost", ["demo"])])
    openssl = None
    try:
        server.start()
        tls = os.path.join(server.dir, "tls")
        port = free_port()
        openssl = subprocess.Popen(
            ["openssl", "s_server", "-quiet", "-accept", f"127.0.0.1:{port}", "-tls1_3",
             "-num_tickets", "1",
             "-cert", os.path.join(tls, "server-ecdsa.pem"),
             "-key", os.path.join(tls, "server-ecdsa.key"),
             "-dcert", os.path.join(tls, "server-rsa.pem"),
             "-dkey", os.path.join(tls, "server-rsa.key")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(port, openssl)
        targets = {"smtpsd": (server.ports["submissions"], server.process.pid, 8),
                   "openssl s_server": (port, openssl.pid, 1)}
        handshakes(targets["smtpsd"][0], server.ca, 8, 1.0)  # warm-up, not counted
        cost = {name: [] for name in targets}
        names = list(targets)
        for round_number in range(rounds):
            for name in names if round_number % 2 == 0 else reversed(names):
                port_of, pid, connections = targets[name]
                before = cpu_seconds([pid])
                count = handshakes(port_of, server.ca, connections, seconds)
                cost[name].append((cpu_seconds([pid]) - before) * 1000 / max(count, 1))
                print(f"round {round_number + 1} {name:16} {count / seconds:7.0f} handshakes/s "
                      f"{cost[name][-1]:.3f} ms CPU each", file=sys.stderr, flush=True)
        print(f"Server CPU per TLS 1.3 handshake, {rounds} round(s) of {seconds:g} s, "
              "median (min-max):")
        for name, values in cost.items():
            print(f"  {name:16} {statistics.median(values):.3f} ms "
                  f"({min(values):.3f}-{max(values):.3f})")
        ours, theirs = (statistics.median(cost[name]) for name in names)
        if theirs > 0:
            print(f"  smtpsd / s_server: {ours / theirs:.2f}")
    finally:
        end_process(openssl)
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
