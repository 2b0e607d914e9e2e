# SPDX-License-Identifier: MIT
# lb/_bgp.lua against a real BIRD (docs/scale-out.md "Announcing"): the node
# announces once attached with quorum, withdraws when quorum is lost and
# announces again when it is back, survives BIRD going away (logged with a
# hint, the data plane serves) and brings a restarted BIRD back in step,
# withdraws before --destroy detaches, and refuses a bad `bgp` section.
source "$LUABPF_SOURCE_DIR/tests/scale_out/so_env.sh"

so_up 0 none
so_node_bird 1 # node 1 without luabpf (so_env.sh)
state() { so_bird_state vip_web; }
t_eq "$(state)" down "BIRD's protocol before luabpf runs (declared disabled)"

# Quorum 2 of 3 by TCP checks every 0.2 s; the config as every node has it.
cat >"$SO_DIR/n1.lua" <<EOC
service = "${P}n1"
interface = "eth0"
vips = { { name = "web", addr = "$VIP", port = $VPORT, mode = "dsr", quorum = 2,
  check = { type = "tcp", interval = 0.2, timeout = 0.2, rise = 1, fall = 1 },
  backends = { { name = "b1", addr = "10.42.0.11" }, { name = "b2", addr = "10.42.0.12" },
    { name = "b3", addr = "10.42.0.13" } } } }
bgp = { socket = "$SO_DIR/n1.ctl", protocol = "vip_web", interval = 0.5 }
EOC
log="$SO_DIR/n1.out"
so_lb 1
so_until_state vip_web up 5 &&
  t_pass "announced: BIRD's protocol is up" || t_fail "not announced: $(state)"
t_contains "$("$LUABPF" lb show "${P}n1")" "BGP: BIRD protocol vip_web (VIPs web) ANNOUNCED" "lb show: announced"
t_eq "$("$LUABPF" lb show "${P}n1" --json | "$SO_PY" -c 'import json,sys; b = json.load(sys.stdin)["bgp"][0]; print(b["protocol"], b["state"], b["vips"], b["drained"], b["error"])')" \
  "vip_web announced ['web'] False None" "lb show --json: the bgp record"
scrape() {
  echo 'local m = require("luabpf.metrics") local r = m.registry() r:lb(lb_service) io.write(r:render())' |
    "$LUABPF" attach "${P}n1" 2>&1
}
t_contains "$(scrape)" "luabpf_lb_bgp_announced{service=\"${P}n1\",protocol=\"vip_web\"} 1" "exporter: announced"
t_contains "$(scrape)" "luabpf_lb_vip_table_info{service=\"${P}n1\",vip=\"web\",digest=\"" "exporter: the table digest"

# Quorum lost (two backends' servers stop): withdrawn; back: announced again.
kill "${T_PIDS[0]}" "${T_PIDS[1]}"
so_until_state vip_web down 10 &&
  t_pass "quorum lost: withdrawn" || t_fail "quorum lost: still $(state)"
grep -q "BGP: withdrawing BIRD protocol 'vip_web' (VIPs web): VIP 'web' lost quorum" "$log" &&
  t_pass "log: withdrawing, why" || t_fail "log: no withdraw line: $(grep BGP "$log")"
for i in 1 2; do
  ip netns exec "$P-b$i" "$SO_PY" "$SO_HERE/so_server.py" "b$i" "$VPORT" >/dev/null 2>&1 &
  T_PIDS+=($!)
done
so_until_state vip_web up 10 &&
  t_pass "quorum back: announced again" || t_fail "quorum back: still $(state)"

# BIRD goes away: logged with a hint, luabpf goes on; BIRD back (its protocol
# disabled again by its config): enabled within the re-send interval.
kill "$(cat "$SO_DIR/n1.pid")"
t_wait 5 grep -q "BGP: can't enable BIRD protocol 'vip_web'" "$log" && t_pass "BIRD gone: logged" ||
  t_fail "BIRD gone: nothing logged"
grep -q "HINT: is BIRD running with \`-s $SO_DIR/n1.ctl\`" "$log" && t_pass "BIRD gone: the hint names the socket" ||
  t_fail "BIRD gone: no hint"
