# SPDX-License-Identifier: MIT
# hping3 floods (SYN from random sources, UDP, ICMP) from an attacker
# namespace while a client keeps fetching from a real HTTP server through the
# filter (scripts/examples/ddos_filter.lua on the server's interface):
# every request succeeds, the flood is answered with cookies or dropped and
# counted, the attacker is auto-banned and the ban lifts, and the server's
# listener never overflows nor holds a half-open connection.
#
#   cl 10.20.0.1 --+
#   atk 10.20.0.66 +-- bridge (ns br) -- srv 10.20.0.10 (XDP filter on eth0, HTTP :8080)
source "$LUABPF_SOURCE_DIR/tests/lib.sh"
[ -x /usr/sbin/hping3 ] || { echo "hping3 is missing: apt-get install hping3 (scripts/setup.sh)" >&2; exit 1; }

t_netns BR
t_netns CL
t_netns ATK
t_netns SRV
CONF=$(mktemp --suffix=.lua)
OUT=$(mktemp)
FPID=
cleanup() {
  if [ -n "$FPID" ]; then kill -INT "$FPID" 2>/dev/null || true; wait "$FPID" 2>/dev/null || true; fi
  rm -f "$CONF" "$OUT"
  t_cleanup
}
trap cleanup EXIT

source "$LUABPF_SOURCE_DIR/tests/filter/flood_lab.sh"
flood_lab_up "$BR" "$CL" "$ATK" "$SRV" "$LUABPF_BUILD_DIR/bpf/xdp_pass.bpf.o"

ip netns exec "$SRV" "$PY" "$LUABPF_SOURCE_DIR/scripts/lab_http.py" srv 8080 >/dev/null 2>&1 &
T_PIDS+=($!)
t_wait 10 sh -c "ip netns exec '$SRV' ss -Hltn 'sport = :8080' | grep -q LISTEN" || t_fail "HTTP server did not start"

cat >"$CONF" <<'EOF'
deny = { "23/tcp" }
rate_limit = { pps = 300, burst_packets = 300 }
protect = { ports = { 8080 }, threshold = 0 }
auto_ban = { pps = 1000, seconds = 3 }
sample = 20
window = 0.5
EOF
"$LUABPF" --netns "$SRV" run "$LUABPF_SOURCE_DIR/scripts/examples/ddos_filter.lua" --iface eth0 "$CONF" \
  >"$OUT" 2>&1 &
FPID=$!
t_wait 10 grep -q "filter on eth0" "$OUT" || { cat "$OUT" >&2; t_fail "the filter did not start"; t_done; }

# The client: one request every 20 ms until told to stop; counts answers.
CLOG=$(mktemp)
ip netns exec "$CL" bash -c '
  ok=0; n=0
  while [ ! -e "$1.stop" ]; do
    n=$((n + 1))
    if curl -s -m 3 http://10.20.0.10:8080/ | grep -q srv; then ok=$((ok + 1)); fi
    sleep 0.02
  done
  echo "$n $ok" >"$1"' _ "$CLOG" &
CPID=$!
T_PIDS+=("$CPID") # never outlives a failed test

# Half-open connections on the server while the SYN flood runs.
maxsr=0
watch_synrecv() {
  while kill -0 "$1" 2>/dev/null; do
    n=$(ip netns exec "$SRV" ss -Htn state syn-recv | wc -l)
    [ "$n" -gt "$maxsr" ] && maxsr=$n
    sleep 0.1
  done
  echo "$maxsr"
}
flood() { ip netns exec "$ATK" timeout 30 hping3 "$@" 10.20.0.10 >/dev/null 2>&1 || true; }
# What the attacker really sent, counted by nftables on its way out: hping3
# can abort part way (a glibc assertion while it prints the ICMP errors a
# flood draws), so the test never assumes its -c was reached.
ip netns exec "$ATK" nft -f - <<'NFT'
table inet sent {
  counter syn_sent {}
  counter udp_sent {}
  counter icmp_sent {}
  chain out {
    type filter hook output priority 0;
    ip daddr 10.20.0.10 tcp dport 8080 tcp flags & (syn | ack) == syn counter name syn_sent
    ip daddr 10.20.0.10 udp dport 53 counter name udp_sent
    ip daddr 10.20.0.10 icmp type echo-request counter name icmp_sent
  }
}
NFT
# The server's kernel would answer the UDP flood's passed packets with ICMP
# port-unreachable errors, and hping3 aborts while it prints those: the
# server drops them silently, after XDP (what the filter sees is unchanged).
ip netns exec "$SRV" nft add table inet quiet
ip netns exec "$SRV" nft add chain inet quiet in '{ type filter hook input priority 0; }'
ip netns exec "$SRV" nft add rule inet quiet in udp dport 53 drop
sent() { ip netns exec "$ATK" nft list counter inet sent "$1_sent" | sed -n 's/.*packets \([0-9]*\).*/\1/p'; }

