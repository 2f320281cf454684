"""testssl.sh live against each weak server of weak_targets.py, compared with (or, with
TESTSSL_REFRESH=1, written to) its recorded findings in tests/data/testssl/<name>.json.

Slow (40 s to 110 s a target: testssl.sh opens hundreds of connections and forks openssl
for most of them), so labelled "slow" in tests/CMakeLists.txt: `make test` leaves it out,
`make test-slow` runs it, and `make testssl-live` refreshes the fixtures. The fast test of
what the fixtures say is test_testssl_fixtures.py and the probe tests that build the same
targets (assert_covers_testssl in testssl_fixtures.py).

What is compared: the id and severity of every finding rated MEDIUM or worse. Values
differ from run to run (new certificates, serials, dates); ids and levels must not, as long
as weak_targets.py and the installed testssl.sh stay the same.
"""

import json
import os
import shutil
import subprocess
import time
import unittest

from harness import ServerTestCase
from postfix import POSTFIX
from testssl_fixtures import (FIXTURES, MEDIUM_OR_WORSE, SEVERITY_BEARING, load_fixture,
                              testssl_version)
import needs
import weak_targets

TESTSSL = shutil.which("testssl") or shutil.which("testssl.sh")
# As test_testssl.py: protocols, standard cipher lists, forward secrecy, server preference,
# certificate, vulnerabilities. --nodns none: no DNS query leaves the machine; no
# --phone-out, so no CRL or OCSP is fetched.
TESTSSL_ARGS = ["--quiet", "--color", "0", "--warnings", "off", "--nodns", "none",
                "-p", "-s", "-f", "-P", "-S", "-U"]


def run_testssl(target, directory):
    """testssl.sh's findings on the target (its --jsonfile, whole) and the wall time."""
    report = os.path.join(directory, f"testssl-{target.name}.json")
    args = [TESTSSL] + TESTSSL_ARGS + ["--jsonfile", report]
    if target.ca:
        args += ["--add-ca", target.ca]
    if target.starttls:
        args += ["-t", "smtp"]
    args.append(f"127.0.0.1:{target.port}")
    started = time.monotonic()
    # 40 s to 110 s on an idle machine; 10 minutes and more on a loaded one.
    run = subprocess.run(args, capture_output=True, timeout=1500)
    wall = time.monotonic() - started
    if not os.path.exists(report):
        raise AssertionError("testssl.sh wrote no report:\n" +
                             run.stdout.decode(errors="replace")[-4000:])
    with open(report) as f:
        return json.load(f), wall


def postfix_usable():
    return os.access(POSTFIX, os.X_OK) and os.geteuid() == 0


@needs.condition(lambda: TESTSSL, "testssl.sh is not installed (scripts/install-deps.sh)")
class TestsslLive(ServerTestCase):
    def check(self, name):
        target = weak_targets.TARGETS[name](self)
        findings, wall = run_testssl(target, self.tmp)
        recorded = [{"id": f["id"], "severity": f["severity"], "finding": f["finding"]}
                    for f in findings if f["severity"] in SEVERITY_BEARING]
        path = os.path.join(FIXTURES, f"{name}.json")
        if os.environ.get("TESTSSL_REFRESH") == "1":
            with open(path, "w") as f:
                json.dump({"testssl_version": testssl_version(),
                           "command": " ".join(["testssl"] + TESTSSL_ARGS +
                                               (["--add-ca", "CA"] if target.ca else []) +
                                               (["-t", "smtp"] if target.starttls else []) +
                                               ["127.0.0.1:PORT"]),
                           "target": f"tests/integration/weak_targets.py "
                                     f"{weak_targets.TARGETS[name].__name__}",
                           "wall_seconds": round(wall, 1),
                           "findings": recorded}, f, indent=1)
                f.write("\n")
            print(f"\n{path}: {len(recorded)} findings, testssl.sh took {wall:.1f} s")
            return
        fixture = load_fixture(name)
        self.assertEqual(fixture["testssl_version"], testssl_version(),
                         "the fixtures were recorded with another testssl.sh: make testssl-live")
        live = {(f["id"], f["severity"]) for f in recorded if f["severity"] in MEDIUM_OR_WORSE}
        kept = {(f["id"], f["severity"]) for f in fixture["findings"]
                if f["severity"] in MEDIUM_OR_WORSE}
        self.assertEqual(
            sorted(live), sorted(kept),
            f"testssl.sh now finds otherwise on {name} (took {wall:.1f} s): refresh "
            f"tests/data/testssl with `make testssl-live` and check the mapping in "
            f"testssl_fixtures.py")

    @needs.condition(postfix_usable, "needs the postfix package and root")
    def test_weak_postfix(self):
        self.check("weak-postfix")

    @needs.condition(postfix_usable, "needs the postfix package and root")
    def test_null_only_postfix(self):
        self.check("null-only-postfix")

    def test_s_server_rsa1024(self):
        self.check("s_server-rsa1024")

    def test_s_server_dh1024(self):
        self.check("s_server-dh1024")


if __name__ == "__main__":
    unittest.main()
