# SPDX-License-Identifier: MIT
# Helpers the bench/*.sh scripts share: `. "$(dirname "$0")/lib.sh"`, which
# also sets BENCH (this directory, absolute).
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# bench_fib_netns NS: make namespace NS where the load balancer's
# bpf_fib_lookup answers under test_run: eth0 (a veth) with the balancer's
# address 10.10.0.2/24, forwarding on (bpf_fib_lookup refuses otherwise) and
# permanent neighbour entries for the client (10.10.0.1) and the backends
# (10.10.0.11-13), so every lookup finds a MAC; the same in IPv6 (fd00::2/64,
# backends fd00::11-13, the same MACs). The caller removes NS (trap).
bench_fib_netns() {
  local ns=$1 i
  ip netns add "$ns"
  ip -n "$ns" link add eth0 type veth peer name peer0
  ip -n "$ns" addr add 10.10.0.2/24 dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set peer0 up
  ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv4.conf.eth0.forwarding=1
  ip -n "$ns" neigh add 10.10.0.1 lladdr 02:00:00:00:00:01 dev eth0 nud permanent
  for i in 1 2 3; do
    ip -n "$ns" neigh add "10.10.0.1$i" lladdr "02:00:00:00:00:1$i" dev eth0 nud permanent
  done
  # The misses' sources (10.1.0.0 to 10.5.255.255) route via the client.
  ip -n "$ns" route add 10.0.0.0/13 via 10.10.0.1
  ip -n "$ns" addr add fd00::2/64 dev eth0 nodad
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.forwarding=1
  for i in 1 2 3; do
    ip -n "$ns" neigh add "fd00::1$i" lladdr "02:00:00:00:00:1$i" dev eth0 nud permanent
  done
}

# bench_lab_init [BUILD_DIR [SECONDS [RUNS]]]: the start of the scripts that
# measure through the lab (scripts/lab.sh), whose first arguments these are:
# BUILD (absolute, default build; LAB_BUILD for lab.sh), DUR (5), RUNS (3),
# SRC and PY. The script then sources "$SRC/scripts/lab.sh" itself (its globals).
bench_lab_init() {
  BUILD=$(cd "${1:-build}" && pwd)
  DUR=${2:-5}
  RUNS=${3:-3}
  SRC=$(cd "$BENCH/.." && pwd)
  PY=/usr/bin/python3
  export LAB_BUILD=$BUILD
}

# bench_need NAME TOOL...: exit 2 naming the first TOOL missing.
bench_need() {
  local name=$1 t
  shift
  for t; do
    command -v "$t" >/dev/null || { echo "$name: $t is missing (scripts/setup.sh --bench installs it)" >&2; exit 2; }
  done
}
