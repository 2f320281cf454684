#!/usr/bin/env python3
"""tests/unit_run/run.py: the unit tests of the release tree, run once for every CTest entry.

    run.py BINARY RESULTS_DIR SHARDS

Runs BINARY (tests/unit_tests) in SHARDS processes at once (gtest sharding), each writing its
results as JSON (--gtest_output), then writes one file per test, RESULTS_DIR/<Suite.Name, '/'
as '%'>.txt: "passed in the unit run ...", "[  SKIPPED ] ..." or "FAILED in the unit run" and
its failure messages. Each test's CTest entry (unit.Suite.Name, tests/unit_run/entries.cmake)
prints its file and passes only on "passed" (PASS_REGULAR_EXPRESSION). This is the CTest
fixture unit_run: one process per shard instead of one per test (~1,500 processes of a 46 MB
binary and its 41 libraries, 37 ms each to start here before any test ran).

Every file already in RESULTS_DIR is first overwritten with "not in the results", so that a
test a crashed shard never reported cannot pass on an earlier run's file (the files are
rewritten, never removed and made again: ext4 without a journal makes new files dearer for
minutes after a deletion, and the integration tests beside this make many).

A test counts as passed only when its JSON record says it ran and its shard's output has its
"[       OK ]" line. Exits 0 when every shard left its results, whatever the tests said (each
failed test fails its own entry, with its messages); 1 when a shard crashed, hung past
SHARD_TIMEOUT (killed), ended on a signal, or exited 1 with no failed test (a failure outside
any test: SetUpTestSuite, TearDownTestSuite, the environment), the end of its output printed.
"""
import json
import os
import subprocess
import sys
import time

SHARD_TIMEOUT = 600  # seconds for all shards; CTest's own TIMEOUT for unit_run is 900


def main():
    if len(sys.argv) != 4 or not sys.argv[3].isdigit() or int(sys.argv[3]) < 1:
        sys.exit("usage: run.py BINARY RESULTS_DIR SHARDS (SHARDS a positive number)")
    binary, results, shards = sys.argv[1], sys.argv[2], int(sys.argv[3])
    os.makedirs(results, exist_ok=True)
    for shard in range(shards):  # a crashed shard must leave no earlier run's JSON behind
        try:
            os.unlink(os.path.join(results, f"shard-{shard}.json"))
        except FileNotFoundError:
            pass
    for stale in os.listdir(results):
        if stale.endswith(".txt"):
            with open(os.path.join(results, stale), "w") as f:
                f.write(f"not in the results of the unit run ({results}): its shard crashed, "
                        "hung or never started (see the entry unit_run)\n")
    runs = []
    for shard in range(shards):
        log = open(os.path.join(results, f"shard-{shard}.log"), "wb")
        environment = dict(os.environ, GTEST_TOTAL_SHARDS=str(shards),
                           GTEST_SHARD_INDEX=str(shard))
        command = [binary, "--gtest_also_run_disabled_tests",
                   f"--gtest_output=json:{os.path.join(results, f'shard-{shard}.json')}"]
        runs.append((shard, log, subprocess.Popen(command, stdout=log,
                                                  stderr=subprocess.STDOUT, env=environment)))
    counts, broken = {"passed": 0, "FAILED": 0, "skipped": 0}, False

    def report_broken(shard, process, what):
        with open(os.path.join(results, f"shard-{shard}.log"), errors="replace") as f:
            tail = f.read()[-4000:]
        print(f"unit_run: shard {shard} of {shards} {what}; exit status {process.returncode}; "
              f"the end of its output:\n{tail}")

    deadline = time.monotonic() + SHARD_TIMEOUT
    for shard, log, process in runs:
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            log.close()
            broken = True
            report_broken(shard, process, f"was still running after {SHARD_TIMEOUT} s (killed)")
            continue
        log.close()
        report = os.path.join(results, f"shard-{shard}.json")
        try:
            with open(report) as f:
                suites = json.load(f)["testsuites"]
        except (OSError, ValueError, KeyError) as error:
            broken = True
            report_broken(shard, process, f"left no results ({error})")
            continue
        # gtest exits 1 when a test failed; anything else (a signal at exit, say) is a fault
        # that the one process per test of before would have shown in every test.
        if process.returncode not in (0, 1):
            broken = True
            report_broken(shard, process, "ended abnormally after writing its results")
        with open(os.path.join(results, f"shard-{shard}.log"), errors="replace") as f:
            succeeded = {line[13:].split(" (", 1)[0].strip() for line in f
                         if line.startswith("[       OK ] ")}
        failed_here = 0
        for suite in suites:
            for test in suite.get("testsuite", []):
                name = f"{suite['name']}.{test['name']}"
                failures = [failure.get("failure", "") for failure in test.get("failures", [])]
                took = f"{float(str(test.get('time', '0s')).rstrip('s') or 0) * 1000:.0f} ms"
                if failures:
                    failed_here += 1
                    status, text = "FAILED", (f"FAILED in the unit run ({took}, shard {shard}: "
                                              f"{results}/shard-{shard}.log):\n" +
                                              "\n".join(failures))
                elif test.get("result") == "SKIPPED":
                    status, text = "skipped", f"[  SKIPPED ] {name} (in the unit run)"
                elif test.get("status") == "RUN" and name in succeeded:
                    status, text = "passed", f"passed in the unit run ({took}, shard {shard})"
                else:
                    continue  # not run: its file keeps "not in the results"
                counts[status] += 1
                with open(os.path.join(results, name.replace("/", "%") + ".txt"), "w") as f:
                    f.write(text + "\n")
        if process.returncode == 1 and failed_here == 0:
            broken = True
            report_broken(shard, process, "exited 1 with no failed test (a failure outside any "
                          "test: SetUpTestSuite, TearDownTestSuite or the environment)")
    print(f"unit_run: {counts['passed']} passed, {counts['FAILED']} failed, "
          f"{counts['skipped']} skipped, in {shards} processes; each test's entry "
          "(unit.Suite.Name) reports its own result")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
