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
import os, sys, json, subprocess, tempfile, time, shutil, statistics
a_bin, b_bin = sys.argv[1], sys.argv[2]
per, conns, dur, rounds = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
size = os.environ.get("SIZE", "1024")
os.environ["SMTPSD_BIN"] = a_bin
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness
smtpsctl = os.path.join(HERE, "..", "build", "smtpsctl")
servers = {}
d = tempfile.mkdtemp(prefix="ab-")
for name, binary in (("A", a_bin), ("B", b_bin)):
    os.makedirs(os.path.join(d, name))
    listener = {"role": "submissions"}
    listener.update(json.loads(os.environ.get(name + "_LISTENER", "{}")))
    s = harness.Server(os.path.join(d, name), listeners=[listener],
                       limits={"max_connections_per_ip": 1000, "max_connections_per_minute_per_ip": 0},
                       extra_toml="[sending_limits]\nmessages_per_hour = 0\n" + os.environ.get("EXTRA", "").replace("\\n", "\n"), domains=[("localhost", ["demo"])])
    s.binary = binary
    servers[name] = s
def cpu(s):
    f = open(f"/proc/{s.process.pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
def bench(s, p, c, t):
    pw = os.path.join(s.dir, "demo.password")
    cmd = [smtpsctl, "bench", "--server", f"smtps://127.0.0.1:{s.ports['submissions']}", "--cafile", s.ca,
           "--user", "demo@localhost", "--password-file", pw, "--connections", str(c),
           "--per-connection", str(p), "--size", size, "--duration", str(t), "--json"]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True).stdout)
res = {"A": [], "B": []}
try:
    for s in servers.values():
        harness.SMTPSD = s.binary
        s.start()
        bench(s, 1, 8, 1.0)
    for r in range(rounds):
        for name in (("A", "B") if r % 2 == 0 else ("B", "A")):
            s = servers[name]
            c0 = cpu(s); rep = bench(s, per, conns, dur)
            deadline = time.time() + 30
            while s.spool_ids() and time.time() < deadline: time.sleep(0.05)
            time.sleep(0.2)
            n = rep["messages"]
            res[name].append((n / dur, 1000 * (cpu(s) - c0) / max(n, 1), rep.get("p99_ms")))
    for name in ("A", "B"):
        rates = [x[0] for x in res[name]]; cpus = [x[1] for x in res[name]]
        print(f"{name}: {statistics.median(rates):.0f} msg/s ({min(rates):.0f}-{max(rates):.0f}), "
              f"cpu {statistics.median(cpus):.3f} ms/msg ({min(cpus):.3f}-{max(cpus):.3f})")
    ra = statistics.median([x[0] for x in res["A"]]); rb = statistics.median([x[0] for x in res["B"]])
    ca = statistics.median([x[1] for x in res["A"]]); cb = statistics.median([x[1] for x in res["B"]])
    print(f"B/A: {rb/ra:.2f}x msg/s, {cb/ca:.2f}x cpu/msg")
finally:
    for s in servers.values():
        try: s.stop()
        except Exception: pass
    shutil.rmtree(d, ignore_errors=True)
