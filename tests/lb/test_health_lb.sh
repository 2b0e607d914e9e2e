#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Health checks driving the balancer's pool, with real servers in the lab:
# a backend killed under wrk load is marked down within fall x interval +
# timeout, new connections stop going to it and no request fails after that;
# restarted, it is up after rise passes and gets traffic again. All backends
# down: the sorry backend serves; one back: it serves again. A SIGHUP reload
# keeps the checks' state, and switches the policy to drop.
source "$LUABPF_SOURCE_DIR/tests/lb/lb_env.sh"
HCLIENT="$LUABPF_SOURCE_DIR/tests/lb/health_client.py"
# count N: N requests, a new connection each: {"b1": n, ..., "errors": n, "kinds": {...}}
count() { ip netns exec "$P-cl" "$PY" "$HCLIENT" 10.10.100.1 80 "-$1"; }
lab_up "$P" 3
# The sorry server: another HTTP server in b3's namespace, on 8081.
ip netns exec "$P-b3" "$LAB_PY" "$LAB_SRC/scripts/lab_http.py" sorry 8081 >/dev/null 2>&1 &
T_PIDS+=($!)
INTERVAL=1 TIMEOUT=0.5 RISE=2 FALL=3 JITTER=0.1
write_conf() { # NO_QUORUM SORRY_LINE
  cat >"$CONF" <<LUA
service = "$SVC"
interface = "eth0"
vips = {
  { name = "web", addr = "10.10.100.1", port = 80, mode = "nat",
    check = { type = "http", path = "/", interval = $INTERVAL, timeout = $TIMEOUT, rise = $RISE, fall = $FALL,
              jitter = $JITTER },
    no_quorum = "$1", $2
    backends = {
      { name = "b1", addr = "10.10.0.11", port = 8080 },
      { name = "b2", addr = "10.10.0.12", port = 8080 },
      { name = "b3", addr = "10.10.0.13", port = 8080 } } },
}
LUA
}
write_conf sorry 'sorry = { addr = "10.10.0.13", port = 8081 },'
lb_start
now() { date +%s.%N; }
# wait_log SECONDS PATTERN: until the service logs PATTERN (after line $MARK); prints the time it was seen.
wait_log() {
  local n=$(($1 * 20))
  while ! tail -n +"$MARK" "$LBOUT" | grep -qE "$2"; do
    n=$((n - 1)); [ "$n" -gt 0 ] || { echo never; return 0; }
    sleep 0.05
  done
  now
}
mark() { MARK=$(($(wc -l <"$LBOUT") + 1)); }
secs() { "$PY" -c "print('%.2f' % ($2 - $1))" 2>/dev/null || echo 999; }
server_pid() { # the lab's HTTP server on 8080 in backend $1's namespace (not the sorry server)
  local p
  for p in $(ip netns pids "$P-$1"); do
    tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q "lab_http.py $1 8080" && echo "$p"
  done
  return 0
}
kill_server() { kill "$(server_pid "$1")"; }
start_server() {
  ip netns exec "$P-$1" "$LAB_PY" "$LAB_SRC/scripts/lab_http.py" "$1" 8080 >/dev/null 2>&1 &
  T_PIDS+=($!)
  t_wait 5 sh -c "ip netns exec $P-$1 ss -Hltn 'sport = :8080' | grep -q LISTEN"
}
flows_of() { # BACKEND: its new_flows in a fresh SIGUSR1 report, in FLOWS
  lb_report "^  $1 "
  FLOWS=$(awk -v b="$1" '$1 == b { for (i = 1; i <= NF; i++) if ($i == "flows") print $(i-1) }' <<<"$REPORT" | head -1)
}
# every check has run at least once (the service is named after $SVC: attach reaches it)
checks_ran() {
  [ "$("$LUABPF" attach "$SVC" -e 'local n = math.huge
    for _, b in pairs(lb_service:stats().vips.web.backends) do
      if b.check then n = math.min(n, b.check.checks) end
    end
    return n >= 1' 2>/dev/null)" = true ]
}
t_wait 10 checks_ran || t_fail "not every check ran within 10 s"

# 1. Kill b2's server under load.
wrk_out=$(mktemp); cl_out=$(mktemp)
ip netns exec "$P-cl" wrk -t2 -c16 -d8s http://10.10.100.1/ >"$wrk_out" 2>&1 &
wrk_pid=$!
ip netns exec "$P-cl" "$PY" "$HCLIENT" 10.10.100.1 80 8 2 >"$cl_out" &
cl_pid=$!
sleep 2 # a duration, not a wait: the load runs 2 s before the kill
mark
kill_server b2
t_kill=$(now)
t_down=$(wait_log 8 "backend 'b2' .* is DOWN")
[ "$t_down" != never ] || { cat "$LBOUT"; t_fail "b2 was never marked down"; t_done; }
detect=$(secs "$t_kill" "$t_down")
bound=$("$PY" -c "print($FALL * $INTERVAL * (1 + $JITTER) + $TIMEOUT)")
echo "b2 killed; marked down after ${detect} s (bound: fall x interval x (1 + jitter) + timeout = $bound s)"
"$PY" -c "import sys; sys.exit(0 if $detect <= $bound + 0.5 else 1)" &&
  t_pass "detected within the bound (+0.5 s for a loaded machine): ${detect} s" ||
  t_fail "detection took ${detect} s, bound $bound s"
t_contains "$(tail -n +"$MARK" "$LBOUT")" "is DOWN: refused" "the log line gives the reason"
# The DOWN line is logged once b2 has left the Maglev table (after_refresh).
flows_of b2; f_after_down=$FLOWS
wait "$wrk_pid" || true
wait "$cl_pid" || true
flows_of b2; f_end=$FLOWS
t_eq "$f_end" "$f_after_down" "new flows to b2 after it was marked down"
grep -E "requests in|Socket errors|Non-2xx" "$wrk_out" | sed 's/^/  wrk: /'
"$PY" - "$cl_out" "$t_kill" "$t_down" <<'PY' >"$cl_out.sum"
import json, sys
d = json.load(open(sys.argv[1])); k, dn = float(sys.argv[2]), float(sys.argv[3])
# A request started in the last moments before the kill is in flight to b2 when it dies.
before = [r for r in d if r[0] < k - 0.2]
window = [r for r in d if k - 0.2 <= r[0] < dn]
after = [r for r in d if r[0] >= dn]
def errs(rs): return sum(1 for r in rs if r[2])
kinds = {}
for r in d:
    if r[2]: kinds[r[2]] = kinds.get(r[2], 0) + 1
print("before_kill %d errors %d" % (len(before), errs(before)))
print("window %d errors %d" % (len(window), errs(window)))
print("after_down %d errors %d b2 %d" % (len(after), errs(after), sum(1 for r in after if r[1] == "b2")))
print("kinds", kinds, [round(r[0] - k, 2) for r in d if r[2]])
PY
cat "$cl_out.sum"
t_contains "$(cat "$cl_out.sum")" "before_kill" "client summary"
read -r _ nb _ eb <<<"$(grep before_kill "$cl_out.sum")"
read -r _ na _ ea _ b2a <<<"$(grep after_down "$cl_out.sum")"
t_eq "$eb" 0 "failed requests before the kill"
t_eq "$ea" 0 "failed requests after b2 was marked down"
[ "$na" -gt 20 ] && t_pass "$na requests after b2 went down" || t_fail "only $na requests after b2 went down"
rm -f "$wrk_out" "$cl_out" "$cl_out.sum"

# 2. Restart it: up after rise passes, and it gets traffic again.
mark
start_server b2
t_start=$(now)
t_up=$(wait_log 6 "backend 'b2' .* is UP")
[ "$t_up" != never ] && t_pass "b2 up again after $(secs "$t_start" "$t_up") s (rise $RISE x interval $INTERVAL s)" ||
  t_fail "b2 never came back up"
spread=$(count 60)
echo "  spread after b2's return: $spread"
[ "$(json 'd.get("b2", 0)' "$spread")" -gt 0 ] && t_pass "b2 gets new connections again" || t_fail "b2 gets no traffic: $spread"
t_eq "$(json 'd["errors"]' "$spread")" 0 "failed connections after b2's return"

# 3. All down: the sorry backend serves; b1 back: it serves again.
mark
kill_server b1; kill_server b2; kill_server b3
t_lost=$(wait_log 8 "VIP 'web' lost quorum")
[ "$t_lost" != never ] && t_pass "all down: quorum lost" || t_fail "quorum never lost"
t_contains "$(tail -n +"$MARK" "$LBOUT")" "serving the sorry backend" "the log says what it does"
spread=$(count 20)
echo "  all backends down: $spread"
t_eq "$(json 'd.get("sorry", 0)' "$spread")" 20 "connections answered by the sorry server"
mark
start_server b1
t_back=$(wait_log 6 "VIP 'web' has quorum again")
[ "$t_back" != never ] && t_pass "b1 back: quorum again" || t_fail "quorum never came back"
spread=$(count 20)
echo "  b1 back: $spread"
t_eq "$(json 'd.get("b1", 0), d["errors"]' "$spread")" "20 0" "b1 alone serves after recovery"

# 4. SIGHUP: the checks keep their state (b2, b3 still down), policy drop.
write_conf drop ''
mark
kill -HUP "$LBPID"
wait_log 5 "reloaded" >/dev/null
lb_report "^  b3 "
rep=$REPORT
t_contains "$rep" "1/3 healthy" "after reload: b2 and b3 are still down, b1 up"
t_contains "$rep" "DOWN (refused)" "the report shows why"
mark
kill_server b1
t_lost=$(wait_log 8 "VIP 'web' lost quorum")
t_contains "$(tail -n +"$MARK" "$LBOUT")" "dropping new flows" "policy drop after the reload"
spread=$(count 3)
t_eq "$(json 'd["errors"]' "$spread")" 3 "connections while dropping fail"
mark
start_server b3
wait_log 6 "VIP 'web' has quorum again" >/dev/null
spread=$(count 10)
echo "  b3 back: $spread"
t_eq "$(json 'd.get("b3", 0), d["errors"]' "$spread")" "10 0" "b3 serves after recovery from drop"
lb_stop
t_eq "$LBRC" 0 "service exit code"
t_done
