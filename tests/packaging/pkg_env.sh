# SPDX-License-Identifier: MIT
# Shared by test_deb.sh and test_systemd.sh (after tests/lib.sh): CACHE, the
# build's cache of Debian roots and packages; MIRROR, the machine's own
# Debian mirror (the archive may be reachable only through it); FRESH_BASE,
# scripts/fresh_root.sh's pristine debootstrap tarball (the same minbase
# root), when there is one; pkg_root NAME, a new directory for a root.
CACHE="$LUABPF_BUILD_DIR/packaging/cache"
mkdir -p "$CACHE/archives"
MIRROR=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
  grep -Eo '(https?|file)://[^ ]+' | sed 's,/*$,,' | grep -E '/debian$' | head -1 || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
FRESH_BASE=${LUABPF_FRESH_CACHE:-/var/cache/luabpf/fresh-root}/bookworm-minbase-$(dpkg --print-architecture).tar

# pkg_root NAME: /var/tmp/luabpf-NAME.XXXXXX, 0755 as a real / (mktemp makes
# 0700, closed to every other uid).
pkg_root() {
  local d
  d=$(mktemp -d "/var/tmp/luabpf-$1.XXXXXX")
  chmod 0755 "$d"
  echo "$d"
}
