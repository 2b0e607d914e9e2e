# SPDX-License-Identifier: MIT
# DSR across a router (issue 21): the client and the balancer share one
# subnet; backends b1 (10.21.0.0/24) and b2, b3 (10.22.0.0/24) sit behind a
# router namespace. The balancer sends each client packet in a tunnel (mode
# ipip, then gue), scripts/examples/decap.lua strips it on the backend, and
# the backend answers the client straight through the router.
#   - real HTTP through the VIP in both modes: 3,000 connections each, spread
#     within 10% of the weights 1:2:3; IPv6 in IPv6 and IPv4 in IPv6 deliver;
#   - the balancer sees none of the replies (an nft counter on its interface
#     for packets from the VIPs stays 0; a packet from the VIP sent to it on
#     purpose moves it);
#   - weights change and a backend is drained under 30 held keep-alive
#     connections: none is reset, each stays on its backend;
#   - health checks reach the routed backends: b3's server killed, b3 marked
#     DOWN, new connections avoid it;
#   - a request larger than the path MTU less the tunnel gets through: the
#     balancer's ICMP "fragmentation needed" lowers the client's path MTU;
#   - with GRO on at a backend, a bulk upload through ipip arrives whole.
source "$LUABPF_SOURCE_DIR/tests/lb/lb_env.sh"
DECAP="$LUABPF_SOURCE_DIR/scripts/examples/decap.lua"

LAB=$P
lab_bridge rt b1 b2 b3 # (scripts/lab.sh) the backends sit behind rt, linked below
lab_link rt 10.10.0.3 fd10::3
ip -n "$P-br" link set dev lb xdp obj "$LUABPF_BUILD_DIR/bpf/xdp_pass.bpf.o" sec xdp
for ns in lb rt; do
  ip netns exec "$P-$ns" sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv6.conf.all.forwarding=1
done
ip -n "$P-cl" route add 10.10.100.0/24 via 10.10.0.2
ip -n "$P-cl" -6 route add fd10:100::/64 via fd10::2
for net in 21 22; do
  ip -n "$P-lb" route add "10.$net.0.0/24" via 10.10.0.3
  ip -n "$P-lb" -6 route add "fd$net::/64" via fd10::3
done
# The router: b1 on its own link, b2 and b3 on a bridge.
ip -n "$P-rt" link add br1 type bridge
ip -n "$P-rt" addr add 10.22.0.1/24 dev br1
ip -n "$P-rt" addr add fd22::1/64 dev br1 nodad
ip -n "$P-rt" link set br1 up
backend() { # N NET
  local ns="$P-b$1" a4="10.$2.0.1$1" a6="fd$2::1$1"
  ip -n "$ns" link add eth0 type veth peer name "b$1" netns "$P-rt"
  ip -n "$ns" addr add "$a4/24" dev eth0
  ip -n "$ns" addr add "$a6/64" dev eth0 nodad
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  ip netns exec "$ns" ethtool -K eth0 tx off >/dev/null
  ip -n "$ns" route add default via "10.$2.0.1"
  ip -n "$ns" -6 route add default via "fd$2::1"
  for v in 10.10.100.1 10.10.100.2 10.10.100.3; do ip -n "$ns" addr add "$v/32" dev lo; done
  ip -n "$ns" addr add fd10:100::1/128 dev lo
  ip netns exec "$P-rt" ethtool -K "b$1" tx off >/dev/null
  ip -n "$P-rt" link set "b$1" up
  ip netns exec "$ns" "$LAB_PY" "$LAB_SRC/scripts/lab_http.py" "b$1" 8080 >/dev/null 2>&1 &
  LAB_PIDS+=($!)
  "$LUABPF" --netns "$ns" run "$DECAP" --iface eth0 --addr "$a4,$a6" --interval 1 \
    --listen 127.0.0.1:0 >"$TMPD/decap-b$1" 2>&1 &
  LAB_PIDS+=($!)
}
TMPD=$(mktemp -d); T_DIRS+=("$TMPD")
backend 1 21
ip -n "$P-rt" addr add 10.21.0.1/24 dev b1
ip -n "$P-rt" addr add fd21::1/64 dev b1 nodad
backend 2 22
backend 3 22
ip -n "$P-rt" link set b2 master br1
ip -n "$P-rt" link set b3 master br1
for i in 1 2 3; do
  t_wait 10 sh -c "ip netns exec $P-b$i ss -Hltn 'sport = :8080' | grep -q LISTEN" || t_fail "b$i's server did not start"
  t_wait 10 grep -q "stripping" "$TMPD/decap-b$i" || { cat "$TMPD/decap-b$i"; t_fail "b$i's decap.lua did not start"; }
