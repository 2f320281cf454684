#!/usr/bin/env bash
# Runs a representative subset of the integration tests against smtpsd and smtpsctl built
# with AddressSanitizer + UndefinedBehaviorSanitizer (the build-san tree of `make test`):
# TLS, AUTH (smtplib, swaks, curl, msmtp, gsasl), pipelining and back-pressure, BDAT, big
# messages, relaying with DSNs, certificate and configuration reload, kill -9 recovery,
# milters and the port-25 screening.
# The harness fails a test whose server printed a sanitizer report, crashed or exited
# non-zero after SIGTERM (a leak report makes LeakSanitizer exit 1).
# Usage: scripts/sanitized-server-tests.sh BUILD_SAN JOBS
set -euo pipefail
build_san=$(realpath "${1:-build-san}")
jobs=${2:-2}
cd "$(dirname "$0")/../tests/integration"
classes=(
  test_tls
  test_auth.SmtplibSubmission test_auth.ExternalClients test_auth.GsaslScram test_auth.BadInput
  test_robustness.PipeliningBackPressure test_robustness.Abuse test_robustness.BareLineEndings
  test_delivery.Pipelining test_delivery.Chunking test_delivery.BigMessage test_delivery.CrashRecovery
  test_delivery.ReplyAfterLog
  test_onward.RelayToSecondServer test_onward.Notifications
  test_reload.CertificateReload test_reload.ConfigReload
  test_addressing.Addressing test_local_submission test_queue_tools
  test_domains.SrsThroughAnAlias test_domains.RelayDomain
  test_milter.ScriptedMilter test_screening
)
# Left to the release run, to keep `make test` in its budget: the kill -9 loop (restarts
# under ASan take most of its time, and it is about durability, which test_durability holds)
# and the authenticity and DANE modules (BIND, Postfix and dkimpy around little of our code:
# SPF, DKIM, DMARC, ARC and DANE run under ASan in the unit tests and the fuzzers).
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
