# SPDX-License-Identifier: MIT
# The systemd unit, run by hand (systemd is not PID 1 on the test machine):
# the installed luabpf@.service's ExecStartPre/ExecStart/ExecReload lines,
# expanded as systemd would for an instance NAME with /etc/luabpf/NAME.env,
# run with NOTIFY_SOCKET on a socket this test reads and JOURNAL_STREAM on
# the log. Readiness comes only once XDP is attached (and never when the
# start fails); a reload with a changed pool changes the data plane and resets
# no held connection; a broken config fails the reload's check with its
# file:line, and a SIGHUP that bypasses the check is refused by the service,
# which keeps serving; SIGTERM reports STOPPING=1.
source "$LUABPF_SOURCE_DIR/tests/lb/lb_env.sh"
PFX=$(mktemp -d)
NSOCK="$PFX/notify.sock"
NOUT="$PFX/notify.out"
svc_cleanup() {
  [ -n "${NPID:-}" ] && kill "$NPID" 2>/dev/null || true
  lb_env_cleanup
  rm -rf "$PFX"
}
trap svc_cleanup EXIT

cmake --install "$LUABPF_BUILD_DIR" --prefix "$PFX" >/dev/null
UNIT="$PFX/lib/systemd/system/luabpf@.service"
ETC="$PFX/etc/luabpf"
NAME=$SVC
CONF="$ETC/$NAME.conf.lua"
cat >"$ETC/$NAME.env" <<ENV
SCRIPT=$PFX/share/luabpf/examples/lb.lua
CONFIG=$CONF
OPTIONS=--destroy
ENV

# unit_cmds KEY: the unit's KEY= command lines, expanded for instance NAME
# as systemd does (Environment=, then EnvironmentFile=; "+" prefix dropped).
unit_cmds() {
  local SCRIPT CONFIG OPTIONS MAINPID=${LBPID:-}
  SCRIPT="$ETC/$NAME.lua" CONFIG= OPTIONS=
  source "$ETC/$NAME.env"
  grep "^$1=" "$UNIT" | sed -e "s/^$1=+\?//" -e "s/%i/$NAME/g" | while read -r line; do
    eval "printf '%s\n' \"\$(printf '%q ' $line)\""
  done
}
run_cmds() { # KEY: run each expanded command; stop at the first failure, like systemd
  local c
  while read -r c; do eval "$c" || return $?; done < <(unit_cmds "$1")
}

conf() { lb_conf "" "$@"; } # BACKENDS...: "name addr weight"

"$PY" "$LUABPF_SOURCE_DIR/tests/packaging/notify_recv.py" "$NSOCK" --on-ready \
  "ip -n $P-lb -d link show eth0 | grep -q 'prog/xdp' && echo attached || echo not-attached" >"$NOUT" &
NPID=$!
t_wait 5 grep -q listening "$NOUT" || t_fail "notify receiver did not start"
lab_up "$P" 3
touch "$LBOUT"
export NOTIFY_SOCKET="$NSOCK"
export JOURNAL_STREAM="$(stat -c '%d:%i' "$LBOUT")"

# A start that fails (no such interface) never reports readiness.
conf "b1 10.10.0.11 1"
sed -i "s/interface = 'eth0'/interface = 'nosuch0'/" "$CONF"
rc=0
( run_cmds ExecStartPre && eval "nsenter --net=/run/netns/$P-lb $(unit_cmds ExecStart)" ) >>"$LBOUT" 2>&1 || rc=$?
t_eq "$rc" 1 "failed start: exit code"
t_contains "$(cat "$LBOUT")" "<3>" "failed start: logged at error priority"
grep -q "READY=1" "$NOUT" && t_fail "READY=1 from a start that failed" || t_pass "no READY=1 from a failed start"

