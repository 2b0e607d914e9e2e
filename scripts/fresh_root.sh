#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Run a command in a fresh Debian 12 (bookworm) root, as on a new machine: a
# debootstrap minbase root with this repository cloned into /root/luabpf, chrooted
# with /proc, /sys (bind: BTF, tracefs, cgroups) and a bpffs of its own, /dev,
# a tmpfs /run, and / a mount point (`ip netns exec` needs one). Run as root.
#   scripts/fresh_root.sh                 bash scripts/demo.sh && bash scripts/test.sh
#   scripts/fresh_root.sh -- CMD...       CMD instead (run by bash in the repository)
#   --copy        copy the working tree (tracked and untracked, not ignored) instead
#                 of cloning the committed HEAD
#   --dest DIR    where the repository goes inside the root (default /root/luabpf)
#   --no-cache    debootstrap anew, and download every package anew
#   --keep        leave the root in place (unmounted) for a look afterwards
# The debootstrap result is cached as a tarball, and apt's downloads are kept, in
# $LUABPF_FRESH_CACHE (default /var/cache/luabpf/fresh-root): the first run
# takes a few minutes more. That directory is also seen, read-only, at the
# same path inside the root (tests/packaging/test_deb.sh unpacks the tarball).
# The mirror is the machine's own Debian source (/etc/apt/sources.list*).
# Everything runs in a mount namespace of its own; on exit the processes left
# in the root are stopped, every mount under it is removed, then the root.
# Exit status: the command's. Docs: docs/getting-started.md.
set -euo pipefail

die() { echo "ERROR: $*" >&2; exit 2; }
trap 'echo "fresh_root: ERROR: line $LINENO: $BASH_COMMAND failed" >&2' ERR
usage() { sed -n '3,22s/^# \{0,1\}//p' "$0"; }

SRC=$(cd "$(dirname "$0")/.." && pwd)
DEST=/root/luabpf
COPY=0 CACHE_ON=1 KEEP=0
CACHE=${LUABPF_FRESH_CACHE:-/var/cache/luabpf/fresh-root}
ARGS=("$@")
while [ $# -gt 0 ]; do
  case $1 in
  --copy) COPY=1 ;;
  --dest) [ $# -ge 2 ] || die "--dest needs a directory"; DEST=$2; shift ;;
  --no-cache) CACHE_ON=0 ;;
  --keep) KEEP=1 ;;
  -h | --help) usage; exit 0 ;;
  --) shift; break ;;
  *) echo "ERROR: unknown option '$1'" >&2; echo "HINT: put the command after --: $0 -- CMD..." >&2; exit 2 ;;
  esac
  shift
