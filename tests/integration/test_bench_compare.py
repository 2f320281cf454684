"""bench/compare smoke test: smtpsd and a private Postfix side by side, a tiny load (about 20 s).

Checks that the script starts both servers, runs the four loads against each and prints
the table: four rows of numbers (messages/s, the ratio, p99) and no failed message. The
figures themselves mean nothing at this length; bench/README.md says how to read a real run.
"""

import os
import re
import subprocess
import unittest

from harness import SMTPSD
from postfix import POSTFIX
import needs

COMPARE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench",
                       "compare")
NUMBER = r"(\d+\.\d+)"
ROW = re.compile(r"^\| (1|100) \| (8|64) \| " + NUMBER + r" \| " + NUMBER + r" \| " + NUMBER +
                 r" \| " + NUMBER + r" \| " + NUMBER + r" \| (\d+)/(\d+) \|$", re.MULTILINE)


@needs.condition(lambda: os.access(POSTFIX, os.X_OK) and os.geteuid() == 0,
                 "needs the postfix package (scripts/install-deps.sh) and root")
class BenchCompare(unittest.TestCase):
    def test_tiny_run_prints_four_rows(self):
        result = subprocess.run([COMPARE, "--build", os.path.dirname(os.path.abspath(SMTPSD)),
                                 "--duration", "1", "--rounds", "1"],
                                capture_output=True, text=True, timeout=240)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        rows = ROW.findall(result.stdout)
        self.assertEqual([(row[0], row[1]) for row in rows],
                         [("1", "8"), ("1", "64"), ("100", "8"), ("100", "64")], result.stdout)
        for row in rows:
            smtpsd_rate, postfix_rate, ratio = (float(value) for value in row[2:5])
            self.assertGreater(smtpsd_rate, 0, row)
            self.assertGreater(postfix_rate, 0, row)
            self.assertAlmostEqual(ratio, smtpsd_rate / postfix_rate,
                                   delta=max(0.01, 0.05 * ratio))  # rates are rounded
            self.assertEqual((row[7], row[8]), ("0", "0"), "messages refused: " + result.stdout)

    def test_bad_arguments_are_refused(self):
        result = subprocess.run([COMPARE, "--rounds", "0"], capture_output=True, text=True,
                                timeout=30)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("--rounds", result.stderr)
        # --milter names one of the milters the bench can start privately.
        result = subprocess.run([COMPARE, "--milter", "clamav"], capture_output=True,
                                text=True, timeout=30)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("argument --milter: invalid choice: 'clamav' (choose from 'rspamd', "
                      "'spamassassin')", result.stderr)


if __name__ == "__main__":
    unittest.main()
