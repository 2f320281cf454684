#!/usr/bin/env bash
# Runs every libFuzzer target for a short time, seeded from tests/dialogs and any corpus
# kept in tests/fuzz/corpus/<target>. A crash fails the run and leaves the input in the
# work directory as evidence.
set -euo pipefail
build=${1:-build-fuzz}
seconds=${2:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
work="$root/tests/fuzz/corpus-run"
mkdir -p "$work"
status=0
for target in "$build"/*_fuzz; do
  [ -x "$target" ] || continue
  name=$(basename "$target")
  corpus="$work/$name"
  mkdir -p "$corpus"
  seeds=()
  [ -d "$root/tests/fuzz/corpus/$name" ] && seeds+=("$root/tests/fuzz/corpus/$name")
  [ -d "$root/tests/dialogs" ] && seeds+=("$root/tests/dialogs")
  echo "fuzz-smoke: $name for ${seconds}s"
  if ! (cd "$work" && "$target" -max_total_time="$seconds" -print_final_stats=1 \
        -max_len=8192 "$corpus" "${seeds[@]}" >"$work/$name.log" 2>&1); then
    echo "fuzz-smoke: $name FAILED, see $work/$name.log"; tail -40 "$work/$name.log"; status=1
  else
    grep -E 'stat::number_of_executed_units' "$work/$name.log" || true
  fi
done
exit $status
