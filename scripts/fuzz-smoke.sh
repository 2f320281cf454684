#!/usr/bin/env bash
# Runs every libFuzzer target for a short time, seeded from tests/dialogs and any corpus
# kept in tests/fuzz/corpus/<target>. A crash fails the run and leaves the input in the
# work directory as evidence.
set -euo pipefail
build=$(cd "${1:-build-fuzz}" && pwd)
seconds=${2:-30}
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
status=0
for target in $(find "$build" -type f -name '*_fuzz' -perm -u+x | sort); do
  [ -x "$target" ] || continue
  name=$(basename "$target")
  corpus="$work/$name"
  mkdir -p "$corpus"
  seeds=()
  [ -d "$root/tests/fuzz/corpus/$name" ] && seeds+=("$root/tests/fuzz/corpus/$name")
  [ -d "$root/tests/dialogs" ] && seeds+=("$seeds_dir" "$root/tests/dialogs")
  echo "fuzz-smoke: $name for ${seconds}s"
  if ! (cd "$work" && "$target" -max_total_time="$seconds" -print_final_stats=1 \
        -max_len=8192 "$corpus" "${seeds[@]}" >"$work/$name.log" 2>&1); then
    echo "fuzz-smoke: $name FAILED, see $work/$name.log"; tail -40 "$work/$name.log"; status=1
  else
    grep -E 'stat::number_of_executed_units' "$work/$name.log" || true
  fi
done
exit $status
