#!/usr/bin/env bash
# Builds the Debian packages of smtpsd from an already-built tree (README "Running in
# production"): scripts/build-deb.sh BUILD_DIR OUT_DIR. No rebuild: it installs BUILD_DIR
# (cmake --install --prefix /usr --strip) into a staging tree and packs it with dpkg-deb.
#   smtpsd          smtpsd (/usr/sbin), smtpsctl (/usr/bin), the man pages, the systemd unit,
#                   the fail2ban filter, the dns-01 hook of [acme]
#                   (/usr/lib/smtpsd/acme-dns-nsupdate; it runs nsupdate, so the package
#                   suggests bind9-dnsutils), /etc/smtpsd/smtpsd.toml (a conffile with no setting:
#                   run `smtpsd init`), the docs; postinst makes the system account smtpsd
#                   and /var/lib/smtpsd (0750, its own) and /run/smtpsd (0755: the local
#                   submission socket), and enables the unit, which skips
#                   its start while /etc/smtpsd/not-configured (postinst's, removed by init)
#                   exists; prerm and postrm stop, mask and forget it as dh_installsystemd
#                   does
#   smtpsd-mta      /usr/sbin/sendmail and /usr/bin/mailq as links to smtpsctl (the
#                   mail-transport-agent: conflicts with Postfix, Exim, ...)
#   smtpsd-dbgsym   the debug information of both programs (/usr/lib/debug/.build-id/)
# Version: the project's with the commit built, e.g. 0.1.0~git20261205.2ac5931 (a snapshot
# sorts before the release it leads to). Maintainer: $DEBFULLNAME <$DEBEMAIL> if set.
# Prints the paths of the packages it wrote.
set -euo pipefail

build=$(realpath "${1:?usage: build-deb.sh BUILD_DIR OUT_DIR}")
out=$(realpath -m "${2:?usage: build-deb.sh BUILD_DIR OUT_DIR}")
source_dir=$(cd "$(dirname "$0")/.." && pwd)
maintainer="${DEBFULLNAME:-smtpsd developers} <${DEBEMAIL:-smtpsd@example.org}>"
arch=$(dpkg --print-architecture)

# The man pages and both programs must be built (no build here beyond the man pages).
cmake --build "$build" --target man >/dev/null 2>&1 || {
  echo "build-deb: no man pages in $build: install scdoc and configure again" >&2; exit 1; }
for program in smtpsd smtpsctl; do
  [ -x "$build/$program" ] || { echo "build-deb: $build/$program is not built" >&2; exit 1; }
done

# "smtpsd 0.1.0+git.<describe>" → 0.1.0~git<commit date>.<commit>
said=$("$build/smtpsd" --version)
project=$(sed -E 's/^smtpsd ([0-9][0-9.]*).*/\1/' <<<"$said")
commit=$(grep -oE '[0-9a-f]{7,40}' <<<"${said#*+git.}" | tail -n 1 || true)
version="$project"
if [ -n "$commit" ]; then
  day=$(git -C "$source_dir" log -1 --format=%cd --date=format:%Y%m%d "$commit" 2>/dev/null ||
        date -u +%Y%m%d)
  version="$project~git$day.$commit"
  [[ "$said" == *-dirty ]] && version="$version.dirty"
fi
# SMTPSD_DEB_VERSION overrides it (the package test builds a "newer" package to upgrade to).
version="${SMTPSD_DEB_VERSION:-$version}"
changelog_date=$(date -R)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/debian/smtpsd"
DESTDIR="$root" cmake --install "$build" --prefix /usr --strip >/dev/null

# As Debian's dh_strip leaves them: no .comment (compiler versions) nor .note section.
strip --remove-section=.comment --remove-section=.note "$root/usr/sbin/smtpsd" \
  "$root/usr/bin/smtpsctl"

# Debian's places: the unit where bookworm's systemd packages put theirs, the man pages
# compressed, the jail example beside the docs.
mkdir -p "$root/lib/systemd/system"
mv "$root/usr/lib/systemd/system/smtpsd.service" "$root/lib/systemd/system/"
rmdir -p --ignore-fail-on-non-empty "$root/usr/lib/systemd/system"
gzip -9n "$root"/usr/share/man/man*/*
# The docs are compressed below (Debian policy 12.3): the unit points at that, and the man page.
sed -i 's|^Documentation=file:/usr/share/doc/smtpsd/README.md$|Documentation=man:smtpsd(8) file:/usr/share/doc/smtpsd/README.md.gz|' \
  "$root/lib/systemd/system/smtpsd.service"
grep -q '^Documentation=man:smtpsd(8) ' "$root/lib/systemd/system/smtpsd.service"
install -D -m 644 "$source_dir/contrib/debian/smtpsd.toml" "$root/etc/smtpsd/smtpsd.toml"

doc_files() {  # $1: the package's root, $2: its name
  local doc="$1/usr/share/doc/$2"
  mkdir -p "$doc"
  cat > "$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: smtpsd
Comment: Built from the smtpsd source tree, commit ${commit:-unknown}. The project has
 not published a license yet: no rights are granted beyond using this build.

Files: *
Copyright: $(date -u +%Y) the smtpsd developers
License: none
 No license has been published for smtpsd yet.
COPYRIGHT
  printf '%s (%s) unstable; urgency=medium\n\n  * Snapshot of commit %s.\n\n -- %s  %s\n' \
    "$2" "$version" "${commit:-unknown}" "$maintainer" "$changelog_date" |
    gzip -9n > "$doc/changelog.gz"
}
doc_files "$root" smtpsd
gzip -9n "$root"/usr/share/doc/smtpsd/*.md  # Debian policy 12.3: docs over 4 kB compressed

# The debug information: one file per program, named by its build id.
dbg="$work/debian/smtpsd-dbgsym"
build_ids=()
for program in smtpsd smtpsctl; do
  id=$(readelf -n "$build/$program" | sed -n 's/.*Build ID: \([0-9a-f]*\).*/\1/p')
  [ -n "$id" ] || { echo "build-deb: $program has no build id" >&2; exit 1; }
  build_ids+=("$id")
  mkdir -p "$dbg/usr/lib/debug/.build-id/${id:0:2}"
  objcopy --only-keep-debug --compress-debug-sections "$build/$program" \
    "$dbg/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug"
  chmod 644 "$dbg/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug"
