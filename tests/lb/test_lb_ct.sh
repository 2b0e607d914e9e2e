# SPDX-License-Identifier: MIT
# The load balancer on the kernel's conntrack (flow_table = "conntrack") in
# the LB lab: TCP (IPv4, IPv6) and UDP through it; the entries `conntrack -L`
# shows carry the service's mark and the right DNAT and SNAT; connections
# survive pool changes (a backend added, one drained); removing a backend
# with flush resets only that backend's connections; closing the service
# removes its nftables table and its entries.
source "$LUABPF_SOURCE_DIR/tests/lb/lb_ct_env.sh"
lb_ct_lab

coproc LB { exec "$LUABPF" --netns "$P-lb" run "$LUABPF_SOURCE_DIR/tests/lb/lb_ct.lua" "$SVC" conntrack 2>&1; }
LBPID=$LB_PID
ready=
while read -r -t 20 line <&"${LB[0]}"; do
  echo "driver: $line"
  case "$line" in "ready conntrack") ready=1; break ;; ERROR*) break ;; esac
done
[ -n "$ready" ] || { t_fail "the conntrack-mode service did not start"; t_done; }

# New connections spread over the backends, both families; their entries:
# the kernel's, with our mark and the NAT the data plane chose.
lb_ct_spread conntrack
bad=$CT_BAD
marks=$(grep -oE "mark=[0-9]+" <<<"$CT_LIST" | cut -d= -f2 | sort -u | tr '\n' ' ')
for m in $marks; do
  [ "$m" -ge "$MARK" ] && [ "$m" -le $((MARK + 2)) ] || bad+=$'\n'"mark $m is not 0x4c420000 + a backend id (0..2)"
done
t_eq "$(wc -w <<<"$marks")" 3 "distinct marks (one per backend) on the entries"
[ -z "$bad" ] && t_pass "every entry: client -> VIP:80, DNAT to a backend:8080, SNAT to 10.10.0.2" ||
  t_fail "entries with the wrong NAT:"$'\n'"$bad"
l6=$(ct -L -f ipv6 -p tcp -m "$MARK/0xffff0000")
t_contains "$l6" "dst=fd10::2 sport=8080" "IPv6 entries SNAT to fd10::2 and DNAT to port 8080"
drv flows
echo "flows: $ANS"
want=$(( $(ct -L -f ipv4 -m "$MARK/0xffff0000" | wc -l) + $(ct -L -f ipv6 -m "$MARK/0xffff0000" | wc -l) ))
[ "$want" -ge 40 ] || t_fail "only $want marked entries for 42 connections"
t_eq "${ANS%% *}" "$want" "svc:flows() lists what conntrack -L -m shows"

# UDP: each source port keeps its backend; the entries are marked and NATed.
out=$(ip netns exec "$P-cl" "$PY" "$UDP" ask 10.10.100.1 53 12 3)
echo "UDP: $out"
t_eq "$(json 'd["lost"]' "$out")" 0 "UDP datagrams lost"
t_eq "$(json 'all(len(set(f)) == 1 and len(f) == 3 for f in d["flows"])' "$out")" True "each UDP flow stayed on one backend"
t_eq "$(json 'len({f[0] for f in d["flows"]}) >= 2' "$out")" True "UDP flows spread over backends"
t_contains "$(ct -L -p udp -m "$MARK/0xffff0000")" "sport=5353" "UDP entries DNAT to port 5353"

# Long-lived connections while the pool changes (b2 removed with flush).
lb_ct_pool_change 1
t_eq "$(ct -L -f ipv4 -m $((MARK + 1)) | grep -c ESTABLISHED || true)" 0 "b2's established entries after the flush"
lb_ct_reasons forwarded "forwarded counted" reply "replies counted"

# Close (pin = false): the nftables table and our entries go.
lb_ct_close
t_done
