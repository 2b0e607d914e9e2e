# SPDX-License-Identifier: MIT
# The load balancer on the kernel's conntrack (flow_table = "conntrack") in
# the LB lab: TCP (IPv4, IPv6) and UDP through it; the entries `conntrack -L`
# shows carry the service's mark and the right DNAT and SNAT; connections
# survive pool changes (a backend added, one drained); removing a backend
# with flush resets only that backend's connections; closing the service
# removes its nftables table and its entries.
source "$LUABPF_SOURCE_DIR/tests/net/lb_env.sh"
UDP="$LUABPF_SOURCE_DIR/tests/net/lb_ct_udp.py"
MARK=$((0x4c420000))
lab_up "$P" 4
for i in 1 2 3 4; do
  ip netns exec "$P-b$i" "$PY" "$UDP" serve "b$i" 5353 >/dev/null 2>&1 &
  LAB_PIDS+=($!)
done

coproc LB { exec "$LUABPF" --netns "$P-lb" run "$LUABPF_SOURCE_DIR/tests/net/lb_ct.lua" "$SVC" conntrack 2>&1; }
LBPID=$LB_PID
# drv CMD: one command to the driver, its answer in $ANS (log lines are skipped).
drv() {
  echo "$1" >&"${LB[1]}"
  local line
  while read -r -t 20 line <&"${LB[0]}"; do
    # read strips the space of an empty answer ("@@ ok ").
    case "$line" in "@@ ok"*) ANS=${line#@@ ok}; ANS=${ANS# }; return 0 ;; "@@ err"*) ANS=$line; return 1 ;; esac
    echo "driver: $line"
  done
  t_fail "no answer to '$1'"; return 1
}
ready=
while read -r -t 20 line <&"${LB[0]}"; do
  echo "driver: $line"
  case "$line" in "ready conntrack") ready=1; break ;; ERROR*) break ;; esac
done
[ -n "$ready" ] || { t_fail "the conntrack-mode service did not start"; t_done; }
ct() { ip netns exec "$P-lb" conntrack "$@" 2>/dev/null; }

# New connections spread over the backends, both families.
out=$(client spread 10.10.100.1 80 30)
echo "IPv4: $out"
t_eq "$(json 'd["errors"]' "$out")" 0 "IPv4 connections through conntrack NAT failed"
t_eq "$(json 'len([k for k in d if k != "errors"])' "$out")" 3 "backends that answered IPv4"
out=$(client spread fd10:100::1 80 12)
echo "IPv6: $out"
t_eq "$(json 'd["errors"]' "$out")" 0 "IPv6 connections failed"

# Their entries: the kernel's, with our mark and the NAT the data plane chose.
list=$(ct -L -p tcp -m "$MARK/0xffff0000" --orig-dst 10.10.100.1)
echo "$list" | head -3
n=$(grep -c "dport=80 " <<<"$list" || true)
[ "$n" -ge 30 ] && t_pass "$n IPv4 TCP entries carry the service's mark" || t_fail "only $n marked IPv4 entries"
bad=$(grep -v -E "src=10\.10\.0\.1 dst=10\.10\.100\.1 sport=[0-9]+ dport=80 .*src=10\.10\.0\.1[1-3] dst=10\.10\.0\.2 sport=8080 dport=[0-9]+ .*mark=[0-9]+ " <<<"$list" || true)
marks=$(grep -oE "mark=[0-9]+" <<<"$list" | cut -d= -f2 | sort -u | tr '\n' ' ')
for m in $marks; do
  [ "$m" -ge "$MARK" ] && [ "$m" -le $((MARK + 2)) ] || bad+=$'\n'"mark $m is not 0x4c420000 + a backend id (0..2)"
done
t_eq "$(wc -w <<<"$marks")" 3 "distinct marks (one per backend) on the entries"
[ -z "$bad" ] && t_pass "every entry: client -> VIP:80, DNAT to a backend:8080, SNAT to 10.10.0.2" ||
  t_fail "entries with the wrong NAT:"$'\n'"$bad"
