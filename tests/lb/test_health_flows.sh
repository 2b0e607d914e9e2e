#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# What a backend's open connections do when its check fails but the server
# still serves (its health port stops answering): down_flows = "keep" lets
# them finish on it; "flush" deletes its flows, so they are reset and the
# clients reconnect elsewhere. Two VIPs on the same backends, one of each.
source "$LUABPF_SOURCE_DIR/tests/lb/lb_env.sh"
lab_up "$P" 3
for i in 1 2 3; do
  ip netns exec "$P-b$i" "$PY" "$LUABPF_SOURCE_DIR/tests/lb/health_servers.py" banner:8090 >/dev/null 2>&1 &
  T_PIDS+=($!)
  [ "$i" = 1 ] && HEALTH1=$!
done
for i in 1 2 3; do t_wait 5 sh -c "ip netns exec $P-b$i ss -Hltn 'sport = :8090' | grep -q LISTEN"; done
cat >"$CONF" <<LUA
service = "$SVC"
interface = "eth0"
local check = { type = "tcp", port = 8090, interval = 0.5, timeout = 0.3 }
local function backends()
  return { { name = "b1", addr = "10.10.0.11", port = 8080 }, { name = "b2", addr = "10.10.0.12", port = 8080 },
           { name = "b3", addr = "10.10.0.13", port = 8080 } }
end
vips = {
  { name = "keep", addr = "10.10.100.1", port = 80, check = check, down_flows = "keep", backends = backends() },
  { name = "flush", addr = "10.10.100.1", port = 81, check = check, down_flows = "flush", backends = backends() },
}
LUA
lb_start
# Every check has passed once (the service is named after $SVC: attach reaches it).
checks_ran() {
  [ "$("$LUABPF" attach "$SVC" -e 'local n = math.huge
    for _, v in pairs(lb_service:stats().vips) do
      for _, b in pairs(v.backends) do n = math.min(n, b.check and b.check.checks or 0) end
    end
    return n >= 1' 2>/dev/null)" = true ]
}
t_wait 10 checks_ran || t_fail "not every check ran within 10 s"
keep_out=$(mktemp); flush_out=$(mktemp)
# Held 8 s: long enough for the kill, b1's fall, the flush and a request after it.
client hold 10.10.100.1 80 24 8 >"$keep_out" &
k=$!
client hold 10.10.100.1 81 24 8 >"$flush_out" &
f=$!
lb_established 24 80
lb_established 24 81
sleep 0.5 # a duration, not a wait: requests on every connection before b1 goes
m=$(wc -l <"$LBOUT")
kill "$HEALTH1" # b1's health port goes; b1's HTTP server stays
lb_wait_log "$m" 6 "VIP 'flush' backend 'b1': flushed" || t_fail "b1's flows not flushed within 6 s of its health port going"
wait "$k" "$f" || true
t_contains "$(cat "$LBOUT")" "VIP 'keep' backend 'b1' (tcp 10.10.0.11:8090) is DOWN: refused" "b1 down on VIP keep"
t_contains "$(cat "$LBOUT")" "VIP 'flush' backend 'b1' (tcp 10.10.0.11:8090) is DOWN: refused" "b1 down on VIP flush"
t_contains "$(cat "$LBOUT")" "VIP 'flush' backend 'b1': flushed" "b1's flows flushed on VIP flush"
summary() { # per connection that started on b1: "n errors switched"
  "$PY" -c '
import json, sys
d = [c for c in json.load(open(sys.argv[1])) if c["backends"] and c["backends"][0] == "b1"]
print(len(d), sum(1 for c in d if c["errors"]), sum(1 for c in d if len(c["backends"]) > 1 or c["errors"]),
      sum(c["requests"] for c in d))' "$1"
}
read -r kn ke ks kr <<<"$(summary "$keep_out")"
read -r fn fe fs fr <<<"$(summary "$flush_out")"
echo "keep:  $kn connections on b1, $ke with errors, $kr requests"
echo "flush: $fn connections on b1, $fe with errors (reset: the clients reconnect elsewhere), $fr requests"
[ "$kn" -gt 0 ] && [ "$fn" -gt 0 ] && t_pass "connections landed on b1 on both VIPs" || t_fail "no connection on b1: untested"
t_eq "$ke" 0 "keep: b1's connections with errors"
t_eq "$fe" "$fn" "flush: every b1 connection was reset"
t_contains "$(cat "$flush_out")" "ConnectionResetError" "flush: the clients saw a reset"
out=$(client spread 10.10.100.1 81 30)
t_eq "$(json 'd.get("b1", 0), d["errors"]' "$out")" "0 0" "new connections after the flush avoid b1"
rm -f "$keep_out" "$flush_out"
t_done
