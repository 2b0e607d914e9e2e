# SPDX-License-Identifier: MIT
# A load balancer lab in network namespaces, for the demo, tests and benches.
# Source it, then: lab_up PREFIX NBACKENDS; ...; lab_down.
#
#   PREFIX-cl (client 10.10.0.1, fd10::1)       one L2 segment: a bridge in PREFIX-br
#   PREFIX-lb (balancer 10.10.0.2, fd10::2)     VIPs 10.10.100.0/24 and fd10:100::/64 are
#   PREFIX-b1..bN (backends 10.10.0.11.., fd10::11..) routed by the client via the balancer
#
# Each backend runs an HTTP server on :8080 that answers with its name
# (b1, b2, ...), and holds the VIPs on lo (for DSR) without answering ARP for them.
# lab_nginx PORT swaps those servers for nginx (demo, benches).
LAB_PY=/usr/bin/python3

lab_link() { # ROLE ADDR4 ADDR6: eth0 in $LAB-ROLE, its peer ROLE on the bridge
  local ns="$LAB-$1"
  # Made inside the namespace: the host's own interfaces are never in play.
  ip -n "$ns" link add name eth0 type veth peer name "$1" netns "$LAB-br"
  ip -n "$LAB-br" link set "$1" master br0 up
  ip -n "$ns" addr add "$2/24" dev eth0
  ip -n "$ns" addr add "$3/64" dev eth0 nodad
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  # veth hands the checksum to the receiver (CHECKSUM_PARTIAL); XDP sees only
  # bytes, so a rewritten packet would carry a partial checksum: fill it in.
  ip netns exec "$ns" ethtool -K eth0 tx off >/dev/null
}

# lab_bridge ROLE...: the namespaces $LAB-br, $LAB-cl, $LAB-lb and $LAB-ROLE
# for each ROLE (LAB_NS, in that order, for lab_down), the bridge br0 in
# $LAB-br, and the client and the balancer on it. The ROLEs are not linked.
lab_bridge() {
  local r
  LAB_NS=("$LAB-br")
  for r in cl lb "$@"; do LAB_NS+=("$LAB-$r"); done
  for r in "${LAB_NS[@]}"; do ip netns add "$r"; done
  ip -n "$LAB-br" link add br0 type bridge
  ip -n "$LAB-br" link set br0 up
  # The bridge forwards at once: no STP listening delay, IPv6 quiet.
  ip netns exec "$LAB-br" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  lab_link cl 10.10.0.1 fd10::1
  lab_link lb 10.10.0.2 fd10::2
}

lab_up() {
  LAB=$1
  local n=${2:-3} i
  lab_bridge $(seq -f "b%g" "$n")
  ip netns exec "$LAB-lb" sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv6.conf.all.forwarding=1
  # Native XDP_TX out of a veth needs a program on the receiving peer.
  ip -n "$LAB-br" link set dev lb xdp obj "$LAB_BUILD/bpf/xdp_pass.bpf.o" sec xdp
  ip -n "$LAB-cl" route add 10.10.100.0/24 via 10.10.0.2
  ip -n "$LAB-cl" -6 route add fd10:100::/64 via fd10::2
  for i in $(seq "$n"); do
    local ns="$LAB-b$i"
    lab_link "b$i" "10.10.0.1$i" "fd10::1$i"
    ip -n "$ns" addr add 10.10.100.1/32 dev lo
    ip -n "$ns" addr add fd10:100::1/128 dev lo
    ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
    ip netns exec "$ns" "$LAB_PY" "$LAB_SRC/scripts/lab_http.py" "b$i" 8080 \
      >/dev/null 2>&1 &
    LAB_PIDS+=($!)
  done
  for i in $(seq "$n"); do
    local t=50
    until ip netns exec "$LAB-b$i" ss -Hltn 'sport = :8080' | grep -q LISTEN; do
      t=$((t - 1)); [ "$t" -gt 0 ] || { echo "lab: b$i's HTTP server did not start" >&2; return 1; }
      sleep 0.1
    done
  done
}

# lab_nginx_run NS DIR PORT TEXT [CPU]: nginx in namespace NS on PORT,
# answering TEXT, its config and logs in DIR (made); in the background ($!
# is its pid). CPU pins it (benches).
lab_nginx_run() {
  local ns=$1 dir=$2 port=$3 text=$4 cpu=${5:-}
  mkdir -p "$dir"
  cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir;
  proxy_temp_path $dir;
  fastcgi_temp_path $dir;
  uwsgi_temp_path $dir;
  scgi_temp_path $dir;
  keepalive_requests 1000000;
  server { listen $port backlog=4096; location / { default_type text/plain; return 200 "$text\n"; } }
}
EOF
  ip netns exec "$ns" sysctl -qw net.core.somaxconn=4096
  if [ -n "$cpu" ]; then
    taskset -c "$cpu" ip netns exec "$ns" nginx -c "$dir/nginx.conf" &
  else
    ip netns exec "$ns" nginx -c "$dir/nginx.conf" &
  fi
}

# lab_nginx PORT [CPU]: each backend's Python server makes way for nginx on
# PORT, answering "bN" like it (wrk through the balancer then measures the
# balancer, not Python). Configs and logs in a temporary directory; nginx is
# stopped by lab_down. CPU pins the servers (benches).
lab_nginx() {
  local port=$1 cpu=${2:-} i p n=$(( ${#LAB_NS[@]} - 3 ))
  for p in "${LAB_PIDS[@]:-}"; do [ -n "$p" ] && { kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; }; done
  LAB_PIDS=()
  LAB_NGINX_DIR=$(mktemp -d)
  chmod 755 "$LAB_NGINX_DIR"
  for i in $(seq "$n"); do
    lab_nginx_run "$LAB-b$i" "$LAB_NGINX_DIR/b$i" "$port" "b$i" "$cpu"
    LAB_PIDS+=($!)
  done
  for i in $(seq "$n"); do
    local t=50
    until ip netns exec "$LAB-b$i" ss -Hltn "sport = :$port" | grep -q LISTEN; do
      t=$((t - 1))
      [ "$t" -gt 0 ] || { echo "lab: b$i's nginx did not start ($LAB_NGINX_DIR/b$i/error.log)" >&2; return 1; }
      sleep 0.1
    done
  done
}

lab_down() {
  local p ns
  for p in "${LAB_PIDS[@]:-}"; do [ -n "$p" ] && { kill "$p" 2>/dev/null || true; }; done
  for p in "${LAB_PIDS[@]:-}"; do [ -n "$p" ] && { wait "$p" 2>/dev/null || true; }; done
  LAB_PIDS=()
  for ns in "${LAB_NS[@]:-}"; do [ -n "$ns" ] && ip netns del "$ns" 2>/dev/null; done
  LAB_NS=()
  [ -n "${LAB_NGINX_DIR:-}" ] && rm -rf "$LAB_NGINX_DIR"
  LAB_NGINX_DIR=
  return 0
}
LAB_PIDS=()
LAB_NS=()
: "${LAB_SRC:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
: "${LAB_BUILD:=$LAB_SRC/build}"
