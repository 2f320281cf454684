#!/usr/bin/env bash
# Runs every libFuzzer target for a short time, seeded from tests/dialogs and any corpus
# kept in tests/fuzz/corpus/<target>, FUZZ_JOBS (default 2) targets at a time: each still
# gets its full time, the whole run takes (targets / FUZZ_JOBS) x seconds. A crash fails the
# run and leaves the input (<target>-crash-*) and the log in the work directory as evidence.
# FUZZ_NICE (default 0) lowers the fuzzers' priority when they share the machine with tests.
# Usage: fuzz-smoke.sh [build-dir [seconds]]
set -euo pipefail
build=$(cd "${1:-build-san}" && pwd)
seconds=${2:-30}
jobs_max=${FUZZ_JOBS:-2}
niceness=${FUZZ_NICE:-0}
root=$(cd "$(dirname "$0")/.." && pwd)
work="$root/tests/fuzz/corpus-run"
mkdir -p "$work"
# Seeds from the scripted dialogs: the client's bytes of each conversation (C: lines with
# CRLF, C+ / C! lines with their escapes decoded), which reach far deeper than the raw files.
seeds_dir="$work/dialog-seeds"
mkdir -p "$seeds_dir"
python3 - "$root/tests/dialogs" "$seeds_dir" <<'PY'
import codecs, pathlib, sys
source, target = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for dialog in sorted(source.glob("*.dialog")):
    out = bytearray()
    for line in dialog.read_text(encoding="utf-8").splitlines():
        if line.startswith("C: "):
            out += line[3:].encode("utf-8") + b"\r\n"
        elif line.startswith(("C+ ", "C! ")):
            out += codecs.escape_decode(line[3:].encode("utf-8"))[0]
    (target / (dialog.stem + ".bin")).write_bytes(bytes(out))
PY

# One target: its exit status goes to $work/<name>.status (a file, so that the results do not
# depend on which background job `wait -n` happened to collect).
fuzz_one() {
  local target=$1 name corpus seeds=()
  name=$(basename "$target")
  corpus="$work/$name"
  mkdir -p "$corpus"
  [ -d "$root/tests/fuzz/corpus/$name" ] && seeds+=("$root/tests/fuzz/corpus/$name")
  [ -d "$root/tests/dialogs" ] && seeds+=("$seeds_dir" "$root/tests/dialogs")
  local status=0
  (cd "$work" && nice -n "$niceness" "$target" -max_total_time="$seconds" \
     -print_final_stats=1 -max_len=8192 -artifact_prefix="$work/$name-" \
     "$corpus" "${seeds[@]}" >"$work/$name.log" 2>&1) || status=$?
  echo "$status" >"$work/$name.status"
}

targets=()
while IFS= read -r target; do
  [ -x "$target" ] && targets+=("$target")
done < <(find "$build" -type f -name '*_fuzz' -perm -u+x | sort)
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz-smoke: no *_fuzz target in $build"; exit 1
fi

for target in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
  name=$(basename "$target")
  rm -f "$work/$name.status"
  echo "fuzz-smoke: $name for ${seconds}s"
  fuzz_one "$target" &
done
wait

status=0
for target in "${targets[@]}"; do
  name=$(basename "$target")
  if [ "$(cat "$work/$name.status" 2>/dev/null || echo missing)" != 0 ]; then
    echo "fuzz-smoke: $name FAILED, see $work/$name.log"; tail -40 "$work/$name.log"; status=1
  else
    echo "fuzz-smoke: $name $(grep -E 'stat::number_of_executed_units' "$work/$name.log" || true)"
  fi
done
exit $status
