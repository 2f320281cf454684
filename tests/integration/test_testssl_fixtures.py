"""The recorded testssl.sh findings (tests/data/testssl, testssl_fixtures.py) stay usable:
pinned to a testssl.sh version, one per weak target of weak_targets.py, each target probed
by a test that checks the probe covers them, and every finding of MEDIUM or worse mapped to
a probe check that exists, or listed as an exception with its reason. No server is started
(the comparison itself runs inside the probe tests that build each target); under a second.
"""

import json
import os
import re
import unittest

import testssl_fixtures
from testssl_fixtures import EXCEPTIONS, MEDIUM_OR_WORSE, TESTSSL_TO_PROBE
import weak_targets

HERE = os.path.dirname(os.path.abspath(__file__))
PROBE_SOURCE = os.path.join(HERE, "..", "..", "src", "app", "smtpsctl", "probe_command.cpp")


class TestsslFixtures(unittest.TestCase):
    def test_one_pinned_fixture_per_weak_target(self):
        self.assertEqual(testssl_fixtures.fixture_names(), sorted(weak_targets.TARGETS))
        with open(os.path.join(testssl_fixtures.FIXTURES, "README.md")) as f:
            readme = f.read()
        for name in testssl_fixtures.fixture_names():
            with self.subTest(fixture=name):
                fixture = testssl_fixtures.load_fixture(name)
                self.assertEqual(fixture["testssl_version"], "3.0.8")
                if name.endswith("postfix"):  # Postfix's submission port: STARTTLS
                    self.assertIn("-t smtp", fixture["command"])
                self.assertTrue(fixture["findings"])
                self.assertIn(f"`{name}.json`", readme)

    def test_every_fixture_is_compared_with_the_probe_on_the_same_target(self):
        # A test method that builds the target with its builder and calls
        # assert_covers_testssl on the report.
        bodies = []
        for module in ("test_probe.py", "test_probe_postfix.py"):
            with open(os.path.join(HERE, module)) as f:
                bodies += f.read().split("\n    def test_")[1:]
        for name, build in weak_targets.TARGETS.items():
            with self.subTest(target=name):
                self.assertTrue(any(f"weak_targets.{build.__name__}(self)" in body and
                                    "assert_covers_testssl(self, report, target.name)" in body
                                    for body in bodies), f"no probe test covers {name}")

    def test_every_medium_or_worse_finding_is_mapped_or_excepted(self):
        with open(PROBE_SOURCE) as f:
            source = f.read()
        # The probe's checks: the names in its guide table (kGuides) and those it adds.
        checks = set(re.findall(r'\{"([a-z_A-Z0-9.]+)", "[A-Za-z0-9_]*",', source))
        for testssl_id, probe_checks in TESTSSL_TO_PROBE.items():
            for check in probe_checks:
                self.assertIn(check, checks, f"{testssl_id} maps to an unknown probe check")
        for testssl_id, why in EXCEPTIONS.items():
            self.assertNotIn(testssl_id, TESTSSL_TO_PROBE)
            self.assertGreater(len(why), 20, testssl_id)
        for name in testssl_fixtures.fixture_names():
            for finding in testssl_fixtures.load_fixture(name)["findings"]:
                if finding["severity"] in MEDIUM_OR_WORSE:
                    self.assertTrue(
                        finding["id"] in TESTSSL_TO_PROBE or finding["id"] in EXCEPTIONS,
                        f"{name}: {json.dumps(finding)}")


if __name__ == "__main__":
    unittest.main()