done
# The balancer reaches every backend through the router.
for a in 10.21.0.11 10.22.0.12 10.22.0.13 fd21::11 fd22::12; do
  t_wait 10 ip netns exec "$P-lb" ping -c1 -W1 "$a" >/dev/null || t_fail "the balancer can't reach $a"
done

# Replies from the VIPs that reach the balancer's interface (before the stack; XDP passes them).
ip netns exec "$P-lb" nft -f - <<'NFT'
table netdev encap_test {
  counter from_vip4 {
  }
  counter from_vip6 {
  }
  chain in {
    type filter hook ingress device eth0 priority 0;
    ip saddr 10.10.100.0/24 counter name from_vip4
    ip6 saddr fd10:100::/64 counter name from_vip6
  }
}
NFT
from_vip() { ip netns exec "$P-lb" nft -j list counter netdev encap_test "from_vip$1" |
  "$PY" -c "import json,sys; print([o['counter']['packets'] for o in json.load(sys.stdin)['nftables'] if 'counter' in o][0])"; }

write_conf() { # B1_WEIGHT B3_WEIGHT
  cat >"$CONF" <<LUA
service = "$SVC"
interface = "eth0"
local check = { type = "http", path = "/", interval = 0.5, timeout = 0.4, rise = 1, fall = 2 }
local function pool(w1, w3)
  return { { name = "b1", addr = "10.21.0.11", port = 8080, weight = w1 },
           { name = "b2", addr = "10.22.0.12", port = 8080, weight = 2 },
           { name = "b3", addr = "10.22.0.13", port = 8080, weight = w3 } }
end
vips = {
  { name = "ipip", addr = "10.10.100.1", port = 8080, mode = "ipip", check = check, -- encap_src: eth0's address
    backends = pool($1, $2) },
  { name = "gue", addr = "10.10.100.2", port = 8080, mode = "gue", encap_src = "10.10.0.2", gue_port = 6080,
    check = check, backends = pool(1, 3) },
  { name = "six", addr = "fd10:100::1", port = 8080, mode = "gue", encap_src = "fd10::2", backends = {
      { name = "b1", addr = "fd21::11" }, { name = "b2", addr = "fd22::12" } } },
  { name = "bulk", addr = "10.10.100.1", port = 5201, mode = "ipip", encap_src = "10.10.0.2", backends = {
      { name = "b1", addr = "10.21.0.11" } } },
  { name = "fourinsix", addr = "10.10.100.3", port = 8080, mode = "ipip", encap_src = "fd10::2", backends = {
      { name = "b1", addr = "fd21::11" }, { name = "b3", addr = "fd22::13" } } },
}
LUA
}
write_conf 1 3
lb_start --destroy --interval 0

for vip in 10.10.100.1 10.10.100.2; do
  mode=$([ "$vip" = 10.10.100.1 ] && echo ipip || echo gue)
  out=$(client spread "$vip" 8080 3000)
  echo "$mode: $out"
  t_eq "$(json 'd["errors"]' "$out")" 0 "$mode: failed connections of 3000"
  for b in 1 2 3; do
    t_eq "$(json "abs(d.get('b$b', 0) - 500 * $b) <= 0.10 * 500 * $b" "$out")" True \
      "$mode: b$b's share within 10% of weight $b/6 (got $(json "d.get('b$b', 0)" "$out") of 3000)"
  done
done
out=$(client spread fd10:100::1 8080 200)
echo "IPv6 in IPv6 (gue): $out"
t_eq "$(json 'd["errors"] == 0 and d.get("b1", 0) > 40 and d.get("b2", 0) > 40' "$out")" True \
  "IPv6 in IPv6 (gue): 200 connections, both backends answer"
out=$(client spread 10.10.100.3 8080 200)
echo "IPv4 in IPv6 (ipip): $out"
t_eq "$(json 'd["errors"] == 0 and d.get("b1", 0) > 40 and d.get("b3", 0) > 40' "$out")" True \
  "IPv4 in IPv6 (ipip): 200 connections, both backends answer"

t_eq "$(from_vip 4)/$(from_vip 6)" "0/0" "packets from the VIPs seen by the balancer (replies go straight to the client)"
ip netns exec "$P-b1" ping -c1 -W1 -I 10.10.100.1 10.10.0.2 >/dev/null 2>&1 || true
t_eq "$(from_vip 4)" 1 "a packet from the VIP sent to the balancer on purpose is counted (the counter works)"
t_wait 5 sh -c "grep -q 'ipip [1-9]' '$TMPD/decap-b1' && grep -q 'gue [1-9]' '$TMPD/decap-b1'" \
  && t_pass "b1's decap.lua counts what it stripped: $(tail -1 "$TMPD/decap-b1")" \
  || t_fail "b1's decap.lua counted no ipip/gue: $(cat "$TMPD/decap-b1")"

