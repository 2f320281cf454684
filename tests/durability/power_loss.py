#!/usr/bin/env python3
"""The long power-loss simulation (docs/testing.md "Power-loss simulation"): one recorded
run of the real server, then recovery checked on every sync boundary and on many random
crash states. CTest runs a short version (tests/integration/test_power_loss.py).

  tests/durability/power_loss.py --points 500 --seed 7          random states after the
                                                                boundaries, 7 replays them
  tests/durability/power_loss.py --points 100000 --seconds 600  time-boxed
  tests/durability/power_loss.py --recording DIR/run --seed 7   check the states of a kept
                                                                run again (--keep, or a failed
                                                                test's directory) unrecorded
  tests/durability/power_loss.py --drop-each                    every sync of the run
                                                                dropped in turn: each must
                                                                lose something

The seed is printed; a failing state's directory is kept and named. SMTPSD_BIN names the
binary (default build/smtpsd).
"""

import argparse
import os
import random
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

import power_loss  # noqa: E402


def drop_each(workdir, seed, points, seconds, at_acceptance):
    """Records once to count the syncs, then once per sync with that one dropped
    (tests/durability/drop_sync.c); each run must show a failing state."""
    clean = power_loss.record_run(os.path.join(workdir, "clean"), seed=seed,
                                  at_acceptance=at_acceptance)
    total = len(clean.replay.syncs)
    print(f"the run makes {total} syncs")
    shim = power_loss.build_shim("drop_sync")
    needless = []
    for nth in range(1, total + 1):
        run = os.path.join(workdir, f"drop-{nth}")
        try:
            recording = power_loss.record_run(run, preload=[shim], seed=seed,
                                              env={"SMTPSD_DROP_SYNC_NTH": str(nth)},
                                              at_acceptance=at_acceptance)
        except AssertionError as e:
            print(f"sync {nth}: the recorded run failed: {e}")
            continue
        with open(recording.server_log, errors="replace") as f:
            dropped = [line.strip() for line in f if line.startswith("drop_sync:")]
        outcome = power_loss.simulate(recording, run, random_points=points, seed=seed,
                                      seconds=seconds, stop_at_first_failure=True,
                                      each_directory="all")
        verdict = "caught: " + ",".join(sorted(outcome.kinds())) if outcome.failures \
            else "NOT CAUGHT"
        print(f"sync {nth} ({dropped[0] if dropped else 'nothing dropped'}): {verdict}; "
              f"{outcome.summary()}", flush=True)
        if not outcome.failures:
            needless.append((nth, dropped))
        else:
            shutil.rmtree(run, ignore_errors=True)
    print(f"{total - len(needless)} of {total} single dropped syncs caught")
    return 1 if needless else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=200, help="random crash states")
    parser.add_argument("--seed", type=int, default=None, help="default: random, printed")
    parser.add_argument("--seconds", type=float, default=None, help="time box")
    parser.add_argument("--no-boundaries", action="store_true",
                        help="random states only (not every sync and acknowledgement)")
    parser.add_argument("--recording", help="the run directory of a kept recording (--keep, "
                        "or <test directory>/run of a failed test): check its states again")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--drop-each", action="store_true",
                        help="drop each sync of the run in turn; each must be caught")
    parser.add_argument("--workload", choices=power_loss.WORKLOADS, default="standard",
                        help="what the recorded run sends (bounce: a message that bounces, "
                        "whose sender must get exactly one failure DSN)")
    parser.add_argument("--through-spool", action="store_true",
                        help="deliver_at_acceptance = false: local mail goes through the "
                        "commit log and the queue")
    parser.add_argument("--after-log", action="store_true",
                        help="reply_after = \"log\": the 250 once the commit log is synced, "
                        "the Maildir copy right after it")
    parser.add_argument("--preload", action="append", default=[],
                        help="a mutation shim (tests/durability/NAME.c) preloaded first")
    args = parser.parse_args()
    if args.after_log and args.through_spool:
        parser.error("--after-log and --through-spool are two different modes: pick one")
    mode = "after_log" if args.after_log else not args.through_spool
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    print(f"seed {seed}", flush=True)
    workdir = tempfile.mkdtemp(prefix="power-loss-")
    if args.drop_each:
        code = drop_each(workdir, seed, min(args.points, 20), args.seconds, mode)
        print(f"work directory {workdir}")
        return code
    if args.recording:
        recording = power_loss.load_recording(args.recording)
    else:
        preload = [power_loss.build_shim(name) for name in args.preload]
        started = time.monotonic()
        recording = power_loss.record_run(os.path.join(workdir, "run"), preload=preload,
                                          seed=seed, workload=args.workload,
                                          at_acceptance=mode)
        print(f"recorded {recording.records} calls, {len(recording.replay.syncs)} syncs, "
              f"{len(recording.replay.acks)} acknowledgements in "
              f"{time.monotonic() - started:.1f} s", flush=True)
    outcome = power_loss.simulate(recording, workdir, random_points=args.points, seed=seed,
                                  seconds=args.seconds, boundaries=not args.no_boundaries,
                                  each_directory="all",
                                  progress=lambda line: print(line, flush=True))
    print(outcome.report(limit=20))
    print(f"seed {seed}; work directory {workdir}" +
          ("" if args.recording else f"; replay with --recording {workdir}/run --seed {seed}"))
    if not outcome.failures and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if outcome.failures else 0


if __name__ == "__main__":
    sys.exit(main())
