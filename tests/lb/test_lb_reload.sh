# SPDX-License-Identifier: MIT
# SIGHUP applies a changed configuration to the running balancer: a backend
# added, one drained, held connections untouched; a broken configuration is
# refused with its reason and the running one keeps serving.
source "$LUABPF_SOURCE_DIR/tests/lb/lb_env.sh"
lab_up "$P" 3
conf() { lb_conf "" "$@"; } # BACKENDS...: "name addr weight"
conf "b1 10.10.0.11 1" "b2 10.10.0.12 1"
lb_start --destroy
# The control socket is named after the config's service, not the script file.
t_eq "$(echo 'return lb_service.name' | "$LUABPF" attach "$SVC" 2>&1)" "\"$SVC\"" "luabpf attach SERVICE reaches the balancer"

hold_out=$(mktemp)
client hold 10.10.100.1 80 16 4 >"$hold_out" &
hold=$!
lb_established 16 80
sleep 0.5 # a duration, not a wait: each connection has its backend before the reload
conf "b1 10.10.0.11 0" "b2 10.10.0.12 1" "b3 10.10.0.13 2"
kill -HUP "$LBPID"
t_wait 5 grep -q "reloaded $CONF" "$LBOUT" && t_pass "reload logged" || t_fail "no reload in the log"
lb_reload_spread 'd.get("b3", 0) > d.get("b2", 0)'
wait "$hold"
lb_held_kept "$hold_out" errors
rm -f "$hold_out"

# A broken configuration: refused, named, and the running pool stays.
printf 'service = "%s"; interface = "eth0"\nvips = { { name = "web", addr = "10.10.100.300", port = 80 } }\n' "$SVC" >"$CONF"
kill -HUP "$LBPID"
t_wait 5 grep -q "reload refused" "$LBOUT" && t_pass "broken config refused" || t_fail "broken config not refused"
t_contains "$(cat "$LBOUT")" "'10.10.100.300' is not an IPv4 or IPv6 address" "refusal names the bad value"
out=$(client spread 10.10.100.1 80 100)
t_eq "$(json 'd["errors"]' "$out")" 0 "still serving after the refused reload"
t_eq "$(json 'd.get("b1", 0)' "$out")" 0 "still the reloaded pool (b1 drained)"
lb_stop
t_eq "$LBRC" 0 "exit code"
t_done