url=$(grep -o 'http://[^ ]*/metrics' "$TMPD/decap-b1" | head -1)
m=$(ip netns exec "$P-b1" curl -s "$url" || true)
t_eq "$(awk '/^luabpf_decap_packets_total\{interface="eth0",reason="gue"\}/ { print ($2 > 0) }' <<<"$m")" 1 \
  "b1's decap.lua exports its gue counter (luabpf_decap_packets_total) above 0"

# GRO on at the backend: the kernel merges IPIP packets before tc sees them; the
# decapsulator strips the merged packet as one and TCP takes it (no checksum errors).
ip netns exec "$P-b1" ethtool -K eth0 gro on
ip netns exec "$P-b1" iperf3 -s -1 -B 10.10.100.1 >/dev/null 2>&1 &
T_PIDS+=($!)
t_wait 5 sh -c "ip netns exec $P-b1 ss -Hltn 'sport = :5201' | grep -q LISTEN" || t_fail "iperf3 -s did not start"
got=$(ip netns exec "$P-cl" timeout 20 iperf3 -c 10.10.100.1 -t 2 -J 2>/dev/null |
  "$PY" -c "import json,sys; print(int(json.load(sys.stdin)['end']['sum_received']['bytes']))" || echo 0)
echo "bulk upload through ipip with GRO on at b1: $got bytes received"
t_eq "$([ "$got" -gt 10000000 ] && echo yes || echo no)" yes "a 2 s iperf3 upload through ipip (GRO on) arrives (> 10 MB)"
t_eq "$(ip netns exec "$P-b1" nstat -az TcpInCsumErrors | awk '/TcpInCsumErrors/ { print $2 }')" 0 \
  "TCP checksum errors at b1"

# Pool changes under held connections: b3's weight 3 -> 1, b1 drained (weight 0).
hold=$(mktemp); T_DIRS+=("$hold")
client hold 10.10.100.1 8080 30 6 >"$hold" &
HOLD=$!
lb_established 30 8080
m=$(wc -l <"$LBOUT")
write_conf 0 1
kill -HUP "$LBPID"
lb_wait_log "$m" 10 "reloaded|reload refused" || t_fail "no log line of the reload"
wait "$HOLD"
t_eq "$(json 'sum(c["errors"] for c in d)' "$(cat "$hold")")" 0 "held connections reset by the pool change"
t_eq "$(json 'max(len(c["backends"]) for c in d)' "$(cat "$hold")")" 1 "held connections that changed backend"
t_eq "$(json 'min(c["requests"] for c in d) > 10' "$(cat "$hold")")" True "every held connection kept being answered"
out=$(client spread 10.10.100.1 8080 300)
t_eq "$(json 'd["errors"] == 0 and d.get("b1", 0) == 0' "$out")" True "after the change: no new flow to drained b1 ($out)"

# Health checks to routed backends: kill b3's server.
m=$(wc -l <"$LBOUT")
for p in $(ip netns pids "$P-b3"); do
  tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q "lab_http.py b3 8080" && kill "$p"
done
# b3 is checked once per VIP: the gue VIP's own line is the one to wait for
# (the ipip VIP's may come first; under load, by a whole interval).
lb_wait_log "$m" 10 "VIP 'gue' backend 'b3' .* is DOWN" && t_pass "b3 marked DOWN by its health check through the router" \
  || { tail -20 "$LBOUT"; t_fail "b3 never marked down"; }
out=$(client spread 10.10.100.2 8080 300)
t_eq "$(json 'd["errors"] == 0 and d.get("b3", 0) == 0' "$out")" True "gue: b3 down, no connection fails or reaches it ($out)"

# Bigger than the path MTU less the tunnel: the client learns the MTU from our ICMP.
big=$(head -c 3000 /dev/zero | tr '\0' x)
ans=$(ip netns exec "$P-cl" curl -s -m 10 -H "X-Big: $big" http://10.10.100.2:8080/ || echo "curl failed")
t_contains "$ans" "b" "a 3 kB request through gue is answered ($ans)"
t_contains "$(ip -n "$P-cl" route get 10.10.100.2)" "mtu 1472" "the client's path MTU to the VIP is 1500 less GUE's 28 bytes"

lb_stop
t_eq "$LBRC" 0 "service exit code"
t_done
