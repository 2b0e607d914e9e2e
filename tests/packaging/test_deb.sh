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
source "$LUABPF_SOURCE_DIR/tests/packaging/pkg_env.sh" # CACHE, MIRROR, FRESH_BASE, pkg_root
ROOT=$(pkg_root deb)

mounted() { findmnt -rn -o TARGET | grep -q "^$ROOT"; }
deb_cleanup() {
  local m
  tmux -L "lbtdeb$T_ID" kill-server 2>/dev/null || true
  tmux -L "lbtdeb${T_ID}e" kill-server 2>/dev/null || true
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
t_contains "$(dpkg-deb -f "$deb" Recommends)" "libedit2" "Recommends libedit2 (the REPL's line editing, loaded by the FFI)"

# 2. A fresh Debian 12 root: scripts/fresh_root.sh's pristine debootstrap
# tarball (FRESH_BASE) serves as well, when there is one.
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
  /usr/share/luabpf/examples/lb.lua /usr/lib/luabpf/bpf/xdp_count.bpf.o /usr/share/doc/luabpf/service.md \
  /usr/include/luabpf/luabpf.h /usr/include/luabpf/parse.h /usr/lib/pkgconfig/luabpf.pc \
  /usr/lib/cmake/luabpf/luabpfConfig.cmake /usr/share/bash-completion/completions/luabpf \
  /usr/share/doc/luabpf/your-own-bpf.md; do
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

# 6. The REPL's line editing: off without libedit2 (apt skipped Recommends
# above), on once it is installed, as apt installs it by default.
out=$(echo 'return 1' | in_root luabpf repl 2>&1)
t_contains "$out" "1" "installed repl answers on a pipe"
# term SOCKET: the installed REPL in a terminal of a tmux server of its own
# (a server just killed may still hold its socket: a new one, not the same).
term() {
  TMUX_SOCK=$1
  tmux -L "$TMUX_SOCK" new-session -d -s t -x 120 -y 30 \
    "chroot '$ROOT' /usr/bin/env -i TERM=screen HOME=/root PATH=/usr/bin:/bin luabpf repl; echo EXIT=\$?; sleep 60"
}
screen() { tmux -L "$TMUX_SOCK" capture-pane -p -t t -S -100; }
on_screen() { screen | grep -qF -- "$1"; }
if in_root dpkg-query -W -f='${Status}' libedit2 2>/dev/null | grep -q "install ok installed"; then
  t_pass "(libedit2 came with the root: the REPL without it is not tried)"
else
  term "lbtdeb${T_ID}e"
  t_wait 20 on_screen "EXIT=" || t_fail "the REPL without libedit2 did not end: $(screen)"
  t_contains "$(screen)" "libedit not found (apt-get install libedit2)" "without libedit2 the REPL says what to install"
fi
out=$(in_root apt-get install -y --no-install-recommends libedit2 2>&1) || { echo "$out" >&2; t_fail "apt-get install libedit2"; }
term "lbtdeb$T_ID"
t_wait 20 on_screen "luabpf>" || t_fail "no prompt: $(screen)"
on_screen "libedit not found" && t_fail "libedit2 installed, yet: $(screen)" || t_pass "libedit2 found"
tmux -L "$TMUX_SOCK" send-keys -t t -l "bpf.vers"; tmux -L "$TMUX_SOCK" send-keys -t t Tab
t_wait 10 on_screen "luabpf> bpf.version" && t_pass "Tab completes in the installed REPL" || t_fail "no Tab completion: $(screen)"
tmux -L "$TMUX_SOCK" send-keys -t t -l "()"; tmux -L "$TMUX_SOCK" send-keys -t t Enter
t_wait 10 on_screen '"0.1.0"' || t_fail "bpf.version() not printed: $(screen)"
tmux -L "$TMUX_SOCK" send-keys -t t Up Enter
twice() { [ "$(screen | grep -c '"0.1.0"')" -ge 2 ]; }
t_wait 10 twice && t_pass "Up recalls the last line (libedit's history)" || t_fail "Up did not recall: $(screen)"
tmux -L "$TMUX_SOCK" send-keys -t t C-d
t_wait 10 on_screen "EXIT=0" && t_pass "Ctrl-D leaves the installed REPL" || t_fail "no exit: $(screen)"

# 7. Bash completion from the installed file.
out=$(in_root bash -c 'source /usr/share/bash-completion/completions/luabpf
  COMP_WORDS=(luabpf c); COMP_CWORD=1; _luabpf; echo "${COMPREPLY[*]}"
  COMP_WORDS=(luabpf ls ""); COMP_CWORD=2; _luabpf; echo "${COMPREPLY[*]}"')
t_contains "$out" "check cc" "installed completion: commands"
t_contains "$out" "progs maps links pins" "installed completion: ls kinds"

# 8. docs/your-own-bpf.md from the installed .deb: what it says to install,
# then the walk-through block by block in the root (headers, vmlinux.h cache,
# pkg-config and the CMake package all the installed ones).
out=$(in_root apt-get install -y --no-install-recommends clang libbpf-dev bpftool cmake make iputils-ping pkg-config 2>&1) ||
  { echo "$out" | tail -20 >&2; t_fail "apt-get install clang libbpf-dev bpftool cmake"; }
t_eq "$(in_root pkg-config --cflags luabpf | xargs)" "-I/usr/include/luabpf" "pkg-config --cflags luabpf"
source "$LUABPF_SOURCE_DIR/tests/cli/own_bpf_walk.sh"
mkdir -p "$ROOT/root/reader"
# `ip netns exec` makes / a slave mount: in a chroot, / must be a mount point
# as it is on a real machine (recursive, so proc, sys and bpffs stay in it).
mount --rbind "$ROOT" "$ROOT"
run_in_root() { in_root bash -e -c 'cd "$1" && bash -e "$2"' _ "${1#"$ROOT"}" "${2#"$ROOT"}"; }
own_bpf_walk "$ROOT/root/reader" run_in_root "owna$T_ID" "ownb$T_ID"
for ns in "owna$T_ID" "ownb$T_ID"; do in_root ip netns del "$ns" 2>/dev/null || true; done
ls "$ROOT"/var/cache/luabpf/vmlinux/*/vmlinux.h >/dev/null 2>&1 && t_pass "vmlinux.h cached under /var/cache/luabpf" ||
  t_fail "no vmlinux.h in the root's /var/cache/luabpf"
t_done
