# SPDX-License-Identifier: MIT
# luabpf@.service under a real systemd: a Debian 12 root (debootstrap minbase
# plus systemd, cached as a tarball) with this build installed in /usr boots
# with `systemd-nspawn --boot` inside the lab's balancer namespace, and its
# systemd runs the stock balancer (lb.lua) from /etc/luabpf/NAME.env:
#   - start: Type=notify, so `systemctl start` returns once XDP is attached;
#     bpffs is not mounted in the container, the unit's ExecStartPre mounts it
#   - the sandbox really applies: capabilities, no_new_privs, seccomp, a
#     read-only /usr, no /root, a private /tmp and /dev (asked inside the
#     service through its control socket)
#   - traffic from the client through the balancer reaches the backends;
#     `luabpf top NAME` finds its metrics endpoint (CONFIG metrics =)
#   - reload: ExecReload (check, then SIGHUP) changes the pool; a broken
#     config fails `systemctl reload` with its file:line and the service keeps
#     serving
#   - stop: `systemctl stop` ends it cleanly (status 0)
# Why nspawn needs --system-call-filter=bpf and CAP_BPF: docs/service.md.
# Mounts live in a mount namespace of this test's own (as test_deb).
[ -n "${LBT_SD_NS:-}" ] || exec unshare --mount --propagation private env LBT_SD_NS=1 bash "$0" "$@"
source "$LUABPF_SOURCE_DIR/tests/lb/lb_env.sh"
source "$LUABPF_SOURCE_DIR/tests/packaging/pkg_env.sh" # CACHE, MIRROR, FRESH_BASE, pkg_root
ROOT=$(pkg_root sd)
STAGE=$(mktemp -d)
NSPID=
sd_cleanup() {
  set +e
  if [ -n "$NSPID" ]; then
    # SIGTERM asks the container's systemd to power off; then it is killed.
    kill -TERM "$NSPID" 2>/dev/null
    t_wait 15 sh -c "! kill -0 $NSPID" || kill -KILL "$NSPID" 2>/dev/null
    wait "$NSPID" 2>/dev/null
  fi
  local m
  for m in $(findmnt -rn -o TARGET | grep "^$ROOT" | sort -r); do umount -l "$m"; done
  findmnt -rn -o TARGET | grep -q "^$ROOT" || rm -rf "$ROOT"
  rm -rf "$STAGE"
  lb_env_cleanup
}
trap sd_cleanup EXIT
command -v systemd-nspawn >/dev/null ||
  { t_fail "systemd-nspawn is missing (scripts/setup.sh installs systemd-container)"; t_done; }
# Inside a chroot (scripts/fresh_root.sh runs the suite in one) the
# container nspawn starts never runs its init: no console output, systemctl
# inside says "offline" (seen in every fresh-root run; not diagnosed further).
# Said and skipped (ctest: Skipped, exit 77), not failed or passed.
# A chroot: an ancestor process (fresh_root.sh itself) whose root, where it
# can be read, is not ours. (PID 1's can't be read in this machine's own
# container, so the ancestors are asked.)
in_chroot() {
  local p=$$ me r
  me=$(stat -L -c %d:%i /)
  while [ "$p" -gt 1 ]; do
    r=$(stat -L -c %d:%i "/proc/$p/root/" 2>/dev/null || true)
    [ -n "$r" ] && [ "$r" != "$me" ] && return 0
    p=$(sed 's/.*) //' "/proc/$p/stat" | cut -d' ' -f2)
  done
  return 1
}
if in_chroot; then
  echo "SKIP: running inside a chroot (an ancestor process has another root): systemd-nspawn's container does not boot here"
  exit 77
fi

