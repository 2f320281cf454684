#!/usr/bin/env python3
"""bench/mta_sts_latency.py: the delivery latency an MTA-STS (RFC 8461) policy lookup adds,
cold (the policy fetched over HTTPS and written to the cache) and cached.

Starts, in one temporary directory, a private DNS server (dnsmasq, tests/integration/
dns_server.py), an HTTPS policy host on loopback (test_mta_sts.PolicyHost: an enforce policy
naming mx.bench.test, its certificate from the receiver's CA), a receiving smtpsd whose
certificate names mx.bench.test, and a sending smtpsd (build/smtpsd serve) that delivers to
it as the MX host of every bench domain, trusting that CA ([delivery] ca_file) and opening a
new connection for each message (connection_cache = 0, so that every message is routed by
its policy). Four kinds of recipient domain, all with the same MX host:

  - fresh, no policy: a domain never seen before, without an `_mta-sts` record;
  - cold: a domain never seen before, with an `_mta-sts` record: the policy is fetched;
  - same, no policy: one domain without an `_mta-sts` record, every message;
  - cached: one domain whose policy is in the cache (fetched once before the runs).

Alternating between the kinds message by message (the order rotates every round), sends N
messages of each (implicit TLS submission with AUTH, as demo@localhost) and times, with
Python's monotonic clock, from the end of the submission to the sender's `event=delivered`
log line of that message (the log read from where it was, every 0.5 ms). Prints the median
and the 90th percentile of each kind, and what the lookup adds: cold minus fresh, cached
minus same (the medians' differences). Only the standard library; needs dnsmasq
(scripts/install-deps.sh).

    bench/mta_sts_latency.py [--messages 30]
"""

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

POLICY = b"version: STSv1\nmode: enforce\nmx: mx.bench.test\nmax_age: 86400\n"
KINDS = ("fresh, no policy", "cold", "same, no policy", "cached")


def main():
    parser = argparse.ArgumentParser(prog="bench/mta_sts_latency.py")
    parser.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    parser.add_argument("--messages", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    os.environ["SMTPSD_BIN"] = os.path.join(args.build, "smtpsd")
    from harness import Server  # after SMTPSD_BIN is set
    from certificates import install_chain, issue_leaf
    from dns_server import DnsServer
    from test_mta_sts import PolicyHost
    from test_mx_lmtp import mx_toml
    from test_onward import submit

    rounds = args.messages + 2  # the first two of each kind are a warm-up
    fresh = [f"n{i}.bench.test" for i in range(rounds)]
    cold = [f"c{i}.bench.test" for i in range(rounds)]
    same, cached = "same.bench.test", "cached.bench.test"
    with_policy = cold + [cached]
    everything = fresh + cold + [same, cached]

    directory = tempfile.mkdtemp(prefix="mta-sts-bench-")
    servers, stops = [], []
    try:
        remote = Server(os.path.join(directory, "receiver"),
                        domains=[(domain, ["carol"]) for domain in everything],
                        limits={"max_connections_per_minute_per_ip": 0,
                                "max_connections_per_ip": 1000})
        tls = os.path.join(remote.dir, "tls")
        certificate, key = issue_leaf(os.path.join(directory, "mx"), remote.ca,
                                      os.path.join(tls, "ca.key"), ["mx.bench.test"])
        install_chain(certificate, remote.ca, os.path.join(tls, "server-ecdsa.pem"))
        os.replace(key, os.path.join(tls, "server-ecdsa.key"))
        servers.append(remote.start())
        host = PolicyHost(*issue_leaf(os.path.join(directory, "https"), remote.ca,
                                      os.path.join(tls, "ca.key"),
                                      [f"mta-sts.{domain}" for domain in with_policy]))
        stops.append(host.stop)
        host.reply = (200, {"Content-Type": "text/plain"}, POLICY)
        dns = DnsServer(mx={domain: [(10, "mx.bench.test")] for domain in everything},
                        a={"mx.bench.test": "127.0.0.1",
                           **{f"mta-sts.{domain}": "127.0.0.1" for domain in with_policy}},
                        txt={f"_mta-sts.{domain}": "v=STSv1; id=1;" for domain in with_policy},
                        directory=directory)
        stops.append(dns.stop)
        local = Server(os.path.join(directory, "sender"),
                       extra_toml=mx_toml(dns, remote.ports["smtp"], ca_file=remote.ca,
                                          retry=(60,), connection_cache=0)
                       + f"mta_sts_port = {host.port}\n"
                       # Every message to a distinct external recipient: no holding.
                       + "\n[sending_limits]\nexternal_recipients_per_hour = 0\n"
                       "external_recipients_per_day = 0\n",
                       limits={"max_connections_per_minute_per_ip": 0,
                               "max_connections_per_ip": 1000})
        servers.append(local.start())
        log_path = local.log_path

        def deliver(domain):
            """Seconds from the end of the submission to the delivered line of its message."""
            with open(log_path, "rb") as log:
                log.seek(0, os.SEEK_END)
                queue_id = submit(local, [f"carol@{domain}"], subject=domain)
                started = time.monotonic()
                wanted = re.compile(rb"event=(delivered|deferred|bounced|failed) id="
                                    + re.escape(queue_id.encode()) + rb" [^\n]*\n")
                seen = b""
                deadline = started + 30
                while True:
                    seen += log.read()
                    found = wanted.search(seen)
                    if found:
                        elapsed = time.monotonic() - started
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"no delivery of {queue_id} to {domain} in 30 s")
                    time.sleep(0.0005)
            line = found.group(0).decode()
            if found.group(1) != b"delivered" or "policy=" not in line:
                raise RuntimeError(f"not delivered as expected: {line}")
            return elapsed, line

        # The cached domain's policy fetched once; then the one line of each kind checked.
        deliver(cached)
        if host.requests != 1:
            raise RuntimeError(f"{host.requests} policy fetches, not 1")
        samples = {kind: [] for kind in KINDS}
        for round_index in range(rounds):
            targets = {"fresh, no policy": fresh[round_index], "cold": cold[round_index],
                       "same, no policy": same, "cached": cached}
            order = KINDS[round_index % 4:] + KINDS[:round_index % 4]
            for kind in order:
                elapsed, line = deliver(targets[kind])
                expected = "policy=mta-sts" if kind in ("cold", "cached") else "policy="
                if expected not in line or (kind not in ("cold", "cached")
                                            and "policy=mta-sts" in line):
                    raise RuntimeError(f"{kind}: unexpected policy: {line}")
                samples[kind].append(elapsed)
        if host.requests != 1 + rounds:
            raise RuntimeError(f"{host.requests} policy fetches, not {1 + rounds}")

        def summary(values):
            values = sorted(values[2:])
            return statistics.median(values), values[max(int(len(values) * 0.9) - 1, 0)]

        print(f"{args.messages} messages of each kind, alternating; milliseconds from the end of "
              "the submission to the delivered log line")
        print(f"{'':18} {'p50':>8} {'p90':>8}")
        medians = {}
        for kind in KINDS:
            p50, p90 = summary(samples[kind])
            medians[kind] = p50
            print(f"{kind:18} {p50 * 1e3:8.2f} {p90 * 1e3:8.2f}")
        print(f"{'added, cold':18} {(medians['cold'] - medians['fresh, no policy']) * 1e3:8.2f}")
        print(f"{'added, cached':18} {(medians['cached'] - medians['same, no policy']) * 1e3:8.2f}")
    finally:
        for server in reversed(servers):
            server.stop()
        for stop in reversed(stops):
            stop()
        if args.keep:
            print(f"kept {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