l6=$(ct -L -f ipv6 -p tcp -m "$MARK/0xffff0000")
t_contains "$l6" "dst=fd10::2 sport=8080" "IPv6 entries SNAT to fd10::2 and DNAT to port 8080"
drv flows
echo "flows: $ANS"
want=$(( $(ct -L -f ipv4 -m "$MARK/0xffff0000" | wc -l) + $(ct -L -f ipv6 -m "$MARK/0xffff0000" | wc -l) ))
[ "$want" -ge 40 ] || t_fail "only $want marked entries for 42 connections"
t_eq "${ANS%% *}" "$want" "svc:flows() lists what conntrack -L -m shows"

# UDP: each source port keeps its backend; the entries are marked and NATed.
out=$(ip netns exec "$P-cl" "$PY" "$UDP" ask 10.10.100.1 53 12 3)
echo "UDP: $out"
t_eq "$(json 'd["lost"]' "$out")" 0 "UDP datagrams lost"
t_eq "$(json 'all(len(set(f)) == 1 and len(f) == 3 for f in d["flows"])' "$out")" True "each UDP flow stayed on one backend"
t_eq "$(json 'len({f[0] for f in d["flows"]}) >= 2' "$out")" True "UDP flows spread over backends"
t_contains "$(ct -L -p udp -m "$MARK/0xffff0000")" "sport=5353" "UDP entries DNAT to port 5353"

# Long-lived connections while the pool changes: +1 s add b4, +2 s drain b1,
# +3 s remove b2 with flush. Only b2's connections may fail.
client hold 10.10.100.1 80 24 5 >"$LBOUT" &
HOLD=$!
sleep 1; drv "add b4 10.10.0.14 8080"
sleep 1; drv "weight b1 0"
sleep 1; drv "remove b2 flush"; echo "removed b2: $ANS"
wait "$HOLD" || true
out=$(cat "$LBOUT")
summary=$("$PY" - "$out" <<'PY'
import collections, json, sys
s = collections.defaultdict(lambda: [0, 0, 0, 0])
for c in json.loads(sys.argv[1]):
    b = c["backends"][0] if c["backends"] else "none"
    s[b][0] += 1; s[b][1] += c["requests"]; s[b][2] += c["errors"] > 0; s[b][3] += len(c["backends"]) > 1
for b, v in sorted(s.items()):
    print("%s conns=%d requests=%d failed=%d switched=%d" % (b, *v))
PY
)
echo "$summary"
for b in b1 b3; do
  line=$(grep "^$b " <<<"$summary" || true)
  [ -n "$line" ] || { t_fail "no connection landed on $b"; continue; }
  t_contains "$line" "failed=0" "connections on $b (kept, or drained) survived the pool changes"
  t_contains "$line" "switched=0" "connections on $b stayed on $b"
done
line=$(grep "^b2 " <<<"$summary" || true)
if [ -n "$line" ]; then
  conns=$(sed -E 's/.*conns=([0-9]+).*/\1/' <<<"$line")
  t_contains "$line" "failed=$conns" "every connection on b2 was reset by the flush"
else
  t_fail "no connection on b2: the flush was not tested"
fi
t_eq "$(ct -L -f ipv4 -m $((MARK + 1)) | grep -c ESTABLISHED || true)" 0 "b2's established entries after the flush"
drv stats; echo "reasons: $ANS"
t_contains "$ANS" "forwarded:" "forwarded counted"
t_contains "$ANS" "reply:" "replies counted"

# Close (pin = false): the nftables table and our entries go.
exec {LB[1]}>&-
kill -INT "$LBPID"; wait "$LBPID" || true; LBPID=
t_eq "$(ip netns exec "$P-lb" nft list tables | grep -c luabpf_lb || true)" 0 "nftables tables left"
t_eq "$(ct -L -f ipv4 -m "$MARK/0xffff0000" | wc -l)" 0 "marked entries left"
t_done
