# SPDX-License-Identifier: MIT
# ct_sync (docs/scale-out.md, "Conntrack mode across nodes") on one node, in
# the conntrack lab of tests/lb (lb_ct_env.sh): the entries are the kernel's
# own, made by the service's nftables maps, and raise ctnetlink events (what
# conntrackd syncs; bpf_ct_alloc's raise none); TCP over IPv4 and IPv6 and
# UDP are NATed as the data plane chose; the maps follow pool changes (a
# backend added, one drained, one removed with flush); closing the service
# removes its table and entries. CT_LAB_MODE=fast (test_ct_sync_lab_fast.sh):
# the same with ct_fastpath, whose XDP program must carry established packets.
MODE=${CT_LAB_MODE:-conntrack}
source "$LUABPF_SOURCE_DIR/tests/lb/lb_ct_env.sh"
lb_ct_lab
EV=$(mktemp)
trap 'lb_env_cleanup; rm -f "$EV"' EXIT

# Misuse: said at once, before anything is loaded.
err=$("$LUABPF" -e 'local lb = require("luabpf.lb")
print(select(2, pcall(lb.new, { name = "x", interface = "lo", ct_sync = true })))
print(select(2, pcall(lb.new, { name = "x", interface = "lo", flow_table = "conntrack", ct_sync = "yes" })))' 2>&1)
t_contains "$err" "lb.new: ct_sync needs flow_table = 'conntrack'" "ct_sync without the conntrack table is refused"
t_contains "$err" "lb.new: ct_sync expects a boolean, got string" "ct_sync must be a boolean"

# Every NEW event of the service's entries, from before the first one.
ip netns exec "$P-lb" conntrack -E -e NEW -p tcp -m "$MARK/0xffff0000" >"$EV" 2>/dev/null &
T_PIDS+=($!)

coproc LB { exec "$LUABPF" --netns "$P-lb" run "$LUABPF_SOURCE_DIR/tests/scale_out/ct_driver.lua" "$SVC" "$MODE" 2>&1; }
LBPID=$LB_PID
ready=
while read -r -t 20 line <&"${LB[0]}"; do
  echo "driver: $line"
  case "$line" in "ready conntrack"*) ready=1; break ;; ERROR*) break ;; esac
done
[ -n "$ready" ] || { t_fail "the ct_sync service did not start"; t_done; }
maps=$(ip netns exec "$P-lb" nft list table inet "luabpf_lb_$SVC")
t_contains "$maps" "10.10.0.11 . 8080" "map be4 holds b1's NAT target"
t_contains "$maps" "fd10::11 . 8080" "map be6 holds b1's IPv6 target"
t_contains "$maps" "10.10.0.11 . 5353" "map be4 holds the UDP VIP's b1 target"
t_contains "$maps" ": 10.10.0.2," "map snat4 holds the SNAT address"

lb_ct_spread ct_sync
list=$CT_LIST bad=$CT_BAD
[ -z "$bad" ] && t_pass "every entry: client -> VIP:80, DNAT to a backend:8080, SNAT to 10.10.0.2" ||
  t_fail "entries with the wrong NAT:"$'\n'"$bad"
# Each entry's backend (its mark) is the one its DNAT goes to.
wrong=$(sed -nE 's/.*src=10\.10\.0\.1([1-3]) dst=10\.10\.0\.2 .*mark=([0-9]+).*/\1 \2/p' <<<"$list" |
  awk -v m="$MARK" '$2 - m != $1 - 1' | wc -l)
t_eq "$wrong" 0 "entries whose mark names another backend than their DNAT"
l6=$(ct -L -f ipv6 -p tcp -m "$MARK/0xffff0000")
t_contains "$l6" "dst=fd10::2 sport=8080" "IPv6 entries SNAT to fd10::2 and DNAT to port 8080"

# The events conntrackd listens to: one NEW per connection (bpf_ct_alloc's entries raise none).
t_wait 5 sh -c "[ \$(grep -c 'dport=80 ' '$EV') -ge 42 ]" &&
  t_pass "a NEW event for each of the 42 connections" ||
  t_fail "NEW events for the service's entries: $(grep -c 'dport=80 ' "$EV" || true) of 42"

out=$(ip netns exec "$P-cl" "$PY" "$UDP" ask 10.10.100.1 53 12 3)
echo "UDP: $out"
t_eq "$(json 'd["lost"]' "$out")" 0 "UDP datagrams lost"
t_eq "$(json 'all(len(set(f)) == 1 and len(f) == 3 for f in d["flows"])' "$out")" True "each UDP flow stayed on one backend"
t_contains "$(ct -L -p udp -m "$MARK/0xffff0000")" "sport=5353" "UDP entries DNAT to port 5353"

# Long-lived connections while the pool changes: b4 is a new id, its target
# must be in the map before Maglev names it; b2 removed with flush.
lb_ct_pool_change 1
t_contains "$(ip netns exec "$P-lb" nft list map inet "luabpf_lb_$SVC" be4)" "10.10.0.14 . 8080" "b4's target added to the map"
out=$(client spread 10.10.100.1 80 20)
echo "after the changes: $out"
t_eq "$(json 'd["errors"]' "$out")" 0 "new connections after the pool changes failed"
t_eq "$(json 'd.get("b4", 0) > 0 and d.get("b1", 0) == 0 and d.get("b2", 0) == 0' "$out")" True \
  "new connections reach b4 (by its map element), none the drained b1 or removed b2"
t_eq "$(ct -L -f ipv4 -m $((MARK + 1)) | grep -c ESTABLISHED || true)" 0 "b2's established entries after the flush"

if [ "$MODE" = fast ]; then
  lb_ct_reasons ct_fast "established packets to backends sent from XDP (ct_fast)" \
    ct_fast_reply "backends' answers sent back from XDP (ct_fast_reply)"
fi
lb_ct_close
t_done