# 1. A Debian 12 root with systemd and what luabpf links against, cached.
BASE="$CACHE/bookworm-minbase.tar"
SDTAR="$CACHE/bookworm-systemd.tar"
in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }
(
  flock 9
  [ -f "$SDTAR" ] && exit 0
  if [ -f "$BASE" ]; then tar -C "$ROOT" -xf "$BASE"
  elif [ -f "$FRESH_BASE" ]; then tar -C "$ROOT" -xf "$FRESH_BASE"
  else
    debootstrap --variant=minbase bookworm "$ROOT" "$MIRROR" >"$CACHE/debootstrap-sd.log" 2>&1 ||
      { tail -20 "$CACHE/debootstrap-sd.log" >&2; exit 1; }
  fi
  cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
  mount -t proc proc "$ROOT/proc"
  mount --bind "$CACHE/archives" "$ROOT/var/cache/apt/archives"
  in_root apt-get update -qq >/dev/null 2>&1 || in_root apt-get update || exit 1
  # systemd, the .deb's Depends and Recommends (iputils-ping primes neighbours).
  in_root apt-get install -y -qq --no-install-recommends systemd procps iproute2 util-linux iputils-ping \
    libluajit-5.1-2 libuv1 libbpf1 lua-luv libelf1 zlib1g libedit2 >"$CACHE/systemd-root.log" 2>&1 ||
    { tail -20 "$CACHE/systemd-root.log" >&2; exit 1; }
  umount "$ROOT/var/cache/apt/archives" "$ROOT/proc"
  tar -C "$ROOT" -cf "$SDTAR.tmp" . && mv "$SDTAR.tmp" "$SDTAR"
  find "$ROOT" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
) 9>"$CACHE/systemd-root.lock" || { t_fail "could not make the systemd root"; t_done; }
tar -C "$ROOT" -xf "$SDTAR"

# 2. This build, installed in /usr as the .deb lays it out (test_deb checks the .deb).
DESTDIR="$STAGE" cmake --install "$LUABPF_BUILD_DIR" --prefix /usr >/dev/null
cp -a "$STAGE/." "$ROOT/"
t_contains "$(in_root luabpf --version 2>&1)" "luabpf " "the installed luabpf runs in the root"
NAME=$SVC
cat >"$ROOT/etc/luabpf/$NAME.env" <<ENV
SCRIPT=/usr/share/luabpf/examples/lb.lua
CONFIG=/etc/luabpf/$NAME.conf.lua
ENV
conf() { # BACKENDS...: "name addr weight"
  { echo "service = '$NAME'"
    echo "interface = 'eth0'"
    echo "xdp_mode = 'generic'"
    echo "metrics = '127.0.0.1:9435'"
    echo "vips = {"
    echo "  { name = 'web', addr = '10.10.100.1', port = 80, backends = {"
    for b in "$@"; do set -- $b; echo "    { name = '$1', addr = '$2', port = 8080, weight = $3 },"; done
    echo "  } },"
    echo "}"; } >"$ROOT/etc/luabpf/$NAME.conf.lua"
}
conf "b1 10.10.0.11 1" "b2 10.10.0.12 1"

# 3. Boot. The container shares the lab's balancer namespace (its eth0).
lab_up "$P" 3
# nspawn's own seccomp filter refuses bpf() to everything its systemd starts
# (EPERM: "Couldn't load trivial BPF program") unless it is allowed here.
systemd-nspawn -D "$ROOT" --boot --register=no --keep-unit --console=pipe -M "lbsd$T_ID" \
  --network-namespace-path="/run/netns/$P-lb" --capability=CAP_BPF,CAP_PERFMON,CAP_NET_ADMIN \
  --system-call-filter=bpf </dev/null >"$STAGE/nspawn.log" 2>&1 &
