"""bench/metrics_overhead.py smoke test: the micro benchmark and both loads run, and the
table comes out whole with no refused message (a tiny load, about 15 s; the figures mean
nothing at this length — bench/README.md says how to read a real run)."""

import os
import re
import subprocess
import unittest

from harness import SMTPSD

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench",
                      "metrics_overhead.py")
NUMBER = r"(\d+(?:\.\d+)?)"
ROW = re.compile(rf"^\| (100|1) \| {NUMBER} \| {NUMBER} \| {NUMBER} \(.*\) \| {NUMBER} ms \| "
                 rf"{NUMBER} ms \| {NUMBER} \|$", re.MULTILINE)


class MetricsOverhead(unittest.TestCase):
    def test_tiny_run_prints_both_rows(self):
        result = subprocess.run(["python3", SCRIPT, "--build", os.path.dirname(SMTPSD),
                                 "--rounds", "1", "--duration", "1", "--connections", "2"],
                                capture_output=True, text=True, timeout=180)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertRegex(result.stdout, r"metrics calls per message: \d+ ns CPU")
        rows = ROW.findall(result.stdout)
        self.assertEqual([row[0] for row in rows], ["100", "1"], result.stdout)
        for row in rows:
            off, on, paired = float(row[1]), float(row[2]), float(row[3])
            self.assertGreater(off, 0, row)
            self.assertGreater(on, 0, row)
            self.assertAlmostEqual(paired, on / off, delta=max(0.01, 0.05 * paired))

    def test_bad_arguments_are_refused(self):
        result = subprocess.run(["python3", SCRIPT, "--rounds", "0"], capture_output=True,
                                text=True, timeout=30)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("--rounds must be at least 1", result.stderr)


if __name__ == "__main__":
    unittest.main()