done
mkdir -p "$dbg/usr/share/doc"
ln -s smtpsd "$dbg/usr/share/doc/smtpsd-dbgsym"

# smtpsd-mta: the names local programs call.
mta="$work/debian/smtpsd-mta"
mkdir -p "$mta/usr/sbin" "$mta/usr/bin" "$mta/usr/share/man/man8" "$mta/usr/share/man/man1"
ln -s ../bin/smtpsctl "$mta/usr/sbin/sendmail"
ln -s smtpsctl "$mta/usr/bin/mailq"
ln -s ../man1/smtpsctl.1.gz "$mta/usr/share/man/man8/sendmail.8.gz"
ln -s smtpsctl.1.gz "$mta/usr/share/man/man1/mailq.1.gz"
doc_files "$mta" smtpsd-mta

# Shared library dependencies, as dpkg-shlibdeps finds them (it wants a debian/control, and
# the binaries in a tree with its DEBIAN/).
mkdir -p "$work/debian" "$root/DEBIAN"
printf 'Source: smtpsd\n\nPackage: smtpsd\nArchitecture: any\n' > "$work/debian/control"
depends=$(cd "$work" && dpkg-shlibdeps -O debian/smtpsd/usr/sbin/smtpsd debian/smtpsd/usr/bin/smtpsctl |
          sed -n 's/^shlibs:Depends=//p')

control() {  # $1: root, then the fields
  local root=$1; shift
  mkdir -p "$root/DEBIAN"
  {
    printf '%s\n' "$@"
    printf 'Installed-Size: %s\n' "$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
  } > "$root/DEBIAN/control"
  (cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
     xargs -0 --no-run-if-empty md5sum) > "$root/DEBIAN/md5sums"
}
description='Description: secure-by-default SMTP server
 smtpsd accepts mail over SMTP with TLS (implicit TLS on 465, STARTTLS on
 587 and 25), authenticates senders, makes every accepted message durable
 before it answers 250, and delivers it to Maildirs, over LMTP or onward
 over TLS, with SPF, DKIM, DMARC, DANE and MTA-STS. smtpsctl sends mail,
 probes the TLS of any server, checks the DNS records of a domain, and
 administers users and the queue.'
control "$root" "Package: smtpsd" "Version: $version" "Architecture: $arch" \
  "Maintainer: $maintainer" "Section: mail" "Priority: optional" \
  "Depends: adduser, $depends" "Suggests: fail2ban, bind9-dnsutils" "$description"
printf '/etc/smtpsd/smtpsd.toml\n/etc/fail2ban/filter.d/smtpsd.conf\n' > "$root/DEBIAN/conffiles"
install -m 755 "$source_dir/contrib/debian/postinst" "$source_dir/contrib/debian/prerm" \
  "$source_dir/contrib/debian/postrm" "$root/DEBIAN/"
control "$mta" "Package: smtpsd-mta" "Version: $version" "Architecture: all" \
  "Maintainer: $maintainer" "Section: mail" "Priority: optional" \
  "Depends: smtpsd (>= $version)" "Provides: mail-transport-agent" \
  "Conflicts: mail-transport-agent" "Replaces: mail-transport-agent" \
  "Description: smtpsd as the system's mail transport agent (sendmail, mailq)
 /usr/sbin/sendmail and /usr/bin/mailq for local programs (cron, mail(1), PHP),
 which hand their mail to smtpsd through its local submission socket: smtpsctl
 in its sendmail-compatible mode."
control "$dbg" "Package: smtpsd-dbgsym" "Version: $version" "Architecture: $arch" \
  "Maintainer: $maintainer" "Section: debug" "Priority: optional" \
  "Depends: smtpsd (= $version)" "Source: smtpsd" "Auto-Built-Package: debug-symbols" \
  "Build-Ids: ${build_ids[*]}" "Description: debug symbols for smtpsd"

mkdir -p "$out"
for package in smtpsd smtpsd-mta smtpsd-dbgsym; do
  package_arch=$arch
  [ "$package" = smtpsd-mta ] && package_arch=all
  extension=deb compression=xz
  # The debug sections are compressed already (objcopy): xz would spend 8 s gaining 0.5%.
  [ "$package" = smtpsd-dbgsym ] && extension=ddeb compression=gzip
  file="$out/${package}_${version}_${package_arch}.$extension"
  dpkg-deb --root-owner-group "-Z$compression" --build "$work/debian/$package" "$file" >/dev/null
  echo "$file"
done
