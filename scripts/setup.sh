#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install what luabpf needs to build, run and test on Debian 12 (idempotent),
# and mount bpffs where it is missing. Run as root.
#   setup.sh           build, run and test
#   setup.sh --bench   also what the benchmarks compare against (HAProxy, nftables, nginx)
set -euo pipefail

BUILD=(build-essential cmake pkg-config clang llvm bpftool
       libbpf-dev libelf-dev zlib1g-dev libluajit-5.1-dev luajit libuv1-dev lua-luv-dev libedit2
       file) # CPack's DEB generator (dpkg-shlibdeps) runs file on the binary
# What the tests drive: namespaces, traffic, packet crafting, capabilities.
TEST=(iproute2 ethtool tcpdump wrk nginx-light iputils-ping netcat-openbsd socat curl iperf3 python3-scapy libcap2-bin procps hping3 tmux
      prometheus debootstrap # promtool: tests/metrics; debootstrap: tests/packaging
      conntrack nftables # the LB conntrack flow table: its NAT hooks, its entries in tests
      bird2 # tests/scale_out: BGP routes to the VIP from each balancer node (ECMP)
      conntrackd # tests/scale_out: conntrack entries synced between balancer nodes (FTFW)
      systemd-container) # systemd-nspawn: tests/packaging/test_systemd boots the unit under a real systemd
# The other balancers and servers bench/lb_e2e.sh measures luabpf against.
BENCH=(nftables haproxy nginx-light)
[ "${1:-}" = "--bench" ] && TEST+=("${BENCH[@]}")

need=()
for p in "${BUILD[@]}" "${TEST[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! mountpoint -q /sys/fs/bpf; then
  mount -t bpf bpf /sys/fs/bpf
  echo "setup: mounted bpffs on /sys/fs/bpf"
fi
# Tracepoints are found through tracefs (exec_trace, tracepoint tests).
if [ -d /sys/kernel/tracing ] && [ ! -d /sys/kernel/tracing/events ]; then
  mount -t tracefs tracefs /sys/kernel/tracing && echo "setup: mounted tracefs on /sys/kernel/tracing"
fi
if [ ! -r /sys/kernel/btf/vmlinux ]; then
  echo "setup: ERROR: /sys/kernel/btf/vmlinux is missing: luabpf needs a kernel built with CONFIG_DEBUG_INFO_BTF" >&2
  exit 3
fi
