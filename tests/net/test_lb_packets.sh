# SPDX-License-Identifier: MIT
# The XDP load balancer, packet by packet through test_run: scapy crafts every
# case (each rewrite in both modes, IPv4/IPv6, TCP/UDP, NAT replies, and the
# malformed table) and checks every output byte, checksum, verdict and counter
# (tests/net/lb_packets.py). bpf_fib_lookup answers from a namespace holding
# the balancer's addresses and permanent neighbour entries with known MACs.
source "$LUABPF_SOURCE_DIR/tests/lib.sh"
HERE="$LUABPF_SOURCE_DIR/tests/net"

t_netns N
# A veth pair wholly inside the namespace: only an interface with a carrier,
# an address and forwarding on for the FIB to route through.
ip -n "$N" link add lbp0 address 02:00:0a:0a:00:02 type veth peer name lbp1
ip -n "$N" link set lbp1 up
ip -n "$N" link set lbp0 up
ip -n "$N" addr add 10.10.0.2/24 dev lbp0
ip -n "$N" addr add fd10::2/64 dev lbp0 nodad
ip netns exec "$N" sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv6.conf.all.forwarding=1
# The client and backends b1, b2; 10.10.0.19 / fd10::19 (b9) stay unresolved.
for n in 1:01 11:0b 12:0c; do
  ip -n "$N" neigh add "10.10.0.${n%%:*}" lladdr "02:00:0a:0a:00:${n#*:}" dev lbp0 nud permanent
  ip -n "$N" neigh add "fd10::${n%%:*}" lladdr "02:00:0a:0a:00:${n#*:}" dev lbp0 nud permanent
done

rc=0
$PY "$HERE/lb_packets.py" --luabpf "$LUABPF" --netns "$N" --iface lbp0 \
  --script "$HERE/lb_packets.lua" --service "pkt$T_ID" || rc=$?
t_eq "$rc" 0 "lb_packets.py exit status"
# pin=false keeps the state in a temporary directory named after the service:
# gone once the service closed. (Other tests may use /sys/fs/bpf meanwhile.)
left=$(find /sys/fs/bpf -name "*pkt$T_ID*" 2>/dev/null || true)
t_eq "$left" "" "nothing of the service left under /sys/fs/bpf"
[ -z "$left" ] || rm -rf $left
t_done
