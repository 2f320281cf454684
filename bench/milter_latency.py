#!/usr/bin/env python3
"""bench/milter_latency.py: the latency rspamd adds to each message as a milter.

Starts, in one temporary directory, a private offline rspamd (tests/integration/rspamd.py:
its proxy worker in milter mode on a unix socket, scanning by itself) and two smtpsd (build/
smtpsd serve) with one `smtp` listener each, one going through rspamd and one through no
milter. Then, alternating between the two servers message by message, sends N messages to
each (plain SMTP on loopback, a 1 KiB clean message) and times with Python's monotonic clock:

  - session: connect, EHLO, MAIL, RCPT, DATA, the final reply, QUIT (the milter connection
    and its connect/HELO steps are per session);
  - message: MAIL to the final reply on a connection kept open (what a session's second and
    later messages pay).

Prints the median and the 90th percentile of each, per server, and the difference of the
medians. Only the standard library; needs the rspamd package (scripts/install-deps.sh).

    bench/milter_latency.py [--messages 50]
"""

import argparse
import os
import shutil
import smtplib
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))


def main():
    parser = argparse.ArgumentParser(prog="bench/milter_latency.py")
    parser.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    os.environ["SMTPSD_BIN"] = os.path.join(args.build, "smtpsd")
    from harness import Server, make_message  # after SMTPSD_BIN is set
    from rspamd import Rspamd

    directory = tempfile.mkdtemp(prefix="milter-bench-")
    rspamd = Rspamd(directory)
    servers = {}
    try:
        rspamd.start()
        print(f"rspamd listening after {rspamd.start_seconds:.2f} s")
        milter = (f'[[milters]]\nname = "rspamd"\naddress = "unix:{rspamd.socket}"\n'
                  f'timeout = "10s"\ndefault_action = "tempfail"\n')
        for name, milters, toml in (("no milter", [], ""), ("rspamd", ["rspamd"], milter)):
            path = os.path.join(directory, "smtpsd-" + name.replace(" ", "-"))
            os.makedirs(path)
            server = Server(path,
                            listeners=[{"role": "smtp", "milters": milters}], extra_toml=toml,
                            limits={"max_connections_per_minute_per_ip": 0,
                                    "max_connections_per_ip": 1000})
            servers[name] = server.start()
        body = "".join(f"Line {i} of a clean message about lunch at noon.\r\n" for i in range(20))
        message = make_message(subject="lunch", body=body)
        session = {name: [] for name in servers}
        per_message = {name: [] for name in servers}
        kept = {name: smtplib.SMTP("127.0.0.1", s.ports["smtp"], timeout=30)
                for name, s in servers.items()}
        for client in kept.values():
            client.ehlo("bench.example")
        for _ in range(args.messages + 2):  # the first two of each are a warm-up
            for name, server in servers.items():
                started = time.monotonic()
                with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as client:
                    client.ehlo("bench.example")
                    client.sendmail("you@example.org", ["demo@localhost"], message)
                session[name].append(time.monotonic() - started)
                started = time.monotonic()
                kept[name].sendmail("you@example.org", ["demo@localhost"], message)
                per_message[name].append(time.monotonic() - started)
        for client in kept.values():
            client.quit()

        def summary(samples):
            samples = sorted(samples[2:])
            return statistics.median(samples), samples[int(len(samples) * 0.9) - 1]

        print(f"{args.messages} messages each, alternating; milliseconds")
        print(f"{'':12} {'session p50':>12} {'p90':>8} {'message p50':>12} {'p90':>8}")
        medians = {}
        for name in servers:
            s50, s90 = summary(session[name])
            m50, m90 = summary(per_message[name])
            medians[name] = (s50, m50)
            print(f"{name:12} {s50 * 1e3:12.2f} {s90 * 1e3:8.2f} {m50 * 1e3:12.2f} "
                  f"{m90 * 1e3:8.2f}")
        added = [(medians["rspamd"][i] - medians["no milter"][i]) * 1e3 for i in (0, 1)]
        print(f"{'added':12} {added[0]:12.2f} {'':8} {added[1]:12.2f}")
    finally:
        for server in servers.values():
            server.stop()
        rspamd.stop()
        if args.keep:
            print(f"kept {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
