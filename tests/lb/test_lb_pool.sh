# SPDX-License-Identifier: MIT
# Long-lived connections through the balancer while the pool changes: adding
# a backend, draining one and removing another resets no connection except
# those on the removed backend (they move, and the new backend resets them).
source "$LUABPF_SOURCE_DIR/tests/lb/lb_env.sh"
lab_up "$P" 4
"$LUABPF" --netns "$P-lb" run "$LUABPF_SOURCE_DIR/tests/lb/lb_pool.lua" "$SVC" >"$LBOUT" 2>&1 &
LBPID=$!
t_wait 10 grep -q ready "$LBOUT" || { cat "$LBOUT"; t_fail "pool driver did not start"; t_done; }

out=$(client hold 10.10.100.1 80 24 5.5)
rc=0; kill -INT "$LBPID"; wait "$LBPID" || rc=$?; LBPID=
cat "$LBOUT"
t_eq "$rc" 0 "pool driver exit code"
t_contains "$(cat "$LBOUT")" "removed b2" "the timeline ran to the end"

# Per backend a connection started on: connections, requests, and errors.
summary=$(lb_pool_summary "$out")
echo "$summary"
lb_pool_kept "$summary" errors "had no errors"
line=$(grep "^b2 " <<<"$summary" || true)
[ -n "$line" ] && t_pass "some connections were on b2 ($line)" || t_fail "no connection on b2: the removal was not tested"
total_req=$(json 'sum(c["requests"] for c in d)' "$out")
[ "$total_req" -gt 500 ] && t_pass "$total_req requests answered" || t_fail "only $total_req requests"
t_contains "$(cat "$LBOUT")" "b1 state draining, slots 0" "drained b1 has no Maglev slots"
t_done
