# SPDX-License-Identifier: MIT
# The load balancer's exporter in the lab: per-VIP and per-backend counters in
# the exposition equal the packets the client sends through the balancer
# (exact counts, bytes and new flows), verdicts are counted, promtool accepts
# it; then `luabpf top` in a tmux pseudo-terminal shows the rate of steady
# traffic, changes sort on a key and quits on q, and prints plain lines when
# its stdout is not a terminal.
source "$LUABPF_SOURCE_DIR/tests/lb/lb_env.sh"
lab_up "$P" 2
TMUX_S="lbt-top-$T_ID"
cleanup() {
  tmux kill-session -t "$TMUX_S" 2>/dev/null || true
  [ -n "${SENDER:-}" ] && kill "$SENDER" 2>/dev/null || true
  lb_env_cleanup
}
trap cleanup EXIT

"$LUABPF" --netns "$P-lb" run "$LUABPF_SOURCE_DIR/tests/metrics/lb_exporter.lua" "$SVC" >"$LBOUT" 2>&1 &
LBPID=$!
t_wait 15 grep -q "metrics on http" "$LBOUT" || { cat "$LBOUT"; t_fail "the service did not start"; t_done; }
URL=$(sed -n 's/^metrics on \(http[^ ]*\)$/\1/p' "$LBOUT")
scrape() { "$LUABPF" --netns "$P-lb" -e "
  require('luabpf._http').get('$URL', function(r, e)
    if not r then io.stderr:write(e, '\n') os.exit(1) end
    io.stdout:write(r.body) end)"; }

# 3 UDP flows (source ports) x 10 datagrams of 100 bytes to the VIP.
# Run in a subshell: exec makes $! the sender itself, so kill stops it.
send_udp() { # FLOWS PER_FLOW RATE_PPS
  exec ip netns exec "$P-cl" "$PY" -c '
import socket, sys, time
flows, n, rate = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(flows)]
# Paced on the clock: packet k leaves at k / rate s, a late wake-up catches
# up, so any second of it carries ~rate packets however busy the machine is.
t0, k = time.monotonic(), 0
for i in range(n):
    for s in socks:
        s.sendto(b"x" * 100, ("10.10.100.1", 5353))
        k += 1
        if rate:
            d = t0 + k / rate - time.monotonic()
            if d > 0: time.sleep(d)' "$@"
}
# The client's first packet waits for ARP: resolve the gateway first.
ip netns exec "$P-cl" ping -c 1 -W 2 10.10.0.2 >/dev/null
(send_udp 3 10 0)
val() { grep -F "$1" <<<"$M" | awk '{print $NF}' | head -1; }
V='service="'$SVC'",vip="dns",addr="10.10.100.1",port="5353",proto="udp",mode="dsr"'
# The datagrams cross the balancer after sendto returns: scrape until all 30 are counted.
counted() { M=$(scrape) && [ "$(val "luabpf_lb_vip_packets_total{$V} ")" -ge 30 ]; }
t_wait 10 counted || true # the checks below say what was counted
M=$(scrape)
t_eq "$(val "luabpf_lb_vip_packets_total{$V} ")" 30 "VIP packets"
t_eq "$(val "luabpf_lb_vip_bytes_total{$V} ")" $((30 * 142)) "VIP bytes (30 frames of 142)"
t_eq "$(val "luabpf_lb_vip_new_flows_total{$V} ")" 3 "VIP new flows"
b1=$(val "luabpf_lb_backend_packets_total{service=\"$SVC\",vip=\"dns\",backend=\"b1\",addr=\"10.10.0.11\"} ")
b2=$(val "luabpf_lb_backend_packets_total{service=\"$SVC\",vip=\"dns\",backend=\"b2\",addr=\"10.10.0.12\"} ")
t_eq "$((b1 + b2))" 30 "backend packets add up ($b1 + $b2)"
t_eq $(( b1 % 10 + b2 % 10 )) 0 "each flow's 10 packets went to one backend"
f1=$(val "luabpf_lb_backend_new_flows_total{service=\"$SVC\",vip=\"dns\",backend=\"b1\",addr=\"10.10.0.11\"} ")
f2=$(val "luabpf_lb_backend_new_flows_total{service=\"$SVC\",vip=\"dns\",backend=\"b2\",addr=\"10.10.0.12\"} ")
t_eq "$((f1 + f2))" 3 "backend new flows add up"
t_eq "$(val "luabpf_lb_verdict_packets_total{service=\"$SVC\",verdict=\"forwarded\"} ")" 30 "forwarded verdicts"
t_eq "$(val "luabpf_lb_backend_state{service=\"$SVC\",vip=\"dns\",backend=\"b1\",addr=\"10.10.0.11\",state=\"active\"} ")" 1 "b1 active"
t_eq "$(val "luabpf_lb_backend_weight{service=\"$SVC\",vip=\"web\",backend=\"b2\",addr=\"10.10.0.12\"} ")" 1 "b2 weight"
t_contains "$M" 'luabpf_prog_runs_total{prog="xdp_lb"' "the data plane's run count"
if promtool check metrics <<<"$M" >/dev/null 2>&1; then t_pass "promtool check metrics"; else
  t_fail "promtool: $(promtool check metrics <<<"$M" 2>&1)"; fi

