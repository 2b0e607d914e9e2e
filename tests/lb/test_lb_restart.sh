# SPDX-License-Identifier: MIT
# Restarting the balancer under load fails no request: the XDP link and the
# maps stay pinned while luabpf is down, and the new instance takes them over.
# Then a pinned map whose definition changed is refused with a clear error.
source "$LUABPF_SOURCE_DIR/tests/lb/lb_env.sh"
lab_up "$P" 3
write_conf() {
  cat >"$CONF" <<LUA
service = "$SVC"
interface = "eth0"
flows = $1
vips = {
  { name = "web", addr = "10.10.100.1", port = 80, mode = "nat", backends = {
      { name = "b1", addr = "10.10.0.11", port = 8080 },
      { name = "b2", addr = "10.10.0.12", port = 8080 },
      { name = "b3", addr = "10.10.0.13", port = 8080 } } },
}
LUA
}
write_conf 65536
lb_start

wrk_out=$(mktemp)
ip netns exec "$P-cl" wrk -t2 -c16 -d6s http://10.10.100.1/ >"$wrk_out" 2>&1 &
wrk_pid=$!
spread_out=$(mktemp)
client spread 10.10.100.1 80 600 >"$spread_out" &
spread_pid=$!

sleep 2 # a duration, not a wait: the load runs 2 s before the restart
lb_stop
t_eq "$LBRC" 0 "first instance exit code"
ip -n "$P-lb" -d link show eth0 | grep -q "prog/xdp" && t_pass "XDP stays attached while luabpf is down" ||
  t_fail "XDP detached at exit of a pinned service"
sleep 0.5 # a duration, not a wait: luabpf stays down 0.5 s under load
lb_start
t_contains "$(cat "$LBOUT")" "took over the pinned XDP link" "second instance took over the link"
wait "$wrk_pid" || true
wait "$spread_pid" || true
cat "$wrk_out"
reqs=$(awk '/requests in/ {print $1}' "$wrk_out")
[ "${reqs:-0}" -gt 500 ] && t_pass "wrk made $reqs requests across the restart" || t_fail "wrk made ${reqs:-0} requests"
grep -q "Socket errors" "$wrk_out" && t_fail "wrk saw socket errors: $(grep 'Socket errors' "$wrk_out")" ||
  t_pass "wrk: no socket errors"
grep -q "Non-2xx" "$wrk_out" && t_fail "wrk saw non-2xx responses" || t_pass "wrk: every response 2xx"
t_eq "$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["errors"])' "$spread_out")" 0 \
  "new connections during the restart that failed"
rm -f "$wrk_out" "$spread_out"

# Same service, other flow table size: refused, the running data plane untouched.
lb_stop
write_conf 1024
rc=0
out=$("$LUABPF" --netns "$P-lb" run "$LUABPF_SOURCE_DIR/scripts/examples/lb.lua" "$CONF" 2>&1) || rc=$?
t_eq "$rc" 1 "changed map definition: exit code"
t_contains "$out" "was made with other map sizes or an older data plane" "changed map definition: message"
t_contains "$out" "rm -r /sys/fs/bpf/luabpf/lb/$SVC" "changed map definition: says how to start over"
t_eq "$(client spread 10.10.100.1 80 30 | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["errors"])')" 0 \
  "the pinned data plane still serves after the refused start"
t_done
