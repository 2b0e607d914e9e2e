# SPDX-License-Identifier: MIT
# The XDP load balancer, packet by packet through test_run: scapy crafts every
# case (each rewrite in both modes, IPv4/IPv6, TCP/UDP, NAT replies, and the
# malformed table) and checks every output byte, checksum, verdict and counter
# (tests/lb/lb_packets.py). bpf_fib_lookup answers from a namespace holding
# the balancer's addresses and permanent neighbour entries (lb_packets_env.sh).
source "$LUABPF_SOURCE_DIR/tests/lb/lb_packets_env.sh"

lb_packets_run lb_packets "pkt$T_ID" "*pkt$T_ID*"
t_done
