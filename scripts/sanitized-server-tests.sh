#!/usr/bin/env bash
# Runs a representative subset of the integration tests against smtpsd and smtpsctl built
# with AddressSanitizer + UndefinedBehaviorSanitizer (build-san/), the groups of
# tests/integration/sanitized_groups.txt, JOBS at a time: `make test-asan`. `make test` runs
# the same groups as CTest entries of build/ (sanitized.<group>, tests/CMakeLists.txt).
# The harness fails a test whose server printed a sanitizer report, crashed or exited
# non-zero after SIGTERM (a leak report makes LeakSanitizer exit 1).
# Usage: scripts/sanitized-server-tests.sh BUILD_SAN JOBS
set -euo pipefail
build_san=$(realpath "${1:-build-san}")
jobs=${2:-2}
cd "$(dirname "$0")/../tests/integration"
# The groups: tests/integration/sanitized_groups.txt (what runs, and what is left out, why).
mapfile -t classes < <(grep -v -e '^#' -e '^$' sanitized_groups.txt | cut -d' ' -f1)
# The interpreter itself, first on PATH: pyenv's python3 shim costs 0.25 s a start
# (tests/CMakeLists.txt).
python=$(python3 -c 'import sys; print(sys.executable)')
export PATH="$(dirname "$python"):$PATH"
export SMTPSD_BIN="$build_san/smtpsd" PYTHONDONTWRITEBYTECODE=1
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
log_dir=$(mktemp -d)
failed=0
printf '%s\n' "${classes[@]}" |
  xargs -P "$jobs" -I{} sh -c 'python3 -m unittest {} > "$0/{}.log" 2>&1 || echo {} >> "$0/failed"' "$log_dir"
if [ -s "$log_dir/failed" ]; then
  for name in $(cat "$log_dir/failed"); do
    echo "=== $name (under ASan+UBSan) failed:"
    tail -60 "$log_dir/$name.log"
  done
  failed=1
fi
count=$(cat "$log_dir"/*.log | grep -Eo '^Ran [0-9]+' | awk '{n += $2} END {print n}')
echo "sanitized server: ${count} integration tests in ${#classes[@]} groups, $( [ $failed = 0 ] && echo all passed || echo FAILURES)"
rm -rf "$log_dir"
exit $failed
