# SPDX-License-Identifier: MIT
# scripts/examples/tc_stats.lua on a veth in a namespace: the exposition's
# counters equal the traffic the test sends (exact packets and bytes per
# protocol, direction and peer), promtool accepts it, the report prints it,
# and nothing stays attached afterwards.
source "$LUABPF_SOURCE_DIR/tests/lib.sh"
t_netns A
t_netns B
t_veth "$A" va 10.77.0.1/24 "$B" vb 10.77.0.2/24
# No IPv6 on the link: router/neighbour solicitations would add packets.
for ns in "$A" "$B"; do ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1; done
OUT=$(mktemp)
trap 'rm -f "$OUT"; t_cleanup' EXIT

"$LUABPF" run "$LUABPF_SOURCE_DIR/scripts/examples/tc_stats.lua" --iface va --netns "$A" \
  --listen 127.0.0.1:0 --interval 0.5 >"$OUT" 2>&1 &
PID=$!
T_PIDS+=("$PID")
t_wait 10 grep -q "metrics on http" "$OUT" || { cat "$OUT"; t_fail "tc_stats did not start"; t_done; }
URL=$(sed -n 's/^metrics on \(http[^ ]*\)$/\1/p' "$OUT")

# 5 pings A -> B (echo request out of va, reply in), 7 UDP datagrams of 100
# bytes B -> A (in), ARP resolved first so its packets are known too.
# No wait: ping returns once the reply has passed tc ingress on va (the ARP
# exchange before it), and a scrape reads the maps as they are.
ip netns exec "$A" ping -c 1 -W 2 10.77.0.2 >/dev/null
before=$(curl -sf "$URL")
ip netns exec "$A" ping -c 5 -i 0.05 -s 56 -W 2 10.77.0.2 >/dev/null
# A listener in A takes the datagrams, so A sends no ICMP port unreachable back.
ip netns exec "$A" "$PY" -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.77.0.1", 9999)); s.settimeout(5)
for _ in range(7): s.recv(200)' &
RX=$!
t_wait 5 sh -c "ip netns exec $A ss -Hlun 'sport = :9999' | grep -q 9999"
ip netns exec "$B" "$PY" -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(7): s.sendto(b"x" * 100, ("10.77.0.1", 9999))'
# Received in A: they have passed tc ingress (the pings' replies did before ping returned).
wait "$RX" || t_fail "A did not receive the 7 datagrams"
after=$(curl -sf "$URL")

# delta METRIC LABELS: the counter's increase between the two scrapes.
val() { grep -F "$2{$3} " <<<"$1" | awk '{print $2}' | head -1; }
delta() { echo $(( $(val "$after" "$1" "$2" || echo 0) - $( (val "$before" "$1" "$2") | grep . || echo 0) )); }
L='interface="va"'
# ICMP echo: 14 (eth) + 20 (ip) + 8 (icmp) + 56 = 98 bytes a frame.
t_eq "$(delta luabpf_tc_packets_total "$L,direction=\"egress\",l3=\"ipv4\",proto=\"icmp\"")" 5 "icmp packets out"
t_eq "$(delta luabpf_tc_bytes_total "$L,direction=\"egress\",l3=\"ipv4\",proto=\"icmp\"")" 490 "icmp bytes out"
t_eq "$(delta luabpf_tc_packets_total "$L,direction=\"ingress\",l3=\"ipv4\",proto=\"icmp\"")" 5 "icmp packets in"
# UDP: 14 + 20 + 8 + 100 = 142 bytes a frame.
t_eq "$(delta luabpf_tc_packets_total "$L,direction=\"ingress\",l3=\"ipv4\",proto=\"udp\"")" 7 "udp packets in"
t_eq "$(delta luabpf_tc_bytes_total "$L,direction=\"ingress\",l3=\"ipv4\",proto=\"udp\"")" 994 "udp bytes in"
t_eq "$(delta luabpf_tc_peer_packets_total "$L,direction=\"ingress\",peer=\"10.77.0.2\"")" 12 "packets in from 10.77.0.2"
t_eq "$(delta luabpf_tc_peer_bytes_total "$L,direction=\"ingress\",peer=\"10.77.0.2\"")" $((5 * 98 + 994)) "bytes in from 10.77.0.2"
t_contains "$after" 'luabpf_prog_runs_total{prog="tc_stats_ingress"' "program run counts exported"
if promtool check metrics <<<"$after" >/dev/null 2>&1; then t_pass "promtool check metrics"; else
  t_fail "promtool: $(promtool check metrics <<<"$after" 2>&1)"; fi

# The printed report has the same rows.
t_wait 5 grep -q "ingress  ipv4   udp" "$OUT" || true
t_contains "$(cat "$OUT")" "ingress  ipv4   udp" "report has a udp row"
t_contains "$(cat "$OUT")" "10.77.0.2" "report lists the peer"

kill -INT "$PID"; wait "$PID" || t_fail "tc_stats exited with $?"
T_PIDS=()
t_contains "$(cat "$OUT")" "totals" "totals printed at exit"
t_eq "$(ip netns exec "$A" bpftool net show dev va | grep -c tc_stats || true)" 0 "nothing left attached"
t_done
