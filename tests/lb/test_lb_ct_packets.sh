# SPDX-License-Identifier: MIT
# The conntrack-mode load balancer (tc program) through test_run: the LRU
# mode's malformed-input table with tc verdicts, and the entries new flows make
# (checked with the conntrack tool), replies and new-flow failures
# (tests/lb/lb_ct_packets.py). bpf_fib_lookup answers from a namespace holding
# the balancer's addresses and permanent neighbour entries (lb_packets_env.sh).
source "$LUABPF_SOURCE_DIR/tests/lb/lb_packets_env.sh"

lb_packets_run lb_ct_packets "ctctpkt$T_ID" "*ctpkt$T_ID*"
t_done
