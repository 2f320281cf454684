#!/bin/sh
# tests/mutations/run.sh — the mutations that prove our tests catch a broken promise, kept so
# they can be run again (docs/testing.md "The promises and the tests that hold them").
#
# Each NAME.patch breaks one promise of the README in the source; its "# Tests:" line is the
# CTest regular expression of the tests that must then fail.
#
#   tests/mutations/run.sh --check        every patch still applies to the tree (a CTest entry)
#   tests/mutations/run.sh [NAME ...]     for each (default: all): apply, build, run its tests,
#                                         which must FAIL; revert; rebuild at the end
#
# BUILD names the build directory (default: build). A patch whose files have changes of
# your own is refused: commit or set them aside first.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD:-$root/build}
case "$build" in /*) ;; *) build=$root/$build ;; esac

patch_files() {
  if [ $# -eq 0 ]; then
    ls "$here"/*.patch
  else
    for name in "$@"; do echo "$here/${name%.patch}.patch"; done
  fi
}

if [ "${1:-}" = "--check" ]; then
  status=0
  for patch in $(patch_files); do
    if ! grep -q '^# Tests: .' "$patch"; then
      echo "$(basename "$patch"): no '# Tests:' line" >&2
      status=1
    elif ! git -C "$root" apply --check "$patch" 2>/dev/null; then
      echo "$(basename "$patch"): no longer applies to the source (update it with the code it breaks)" >&2
      status=1
    else
      echo "$(basename "$patch"): applies"
    fi
  done
  exit $status
fi

# The binaries the tests run: this tree's smtpsd and smtpsctl and its unit_tests, or, when it
# was configured with SMTPSD_SANITIZER_TREE (`make test` gives build/ build-san/), that tree's
# unit_tests, smtpsd and smtpsctl, which its CTest runs too (unit_run, sanitized.<group>).
san_tree=$(sed -n 's/^SMTPSD_SANITIZER_TREE:PATH=//p' "$build/CMakeCache.txt" 2>/dev/null || true)
build_all() {
  if [ -n "$san_tree" ]; then
    cmake --build "$build" --target smtpsd smtpsctl >/dev/null
    cmake --build "$san_tree" --target unit_tests smtpsd smtpsctl >/dev/null
  else
    cmake --build "$build" --target smtpsd smtpsctl unit_tests >/dev/null
  fi
}

status=0
applied=""
revert() {
  if [ -n "$applied" ]; then git -C "$root" apply -R "$applied" && applied=""; fi
}
trap revert EXIT INT TERM
for patch in $(patch_files "$@"); do
  name=$(basename "$patch" .patch)
  tests=$(sed -n 's/^# Tests: //p' "$patch")
  files=$(sed -n 's|^+++ b/||p' "$patch")
  # shellcheck disable=SC2086
  if ! git -C "$root" diff --quiet -- $files; then
    echo "$name: refused, $files has changes of your own" >&2
    status=1
    continue
  fi
  git -C "$root" apply "$patch"
  applied=$patch
  build_all
  if ctest --test-dir "$build" -R "$tests" -j2 >"$build/mutation-$name.log" 2>&1; then
    echo "MISSED  $name: its tests passed with the promise broken ($build/mutation-$name.log)"
    status=1
  else
    echo "caught  $name: $(grep -c '^[[:space:]]*[0-9]* - .*(Failed)' "$build/mutation-$name.log") failing"
  fi
  revert
done
build_all
exit $status