# The real start: ExecStartPre (bpffs, check) then ExecStart in the balancer's netns.
conf "b1 10.10.0.11 1" "b2 10.10.0.12 1"
run_cmds ExecStartPre >>"$LBOUT" 2>&1 && t_pass "ExecStartPre (bpffs, luabpf check) passes" || t_fail "ExecStartPre failed"
eval "exec nsenter --net=/run/netns/$P-lb $(unit_cmds ExecStart)" >>"$LBOUT" 2>&1 &
LBPID=$!
t_wait 15 grep -q "READY=1" "$NOUT" || { cat "$LBOUT" >&2; t_fail "no READY=1"; t_done; }
t_wait 5 grep -q "ready-check:" "$NOUT" || t_fail "the receiver's ready-check did not run"
t_contains "$(cat "$NOUT")" "ready-check: attached" "at READY=1 the XDP program is attached"
t_contains "$(cat "$NOUT")" "MAINPID=$LBPID" "READY=1 names the main pid"
t_contains "$(cat "$LBOUT")" "<6>service '$SVC' on eth0" "journal: info line with priority 6"
t_eq "$(grep -c 'READY=1' "$NOUT")" 1 "READY=1 once"

# Reload with a changed pool under held connections.
hold_out="$PFX/hold.json"
client hold 10.10.100.1 80 16 5 >"$hold_out" &
hold=$!
lb_established 16 80
conf "b1 10.10.0.11 0" "b2 10.10.0.12 1" "b3 10.10.0.13 2"
run_cmds ExecReload >>"$LBOUT" 2>&1 && t_pass "ExecReload (check, SIGHUP) succeeds" || t_fail "ExecReload failed"
t_wait 5 grep -q "reloaded $CONF" "$LBOUT" && t_pass "reload logged" || t_fail "no reload in the log"
t_wait 5 sh -c "grep -A1 RELOADING=1 '$NOUT' | grep -q 'READY=1'" && t_pass "RELOADING=1 then READY=1" ||
  t_fail "no RELOADING=1/READY=1 pair: $(cat "$NOUT")"
lb_reload_spread 'd.get("b3", 0) > d.get("b2", 0) > 0'
wait "$hold"
t_eq "$(json 'sum(c["requests"] > 10 for c in d)' "$(cat "$hold_out")")" 16 "16 connections held across the reload"
lb_held_kept "$hold_out" resets/errors

# A broken config: the reload's check fails with file:line; the service is untouched.
conf "b1 10.10.0.11 0" "b2 10.10.0.12 1" "b3 10.10.0.13 2"
sed -i "s/port = 8080, weight = 2/port = 80800, weight = 2/" "$CONF"
bad_line=$(grep -n 80800 "$CONF" | cut -d: -f1)
reloads=$(grep -c "RELOADING=1" "$NOUT")
rc=0
out=$(run_cmds ExecReload 2>&1) || rc=$?
t_eq "$rc" 1 "ExecReload with a broken config: exit code (systemctl reload fails)"
t_contains "$out" "$CONF:$bad_line: error: vip 'web': backend 10.10.0.13: port must be 1-65535, got 80800" "check names file:line"
# A SIGHUP that bypasses the check: the service refuses it itself.
kill -HUP "$LBPID"
t_wait 5 grep -q "reload refused" "$LBOUT" && t_pass "service refuses the broken config" || t_fail "not refused"
# Ours is the only SIGHUP since the failed ExecReload: had that one sent one,
# its RELOADING=1 would have come before ours.
t_wait 5 sh -c "[ \$(grep -c RELOADING=1 '$NOUT') -gt $reloads ]" || t_fail "no RELOADING=1 for our SIGHUP"
t_eq "$(grep -c "RELOADING=1" "$NOUT")" "$((reloads + 1))" "no SIGHUP sent by the failed ExecReload (one RELOADING=1: ours)"
t_contains "$(grep 'reload refused' "$LBOUT")" "<3>$CONF:$bad_line: vip 'web'" "refusal: error priority, file:line"
out=$(client spread 10.10.100.1 80 100)
t_eq "$(json 'd["errors"]' "$out")" 0 "still serving after the refused reload"
t_eq "$(json 'd.get("b1", 0)' "$out")" 0 "still the reloaded pool (b1 drained)"

kill -TERM "$LBPID"
rc=0; wait "$LBPID" || rc=$?; LBPID=
t_eq "$rc" 0 "SIGTERM: exit code"
t_contains "$(tail -3 "$NOUT")" "STOPPING=1" "STOPPING=1 at shutdown"
echo "--- notifications:"; cat "$NOUT"
t_done
