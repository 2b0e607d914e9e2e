# SPDX-License-Identifier: MIT
# A backend's MAC changes (a new NIC, a failover): the balancer's neighbour
# entry is replaced, and the very next request through a DSR VIP reaches the
# backend at its new MAC, well before the data plane's next-hop cache would
# expire (1 s): lb/_neigh.lua watches `ip monitor neigh route` and bumps
# nexthop_gen. Without it the first SYN goes to the old MAC, is lost, and is
# answered only after its retransmission (1 s).
source "$LUABPF_SOURCE_DIR/tests/lb/lb_env.sh"
lab_up "$P" 1
lb_conf_vips <<LUA
  { name = "dsr", addr = "10.10.100.1", port = 8080, mode = "dsr", backends = {
      { name = "b1", addr = "10.10.0.11" } } },
LUA
lb_start --destroy

gen() { echo 'return lb_service.obj:get("nexthop_gen")' | "$LUABPF" attach "$SVC" 2>&1; }
ms() { date +%s%3N; }
# One CPU for the client: its frames reach XDP on that CPU, whose next-hop
# cache the first request fills.
get() { ip netns exec "$P-cl" taskset -c 0 curl -s -m "$1" -w '%{http_code}' http://10.10.100.1:8080/ 2>&1 | tr '\n' ' '; }

out=$(get 2)
[[ "$out" =~ ^b1\ 200$ ]] && t_pass "DSR request reaches b1 at its first MAC" || t_fail "first request: got '$out'"
old=$(gen)
[[ "$old" =~ ^[0-9]+$ ]] || t_fail "can't read nexthop_gen: '$old'"

newmac=02:00:00:13:00:11
t0=$(ms)
ip -n "$P-b1" link set dev eth0 address "$newmac"
ip -n "$P-lb" neigh replace 10.10.0.11 lladdr "$newmac" dev eth0 nud reachable
t_wait 2 sh -c '[ "$(echo "return lb_service.obj:get(\"nexthop_gen\")" | "$1" attach "$2" 2>&1)" != "$3" ]' \
  sh "$LUABPF" "$SVC" "$old" && t_pass "nexthop_gen moved on the neighbour change" ||
  t_fail "nexthop_gen stayed $old after the neighbour change (2 s)"
t1=$(ms)
out=$(get 2)
t2=$(ms)
echo "after the MAC change: '$out' in $((t2 - t1)) ms ($((t1 - t0)) ms to see nexthop_gen move, through luabpf attach)"
[[ "$out" =~ ^b1\ 200$ ]] && t_pass "the next request reaches b1 at its new MAC" ||
  t_fail "request after the MAC change: got '$out'"
[ $((t2 - t1)) -lt 500 ] && t_pass "answered in $((t2 - t1)) ms (< 500 ms)" ||
  t_fail "answered in $((t2 - t1)) ms (want < 500 ms: this is the cache's 1 s expiry and a SYN retransmission, not the watch)"
grep -q "can't run" "$LBOUT" && t_fail "the service could not watch neighbours: $(grep "can't run" "$LBOUT")"

lb_stop
t_eq "$LBRC" 0 "the service's exit status"
# The watch's `ip monitor` went with the service.
t_wait 2 sh -c '! ip netns pids "$1" | xargs -r ps -o comm= -p | grep -qx ip' sh "$P-lb" &&
  t_pass "no 'ip monitor' left in the balancer's namespace" || t_fail "'ip monitor' outlived the service"
t_done
