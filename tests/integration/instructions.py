#!/usr/bin/env python3
"""Instructions the server executes per accepted and delivered message, counted by
callgrind: the regression guard of issue 19 (docs/testing.md "Instructions per message").

This machine has no CPU performance counters, so the count comes from valgrind's callgrind
(an instruction count does not depend on the load of the machine, as a time does). The
server runs under callgrind; `callgrind_control --dump` closes a part at chosen moments, so
start-up (reading the CA bundle for outbound TLS, ~300 M instructions) and the first
connection (the first Argon2id verification, lazy set-ups) are left out:

  start → dump → warm-up: 5 messages on one connection → dump
        → the measured run: 1,000 messages of 1 KiB, 4 connections of 250, implicit TLS
          with AUTH PLAIN (as bench/compare), each delivered to the local Maildir → dump

Instructions per message = the measured part / 1,000: acceptance, spool, delivery, and the
four connections' TLS handshakes and AUTH (a few per cent). Two runs on the same build
differ by well under 1 %.

The baseline is stored per machine kind (architecture, distribution, compiler, build type:
the compiler and libraries change the count) in tests/data/instructions_per_message.json.
Record it for a new kind, or after a change that makes the server cheaper, with

    tests/integration/instructions.py --record      # uses build/smtpsd and build/smtpsctl

Standard library only.
"""

import argparse
import glob
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BASELINE = os.path.join(ROOT, "tests", "data", "instructions_per_message.json")
MESSAGES = 1000
CONNECTIONS = 4
WARM_UP = 5
# A change that costs more than this fraction above the baseline fails the guard.
TOLERANCE = 0.12


def machine_kind(smtpsd):
    """What the count depends on besides our code: the CPU architecture, the distribution,
    the compiler that built smtpsd (its .comment section) and the build type."""
    distribution = "unknown"
    try:
        with open("/etc/os-release") as f:
            fields = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
        distribution = fields.get("ID", "unknown") + fields.get("VERSION_ID", "").strip('"')
    except OSError:
        pass
    comment = subprocess.run(["readelf", "-p", ".comment", smtpsd], capture_output=True,
                             text=True).stdout
    compiler = re.search(r"(GCC|clang)[^)]*\)\s*([\d.]+)", comment)
    compiler = f"{compiler.group(1).lower()}{compiler.group(2).split('.')[0]}" if compiler \
        else "unknown"
    build_type = "unknown"
    cache = os.path.join(os.path.dirname(smtpsd), "CMakeCache.txt")
    try:
        with open(cache) as f:
            found = re.search(r"^CMAKE_BUILD_TYPE:STRING=(.*)$", f.read(), re.M)
            build_type = found.group(1) if found else build_type
    except OSError:
        pass
    return f"{platform.machine()}-{distribution}-{compiler}-{build_type}"


def part_total(path):
    """The instruction count of one callgrind dump file."""
    with open(path) as f:
        text = f.read()
    found = re.search(r"^totals: (\d+)", text, re.M) or re.search(r"^summary: (\d+)", text, re.M)
    if not found:
        raise RuntimeError(f"{path}: no totals line (not a callgrind dump?)")
    return int(found.group(1))


def measure(smtpsd, smtpsctl, directory):
    """Instructions per message of the measured run (see the module's text)."""
    server = harness.Server(directory, listeners=[{"role": "submissions"}],
                            limits={"max_connections_per_ip": 1000,
                                    "max_connections_per_minute_per_ip": 0},
                            extra_toml="[sending_limits]\nmessages_per_hour = 0\n")
    out = os.path.join(directory, "callgrind.out")
    server.command_prefix = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out]
    mailbox = os.path.join(directory, "mail", "localhost", "demo", "new")

    def dump():
        subprocess.run(["callgrind_control", "--dump", str(server.process.pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def send(messages, connections):
        subprocess.run([smtpsctl, "bench", "--server",
                        f"smtps://127.0.0.1:{server.ports['submissions']}", "--cafile", server.ca,
                        "--user", "demo@localhost", "--password-file",
                        os.path.join(directory, "demo.password"), "--threads", "1",
                        "--connections", str(connections), "--messages", str(messages),
                        "--per-connection", str(messages // connections)],
                       check=True, stdout=subprocess.DEVNULL, timeout=240)

    def wait_delivered(count):
        deadline = time.time() + 120
        while len(os.listdir(mailbox) if os.path.isdir(mailbox) else []) < count:
            if time.time() > deadline:
                raise AssertionError(f"only {len(os.listdir(mailbox))} of {count} delivered:\n"
                                     + server.log()[-3000:])
            time.sleep(0.05)
        # The deliverer removes the queued file after the Maildir rename: let it finish so
        # that its work falls into this part, not the next.
        spool = os.path.join(directory, "spool", "queue")
        while os.listdir(spool) and time.time() < deadline:
            time.sleep(0.05)

    server.start(timeout=120)
    try:
        dump()
        send(WARM_UP, 1)
        wait_delivered(WARM_UP)
        dump()
        send(MESSAGES, CONNECTIONS)
        wait_delivered(WARM_UP + MESSAGES)
        dump()
    finally:
        server.stop(timeout=60)
    parts = sorted(glob.glob(out + ".*"), key=lambda p: int(p.rsplit(".", 1)[1]))
    if len(parts) < 3:
        raise RuntimeError(f"expected three callgrind dumps, found {parts}")
    return part_total(parts[2]) / MESSAGES, server


def load_baselines():
    try:
        with open(BASELINE) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--record", action="store_true",
                        help="store the measured figure as this machine kind's baseline")
    arguments = parser.parse_args()
    smtpsd = os.path.join(arguments.build, "smtpsd")
    harness.SMTPSD = smtpsd
    kind = machine_kind(smtpsd)
    with tempfile.TemporaryDirectory(prefix="smtpsd-instructions-") as directory:
        per_message, _ = measure(smtpsd, os.path.join(arguments.build, "smtpsctl"), directory)
    baselines = load_baselines()
    print(f"{kind}: {per_message:,.0f} instructions per message"
          + (f" (baseline {baselines[kind]['per_message']:,})" if kind in baselines else ""))
    if arguments.record:
        baselines[kind] = {"per_message": round(per_message),
                           "recorded": time.strftime("%Y-%m-%d")}
        with open(BASELINE, "w") as f:
            json.dump(baselines, f, indent=2, sort_keys=True)
            f.write("\n")
        print(f"recorded in {BASELINE}")


if __name__ == "__main__":
    main()
