# SPDX-License-Identifier: MIT
# The .deb on a fresh Debian 12: CPack builds it, a root made by debootstrap
# (minbase: no luajit, libuv, libbpf, lua-luv) installs it with
# `apt-get install ./luabpf_*.deb` so apt pulls its dependencies, then the
# installed binary runs a shipped script from the installed paths with no
# environment variables, and `luabpf check` validates the shipped example.
# The debootstrapped root is cached as a tarball in the build dir (first run
# ~2 min, then ~30 s); each run unpacks a pristine copy.
# Its mounts live in a mount namespace of its own: a run killed by ctest's
# timeout (SIGKILL, no trap) leaves no mount behind on the machine.
[ -n "${LBT_DEB_NS:-}" ] || exec unshare --mount --propagation private env LBT_DEB_NS=1 bash "$0" "$@"
source "$LUABPF_SOURCE_DIR/tests/lib.sh"
CACHE="$LUABPF_BUILD_DIR/packaging/cache"
# The machine's own Debian mirror (the archive may be reachable only through it).
MIRROR=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
  grep -Eo '(https?|file)://[^ ]+' | sed 's,/*$,,' | grep -E '/debian$' | head -1 || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
ROOT=$(mktemp -d /var/tmp/luabpf-deb.XXXXXX)
chmod 0755 "$ROOT" # as a real /: mktemp makes 0700, closed to every other uid
mkdir -p "$CACHE/archives"

mounted() { findmnt -rn -o TARGET | grep -q "^$ROOT"; }
deb_cleanup() {
  local m
  # Innermost first; never remove the tree while anything is mounted in it.
  for m in $(findmnt -rn -o TARGET | grep "^$ROOT" | sort -r); do umount -l "$m" 2>/dev/null || true; done
  if mounted; then echo "WARN: mounts left under $ROOT, not removing it" >&2; else rm -rf "$ROOT"; fi
  t_cleanup
}
trap deb_cleanup EXIT

command -v debootstrap >/dev/null || { t_fail "debootstrap is missing (scripts/setup.sh installs it)"; t_done; }

# 1. The package.
rm -f "$LUABPF_BUILD_DIR"/luabpf_*.deb
(cd "$LUABPF_BUILD_DIR" && cpack -G DEB >/dev/null)
deb=$(ls "$LUABPF_BUILD_DIR"/luabpf_*_*.deb)
t_pass "built $(basename "$deb")"
info=$(dpkg-deb -f "$deb" Depends)
for dep in libluajit-5.1-2 libuv1 libbpf1 lua-luv iproute2; do
  t_contains "$info" "$dep" "Depends names $dep"
done

# 2. A fresh Debian 12 root: scripts/fresh_root.sh's pristine debootstrap
# tarball serves as well, when there is one (it is the same minbase root).
FRESH_BASE=${LUABPF_FRESH_CACHE:-/var/cache/luabpf/fresh-root}/bookworm-minbase-$(dpkg --print-architecture).tar
[ -f "$CACHE/bookworm-minbase.tar" ] || [ ! -f "$FRESH_BASE" ] || ln -s "$FRESH_BASE" "$CACHE/bookworm-minbase.tar"
if [ ! -f "$CACHE/bookworm-minbase.tar" ]; then
  debootstrap --variant=minbase bookworm "$ROOT" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
    { tail -20 "$CACHE/debootstrap.log" >&2; t_fail "debootstrap failed"; t_done; }
  tar -C "$ROOT" -cf "$CACHE/bookworm-minbase.tar.tmp" . && mv "$CACHE/bookworm-minbase.tar.tmp" "$CACHE/bookworm-minbase.tar"
else
  tar -C "$ROOT" -xf "$CACHE/bookworm-minbase.tar"
