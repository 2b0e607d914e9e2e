#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install, build, and run the demo: luabpf counting real traffic between two
# network namespaces it creates (and removes afterwards). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null

C=lbdemo-client-$$ S=lbdemo-server-$$
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  [ -n "${web:-}" ] && kill "$web" 2>/dev/null || true
  ip netns del "$C" 2>/dev/null || true
  ip netns del "$S" 2>/dev/null || true
}
trap cleanup EXIT

ip netns add "$C"; ip netns add "$S"
ip link add veth-c netns "$C" type veth peer name veth-s netns "$S"
ip -n "$C" addr add 10.99.0.1/24 dev veth-c; ip -n "$S" addr add 10.99.0.2/24 dev veth-s
ip -n "$C" link set veth-c up; ip -n "$S" link set veth-s up
ip -n "$C" link set lo up; ip -n "$S" link set lo up

echo "== a web server in namespace $S (10.99.0.2:8080)"
ip netns exec "$S" /usr/bin/python3 -m http.server 8080 --bind 10.99.0.2 >/dev/null 2>&1 &
web=$!

echo "== luabpf counting on veth-s in $S (Ctrl-C stops it; here it stops itself)"
./build/luabpf run scripts/examples/xdp_count.lua --iface veth-s --netns "$S" --count 4 &
pid=$!
sleep 1
echo "== traffic from $C: pings, 500 UDP datagrams, 20 HTTP requests"
ip netns exec "$C" ping -c 10 -i 0.05 -q 10.99.0.2 >/dev/null
ip netns exec "$C" /usr/bin/python3 -c '
import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
[s.sendto(b"x" * 100, ("10.99.0.2", 9)) for _ in range(500)]'
for _ in $(seq 20); do ip netns exec "$C" curl -s -o /dev/null http://10.99.0.2:8080/; done
wait "$pid"; pid=
echo "== done: namespaces removed, program detached"
