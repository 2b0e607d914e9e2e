# SPDX-License-Identifier: MIT
# The packet fuzzer (tests/fuzz/fuzz.py) over every data plane test_run can
# drive: the balancer (NAT, DSR, and the tunnel modes ipip and gue), the conntrack table's tc program and XDP
# fast path, the filter. Fixed seeds, FUZZ_PACKETS frames per program
# (default 20000); every output parsed and checked by scapy, the reason
# counters summed against the verdicts. The figures are in the log.
source "$LUABPF_SOURCE_DIR/tests/lb/lb_packets_env.sh"

rc=0
$PY "$LUABPF_SOURCE_DIR/tests/fuzz/fuzz.py" --luabpf "$LUABPF" --netns "$N" --iface lbp0 \
  --service "fz$T_ID" --packets "${FUZZ_PACKETS:-20000}" --seeds "${FUZZ_SEEDS:-1}" || rc=$?
t_eq "$rc" 0 "fuzz.py exit status"
left=$(find /sys/fs/bpf -name "*fz$T_ID*" 2>/dev/null || true)
t_eq "$left" "" "nothing of the services left under /sys/fs/bpf"
[ -z "$left" ] || rm -rf $left
t_done
