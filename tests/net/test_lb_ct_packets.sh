# SPDX-License-Identifier: MIT
# The conntrack-mode load balancer (tc program) through test_run: the LRU
# mode's malformed-input table with tc verdicts, and the entries new flows make
# (checked with the conntrack tool), replies and new-flow failures
# (tests/net/lb_ct_packets.py). bpf_fib_lookup answers from a namespace holding
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
$PY "$HERE/lb_ct_packets.py" --luabpf "$LUABPF" --netns "$N" --iface lbp0 \
  --script "$HERE/lb_ct_packets.lua" --service "ctctpkt$T_ID" || rc=$?
t_eq "$rc" 0 "lb_ct_packets.py exit status"
# pin=false keeps the state in a temporary directory named after the service:
# gone once the service closed. (Other tests may use /sys/fs/bpf meanwhile.)
left=$(find /sys/fs/bpf -name "*ctpkt$T_ID*" 2>/dev/null || true)
t_eq "$left" "" "nothing of the service left under /sys/fs/bpf"
[ -z "$left" ] || rm -rf $left
t_done