NSPID=$!
LEADER=
booted() {
  LEADER=$(pgrep -P "$NSPID" | head -1)
  [ -n "$LEADER" ] && nsenter -t "$LEADER" -a systemctl is-system-running 2>/dev/null | grep -qE '^(running|degraded)$'
}
boot_report() { # what the container's systemd says, when it did not boot
  cat "$STAGE/nspawn.log" >&2
  [ -n "$LEADER" ] || { echo "no container process under nspawn (pid $NSPID)" >&2; return 0; }
  nsenter -t "$LEADER" -a systemctl is-system-running >&2 2>&1 || true
  nsenter -t "$LEADER" -a systemctl --failed --no-pager >&2 2>&1 || true
  nsenter -t "$LEADER" -a systemctl list-jobs --no-pager >&2 2>&1 || true
  nsenter -t "$LEADER" -a journalctl -b -p warning --no-pager -n 30 >&2 2>&1 || true
}
t_wait 60 booted || { boot_report; t_fail "the container's systemd did not boot in 60 s"; t_done; }
in_ct() { nsenter -t "$LEADER" -a "$@"; }
t_pass "systemd $(in_ct systemctl --version | head -1 | cut -d' ' -f2) booted in the container ($(in_ct systemctl is-system-running))"
t_eq "$(in_ct findmnt -n -o FSTYPE /sys/fs/bpf)" "" "no bpffs in the container before the start"

# 4. Start: returns once READY=1 came, and READY=1 comes once XDP is attached.
rc=0
out=$(in_ct systemctl start "luabpf@$NAME" 2>&1) || rc=$?
xdp=$(ip -n "$P-lb" -d link show eth0 2>&1)
t_eq "$rc" 0 "systemctl start luabpf@$NAME"
[ "$rc" = 0 ] || { echo "$out" >&2; in_ct journalctl -b -u "luabpf@$NAME" --no-pager -o cat >&2; t_done; }
t_contains "$xdp" "prog/xdp" "XDP attached when systemctl start returned"
t_eq "$(in_ct systemctl is-active "luabpf@$NAME")" active "unit active"
log=$(in_ct journalctl -b -u "luabpf@$NAME" --no-pager -o cat)
t_eq "$(grep -nE "service '$NAME' on eth0|^Started luabpf@$NAME" <<<"$log" | cut -d: -f2- | cut -c1-7 | tr '\n' ' ')" \
  "service Started " "journal: the service's own 'on eth0' line, then systemd's Started"
t_eq "$(in_ct findmnt -n -o FSTYPE /sys/fs/bpf)" bpf "ExecStartPre mounted bpffs"
t_contains "$(in_ct systemctl show -p StatusText --value "luabpf@$NAME")" "running /usr/share/luabpf/examples/lb.lua" \
  "STATUS= reaches systemd"

# 5. Traffic through it.
t_wait 10 ip netns exec "$P-cl" curl -sf -m 1 http://10.10.100.1/ || t_fail "no answer through the balancer"
out=$(client spread 10.10.100.1 80 60)
echo "spread: $out"
t_eq "$(json 'd["errors"]' "$out")" 0 "60 connections through the systemd-run balancer: errors"
t_eq "$(json 'd.get("b1", 0) > 0 and d.get("b2", 0) > 0' "$out")" True "both backends answered"

# luabpf top NAME in the container: the endpoint the service announced.
out=$(in_ct luabpf top "$NAME" --count 1 --interval 0.5 --plain 2>&1)
t_contains "$out" "luabpf top  http://127.0.0.1:9435/metrics" "luabpf top $NAME finds the unit's metrics endpoint"
t_contains "$out" "$NAME/web" "and shows its VIP"
in_ct test -f "/run/luabpf/metrics/$NAME" && t_pass "registered in /run/luabpf/metrics (writable under the sandbox)" ||
  t_fail "no /run/luabpf/metrics/$NAME"

