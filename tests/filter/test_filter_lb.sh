# SPDX-License-Identifier: MIT
# The filter and the load balancer chained on the balancer's eth0 in the LB
# lab (tests/filter/filter_lb.lua): connections through the VIP work through
# both programs, a deny added while they run stops the client at once and
# counts it on its entry, and removing it lets the client back in.
source "$LUABPF_SOURCE_DIR/tests/lb/lb_env.sh"
lab_up "$P" 2
"$LUABPF" --netns "$P-lb" run "$LUABPF_SOURCE_DIR/tests/filter/filter_lb.lua" "$SVC" >"$LBOUT" 2>&1 &
LBPID=$!
t_wait 10 grep -q ready "$LBOUT" || { cat "$LBOUT" >&2; t_fail "filter and LB did not start"; t_done; }
ip -n "$P-lb" -d link show eth0 | grep -q "prog/xdp.*name xdp_filter" && t_pass "xdp_filter attached" \
  || t_fail "xdp_filter is not what runs on eth0: $(ip -n "$P-lb" -d link show eth0)"

out=$(client spread 10.10.100.1 80 200)
echo "through the chain: $out"
t_eq "$(json 'd["errors"]' "$out")" 0 "failed connections through filter -> LB"
t_eq "$(json 'd.get("b1", 0) > 40 and d.get("b2", 0) > 40' "$out")" True "both backends answered"

kill -USR1 "$LBPID"
t_wait 5 grep -q denied "$LBOUT" || t_fail "no deny"
out=$(client spread 10.10.100.1 80 3 || true)
echo "denied: $out"
t_eq "$(json 'd["errors"]' "$out")" 3 "connections while the client is denied"

kill -USR2 "$LBPID"
t_wait 5 grep -q allowed "$LBOUT" || t_fail "no allow"
out=$(client spread 10.10.100.1 80 50)
t_eq "$(json 'd["errors"]' "$out")" 0 "failed connections after the deny is removed"

lb_stop
t_eq "$LBRC" 0 "exit code"
line=$(grep '^filter ' "$LBOUT")
echo "$line"
client_drops=$(sed -n 's/^allowed (client entry dropped \([0-9]*\))/\1/p' "$LBOUT")
fwd=$(sed -n 's/.* forwarded=\([0-9]*\).*/\1/p' <<<"$line")
reply=$(sed -n 's/.* reply=\([0-9]*\).*/\1/p' <<<"$line")
t_eq "$([ "${client_drops:-0}" -ge 3 ] && echo yes)" yes "the deny entry counted the client's SYNs ($client_drops)"
t_eq "$([ "${fwd:-0}" -ge 1000 ] && [ "${reply:-0}" -ge 1000 ] && echo yes)" yes \
  "the LB saw both directions through the filter (forwarded $fwd, reply $reply)"
ip -n "$P-lb" link show eth0 | grep -q xdp && t_fail "XDP still attached" || t_pass "XDP detached at exit"
t_done
