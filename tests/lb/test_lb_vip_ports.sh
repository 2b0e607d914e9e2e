# SPDX-License-Identifier: MIT
# The data plane finds a packet's VIP in vip_ports (one lookup: the address's
# flags and up to 8 of its VIPs' records); an address with more VIPs finds
# the others in vips. Twelve DSR VIPs on one address under test_run: all
# twelve forward, the ports around them pass, and after four are removed
# their ports pass and the eight others still forward. (With only vip_ports
# searched, ports 88-91 would pass.) Two VIPs then take freed ids (port 93;
# port 80 again, as NAT to 8080): flows left by the removed VIPs must not be
# forwarded by the flow table's fast path under the ids' new owners. With
# the address's vip_ports record deleted, the fast path alone (vip_hint,
# vip_ids) must still forward established and new flows: it is taken. NAT
# replies are translated back, also without the SNAT address's record (where
# vip_hint names no VIP, nat alone decides). The same for an IPv6 VIP. VIPs
# whose ids are past vip_ids (258 VIPs) still forward.
source "$LUABPF_SOURCE_DIR/tests/lib.sh"

t_netns NS
ip -n "$NS" link add eth0 type veth peer name peer0
ip -n "$NS" addr add 10.10.0.2/24 dev eth0
ip -n "$NS" link set eth0 up
ip -n "$NS" link set peer0 up
ip netns exec "$NS" sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv4.conf.eth0.forwarding=1
ip -n "$NS" neigh add 10.10.0.11 lladdr 02:00:00:00:00:11 dev eth0 nud permanent
ip -n "$NS" route add 10.1.0.0/16 via 10.10.0.1
ip -n "$NS" neigh add 10.10.0.1 lladdr 02:00:00:00:00:01 dev eth0 nud permanent
ip -n "$NS" addr add fd00::2/64 dev eth0 nodad
ip netns exec "$NS" sysctl -qw net.ipv6.conf.all.forwarding=1
ip -n "$NS" neigh add fd00::11 lladdr 02:00:00:00:00:11 dev eth0 nud permanent

out=$("$LUABPF" --netns "$NS" run "$LUABPF_SOURCE_DIR/tests/lb/lb_vip_ports.lua" eth0 2>&1) || {
  t_fail "driver failed: $out"; t_done; }
all="79=XDP_PASS"
for port in $(seq 80 91); do all+=" $port=XDP_TX>$port"; done
all+=" 92=XDP_PASS 93=XDP_PASS"
after="79=XDP_PASS 80=XDP_PASS 81=XDP_PASS 82=XDP_PASS 83=XDP_PASS"
for port in $(seq 84 91); do after+=" $port=XDP_TX>$port"; done
after+=" 92=XDP_PASS 93=XDP_PASS"
readded="79=XDP_PASS 80=XDP_TX>8080 81=XDP_PASS 82=XDP_PASS 83=XDP_PASS"
for port in $(seq 84 91); do readded+=" $port=XDP_TX>$port"; done
readded+=" 92=XDP_PASS 93=XDP_TX>93"
t_eq "$(sed -n 1p <<<"$out")" "$all" "twelve VIPs on one address: each port forwards, the others pass"
t_eq "$(sed -n 2p <<<"$out")" "$after" "four removed: their ports pass, the other eight forward"
t_eq "$(sed -n 3p <<<"$out")" "$readded" "ids reused: old flows of other VIPs pass, port 80 goes by its new VIP (NAT)"
t_eq "$(sed -n 4p <<<"$out")" "$readded" "the same again, established flows on the fast path"
t_eq "$(sed -n 5p <<<"$out")" "$readded" "vip_ports emptied: established flows still forward by vip_ids"
t_eq "$(sed -n 6p <<<"$out")" "$readded" "vip_ports emptied: new flows to a VIP vip_hint names forward too"
reply="XDP_TX>10.10.100.1:80>10.1.0.5:4000 XDP_TX>10.10.100.1:80>10.1.0.5:4001 XDP_PASS"
t_eq "$(sed -n 7p <<<"$out")" "nat $reply $reply" \
  "NAT replies go back to their clients from the VIP, with and without the SNAT address's vip_ports record"
t_eq "$(sed -n 8p <<<"$out")" "v6 XDP_TX XDP_PASS XDP_TX XDP_TX XDP_PASS" \
  "IPv6 VIP: forwarded, other port passes; without its vip_ports record, established and new flows still forward"
t_eq "$(sed -n 9p <<<"$out")" "ids XDP_TX XDP_TX XDP_TX XDP_TX" \
  "VIP ids 254-257 (256 and 257 past vip_ids: no fast-path record) forward their first packet"
t_done
