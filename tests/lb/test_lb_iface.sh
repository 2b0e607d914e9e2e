# SPDX-License-Identifier: MIT
# The balancer's interface goes away (issue 17, fault 3): the running service
# logs it and logs its return; the next start of the pinned service replaces
# the severed pinned link (before: "can't replace the running program ...
# ENOLINK", also with --destroy) and serves again. `luabpf lb stop NAME` with
# no process running removes the pinned state. An unpinned balancer's
# temporary directory left by SIGKILL is removed by the next start (fault 6).
source "$LUABPF_SOURCE_DIR/tests/lb/lb_env.sh"
lab_up "$P" 2
PIN="/sys/fs/bpf/luabpf/lb/$SVC"
xdp_id() { ip -n "$P-lb" -d link show eth0 2>/dev/null | sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p'; }
served() { json 'd["errors"] == 0 and d.get("b1", 0) + d.get("b2", 0) == 20' "$(client spread 10.10.100.1 80 20)"; }

# recreate: delete the balancer's eth0 and make it again as the lab did, with
# its MAC (the client's and backends' neighbour entries stay right).
recreate() {
  local mac
  mac=$(ip -n "$P-lb" -o link show eth0 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
  ip -n "$P-lb" link del eth0
  t_wait 5 sh -c '! ip -n "$1" link show eth0' sh "$P-lb" || t_fail "eth0 did not go"
  lab_link lb 10.10.0.2 fd10::2
  ip -n "$P-lb" link set eth0 address "$mac"
  ip -n "$P-br" link set dev lb xdp obj "$LAB_BUILD/bpf/xdp_pass.bpf.o" sec xdp
}

lb_conf "" "b1 10.10.0.11 1" "b2 10.10.0.12 1"
lb_start
t_eq "$(served)" True "serving before the interface goes"

# 1. The running service notices its interface going and coming back.
m=$(wc -l <"$LBOUT")
recreate
lb_wait_log "$m" 10 "service '$SVC': interface eth0 \(ifindex [0-9]+\) went away, and XDP with it" &&
  t_pass "the running service logs its interface going away" || t_fail "no log line for eth0 going away"
lb_wait_log "$m" 10 "service '$SVC': interface eth0 is back \(ifindex [0-9]+\) without the balancer: restart" &&
  t_pass "the running service logs its interface coming back" || t_fail "no log line for eth0 coming back"
t_eq "$(xdp_id)" "" "the new eth0 has no program yet"
lb_stop
t_contains "$(cat "$LBOUT")" "service '$SVC': its XDP link is severed (eth0 went away)" "stop: says the link is severed"

# 2. The next start replaces the severed pinned link and serves.
m=$(wc -l <"$LBOUT")
lb_start
t_contains "$(tail -n +$((m + 1)) "$LBOUT")" "was severed (its interface went away): attaching a new one to eth0" \
  "restart: the severed link is replaced, logged"
[ -n "$(xdp_id)" ] && t_pass "restart: XDP attached to the new eth0" || t_fail "restart: no XDP on eth0"
t_eq "$(served)" True "restart: serving on the new eth0"

# 3. Again, with --destroy: the start works, the stop removes everything.
recreate
lb_stop
lb_start --destroy
t_eq "$(served)" True "--destroy start after a recreated interface: serving"
lb_stop
t_eq "$LBRC" 0 "--destroy stop: exit code"
[ -e "$PIN" ] && t_fail "--destroy left $PIN" || t_pass "--destroy removed $PIN"
t_eq "$(xdp_id)" "" "--destroy detached XDP"

# 4. luabpf lb stop with no control socket: refused while a process (--no-control)
# runs the service, then, with no process running, the pinned state goes.
m=$(wc -l <"$LBOUT")
"$LUABPF" --netns "$P-lb" --no-control run "$LUABPF_SOURCE_DIR/scripts/examples/lb.lua" "$CONF" >>"$LBOUT" 2>&1 &
LBPID=$!
lb_wait_log "$m" 10 "service '$SVC' on" || t_fail "the --no-control service did not start"
rc=0
out=$("$LUABPF" lb stop "$SVC" 2>&1) || rc=$?
t_eq "$rc" 1 "lb stop while a process without control socket runs it: exit code"
t_contains "$out" "ERROR: service '$SVC' is run by pid $LBPID (" "lb stop: names the process that runs it"
[ -e "$PIN/link" ] && t_pass "lb stop refused: the pinned state stays" || t_fail "lb stop removed a running service's state"
lb_stop
out=$("$LUABPF" lb stop "$SVC" 2>&1) && t_pass "lb stop of a stopped service: exit 0" || t_fail "lb stop failed: $out"
t_contains "$out" "service '$SVC' was not running: detached xdp_lb (ifindex " "lb stop of a stopped service: says what it did"
[ -e "$PIN" ] && t_fail "lb stop left $PIN" || t_pass "lb stop removed $PIN"
t_eq "$(xdp_id)" "" "lb stop detached XDP"

# 5. An unpinned balancer killed with SIGKILL: the next start removes its directory.
echo "pin = false" >>"$CONF"
lb_start
TMP="/sys/fs/bpf/luabpf/lb/tmp-$LBPID-$SVC"
[ -d "$TMP" ] && t_pass "pin = false: state in $TMP" || t_fail "no $TMP"
kill -KILL "$LBPID"
wait "$LBPID" 2>/dev/null || true
old=$LBPID
LBPID=
[ -d "$TMP" ] && t_pass "SIGKILL leaves $TMP (nothing runs to remove it)" || t_fail "$TMP went with the process"
m=$(wc -l <"$LBOUT")
lb_start
t_contains "$(tail -n +$((m + 1)) "$LBOUT")" "removed $TMP: the temporary state (" "the next start removes the dead one's directory, logged"
t_contains "$(tail -n +$((m + 1)) "$LBOUT")" "of pid $old, which is gone" "the log names the dead pid"
[ -d "$TMP" ] && t_fail "$TMP is still there" || t_pass "$TMP removed"
t_eq "$(served)" True "the new unpinned instance serves"
new=$LBPID
lb_stop
[ -d "/sys/fs/bpf/luabpf/lb/tmp-$new-$SVC" ] &&
  t_fail "a temporary directory is left" || t_pass "no temporary directory left after a clean stop"
t_done
