#!/usr/bin/env bash
# The last step of `make test`: the release tree's CTest (every unit and integration test,
# one entry each) and the fuzz smoke at the same time. The integration tests mostly wait on
# sockets, so the fuzzers run at the lowest priority (nice 19) and take the idle CPU; each
# still runs for its full time. Both results are reported; either failure fails the step.
# The fuzz smoke's output is printed after CTest's so that the two do not interleave.
# Usage: ctest-with-fuzz-smoke.sh build-dir ctest-jobs sanitizer-build-dir fuzz-seconds
set -uo pipefail
build=${1:-build}
test_jobs=${2:-8}
build_san=${3:-build-san}
fuzz_seconds=${4:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
fuzz_log=$(mktemp "${TMPDIR:-/tmp}/fuzz-smoke.XXXXXX")

FUZZ_NICE=19 "$root/scripts/fuzz-smoke.sh" "$build_san" "$fuzz_seconds" >"$fuzz_log" 2>&1 &
fuzz_pid=$!
(cd "$build" && ctest --output-on-failure -j "$test_jobs")
ctest_status=$?
wait "$fuzz_pid"
fuzz_status=$?
cat "$fuzz_log"
rm -f "$fuzz_log"
[ "$ctest_status" -eq 0 ] || echo "make test: ctest in $build FAILED"
[ "$fuzz_status" -eq 0 ] || echo "make test: fuzz smoke FAILED"
[ "$ctest_status" -eq 0 ] && [ "$fuzz_status" -eq 0 ]
