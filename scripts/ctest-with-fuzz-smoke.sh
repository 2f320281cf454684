#!/usr/bin/env bash
# The last step of `make test`: the release tree's CTest (every unit and integration test,
# one entry each) and the fuzz smoke. By default one after the other. FUZZ_OVERLAP=1 runs
# them at the same time, the fuzzers at nice 19 so that they take only the CPU the tests
# leave idle (each still runs for its full time, with fewer executions); its output is then
# printed after CTest's so that the two do not interleave. Either failure fails the step.
# Usage: ctest-with-fuzz-smoke.sh build-dir ctest-jobs sanitizer-build-dir fuzz-seconds
set -uo pipefail
build=${1:-build}
test_jobs=${2:-4}
build_san=${3:-build-san}
fuzz_seconds=${4:-30}
root=$(cd "$(dirname "$0")/.." && pwd)

if [ "${FUZZ_OVERLAP:-0}" = 1 ]; then
  fuzz_log=$(mktemp "${TMPDIR:-/tmp}/fuzz-smoke.XXXXXX")
  FUZZ_NICE=19 "$root/scripts/fuzz-smoke.sh" "$build_san" "$fuzz_seconds" >"$fuzz_log" 2>&1 &
  fuzz_pid=$!
  (cd "$build" && ctest --output-on-failure -j "$test_jobs")
  ctest_status=$?
  wait "$fuzz_pid"
  fuzz_status=$?
  cat "$fuzz_log"
  rm -f "$fuzz_log"
else
  (cd "$build" && ctest --output-on-failure -j "$test_jobs")
  ctest_status=$?
  "$root/scripts/fuzz-smoke.sh" "$build_san" "$fuzz_seconds"
  fuzz_status=$?
fi
[ "$ctest_status" -eq 0 ] || echo "make test: ctest in $build FAILED"
[ "$fuzz_status" -eq 0 ] || echo "make test: fuzz smoke FAILED"
[ "$ctest_status" -eq 0 ] && [ "$fuzz_status" -eq 0 ]
