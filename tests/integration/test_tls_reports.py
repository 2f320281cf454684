"""SMTP TLS reports (RFC 8460) that survive what a server lives through, with the real binary
(app/smtpsd/tls_reporter.h, docs/architecture.md "TLS reports"): the counts of the sessions
are saved every [tls_reports] save_interval, so a kill -9 loses none of them; a report whose
HTTPS POST failed (§5.4) is kept on disk and POSTed again with backoff, across a restart,
until one POST succeeds, or dropped (a warning and a metric) once its retry lifetime is over.

The sender delivers to a second smtpsd (the MX of example.test, found through dnsmasq); the
report goes to demo@localhost on the sender itself (mailto:) or to a small HTTPS server
(https:) whose certificate the sender's [delivery] ca_file trusts.
"""

import email
import gzip
import json
import os
import re
import time
import unittest
import urllib.request

from certificates import issue_leaf
from dns_server import DnsServer
from harness import ServerTestCase
from test_dane import ReportCollector
from test_mx_lmtp import mx_toml
from test_onward import submit


def mailed_reports(server):
    """{policy domain: [the JSON report, ...]} of the TLS reports delivered to demo@localhost."""
    reports = {}
    for raw in server.delivered():
        message = email.message_from_bytes(raw)
        if message.get_content_type() != "multipart/report":
            continue
        (part,) = [p for p in message.walk()
                   if p.get_content_type() == "application/tlsrpt+gzip"]
        reports.setdefault(message["TLS-Report-Domain"], []).append(
            json.loads(gzip.decompress(part.get_payload(decode=True))))
    return reports


