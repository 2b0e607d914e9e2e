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
summary=$("$PY" - "$out" <<'PY'
import collections, json, sys
d = json.loads(sys.argv[1])
s = collections.defaultdict(lambda: [0, 0, 0, 0, collections.Counter()])
for c in d:
    b = c["backends"][0] if c["backends"] else "none"
    s[b][0] += 1; s[b][1] += c["requests"]; s[b][2] += c["errors"]
    s[b][3] += len(c["backends"]) > 1
    if "error" in c:
        s[b][4][c["error"]] += 1
for b, v in sorted(s.items()):
    print("%s conns=%d requests=%d errors=%d switched=%d %s" % (b, *v[:4], dict(v[4])))
PY
)
echo "$summary"
for b in b1 b3; do
  line=$(grep "^$b " <<<"$summary" || true)
  [ -n "$line" ] || { t_fail "no connection landed on $b"; continue; }
  t_contains "$line" "errors=0" "connections on $b (kept, or drained) had no errors"
  t_contains "$line" "switched=0" "connections on $b stayed on $b"
done
line=$(grep "^b2 " <<<"$summary" || true)
[ -n "$line" ] && t_pass "some connections were on b2 ($line)" || t_fail "no connection on b2: the removal was not tested"
total_req=$(json 'sum(c["requests"] for c in d)' "$out")
[ "$total_req" -gt 500 ] && t_pass "$total_req requests answered" || t_fail "only $total_req requests"
t_contains "$(cat "$LBOUT")" "b1 state draining, slots 0" "drained b1 has no Maglev slots"
t_done
