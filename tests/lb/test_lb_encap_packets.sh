# SPDX-License-Identifier: MIT
# The balancer's tunnel modes (ipip, gue) packet by packet through test_run:
# scapy checks every encapsulation (4in4, 6in6, 4in6; GUE over IPv4 and IPv6;
# TCP and UDP inside), the outer headers and their checksums, the inner
# packet byte for byte, and the ICMP / ICMPv6 "too big" a packet gets when the
# path's MTU has no room for the tunnel (tests/lb/lb_encap_packets.py).
# Backends sit behind routers (10.10.0.11, .12): the outer destination is the
# backend, the MAC the router's; the path through .12 has MTU 1400 (a locked route
# MTU: bpf_fib_lookup reports a route's MTU only when locked, else the device's).
source "$LUABPF_SOURCE_DIR/tests/lb/lb_packets_env.sh"

ip -n "$N" route add 10.20.0.0/24 via 10.10.0.11
ip -n "$N" route add fd20::/64 via fd10::11
ip -n "$N" route add 10.30.0.0/24 via 10.10.0.12 mtu lock 1400
ip -n "$N" route add fd30::/64 via fd10::12 mtu lock 1400

lb_packets_run lb_encap_packets "enc$T_ID" "*enc$T_ID*"
t_done