# Steady traffic: 1 flow at ~40 packets/s; top should show about that.
send_udp 1 600 40 &
SENDER=$!
tmux new-session -d -s "$TMUX_S" -x 160 -y 30 "$LUABPF --netns $P-lb top $SVC --interval 1; echo top-exited=\$?; sleep 30" # the pane stays to be read
pane() { tmux capture-pane -p -t "$TMUX_S"; }
# Rates carry their unit ("40.0 pps"), counts their separators ("1,234").
dns_pps() { pane | awk -v s="$SVC/dns" '$1 == s { for (i = 2; i <= NF; i++) if ($i == "pps") print $(i-1) }' | head -1; }
dns_packets() { pane | awk -v s="$SVC/dns" '$1 == s { gsub(",", "", $NF); print $NF }' | head -1; }
t_wait 10 sh -c "tmux capture-pane -p -t $TMUX_S | grep -q 'VIP / BACKEND'" || t_fail "top did not draw: $(pane)"
# A refresh whose whole interval had the sender going: one that shows more
# than the first 30 packets, then the next one (PACKETS changes).
sending() { p1=$(dns_packets) && [ "${p1:-0}" -gt 30 ]; }
t_wait 15 sending || t_fail "top never showed the steady traffic: $(pane)"
refreshed() { [ "$(dns_packets)" != "$p1" ]; }
t_wait 5 refreshed || t_fail "top did not refresh within 5 s: $(pane)"
rate=$(dns_pps)
echo "top shows $SVC/dns at ${rate:-?} packets/s:"; pane | head -12
# Between 20 and 60 (the sender keeps ~40 in any second; top's interval is
# measured between its fetches, not at the counters).
awk -v r="${rate:-0}" 'BEGIN { exit !(r >= 20 && r <= 60) }' && t_pass "VIP rate $rate pps (sent ~40)" \
  || t_fail "VIP rate '${rate}' not near 40 pps"
t_contains "$(pane | grep "^$SVC/dns ")" "$rate pps" "the rate is printed with its unit"
[[ "$rate" =~ ^[0-9]+(\.[0-9]+)?$ && ${#rate} -le 4 ]] && t_pass "3 significant digits ($rate)" || t_fail "rate '$rate' is not 3 significant digits"
brow=$(pane | grep -E '^  b[12] ' | awk '{ for (i = 2; i <= NF; i++) if ($i == "pps" && $(i-1) != "0") { print; break } }' | head -1)
t_contains "$brow" "active" "a backend row carries the flow's rate and state: $brow"
t_contains "$(pane)" "sort: packets" "sorted by packets"
tmux send-keys -t "$TMUX_S" n
t_wait 3 sh -c "tmux capture-pane -p -t $TMUX_S | grep -q 'sort: name'" && t_pass "key n sorts by name" || t_fail "sort key: $(pane)"
tmux send-keys -t "$TMUX_S" q
t_wait 3 sh -c "tmux capture-pane -p -t $TMUX_S | grep -q 'top-exited=0'" \
  && t_pass "q quits (status 0)" || t_fail "top still running after q: $(pane)"
kill "$SENDER" 2>/dev/null || true; wait "$SENDER" 2>/dev/null || true; SENDER=

# Not a terminal: plain blocks, then exit after --count.
plain=$("$LUABPF" --netns "$P-lb" top "$URL" --interval 0.3 --count 2 | cat)
t_contains "$plain" "luabpf top  $URL" "plain header"
t_eq "$(grep -c 'VIP / BACKEND' <<<"$plain")" 2 "two plain refreshes"
t_eq "$(grep -c $'\e' <<<"$plain")" 0 "no escape sequences in plain mode"

kill -INT "$LBPID"; wait "$LBPID" || t_fail "the service exited with $?"
LBPID=
t_eq "$(ls /run/luabpf/metrics/ 2>/dev/null | grep -c "^$SVC$" || true)" 0 "endpoint registration removed"
t_done
