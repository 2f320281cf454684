#!/usr/bin/env bash
# The last step of `make test`: the release tree's CTest (every unit and integration test,
# one entry each, but those labelled slow) and the fuzz smoke. By default one after the
# other. FUZZ_OVERLAP=1 runs them at the same time, the fuzzers at nice 19 so that they take
# only the CPU the tests leave idle (each still runs for its full time, with fewer
# executions); its output is then printed after CTest's so that the two do not interleave.
# Either failure fails the step.
# After CTest, the ten slowest tests of this run are listed (what to look at when `make test`
# grows past its budget, Makefile TEST_BUDGET).
# Usage: ctest-with-fuzz-smoke.sh build-dir ctest-jobs sanitizer-build-dir fuzz-seconds
set -uo pipefail
build=${1:-build}
test_jobs=${2:-4}
build_san=${3:-build-san}
fuzz_seconds=${4:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
ctest_log=$(mktemp "${TMPDIR:-/tmp}/ctest.XXXXXX")

# Tests labelled "slow" (testssl.sh, tests/CMakeLists.txt) are left out: `make test-slow`.
run_ctest() {
  (cd "$build" && ctest --output-on-failure -j "$test_jobs" -LE slow) 2>&1 | tee "$ctest_log"
  return "${PIPESTATUS[0]}"
}

slowest() {
  echo "make test: the ten slowest tests of this run (seconds):"
  grep -Eo 'Test +#[0-9]+: [^ ]+ [.]* *(\*\*\*)?[A-Za-z]+ +[0-9.]+ sec' "$ctest_log" |
    awk '{print $(NF-1), $3}' | sort -rn | head -10 | sed 's/^/  /'
  rm -f "$ctest_log"
}

if [ "${FUZZ_OVERLAP:-0}" = 1 ]; then
  fuzz_log=$(mktemp "${TMPDIR:-/tmp}/fuzz-smoke.XXXXXX")
  FUZZ_NICE=19 "$root/scripts/fuzz-smoke.sh" "$build_san" "$fuzz_seconds" >"$fuzz_log" 2>&1 &
  fuzz_pid=$!
  run_ctest
  ctest_status=$?
  wait "$fuzz_pid"
  fuzz_status=$?
  cat "$fuzz_log"
  rm -f "$fuzz_log"
  slowest
else
  run_ctest
  ctest_status=$?
  slowest
  "$root/scripts/fuzz-smoke.sh" "$build_san" "$fuzz_seconds"
  fuzz_status=$?
fi
[ "$ctest_status" -eq 0 ] || echo "make test: ctest in $build FAILED"
[ "$fuzz_status" -eq 0 ] || echo "make test: fuzz smoke FAILED"
[ "$ctest_status" -eq 0 ] && [ "$fuzz_status" -eq 0 ]