# 6. The sandbox, as the running service sees it.
MAIN=$(in_ct systemctl show -p MainPID --value "luabpf@$NAME")
st=$(in_ct cat "/proc/$MAIN/status")
# CAP_NET_ADMIN 12, CAP_NET_RAW 13, CAP_PERFMON 38, CAP_BPF 39: nothing else.
t_eq "$(awk '/^CapEff/ {print $2}' <<<"$st")" 000000c000003000 "effective capabilities: BPF, PERFMON, NET_ADMIN, NET_RAW"
t_eq "$(awk '/^CapBnd/ {print $2}' <<<"$st")" 000000c000003000 "bounding set: the same four"
t_eq "$(awk '/^NoNewPrivs/ {print $2}' <<<"$st")" 1 "NoNewPrivileges"
t_eq "$(awk '/^Seccomp:/ {print $2}' <<<"$st")" 2 "seccomp filter (SystemCallArchitectures, RestrictAddressFamilies)"
ask() { in_ct luabpf attach "$NAME" -e "$1" 2>&1; }
t_contains "$(ask 'return io.open("/usr/lib/luabpf-probe", "w")')" "Read-only file system" "ProtectSystem=strict: /usr is read-only"
t_contains "$(ask 'return io.open("/etc/luabpf/probe", "w")')" "Read-only file system" "ProtectSystem=strict: /etc is read-only"
t_contains "$(ask 'return io.open("/root/.profile")')" "Permission denied" "ProtectHome: /root is closed"
t_contains "$(ask 'local f = io.open("/tmp/lbsd-probe", "w") f:write("x") f:close() return "wrote"')" "wrote" "service writes its /tmp"
[ -e "$ROOT/tmp/lbsd-probe" ] && t_fail "the service's /tmp is the system's" || t_pass "PrivateTmp: its /tmp file is not in the system's /tmp"
t_contains "$(ask 'return io.open("/dev/kmsg")')" "No such file or directory" "PrivateDevices: no /dev/kmsg"
t_contains "$(ask 'return require("luv").fs_access("/sys/fs/bpf/luabpf/lb/'"$NAME"'", "rw")')" "true" "bpffs pins writable"
t_eq "$(in_ct stat -c %a /run/luabpf)" 700 "RuntimeDirectory /run/luabpf is 0700"

# 7. Reload: a changed pool goes in; a broken config is refused by the check.
conf "b1 10.10.0.11 0" "b2 10.10.0.12 1" "b3 10.10.0.13 1"
rc=0; out=$(in_ct systemctl reload "luabpf@$NAME" 2>&1) || rc=$?
t_eq "$rc" 0 "systemctl reload with a new pool"
t_wait 5 sh -c "nsenter -t $LEADER -a journalctl -b -u luabpf@$NAME -o cat | grep -q '^reloaded /etc/luabpf/$NAME.conf.lua'" &&
  t_pass "journal: reloaded" || t_fail "no 'reloaded' line"
show=$(in_ct luabpf lb show "$NAME")
t_contains "$show" "b3       10.10.0.13:8080       1  active" "lb show: b3 is in after the reload"
out=$(client spread 10.10.100.1 80 60)
t_eq "$(json 'd.get("b1", 0)' "$out")" 0 "after the reload b1 (weight 0) gets no new connection"
t_eq "$(json 'd.get("b3", 0) > 0' "$out")" True "after the reload b3 answers"
sed -i 's/port = 8080, weight = 1 },$/port = 80800, weight = 1 },/' "$ROOT/etc/luabpf/$NAME.conf.lua"
bad=$(grep -n 80800 "$ROOT/etc/luabpf/$NAME.conf.lua" | head -1 | cut -d: -f1)
rc=0; out=$(in_ct systemctl reload "luabpf@$NAME" 2>&1) || rc=$?
[ "$rc" != 0 ] && t_pass "systemctl reload with a broken config fails (rc $rc)" || t_fail "a broken config reloaded"
t_contains "$(in_ct journalctl -b -u "luabpf@$NAME" -o cat)" "/etc/luabpf/$NAME.conf.lua:$bad: error:" "journal: the check names file:line"
t_eq "$(in_ct systemctl is-active "luabpf@$NAME")" active "still active after the refused reload"
out=$(client spread 10.10.100.1 80 30)
t_eq "$(json 'd["errors"]' "$out")" 0 "still serving after the refused reload"

# 8. Stop.
rc=0; in_ct systemctl stop "luabpf@$NAME" || rc=$?
t_eq "$rc" 0 "systemctl stop"
t_eq "$(in_ct systemctl show -p ExecMainStatus --value "luabpf@$NAME")" 0 "main process exit status"
t_eq "$(in_ct systemctl is-active "luabpf@$NAME")" inactive "unit inactive"
t_contains "$(in_ct journalctl -b -u "luabpf@$NAME" -o cat)" "Deactivated successfully" "journal: deactivated"
t_done
