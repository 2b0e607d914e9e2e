# SPDX-License-Identifier: MIT
# A client the balancer's kernel has never resolved: its first request
# through a NAT VIP is answered within 1 s. The reply to it is passed to the
# kernel (counted as pass_no_neigh), which resolves the client and forwards
# it; the e1ec3e1 data plane dropped it as drop_no_neigh forever.
source "$LUABPF_SOURCE_DIR/tests/lb/lb_env.sh"
lab_up "$P" 2
lb_conf_vips <<LUA
  { name = "web", addr = "10.10.100.1", port = 80, mode = "nat", backends = {
      { name = "b1", addr = "10.10.0.11", port = 8080 },
      { name = "b2", addr = "10.10.0.12", port = 8080 } } },
LUA
lb_start --destroy

# The client knows the balancer (a static entry: no ARP from it reaches the
# balancer first); the balancer knows nothing of the client.
lbmac=$(ip -n "$P-lb" -o link show eth0 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
ip -n "$P-cl" neigh replace 10.10.0.2 lladdr "$lbmac" dev eth0 nud permanent
ip -n "$P-lb" neigh flush dev eth0 to 10.10.0.1
ip -n "$P-lb" neigh show to 10.10.0.1 | grep -q . && t_fail "the balancer still has a neighbour entry for the client"

out=$(ip netns exec "$P-cl" curl -s -m 1 -w '%{http_code}' http://10.10.100.1/ 2>&1 | tr '\n' ' ') || true
echo "first request: $out"
[[ "$out" =~ ^b[12]\ 200$ ]] && t_pass "the first request of an unresolved client was answered within 1 s" ||
  t_fail "the first request of an unresolved client: got '$out' (want bN 200 within 1 s)"
ip -n "$P-lb" neigh show to 10.10.0.1 | grep -q lladdr && t_pass "the balancer's kernel resolved the client" ||
  t_fail "the client is still unresolved on the balancer"
r=$(echo 'local r = lb_service:stats().reasons return r.pass_no_neigh, r.drop_no_neigh' | "$LUABPF" attach "$SVC" 2>&1)
echo "pass_no_neigh, drop_no_neigh: $r"
read -r passed dropped <<<"$r"
[ "${passed:-0}" -ge 1 ] 2>/dev/null && t_pass "replies passed to the kernel to resolve the client ($passed)" ||
  t_fail "pass_no_neigh did not count ('$r')"
t_eq "${dropped:-x}" 0 "replies dropped for want of a neighbour"
t_done
