#!/bin/bash
# SPDX-License-Identifier: MIT
# The share of a flood the filter drops (or answers with cookies) and the
# client's success rate meanwhile, against the same floods with no filter,
# in one run. Namespaces: client, attacker and server on a bridge; the
# filter (scripts/examples/ddos_filter.lua) on the server's eth0; hping3
# --flood (as fast as it goes) for SECS seconds per flood; the client makes
# one HTTP request every 20 ms (timeout 2 s) throughout.
# usage: bench/filter_flood.sh BUILD_DIR [SECS]
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
SECS=${2:-5}
PY=/usr/bin/python3
I=ff$$
BR=$I-br CL=$I-cl ATK=$I-atk SRV=$I-srv
CONF=$(mktemp --suffix=.lua)
OUT=$(mktemp)
FPID= HPID=
cleanup() {
  [ -n "$FPID" ] && { kill -INT "$FPID" 2>/dev/null || true; wait "$FPID" 2>/dev/null || true; }
  [ -n "$HPID" ] && { kill "$HPID" 2>/dev/null || true; wait "$HPID" 2>/dev/null || true; }
  for ns in $BR $CL $ATK $SRV; do ip netns del "$ns" 2>/dev/null || true; done
  rm -f "$CONF" "$OUT"
}
trap cleanup EXIT
for ns in $BR $CL $ATK $SRV; do ip netns add "$ns"; done
source "$SRC/tests/filter/flood_lab.sh"
flood_lab_up "$BR" "$CL" "$ATK" "$SRV" "$BUILD/bpf/xdp_pass.bpf.o"
ip netns exec "$SRV" "$PY" "$SRC/scripts/lab_http.py" srv 8080 >/dev/null 2>&1 &
HPID=$!
until ip netns exec "$SRV" ss -Hltn 'sport = :8080' | grep -q LISTEN; do sleep 0.1; done
cat >"$CONF" <<'LUA'
rate_limit = { pps = 1000 }
protect = { ports = { 8080 }, threshold = 0 }
sample = 0
LUA

# run_flood NAME HPING_ARGS...: the client's "ok/total" and hping3's sent count.
run_flood() {
  local name=$1; shift
  local clog; clog=$(mktemp)
  ip netns exec "$CL" bash -c 'ok=0; n=0
    while [ ! -e "$1.stop" ]; do n=$((n + 1))
      curl -s -m 2 http://10.20.0.10:8080/ | grep -q srv && ok=$((ok + 1)); sleep 0.02; done
    echo "$ok $n" >"$1"' _ "$clog" &
  local cpid=$!
  sleep 0.5
  local sent
  sent=$(ip netns exec "$ATK" timeout -s INT "$SECS" hping3 "$@" --flood 10.20.0.10 2>&1 |
    sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p')
  sleep 0.5
  touch "$clog.stop"; wait "$cpid" || true
  read -r ok n <"$clog"; rm -f "$clog" "$clog.stop"
  echo "$name ${sent:-0} $ok $n"
}
stat() { local v; v=$(sed -n "s/.*[ :]$1=\([0-9]*\).*/\1/p" <<<"$2" | tail -1); echo "${v:-0}"; }
filter_stats() {
  local before; before=$(wc -l <"$OUT")
  kill -USR1 "$FPID"; sleep 0.5
  tail -n +"$((before + 1))" "$OUT" | grep -m1 '^passed'
}

declare -A R
# Without the filter (the kernel's own SYN cookies at tcp_syncookies=1).
for f in syn udp; do
  args=(-S -p 8080 --rand-source); [ "$f" = udp ] && args=(--udp -p 53)
  R[none_$f]=$(run_flood "$f" "${args[@]}")
done
"$BUILD/luabpf" --netns "$SRV" run "$SRC/scripts/examples/ddos_filter.lua" --iface eth0 "$CONF" >"$OUT" 2>&1 &
FPID=$!
until grep -q "filter on eth0" "$OUT"; do sleep 0.1; done
s0=$(filter_stats)
R[filter_syn]=$(run_flood syn -S -p 8080 --rand-source)
s1=$(filter_stats)
R[filter_udp]=$(run_flood udp --udp -p 53)
s2=$(filter_stats)

echo "filter_flood: hping3 --flood for ${SECS} s per flood from one attacker namespace;"
echo "  the client: one HTTP GET every 20 ms (2 s timeout) during each flood"
printf "  %-34s %12s %16s %14s\n" "flood" "sent" "handled by XDP" "client ok"
for f in syn udp; do
  read -r _ sent ok n <<<"${R[none_$f]}"
  printf "  %-34s %12d %16s %8d/%-5d %3d%%\n" "$f, no filter" "$sent" "-" "$ok" "$n" $((100 * ok / (n > 0 ? n : 1)))
done
read -r _ sent ok n <<<"${R[filter_syn]}"
c=$(( $(stat syn_cookie "$s1") - $(stat syn_cookie "$s0") ))
printf "  %-34s %12d %11d %3d%% %8d/%-5d %3d%%\n" "syn (random sources), filter" "$sent" "$c" \
  $((100 * c / (sent > 0 ? sent : 1))) "$ok" "$n" $((100 * ok / (n > 0 ? n : 1)))
read -r _ sent ok n <<<"${R[filter_udp]}"
d=$(( $(stat rate_pps "$s2") - $(stat rate_pps "$s1") ))
printf "  %-34s %12d %11d %3d%% %8d/%-5d %3d%%\n" "udp (one source), filter, 1000 pps" "$sent" "$d" \
  $((100 * d / (sent > 0 ? sent : 1))) "$ok" "$n" $((100 * ok / (n > 0 ? n : 1)))
echo "  (handled by XDP: SYN-ACKs sent with cookies for the SYN flood, packets dropped over the"
echo "   rate limit for the UDP flood, as shares of what hping3 sent)"