done
CMD=${*:-bash scripts/demo.sh && bash scripts/test.sh}
case $DEST in /*) ;; *) die "--dest must be an absolute path, got '$DEST'" ;; esac

[ "$(id -u)" = 0 ] || die "run as root (debootstrap, mounts and chroot need it)"
command -v debootstrap >/dev/null || { echo "ERROR: debootstrap is missing" >&2; echo "HINT: apt-get install debootstrap (scripts/setup.sh installs it)" >&2; exit 2; }
command -v unshare >/dev/null || die "unshare (util-linux) is missing"

# A mount namespace of our own: nothing mounted here is seen by (or
# propagates back to) the machine, and it all goes away with the last process.
if [ -z "${LUABPF_FRESH_NS:-}" ]; then
  exec unshare --mount --propagation private env LUABPF_FRESH_NS=1 bash "$0" "${ARGS[@]}"
fi

# The machine's Debian mirror (deb822 .sources or one-line sources.list).
mirror_of() { # SUFFIX: "debian" or "debian-security"
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -Eo '(https?|file)://[^ ]+' | sed 's,/*$,,' | grep -E "/$1\$" | head -1 || true
}
MIRROR=$(mirror_of debian)
SECURITY=$(mirror_of debian-security)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
ARCH=$(dpkg --print-architecture)
BASE="$CACHE/bookworm-minbase-$ARCH.tar"

ROOT=$(mktemp -d /var/tmp/luabpf-fresh.XXXXXX)
chmod 0755 "$ROOT" # mktemp makes 0700: nobody could not reach a thing under /
START=$(date +%s)

in_root() { # every process whose root is the fresh root (or a root inside it)
  local p r
  for p in /proc/[0-9]*; do
    r=$(readlink "$p/root" 2>/dev/null) || continue
    case $r in "$ROOT" | "$ROOT"/*) echo "${p#/proc/}" ;; esac
  done
}
cleanup() {
  local rc=$? pids m n
  set +e
  trap - EXIT INT TERM ERR
  pids=$(in_root)
  if [ -n "$pids" ]; then
    echo "fresh_root: stopping what was left running in the root:" >&2
    ps -o pid=,ppid=,etimes=,args= -p "$(echo $pids | tr ' ' ,)" >&2 || true
    kill $pids 2>/dev/null
    for n in $(seq 50); do pids=$(in_root); [ -z "$pids" ] && break; sleep 0.1; done
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null
  fi
  # Innermost first (netns files, nested roots, then /sys, /dev...; / last).
  for m in $(findmnt -rn -o TARGET | grep -E "^$ROOT(/|\$)" | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || echo "fresh_root: WARN: can't unmount $m" >&2
  done
  if findmnt -rn -o TARGET | grep -qE "^$ROOT(/|\$)"; then
    echo "fresh_root: WARN: mounts left under $ROOT, not removing it:" >&2
    findmnt -rn -o TARGET | grep -E "^$ROOT(/|\$)" >&2
  elif [ "$KEEP" = 1 ]; then
    echo "fresh_root: kept the root in $ROOT (rm -rf --one-file-system $ROOT when done)" >&2
  else
    rm -rf --one-file-system "$ROOT"
  fi
  echo "fresh_root: exit status $rc after $(( ($(date +%s) - START) / 60 ))m$(( ($(date +%s) - START) % 60 ))s" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 1. The root: a cached pristine tarball, or debootstrap (then cache it).
if [ "$CACHE_ON" = 1 ] && [ -f "$BASE" ]; then
  echo "fresh_root: unpacking $BASE into $ROOT"
  tar -C "$ROOT" --numeric-owner -xpf "$BASE"
else
  echo "fresh_root: debootstrap --variant=minbase bookworm from $MIRROR into $ROOT (a few minutes)"
  mkdir -p "$CACHE"
  debootstrap --variant=minbase --arch="$ARCH" bookworm "$ROOT" "$MIRROR" >"$ROOT.debootstrap.log" 2>&1 ||
    { tail -20 "$ROOT.debootstrap.log" >&2; rm -f "$ROOT.debootstrap.log"; die "debootstrap failed"; }
  rm -f "$ROOT.debootstrap.log"
  if [ "$CACHE_ON" = 1 ]; then
    tar -C "$ROOT" --numeric-owner -cf "$BASE.$$" . && mv "$BASE.$$" "$BASE"
    echo "fresh_root: cached the base root in $BASE"
  fi
fi
[ -x "$ROOT/usr/bin/luajit" ] && die "$ROOT is not fresh: it has luajit"

# 2. What a new Debian 12 machine has in /etc: the archive with its updates
# and security suites, names, and no daemon started by a package's install
# (nothing here is PID 1, and a started daemon would outlive the run).
{
  echo "deb $MIRROR bookworm main"
  echo "deb $MIRROR bookworm-updates main"
  [ -n "$SECURITY" ] && echo "deb $SECURITY bookworm-security main"
} >"$ROOT/etc/apt/sources.list"
rm -f "$ROOT/etc/resolv.conf" && cat /etc/resolv.conf >"$ROOT/etc/resolv.conf"
[ -s "$ROOT/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$ROOT/etc/hosts"
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d" && chmod 0755 "$ROOT/usr/sbin/policy-rc.d"

# 3. The repository: the committed HEAD as a user clones it, or the working tree.
mkdir -p "$(dirname "$ROOT$DEST")"
if [ "$COPY" = 1 ]; then
  mkdir -p "$ROOT$DEST"
  (cd "$SRC" && git ls-files -z -c -o --exclude-standard | while IFS= read -r -d '' f; do
    [ -e "$f" ] && printf '%s\0' "$f"; done | tar --null -T - -cf -) | tar -C "$ROOT$DEST" -xf -
  echo "fresh_root: copied the working tree of $SRC to $DEST"
else
  git clone -q --no-hardlinks "$SRC" "$ROOT$DEST"
  echo "fresh_root: cloned $SRC ($(git -C "$ROOT$DEST" log -1 --format='%h %s' | cut -c1-70)) to $DEST"
fi

# 4. The mounts. / first, so that everything below it is inside that mount.
mount --bind "$ROOT" "$ROOT"
mount -t proc proc "$ROOT/proc"
mount --rbind /sys "$ROOT/sys" && mount --make-rslave "$ROOT/sys"
# A bpffs of its own: pins made in here meet no one else's. The machine's
# goes first (stacked bpffs mounts make bpftool list every pin twice).
while mountpoint -q "$ROOT/sys/fs/bpf"; do umount "$ROOT/sys/fs/bpf"; done
mount -t bpf bpf "$ROOT/sys/fs/bpf"
mount --rbind /dev "$ROOT/dev" && mount --make-rslave "$ROOT/dev"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$ROOT/run"
if [ "$CACHE_ON" = 1 ]; then
  mkdir -p "$CACHE/archives/partial"
  mount --bind "$CACHE/archives" "$ROOT/var/cache/apt/archives"
  # The base tarball, read-only at the same path: tests/packaging/test_deb.sh
  # unpacks it instead of a debootstrap of its own (minutes on 2 busy cores).
  mkdir -p "$ROOT$CACHE" && mount --bind -o ro "$CACHE" "$ROOT$CACHE"
fi

# 5. The command, as root logged in on the new machine.
echo "fresh_root: running in $DEST: $CMD"
chroot "$ROOT" /usr/bin/env -i HOME=/root USER=root LOGNAME=root SHELL=/bin/bash TERM="${TERM:-xterm}" \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  bash -c 'cd "$1" && eval "$2"' fresh_root "$DEST" "$CMD" && rc=0 || rc=$?
echo "fresh_root: the command exited with status $rc"
exit "$rc"
