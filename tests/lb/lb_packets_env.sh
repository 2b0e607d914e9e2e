# SPDX-License-Identifier: MIT
# Shared by test_lb_packets.sh and test_lb_ct_packets.sh: a namespace $N
# where bpf_fib_lookup answers for test_run, holding the balancer's addresses
# and permanent neighbour entries with known MACs.
source "$LUABPF_SOURCE_DIR/tests/lib.sh"
HERE="$LUABPF_SOURCE_DIR/tests/lb"

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

# lb_packets_run NAME SERVICE LEFTOVER: tests/lb/NAME.py drives NAME.lua in
# the namespace; it must pass, and nothing matching LEFTOVER may stay under
# /sys/fs/bpf: pin=false keeps the state in a temporary directory named after
# the service, gone once the service closed. (Other tests may use /sys/fs/bpf
# meanwhile.)
lb_packets_run() {
  local rc=0 left
  $PY "$HERE/$1.py" --luabpf "$LUABPF" --netns "$N" --iface lbp0 \
    --script "$HERE/$1.lua" --service "$2" || rc=$?
  t_eq "$rc" 0 "$1.py exit status"
  left=$(find /sys/fs/bpf -name "$3" 2>/dev/null || true)
  t_eq "$left" "" "nothing of the service left under /sys/fs/bpf"
  [ -z "$left" ] || rm -rf $left
}
