# SPDX-License-Identifier: MIT
# xdp_count on a veth inside a namespace, real traffic from another one:
# the counts equal what was sent, in native and generic mode, and the
# program is gone after Ctrl-C.
source "$LUABPF_SOURCE_DIR/tests/lib.sh"
SCRIPT="$LUABPF_SOURCE_DIR/scripts/examples/xdp_count.lua"

t_netns A
t_netns B
t_veth "$A" va 10.77.0.1/24 "$B" vb 10.77.0.2/24
ip -n "$A" addr add fd77::1/64 dev va nodad
ip -n "$B" addr add fd77::2/64 dev vb nodad

# send_udp NS DST N: N datagrams from NS to DST:9 (nothing listens there).
send_udp() {
  ip netns exec "$1" $PY - "$2" "$3" <<'PY'
import socket, sys
dst, n = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
for i in range(n):
    s.sendto(b"x" * 64, (dst, 9))
PY
}

# counted NS IFACE INDEX...: the packets the XDP program on IFACE has counted
# so far at each INDEX of its counters map (bpf/examples/xdp_count.h), summed
# over CPUs, read through bpftool while it runs.
counted() {
  local prog
  prog=$(ip -n "$1" -d link show "$2" | grep -oE 'prog/xdp id [0-9]+' | awk '{print $3}')
  [ -n "$prog" ] || return 1
  shift 2
  $PY - "$prog" "$@" <<'PY'
import json, subprocess, sys
def bpftool(*a): return json.loads(subprocess.check_output(["bpftool", "-j", *a]))
maps = [bpftool("map", "show", "id", str(m)) for m in bpftool("prog", "show", "id", sys.argv[1])["map_ids"]]
m = [x["id"] for x in maps if x["name"] == "counters"][0]
for i in sys.argv[2:]:
    e = bpftool("map", "lookup", "id", str(m), "key", *[str(int(i) >> s & 255) for s in (0, 8, 16, 24)])
    print(sum(v["value"]["packets"] for v in e["formatted"]["values"]))
PY
}

# total OUTPUT LAYER PROTO: the packets column of the totals block.
total() {
  awk -v l="$2" -v p="$3" '/^totals/ {t=1} t && $1==l && $2==p {print $3}' <<<"$1"
}

for mode in native generic; do
  # Neighbours resolved first, so the counted run has no ARP or ND in it.
  ip netns exec "$A" ping -c1 -W2 10.77.0.2 >/dev/null
  ip netns exec "$A" ping -6 -c1 -W2 fd77::2 >/dev/null

  out=$(mktemp)
  "$LUABPF" run "$SCRIPT" --iface vb --netns "$B" --mode "$mode" --interval 0.2 --quiet >"$out" 2>&1 &
  pid=$!
  T_PIDS+=("$pid")
  if ! t_wait 10 sh -c "ip -n $B -d link show vb | grep -q 'prog/xdp'"; then
    cat "$out"; t_fail "$mode: program not attached within 10 s"; break
  fi
  attached=$(ip -n "$B" -d link show vb)
  if [ "$mode" = native ]; then
    t_contains "$attached" "xdp " "$mode: attached in native mode"
  else
    t_contains "$attached" "xdpgeneric" "$mode: attached in generic mode"
  fi

  send_udp "$A" 10.77.0.2 1000
  send_udp "$A" fd77::2 200
  ip netns exec "$A" ping -c 5 -i 0.01 -W1 10.77.0.2 >/dev/null
  # The frames reach XDP after sendto returns (the veth's queue, softirqs):
  # wait until it has counted them all (IPv4 at 0, UDP at 5), then stop it.
  all_counted() { [ "$(counted "$B" vb 0 5 | tr '\n' ' ')" = "1005 1200 " ]; }
  t_wait 10 all_counted || echo "not all counted within 10 s: $(counted "$B" vb 0 5 | tr '\n' ' ')"
  kill -INT "$pid"
  rc=0; wait "$pid" || rc=$?
  res=$(cat "$out"); rm -f "$out"
  t_eq "$rc" 0 "$mode: exit code after SIGINT"
  t_eq "$(total "$res" L4 udp)" 1,200 "$mode: UDP packets counted (printed with a thousands separator)"
  t_eq "$(total "$res" L3 ipv4)" 1,005 "$mode: IPv4 packets counted (1000 UDP + 5 pings)"
  t_eq "$(total "$res" L4 tcp)" 0 "$mode: TCP packets counted"
  v6=$(total "$res" L3 ipv6 | tr -d ,)
  [ "${v6:-0}" -ge 200 ] && t_pass "$mode: IPv6 packets >= 200 ($v6)" || t_fail "$mode: IPv6 packets: $v6"
  icmp=$(total "$res" L4 icmp | tr -d ,)
  [ "${icmp:-0}" -ge 5 ] && t_pass "$mode: ICMP packets >= 5 ($icmp)" || t_fail "$mode: ICMP: $icmp"
  after=$(ip -n "$B" -d link show vb)
  if grep -q "prog/xdp" <<<"$after"; then t_fail "$mode: XDP still attached after exit"; else t_pass "$mode: detached at exit"; fi
done
t_done
