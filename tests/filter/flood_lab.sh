# SPDX-License-Identifier: MIT
# The flood lab of tests/filter/test_filter_flood.sh and bench/filter_flood.sh:
# client, attacker and server on one bridge. Source it, make the four
# namespaces, then: flood_lab_up BR CL ATK SRV XDP_PASS_OBJ
#
#   CL 10.20.0.1 --+
#   ATK 10.20.0.66 +-- bridge br0 (in BR) -- SRV 10.20.0.10 (eth0)

flood_lab_link() { # NS PORTNAME ADDR: eth0 in NS, its peer PORTNAME on br0
  ip -n "$1" link add eth0 type veth peer name "$2" netns "$FLOOD_BR"
  ip -n "$FLOOD_BR" link set "$2" master br0 up
  ip -n "$1" addr add "$3/24" dev eth0
  ip -n "$1" link set eth0 up
  ip -n "$1" link set lo up
  # XDP sees the bytes as sent: no partial checksums from veth offload.
  ip netns exec "$1" ethtool -K eth0 tx off >/dev/null
}

flood_lab_up() { # BR CL ATK SRV XDP_PASS_OBJ
  FLOOD_BR=$1
  ip -n "$1" link add br0 type bridge
  ip -n "$1" link set br0 up
  flood_lab_link "$2" pcl 10.20.0.1
  flood_lab_link "$3" patk 10.20.0.66
  flood_lab_link "$4" psrv 10.20.0.10
  # Native XDP_TX out of the server's veth needs a program on its peer.
  ip -n "$1" link set dev psrv xdp obj "$5" sec xdp
}