flood -S -p 8080 --rand-source -i u100 -c 20000 &
HP=$!
SR=$(watch_synrecv "$HP")
wait "$HP" || true
flood --udp -p 53 -i u100 -c 10000
flood --icmp -i u100 -c 10000
SYN_N=$(sent syn); UDP_N=$(sent udp); ICMP_N=$(sent icmp)
echo "attacker sent: $SYN_N SYN, $UDP_N UDP, $ICMP_N ICMP (of 20000, 10000, 10000 asked of hping3)"
# Too few to be a flood (hping3 died at once): the checks below would prove nothing.
[ "$SYN_N" -ge 2000 ] || t_fail "the SYN flood sent only $SYN_N packets (hping3 aborted?)"
[ $((UDP_N + ICMP_N)) -ge 2000 ] || t_fail "the UDP and ICMP floods sent only $((UDP_N + ICMP_N)) packets (hping3 aborted?)"
sleep 0.5 # a duration, not a wait: the client fetches on a little past the floods
touch "$CLOG.stop"
wait "$CPID" || true
read -r N OK <"$CLOG"
rm -f "$CLOG" "$CLOG.stop"

# Stats: SIGUSR1 prints them.
before=$(wc -l <"$OUT")
kill -USR1 "$FPID"
t_wait 5 sh -c "tail -n +$((before + 1)) '$OUT' | grep -q '^passed'" || t_fail "no stats line within 5 s of SIGUSR1"
stats=$(tail -n +"$((before + 1))" "$OUT" | grep -m1 '^passed')
echo "client: $OK of $N; syn-recv max $SR; $stats"
reason() { sed -n "s/.*[ :]$1=\([0-9]*\).*/\1/p" <<<"$stats"; }
t_ok() { if eval "$1"; then t_pass "$2"; else t_fail "$2 ($1)"; fi; }

t_ok '[ "$N" -ge 20 ]' "the client kept fetching ($N requests)"
t_eq "$OK" "$N" "client requests that succeeded"
cookies=$(reason syn_cookie); cookies=${cookies:-0}
t_ok '[ "$cookies" -ge $((SYN_N * 9 / 10)) ]' "SYN flood answered with cookies from XDP ($cookies of $SYN_N)"
t_eq "$SR" 0 "half-open connections on the server during the SYN flood"
t_ok '[ "$(reason syn_cookie_ok)" -ge "$N" ]' "client handshakes completed with XDP's cookies ($(reason syn_cookie_ok))"
banned=$(reason banned); banned=${banned:-0}
rate=$(reason rate_pps); rate=${rate:-0}
dropped=$((banned + rate))
t_ok '[ "$dropped" -ge $(( (UDP_N + ICMP_N) * 8 / 10 )) ]' \
  "UDP and ICMP floods dropped ($dropped of $((UDP_N + ICMP_N)): rate limit $rate, banned $banned)"
t_contains "$(cat "$OUT")" "ban 10.20.0.66/32 for 3 s (auto:" "the attacker was auto-banned"
t_wait 8 grep -q "unban 10.20.0.66/32 (expired)" "$OUT" || t_fail "the ban was not lifted"
grep -q "unban 10.20.0.66/32 (expired)" "$OUT" && t_pass "the ban lifted on expiry"

# A flood that goes on past the ban (3 s): the ban is extended while the
# source floods, never lifted in the middle, and lifted once it stops.
expired() { grep -c "unban 10.20.0.66/32 (expired)" "$OUT" || true; }
e0=$(expired); i0=$(sent icmp); f0=$(date +%s.%N)
# As fast as hping3 goes, for 9 s (3 ban periods): far over the threshold on a
# busy machine too.
ip netns exec "$ATK" timeout 9 hping3 --icmp --flood 10.20.0.10 >/dev/null 2>&1 || true
e1=$(expired); f1=$(date +%s.%N); i1=$(sent icmp)
secs=$(awk -v a="$f0" -v b="$f1" 'BEGIN { printf "%.1f", b - a }')
echo "long flood: $((i1 - i0)) ICMP packets in $secs s; expiries during it: $((e1 - e0))"
awk -v s="$secs" 'BEGIN { exit !(s >= 7) }' || t_fail "the long flood lasted $secs s, under the 7 s this needs (hping3 aborted?)"
[ $(( (i1 - i0) / 9 )) -ge 2000 ] || t_fail "the long flood sent $((i1 - i0)) packets: under 2,000/s, not a flood over auto_ban's 1,000/s"
t_eq "$((e1 - e0))" 0 "bans lifted while the source still flooded"
t_contains "$(cat "$OUT")" "ban renewed 10.20.0.66/32 for 3 s (auto: still" "the ban was extended while the flood went on"
t_wait 8 sh -c "[ \$(grep -c 'unban 10.20.0.66/32 (expired)' '$OUT') -gt $e1 ]" &&
  t_pass "the extended ban lifted once the flood stopped" || t_fail "the extended ban was not lifted after the flood"
grep -q "ban 10.20.0.1/32" "$OUT" && t_fail "the client was banned"
# The listener never overflowed, and no SYN reached it: with tcp_syncookies=2
# the kernel answers every SYN it sees with its own cookie, and counts it.
# (Absolute counters of a fresh namespace; -s leaves nstat's history alone.)
ns=$(ip netns exec "$SRV" nstat -asz TcpExtListenOverflows TcpExtListenDrops TcpExtSyncookiesSent)
for c in TcpExtListenOverflows TcpExtListenDrops TcpExtSyncookiesSent; do
  t_eq "$(awk -v c="$c" '$1 == c { print $2 }' <<<"$ns")" 0 "$c on the server"
done
q=$(ip netns exec "$SRV" ss -Hltn 'sport = :8080' | awk '{ print $2 }')
t_eq "$q" 0 "listener's accept queue (Recv-Q)"
if [ "$T_FAILS" -gt 0 ]; then cat "$OUT" >&2; fi
t_done
