# SPDX-License-Identifier: MIT
# The conntrack flow table with its XDP fast path (flow_table = "conntrack",
# ct_fastpath = true) in the LB lab: TCP (IPv4, IPv6) and UDP through it, with
# established packets counted as sent from XDP (ct_fast, ct_fast_reply); the
# entries' timeouts refreshed by the fast path; connections survive pool
# changes; connections close cleanly (their FIN goes through conntrack: no
# entry left ESTABLISHED); be_liberal is set in the namespace and restored.
source "$LUABPF_SOURCE_DIR/tests/lb/lb_ct_env.sh"
LIB=net.netfilter.nf_conntrack_tcp_be_liberal
# Misuse is refused before anything loads.
out=$("$LUABPF" -e 'local lb = require("luabpf.lb")
print(select(2, pcall(lb.new, { name = "x", interface = "lo", ct_fastpath = true })))
print(select(2, pcall(lb.new, { name = "x", interface = "lo", flow_table = "conntrack", ct_fastpath = 1 })))' 2>&1)
t_contains "$out" "ct_fastpath needs flow_table = 'conntrack'" "ct_fastpath with the LRU table"
t_contains "$out" "ct_fastpath expects a boolean, got number" "ct_fastpath = 1"
lb_ct_lab
ip netns exec "$P-lb" modprobe -q nf_conntrack 2>/dev/null || true
ip netns exec "$P-lb" sysctl -qw $LIB=0 2>/dev/null || true
# A timeout that tells a refreshed entry (1000 s left) from one conntrack
# last saw at the handshake (less, by the seconds since).
TMO=1000
ip netns exec "$P-lb" sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_established=$TMO
ip netns exec "$P-cl" sysctl -qw net.ipv4.tcp_fin_timeout=5

coproc LB { exec "$LUABPF" --netns "$P-lb" run "$LUABPF_SOURCE_DIR/tests/lb/lb_ct.lua" "$SVC" fast 2>&1; }
LBPID=$LB_PID
ready=
while read -r -t 20 line <&"${LB[0]}"; do
  echo "driver: $line"
  case "$line" in "ready conntrack fast") ready=1; break ;; "ready"*|ERROR*) break ;; esac
done
[ -n "$ready" ] || { t_fail "the conntrack-mode service with ct_fastpath did not start"; t_done; }
reason() { grep -oE "(^| )$1:[0-9]+" <<<"$ANS" | cut -d: -f2 || true; }

t_eq "$(ip netns exec "$P-lb" sysctl -n $LIB)" 1 "$LIB in the balancer's namespace"
t_contains "$(ip -n "$P-lb" link show eth0)" "xdp" "an XDP program on the balancer's interface"

# New connections spread over the backends, both families; each GET after
# the handshake and its answer take the fast path.
out=$(client spread 10.10.100.1 80 30)
echo "IPv4: $out"
t_eq "$(json 'd["errors"]' "$out")" 0 "IPv4 connections through the fast path failed"
t_eq "$(json 'len([k for k in d if k != "errors"])' "$out")" 3 "backends that answered IPv4"
drv stats; echo "reasons: $ANS"
f4=$(reason ct_fast); r4=$(reason ct_fast_reply)
[ "${f4:-0}" -ge 30 ] && t_pass "IPv4: $f4 packets to backends sent from XDP" || t_fail "IPv4: ct_fast=${f4:-0} (< 30)"
[ "${r4:-0}" -ge 30 ] && t_pass "IPv4: $r4 replies sent from XDP" || t_fail "IPv4: ct_fast_reply=${r4:-0} (< 30)"
out=$(client spread fd10:100::1 80 12)
echo "IPv6: $out"
t_eq "$(json 'd["errors"]' "$out")" 0 "IPv6 connections through the fast path failed"
drv stats
f6=$(reason ct_fast)
[ "${f6:-0}" -ge $((f4 + 12)) ] && t_pass "IPv6 packets sent from XDP" || t_fail "IPv6: ct_fast went from $f4 to ${f6:-0}"

# Closed connections: conntrack saw the FINs (be_liberal keeps them in window).
none_established() { [ "$(ct -L -p tcp -m "$MARK/0xffff0000" | grep -c ESTABLISHED)" -eq 0 ]; }
t_wait 10 none_established || true # the FINs cross the balancer: the checks below say what is left
list=$(ct -L -p tcp -m "$MARK/0xffff0000")
t_eq "$(grep -c ESTABLISHED <<<"$list" || true)" 0 "closed connections' entries still ESTABLISHED"
t_eq "$(grep -c " dport=80 " <<<"$list" || true)" 42 "entries of the 42 connections (TIME_WAIT/CLOSE)"
t_contains "$list" "TIME_WAIT" "closed connections' entries in TIME_WAIT"
echo "$list" | head -2

# UDP: the replies make an entry SEEN_REPLY; later datagrams take the fast path.
drv stats; u0=$(reason ct_fast)
out=$(ip netns exec "$P-cl" "$PY" "$UDP" ask 10.10.100.1 53 12 3)
echo "UDP: $out"
t_eq "$(json 'd["lost"]' "$out")" 0 "UDP datagrams lost"
t_eq "$(json 'all(len(set(f)) == 1 and len(f) == 3 for f in d["flows"])' "$out")" True "each UDP flow stayed on one backend"
drv stats; u1=$(reason ct_fast)
[ $((u1 - u0)) -ge 24 ] && t_pass "UDP: $((u1 - u0)) datagrams sent from XDP" || t_fail "UDP: only $((u1 - u0)) datagrams from XDP (want 24)"

# Long-lived keep-alive connections while the pool changes (b2 removed with
# flush). Their GETs (every 0.1 s) take the fast path only, which must
# refresh the entries' timeouts as conntrack would: checked 3 s on.
refreshed() {
  tmo=$(ct -L -p tcp --orig-port-dst 80 | awk '/ESTABLISHED/ { print $3 }' | sort -n | head -1)
  [ "${tmo:-0}" -ge $((TMO - 2)) ] && t_pass "3 s on, the fast path keeps the entries' timeouts full (shortest: $tmo of $TMO s)" ||
    t_fail "established entries not refreshed by the fast path: shortest timeout ${tmo:-none} of $TMO s"
}
lb_ct_pool_change 0 refreshed
t_wait 10 none_established || true
t_eq "$(ct -L -p tcp -m "$MARK/0xffff0000" | grep -c ESTABLISHED || true)" 0 "entries ESTABLISHED after the held connections closed"

# Close (pin = false): the XDP program, the table, our entries go; be_liberal is restored.
lb_ct_stop
t_eq "$(ip -n "$P-lb" link show eth0 | grep -c xdp || true)" 0 "XDP programs left on the interface"
t_eq "$(ip netns exec "$P-lb" sysctl -n $LIB)" 0 "$LIB after the service stopped"
t_eq "$(ct -L -f ipv4 -m "$MARK/0xffff0000" | wc -l)" 0 "marked entries left"
t_done
