"""The instruction-count guard of issue 19: a fixed 1,000-message run of the real server
under callgrind costs no more than the stored baseline for this machine kind, within
instructions.TOLERANCE (instructions.py says what is counted and how to record a baseline)."""

import os
import unittest

import harness
import instructions
import needs

SMTPSCTL = os.environ.get("SMTPSCTL_BIN") or os.path.join(os.path.dirname(harness.SMTPSD),
                                                          "smtpsctl")


@needs.tools("valgrind", "callgrind_control", "readelf")
class InstructionsPerMessage(harness.ServerTestCase):
    def test_server_instructions_per_message_within_baseline(self):
        kind = instructions.machine_kind(harness.SMTPSD)
        baseline = instructions.load_baselines().get(kind)
        if baseline is None:
            needs.missing(f"no instruction baseline for machine kind {kind} in "
                          f"{instructions.BASELINE}: record one with "
                          f"tests/integration/instructions.py --record")
        per_message, server = instructions.measure(harness.SMTPSD, SMTPSCTL, self.tmp)
        self.servers.append(server)  # its log is checked at tearDown
        limit = baseline["per_message"] * (1 + instructions.TOLERANCE)
        print(f"{kind}: {per_message:,.0f} instructions per message, baseline "
              f"{baseline['per_message']:,}, limit {limit:,.0f}")
        self.assertLessEqual(
            per_message, limit,
            f"the server now executes {per_message:,.0f} instructions per message, "
            f"{per_message / baseline['per_message'] - 1:+.1%} against the baseline "
            f"{baseline['per_message']:,} for {kind} (tolerance "
            f"{instructions.TOLERANCE:.0%}): find what made the hot path dearer "
            f"(callgrind_annotate on a run of tests/integration/instructions.py), or, if the "
            f"cost is deliberate, record a new baseline and say why in the commit")


if __name__ == "__main__":
    unittest.main()
