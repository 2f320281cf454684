#!/usr/bin/env bash
# Installs the Debian packages smtpsd needs to build, test and run (docs/architecture.md "Dependencies").
# Idempotent and quiet when everything is already there.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config clang-16 libclang-rt-16-dev lld-16 clang-format
  libssl-dev openssl libasio-dev libtomlplusplus-dev libcli11-dev libsodium-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev zlib1g-dev libxml2-utils
  libunbound-dev dns-root-data bind9 bind9-utils bind9-dnsutils iproute2
  python3-dkim python3-nacl opendkim-tools opendkim
  libpsl-dev publicsuffix python3-spf python3-yaml
  libcurl4-openssl-dev
  testssl.sh
  python3 strace swaks libnet-ssleay-perl msmtp curl procps gsasl fail2ban dnsmasq-base dovecot-core dovecot-lmtpd haproxy
  postfix
  rspamd
  spamassassin spamd spamc spamass-milter
  pebble
  systemd strace util-linux
  valgrind binutils
  scdoc lintian man-db
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# Postfix is only a comparison and probe target that the tests run privately on loopback
# (tests/integration/postfix.py): answer its debconf question with "No configuration" so
# the package neither asks nor writes a main.cf nor starts a system mail service on port 25.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Whatever debconf said, leave no system-wide Postfix running or enabled.
if dpkg-query -W -f='${Status}' postfix 2>/dev/null | grep -q "install ok installed"; then
  $SUDO postfix stop >/dev/null 2>&1 || true
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now postfix.service >/dev/null 2>&1 || true
  fi
fi
# BIND's named serves the DNSSEC tests' signed zone privately (tests/integration/signed_zone.py):
# no system-wide name server is left running or enabled either.
if dpkg-query -W -f='${Status}' bind9 2>/dev/null | grep -q "install ok installed"; then
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now named.service >/dev/null 2>&1 || true
  fi
fi
# rspamd runs privately as a milter in the tests (tests/integration/rspamd.py, a config of its
# own, no network): no system-wide rspamd is left running or enabled.
if dpkg-query -W -f='${Status}' rspamd 2>/dev/null | grep -q "install ok installed"; then
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now rspamd.service >/dev/null 2>&1 || true
  else
    $SUDO /etc/init.d/rspamd stop >/dev/null 2>&1 || true
    $SUDO update-rc.d rspamd disable >/dev/null 2>&1 || true
  fi
fi
# SpamAssassin runs privately too (tests/integration/spamassassin.py: spamd --local on a unix
# socket, Debian's rules from /usr/share/spamassassin, spamass-milter in front of it): no
# system-wide spamd or spamass-milter is left running or enabled, and the daily rule update
# (sa-update, which fetches from the network) stays off.
for service in spamd spamass-milter; do
  if dpkg-query -W -f='${Status}' "$service" 2>/dev/null | grep -q "install ok installed"; then
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
      $SUDO systemctl disable --now "$service.service" >/dev/null 2>&1 || true
    else
      $SUDO /etc/init.d/"$service" stop >/dev/null 2>&1 || true
      $SUDO update-rc.d "$service" disable >/dev/null 2>&1 || true
    fi
  fi
done
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now spamassassin-maintenance.timer >/dev/null 2>&1 || true
fi