t_contains "$("$LUABPF" lb show "${P}n1")" "UNKNOWN (BIRD not reached)" "lb show: BIRD not reached"
kill -0 "${SO_LB_PID[n1]}" && t_pass "BIRD gone: luabpf still runs" || t_fail "BIRD gone: luabpf exited"
t_wait 5 sh -c '! [ -e "$1" ] || ! kill -0 "$(cat "$1")"' sh "$SO_DIR/n1.pid" || true
so_bird_node 1
so_until_state vip_web up 5 &&
  t_pass "BIRD restarted: announced again" || t_fail "BIRD restarted: $(state)"
[ "$(grep -c "HINT: is BIRD running" "$log")" = 1 ] && t_pass "BIRD gone: logged once, not at every re-send" ||
  t_fail "BIRD gone: logged $(grep -c "HINT: is BIRD running" "$log") times"

# The operator's drain, then --destroy: withdrawn before the program goes.
"$LUABPF" lb drain-node "${P}n1" >/dev/null
so_until_state vip_web down 5 &&
  t_pass "drain-node: withdrawn" || t_fail "drain-node: $(state)"
t_contains "$(scrape)" "luabpf_lb_bgp_announced{service=\"${P}n1\",protocol=\"vip_web\"} 0" "exporter: withdrawn"
# A drain outlives a restart (an upgrade must not re-announce the node).
so_lb_stop 1
so_lb 1
grep -q "BGP: starts drained" "$log" && t_pass "restart while drained: starts drained" ||
  t_fail "restart while drained: no 'starts drained' line"
t_contains "$("$LUABPF" lb show "${P}n1")" "WITHDRAWN: the node is drained" "restart while drained: still withdrawn"
t_eq "$(state)" down "restart while drained: BIRD's protocol"
"$LUABPF" lb enable-node "${P}n1" >/dev/null
so_until_state vip_web up 5 &&
  t_pass "enable-node: announced" || t_fail "enable-node: $(state)"
so_lb_stop 1
t_eq "$(state)" up "stopped, program pinned: still announced"
so_lb 1
"$LUABPF" lb stop "${P}n1" >/dev/null
wait "${SO_LB_PID[n1]}" || true
SO_LB_PID[n1]=
t_eq "$(state)" down "lb stop (--destroy): withdrawn"
grep -q "BGP: withdrew BIRD protocol 'vip_web'" "$log" && t_pass "lb stop: the withdraw is logged" ||
  t_fail "lb stop: no withdraw line"
ip -n "$P-n1" link show eth0 | grep -q xdp && t_fail "lb stop: XDP still attached" || t_pass "lb stop: XDP detached"

# A bad bgp section: a clear error, nothing left behind.
sed -i 's/protocol = "vip_web"/protocol = "vip web"/' "$SO_DIR/n1.lua"
out=$("$LUABPF" --netns "$P-n1" run "$LUABPF_SOURCE_DIR/scripts/examples/lb.lua" "$SO_DIR/n1.lua" 2>&1) && rc=0 || rc=$?
[ "$rc" != 0 ] && t_pass "bad bgp.protocol: exit $rc" || t_fail "bad bgp.protocol: it started"
t_contains "$out" "bgp: protocol must name the BIRD protocol" "bad bgp.protocol: the message"
[ -e "/sys/fs/bpf/luabpf/lb/${P}n1" ] && t_fail "bad bgp.protocol: pinned state left" || t_pass "bad bgp.protocol: nothing left"
grep -q "unknown setting 'bgp'" "$log" && t_fail "lb.lua warned of an unknown setting 'bgp'" ||
  t_pass "no 'unknown setting' warning for bgp"

# luabpf check: the bgp section's errors with their line.
sed -i 's/protocol = "vip web"/protocol = "vip_web"/; s/interval = 0.5 }/interval = 0 }/' "$SO_DIR/n1.lua"
out=$("$LUABPF" check "$SO_DIR/n1.lua" 2>&1) && rc=0 || rc=$?
t_eq "$rc" 1 "check, bgp.interval 0: exit"
t_contains "$out" "n1.lua:7: error: bgp: interval must be a number of seconds (0.1 to 3600), got 0" "check: the field, its line"
sed -i 's/protocol = "vip_web", interval = 0 }/protocol = { web = "vip_web", dns = "vip_dns" } }/' "$SO_DIR/n1.lua"
out=$("$LUABPF" check "$SO_DIR/n1.lua" 2>&1) && rc=0 || rc=$?
t_contains "$out" "bgp: protocol names VIP 'dns', which the config does not declare" "check: an undeclared VIP in bgp.protocol"
t_done