def wait_mailed_report(server, domain, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = mailed_reports(server).get(domain)
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no TLS report for {domain}:\n{server.log()[-4000:]}")


def tls_reports_toml(interval, **more):
    lines = ["", "[tls_reports]", 'org_name = "Test Org"', 'from = "tlsrpt@localhost"',
             f"interval = {interval}"]
    lines += [f"{key} = {value}" for key, value in more.items()]
    return "\n".join(lines) + "\n"


class TlsReportDurability(ServerTestCase):
    def receiver(self):
        return self.new_server(domains=[("example.test", ["carol"])]).start()

    def dns(self, rua, extra_a=None):
        return DnsServer(mx={"example.test": [(10, "mx.example.test")]},
                         a={"mx.example.test": "127.0.0.1", **(extra_a or {})},
                         txt={"_smtp._tls.example.test": f"v=TLSRPTv1; rua={rua}"},
                         directory=self.tmp)

    def test_counts_saved_before_a_kill_are_reported_after_the_restart(self):
        remote = self.receiver()
        with self.dns("mailto:demo@localhost") as dns:
            base = mx_toml(dns, remote.ports["smtp"], retry=(60,))
            # No report before the kill: a day between reports; the counts saved every second.
            local = self.new_server(extra_toml=base + tls_reports_toml(86400, save_interval=1))
            local.start()
            submit(local, ["carol@example.test"], subject="counted")
            remote.wait_delivered(1, "carol@example.test")
            local.wait_log(r"event=delivered id=\S+ rcpt=carol@example\.test to=smtp")
            # The session's count reaches the disk without a clean stop.
            counts = os.path.join(local.dir, "tls-reports", "current.counts")
            deadline = time.monotonic() + 10
            saved = ""
            while "example.test" not in saved and time.monotonic() < deadline:
                if os.path.exists(counts):
                    with open(counts) as f:
                        saved = f.read()
                time.sleep(0.05)
            self.assertRegex(saved, r"(?m)^S no-policy-found example\.test % % 1$")
            local.kill9()
            self.assertEqual(mailed_reports(local), {})

            # Restarted with reports every second: the count from before the kill is reported.
            local.extra_toml = base + tls_reports_toml(1, save_interval=1)
            local.write_config()
            local.start()
            (report,) = wait_mailed_report(local, "example.test")
            (entry,) = report["policies"]
            self.assertEqual(entry["policy"], {"policy-type": "no-policy-found",
                                               "policy-domain": "example.test"})
            self.assertEqual(entry["summary"], {"total-successful-session-count": 1,
                                                "total-failure-session-count": 0})

    def test_a_failed_post_is_retried_across_a_restart_until_it_succeeds_once(self):
        remote = self.receiver()
        collector = ReportCollector(*issue_leaf(os.path.join(self.tmp, "reports"), remote.ca,
                                                os.path.join(remote.dir, "tls", "ca.key"),
                                                ["reports.example.test"]))
        self.addCleanup(collector.stop)
        collector.failures = [500, 503]  # the first POST and the first retry
        url = f"https://reports.example.test:{collector.port}/tlsrpt"
        with self.dns(url, {"reports.example.test": "127.0.0.1"}) as dns:
            base = mx_toml(dns, remote.ports["smtp"], ca_file=remote.ca, retry=(60,))
            local = self.new_server(extra_toml=base + tls_reports_toml(
                2, save_interval=1, post_retry_delay=2, post_retry_lifetime=3600))
            local.start()
            submit(local, ["carol@example.test"], subject="reported")
            remote.wait_delivered(1, "carol@example.test")
            local.wait_log(r"event=tls_report_failed domain=example\.test to=https://reports\."
                           r"example\.test:\d+/tlsrpt detail=\"HTTP status 500\" retry_at=\d+",
                           timeout=20)
            # Retried after post_retry_delay; failed again, the next try is 5 times later.
            local.wait_log(r"event=tls_report_failed domain=example\.test to=\S+ detail=\"HTTP "
                           r"status 503\" failures=2 retry_at=\d+", timeout=20)
            kept = os.listdir(os.path.join(local.dir, "tls-reports", "posts"))
            self.assertEqual(len([name for name in kept if name.startswith("post-")
                                  and ".tmp." not in name]), 1, kept)
            local.kill9()

            # The endpoint is well again; the restarted server POSTs the kept report.
            local.start()
            local.wait_log(r"event=tls_report domain=example\.test to=https://reports\.example"
                           r"\.test:\d+/tlsrpt sessions=1 status=200 attempt=3", timeout=30)
            self.assertEqual(os.listdir(os.path.join(local.dir, "tls-reports", "posts")), [])
            # Three housekeeping rounds later, still one POST accepted: it is not sent again.
            time.sleep(3)
            self.assertEqual(collector.statuses, [500, 503, 200])
            bodies = {body for _, _, body in collector.requests}
            self.assertEqual(len(bodies), 1)  # the same report each time
            path, content_type, body = collector.requests[-1]
            self.assertEqual((path, content_type), ("/tlsrpt", "application/tlsrpt+gzip"))
            report = json.loads(gzip.decompress(body))
            (entry,) = report["policies"]
            self.assertEqual(entry["policy"]["policy-domain"], "example.test")
            self.assertEqual(entry["summary"]["total-successful-session-count"], 1)

    def test_a_post_that_keeps_failing_is_dropped_at_the_end_of_its_lifetime(self):
        remote = self.receiver()
        collector = ReportCollector(*issue_leaf(os.path.join(self.tmp, "reports"), remote.ca,
                                                os.path.join(remote.dir, "tls", "ca.key"),
                                                ["reports.example.test"]))
        self.addCleanup(collector.stop)
        collector.failures = [500] * 20
        url = f"https://reports.example.test:{collector.port}/tlsrpt"
        with self.dns(url, {"reports.example.test": "127.0.0.1"}) as dns:
            # Retried after 1 s; the next wait (5 s) would end past the 3 s lifetime.
            local = self.new_server(extra_toml=mx_toml(dns, remote.ports["smtp"],
                                                       ca_file=remote.ca, retry=(60,))
                                    + tls_reports_toml(2, save_interval=1, post_retry_delay=1,
                                                       post_retry_lifetime=3)
                                    + '\n[metrics]\naddress = "127.0.0.1:0"\n')
            local.start()
            submit(local, ["carol@example.test"], subject="reported")
            remote.wait_delivered(1, "carol@example.test")
            local.wait_log(r"event=tls_report_dropped domain=example\.test to=https://reports\."
                           r"example\.test:\d+/tlsrpt sessions=1 failures=2 "
                           r"detail=\"HTTP status 500\"", timeout=30)
            self.assertEqual(collector.statuses, [500, 500])
            self.assertEqual(os.listdir(os.path.join(local.dir, "tls-reports", "posts")), [])
            host, port = re.search(r"event=metrics_listening address=(\S+) port=(\d+)",
                                   local.log()).groups()
            with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as reply:
                self.assertIn("smtpsd_tls_report_posts_dropped_total 1\n", reply.read().decode())


if __name__ == "__main__":
    unittest.main()
