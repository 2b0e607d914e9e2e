# SPDX-License-Identifier: MIT
# lb/_bgp.lua with one BIRD protocol per VIP (docs/scale-out.md): a VIP that
# loses quorum is withdrawn alone, the other stays announced; with one
# protocol for both, the loss of either withdraws it.
source "$LUABPF_SOURCE_DIR/tests/scale_out/so_env.sh"

so_up 0 none
so_node_bird 1 # node 1 without luabpf (so_env.sh)
# A second VIP's protocol, and one for both, added by a reconfigure.
cat >>"$SO_DIR/n1.conf" <<EOC
protocol static vip_dns { disabled; ipv4; route 10.43.0.2/32 blackhole; }
protocol static vip_all { disabled; ipv4; route 10.43.0.3/32 blackhole; }
EOC
birdc -s "$SO_DIR/n1.ctl" configure >/dev/null
t_eq "$(so_bird_state vip_dns)" down "BIRD has vip_dns, disabled"

# web: checked backends that answer; dns: a backend whose port nothing serves.
conf() {
  cat >"$SO_DIR/n1.lua" <<EOC
service = "${P}n1"
interface = "eth0"
vips = {
  { name = "web", addr = "$VIP", port = $VPORT, mode = "dsr",
    check = { type = "tcp", interval = 0.2, timeout = 0.2, rise = 1, fall = 1 },
    backends = { { name = "b1", addr = "10.42.0.11" }, { name = "b2", addr = "10.42.0.12" } } },
  { name = "dns", addr = "10.43.0.2", port = 7001, mode = "dsr",
    check = { type = "tcp", interval = 0.2, timeout = 0.2, rise = 1, fall = 1 },
    backends = { { name = "b3", addr = "10.42.0.13" } } },
}
bgp = { socket = "$SO_DIR/n1.ctl", protocol = $1, interval = 0.5 }
EOC
}
conf '{ web = "vip_web", dns = "vip_dns" }'
so_lb 1
so_until_state vip_web up 10 && t_pass "per VIP: web announced" || t_fail "per VIP: web is $(so_bird_state vip_web)"
so_until_state vip_dns down 10 && t_pass "per VIP: dns (its backend down: quorum lost) withdrawn" ||
  t_fail "per VIP: dns is $(so_bird_state vip_dns)"
grep -q "withdrawing BIRD protocol 'vip_dns' (VIPs dns): VIP 'dns' lost quorum" "$SO_DIR/n1.out" &&
  t_pass "per VIP: the log says why" || t_fail "per VIP: no withdraw line for vip_dns: $(grep BGP "$SO_DIR/n1.out")"
show=$("$LUABPF" lb show "${P}n1")
t_contains "$show" "BGP: BIRD protocol vip_web (VIPs web) ANNOUNCED" "show: vip_web"
t_contains "$show" "BGP: BIRD protocol vip_dns (VIPs dns) WITHDRAWN: VIP 'dns' lost quorum" "show: vip_dns, why"
# dns's backend comes up: announced too.
ip netns exec "$P-b3" "$SO_PY" "$SO_HERE/so_server.py" b3 7001 >/dev/null 2>&1 &
T_PIDS+=($!)
so_until_state vip_dns up 10 && t_pass "per VIP: dns announced once its backend answers" ||
  t_fail "per VIP: dns is $(so_bird_state vip_dns)"
t_eq "$(so_bird_state vip_web)" up "per VIP: web still announced"

# One protocol for both VIPs: web losing quorum withdraws it.
so_lb_stop 1
conf '"vip_all"'
so_lb 1
so_until_state vip_all up 10 && t_pass "one protocol: announced while both VIPs serve" || t_fail "one protocol: $(so_bird_state vip_all)"
kill "${T_PIDS[0]}" "${T_PIDS[1]}" # web's backends
so_until_state vip_all down 10 && t_pass "one protocol: withdrawn when web loses quorum" || t_fail "one protocol: $(so_bird_state vip_all)"
t_done