fi
[ -x "$ROOT/usr/bin/luajit" ] && t_fail "the fresh root already has luajit" || t_pass "fresh root has no luajit"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
mount -t proc proc "$ROOT/proc"
mount -t sysfs sysfs "$ROOT/sys"
mount -t bpf bpf "$ROOT/sys/fs/bpf"
mount --bind "$CACHE/archives" "$ROOT/var/cache/apt/archives"
cp "$deb" "$ROOT/tmp/"
in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }

# 3. apt pulls the dependencies.
in_root apt-get update -qq >/dev/null 2>&1 || in_root apt-get update
out=$(in_root apt-get install -y --no-install-recommends "/tmp/$(basename "$deb")" 2>&1) ||
  { echo "$out" >&2; t_fail "apt-get install ./luabpf.deb failed"; t_done; }
t_contains "$out" "Setting up luabpf" "apt installed luabpf"
for p in libluajit-5.1-2 libuv1 libbpf1 lua-luv; do
  in_root dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" &&
    t_pass "apt pulled $p" || t_fail "dependency $p not installed"
done

# 4. The installed files, where a Debian admin looks for them.
for f in /usr/bin/luabpf /usr/share/man/man1/luabpf.1 /usr/lib/systemd/system/luabpf@.service \
  /usr/lib/tmpfiles.d/luabpf.conf /etc/luabpf/README /etc/luabpf/lb.env.example \
  /usr/share/luabpf/examples/lb.lua /usr/lib/luabpf/bpf/xdp_count.bpf.o /usr/share/doc/luabpf/service.md; do
  [ -e "$ROOT$f" ] && t_pass "installed $f" || t_fail "missing $f"
done
t_contains "$(in_root dpkg-query -W -f='${Conffiles}' luabpf)" "/etc/luabpf/lb.env.example" "/etc files are conffiles"
unit=$(cat "$ROOT/usr/lib/systemd/system/luabpf@.service")
t_contains "$unit" "ExecStart=/usr/bin/luabpf --name %i run \${SCRIPT} \$CONFIG \$OPTIONS" "unit runs /usr/bin/luabpf"
t_contains "$unit" "EnvironmentFile=-/etc/luabpf/%i.env" "unit reads /etc/luabpf/NAME.env"
t_contains "$(cat "$ROOT/etc/luabpf/lb.env.example")" "SCRIPT=/usr/share/luabpf/examples/lb.lua" "env example points at the installed script"

# 5. It runs from the installed paths, no environment variables.
out=$(in_root luabpf --version)
t_contains "$out" "luabpf 0.1.0 (LuaJIT 2.1" "luabpf --version in the fresh root"
out=$(in_root luabpf check /usr/share/luabpf/examples/lb.conf.lua /usr/share/luabpf/examples/lb.lua)
t_contains "$out" "lb.conf.lua: OK: load balancer 'demo' on eth0: 1 VIP(s), 3 backend(s)" "installed luabpf check"
t_contains "$(in_root sh -c 'MANWIDTH=80 man -l /usr/share/man/man1/luabpf.1 2>/dev/null || zcat -f /usr/share/man/man1/luabpf.1')" "luabpf" "man page readable"

t_netns A
t_netns B
t_veth "$A" d0 10.77.0.1/24 "$B" d1 10.77.0.2/24
ip netns exec "$B" ping -q -i 0.2 -c 40 10.77.0.1 >/dev/null 2>&1 &
T_PIDS+=($!)
out=$(ip netns exec "$A" chroot "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin \
  luabpf run /usr/share/luabpf/examples/xdp_count.lua --iface d0 --mode generic --interval 1 --count 2 2>&1) ||
  { echo "$out" >&2; t_fail "installed xdp_count.lua failed"; }
echo "$out" | tail -4
icmp=$(echo "$out" | awk '/totals/ {t=1} t && $2 == "icmp" {print $3; exit}')
[ "${icmp:-0}" -gt 0 ] 2>/dev/null && t_pass "installed xdp_count.lua counted $icmp ICMP packets" ||
  t_fail "no ICMP counted by the installed script: $out"
t_done
