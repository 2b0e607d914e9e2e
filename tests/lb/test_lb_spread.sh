# SPDX-License-Identifier: MIT
# Real TCP through the XDP balancer: the spread over 3,000 connections is
# within 10% of the weights (NAT, IPv4), and DSR and IPv6 deliver too.
source "$LUABPF_SOURCE_DIR/tests/lb/lb_env.sh"
lab_up "$P" 3
lb_conf_vips <<LUA
  { name = "web", addr = "10.10.100.1", port = 80, mode = "nat", backends = {
      { name = "b1", addr = "10.10.0.11", port = 8080, weight = 1 },
      { name = "b2", addr = "10.10.0.12", port = 8080, weight = 2 },
      { name = "b3", addr = "10.10.0.13", port = 8080, weight = 3 } } },
  { name = "dsr6", addr = "fd10:100::1", port = 8080, mode = "dsr", backends = {
      { name = "b1", addr = "fd10::11" }, { name = "b2", addr = "fd10::12" } } },
LUA
lb_start --destroy

out=$(client spread 10.10.100.1 80 3000)
echo "spread: $out"
t_eq "$(json 'd["errors"]' "$out")" 0 "NAT: failed connections"
for b in 1 2 3; do
  ok=$(json "abs(d.get('b$b', 0) - 500 * $b) <= 0.10 * 500 * $b" "$out")
  t_eq "$ok" True "NAT: b$b's share within 10% of weight $b/6 (got $(json "d.get('b$b', 0)" "$out") of 3000)"
done

out=$(client spread fd10:100::1 8080 400)
echo "dsr6: $out"
t_eq "$(json 'd["errors"]' "$out")" 0 "DSR IPv6: failed connections"
t_eq "$(json 'd.get("b1", 0) > 100 and d.get("b2", 0) > 100' "$out")" True "DSR IPv6: both backends answered"
t_eq "$(json 'd.get("b3", 0)' "$out")" 0 "DSR IPv6: b3 is not in that VIP"

lb_stop
t_eq "$LBRC" 0 "service exit code"
t_contains "$(cat "$LBOUT")" "b3           10.10.0.13:8080" "stats at exit list b3"
[ -e "/sys/fs/bpf/luabpf/lb/$SVC" ] && t_fail "--destroy left pins behind" || t_pass "--destroy removed the pins"
ip -n "$P-lb" link show eth0 | grep -q xdp && t_fail "XDP still attached after --destroy" || t_pass "XDP detached"
t_done
