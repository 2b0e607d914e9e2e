# SPDX-License-Identifier: MIT
# The balancer's lifecycle (issue 17 faults 4 and 5, issue 19): one process
# per service (a second start is refused naming the first's pid and changes
# nothing), a reload that changes a setting it can't is refused naming it
# (the running pool stays), a stop says what stays attached, a start on
# another interface than the pinned link's is refused naming both, and a
# start that fails after loading leaves nothing behind; `luabpf check`
# reports too many backends and a DSR backend port unlike the VIP's; a
# reload of a config that loops ends at its line (the service runs on); a
# pinned link running another program is not taken over.
source "$LUABPF_SOURCE_DIR/tests/lb/lb_env.sh"
lab_up "$P" 2
PIN="/sys/fs/bpf/luabpf/lb/$SVC"
run_lb() { timeout 20 "$LUABPF" --netns "$P-lb" "$@" run "$LUABPF_SOURCE_DIR/scripts/examples/lb.lua" "$CONF"; }
xdp_id() { ip -n "$P-lb" -d link show "${1:-eth0}" 2>/dev/null | sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p'; }
pins() { ls "$PIN" 2>/dev/null | tr '\n' ' '; }
served() { json 'd["errors"] == 0 and d.get("b1", 0) + d.get("b2", 0) == 20' "$(client spread 10.10.100.1 80 20)"; }

lb_conf "" "b1 10.10.0.11 1" "b2 10.10.0.12 1"
lb_start
id=$(xdp_id)
before=$(pins)

# 1. A second process for the same service (another --name): refused, nothing changed.
rc=0
out=$(run_lb --name "other$T_ID" 2>&1) || rc=$?
t_eq "$rc" 1 "second process for service '$SVC': exit code"
t_contains "$out" "ERROR: service '$SVC' is run by pid $LBPID (" "second process: names the pid that runs it"
t_contains "$out" "HINT: stop it first ('luabpf lb stop $SVC'" "second process: says how to go on"
t_eq "$(xdp_id)" "$id" "second process: XDP program on eth0 unchanged"
t_eq "$(pins)" "$before" "second process: pins unchanged"
grep -q "took over" <<<"$out" && t_fail "the second process took over the link" || t_pass "no takeover by the second process"
t_eq "$(served)" True "the first instance still serves every request"

# 2. A reload that changes what needs a restart: refused as a whole (b2's removal too).
m=$(wc -l <"$LBOUT")
lb_conf "" "b1 10.10.0.11 1"
sed -i "s/interface = 'eth0'/interface = 'eth1'\nflows = 4096/" "$CONF"
kill -HUP "$LBPID"
lb_wait_log "$m" 10 "reload refused" || t_fail "no reload refusal logged"
t_contains "$(tail -n +$((m + 1)) "$LBOUT")" \
  "service '$SVC': reload refused: 'interface' changed (eth0 -> eth1), 'flows' changed (65536 -> 4096): restart the service to change them (the running configuration stays)" \
  "reload refused: names each setting, old and new"
lb_report "b2 "
t_contains "$REPORT" "b2 " "refused reload: b2 (removed in the refused config) is still in the pool"
t_eq "$(served)" True "refused reload: still serving with both backends"
# A config that loops: the reload ends with its line, the service runs on.
lb_conf "" "b1 10.10.0.11 1"
echo "while true do end" >>"$CONF"
m=$(wc -l <"$LBOUT")
kill -HUP "$LBPID"
lb_wait_log "$m" 30 "reload refused" || t_fail "no refusal of a looping config"
t_contains "$(tail -n +$((m + 1)) "$LBOUT")" "$CONF:6: the config did not finish within" "a looping config's reload: refused at its line"
t_eq "$(served)" True "a looping config's reload: still serving with both backends"
# The same config with only what a reload can change: applied.
lb_conf "" "b1 10.10.0.11 1"
m=$(wc -l <"$LBOUT")
kill -HUP "$LBPID"
lb_wait_log "$m" 10 "reloaded $CONF" && t_pass "a reload without fixed changes applies" || t_fail "no 'reloaded' line"
lb_conf "" "b1 10.10.0.11 1" "b2 10.10.0.12 1"
m=$(wc -l <"$LBOUT")
kill -HUP "$LBPID"
lb_wait_log "$m" 10 "reloaded $CONF" || t_fail "no 'reloaded' line"

# 3. Stop (SIGINT, pinned) says what stays.
lb_stop
t_eq "$LBRC" 0 "stop: exit code"
t_contains "$(cat "$LBOUT")" \
  "service '$SVC': XDP left attached on eth0, state in $PIN; 'luabpf lb stop $SVC' removes it" "stop: the log says what stays"
t_eq "$(xdp_id)" "$id" "stop: XDP still attached on eth0"

# 4. A start on another interface than the pinned link's: refused, naming both.
ip -n "$P-lb" link add eth1 type veth peer name eth1p
ip -n "$P-lb" link set eth1p up
ip -n "$P-lb" link set eth1 up
sed -i "s/interface = 'eth0'/interface = 'eth1'/" "$CONF"
rc=0
out=$(run_lb 2>&1) || rc=$?
t_eq "$rc" 1 "takeover on another interface: exit code"
t_contains "$out" "is on eth0 (ifindex" "refused takeover: names the pinned link's interface"
t_contains "$out" "this configuration says eth1" "refused takeover: names the configured one"
t_eq "$(xdp_id)" "$id" "refused takeover: eth0's program unchanged"
t_eq "$(xdp_id eth1)" "" "refused takeover: nothing attached to eth1"
t_eq "$(served)" True "refused takeover: the pinned data plane still serves"

# The pinned service, destroyed through a start with --destroy on eth0.
sed -i "s/interface = 'eth1'/interface = 'eth0'/" "$CONF"
lb_start --destroy
lb_stop
[ -e "$PIN" ] && t_fail "--destroy left $PIN" || t_pass "--destroy removed the pinned state"

# 5. Checked before anything is made: too many backends, a DSR port unlike the VIP's.
cat >"$CONF" <<LUA
service = "$SVC"
interface = "eth0"
max_backends = 2
vips = {
  { name = "web", addr = "10.10.100.1", port = 80, backends = {
      { name = "b1", addr = "10.10.0.11", port = 8080 },
      { name = "b2", addr = "10.10.0.12", port = 8080 },
      { name = "b3", addr = "10.10.0.13", port = 8080 } } },
  { name = "dsr", addr = "10.10.100.2", port = 80, mode = "dsr", backends = {
      { name = "d1", addr = "10.10.0.11", port = 8080 } } },
}
LUA
rc=0
out=$("$LUABPF" check "$CONF" 2>&1) || rc=$?
t_eq "$rc" 1 "check: too many backends, DSR port: exit code"
t_contains "$out" "$CONF:3: error: 4 backends, but max_backends is 2" "check: backends over max_backends, at its line"
t_contains "$out" "$CONF:10: error: vip 'dsr': backend 'd1': port 8080 is not the VIP's port 80" "check: DSR port, at its line"
rc=0
out=$(run_lb 2>&1) || rc=$?
t_eq "$rc" 1 "start with too many backends: exit code"
[ -e "$PIN" ] && t_fail "a refused start left $PIN" || t_pass "a refused start made no pin directory"
t_eq "$(xdp_id)" "" "a refused start attached nothing"

# A start that fails only when applying (a NAT VIP on an interface without an
# address: no SNAT address to take) undoes what it made.
ip -n "$P-lb" addr flush dev eth1
cat >"$CONF" <<LUA
service = "$SVC"
interface = "eth1"
xdp_mode = "generic"
vips = { { name = "web", addr = "10.10.100.1", port = 80, backends = { { addr = "10.10.0.11", port = 8080 } } } }
LUA
rc=0
out=$(run_lb 2>&1) || rc=$?
t_eq "$rc" 1 "start failing at apply: exit code"
t_contains "$out" "has no IPv4 address" "start failing at apply: the reason"
[ -e "$PIN" ] && t_fail "a start failing at apply left $PIN ($(pins))" || t_pass "a start failing at apply left no pins"
t_eq "$(xdp_id eth1)" "" "a start failing at apply left nothing attached"

# 6. A pinned link that runs another program: refused naming both, left as it is.
mkdir -p "$PIN"
"$LUABPF" --netns "$P-lb" -e "local o = assert(bpf.load('$LUABPF_BUILD_DIR/bpf/xdp_pass.bpf.o'))
  assert(assert(o:program('xdp_pass'):attach_xdp('eth0')):pin('$PIN/link'))"
id=$(xdp_id)
lb_conf "" "b1 10.10.0.11 1"
rc=0
out=$(run_lb 2>&1) || rc=$?
t_eq "$rc" 1 "takeover of another program: exit code"
t_contains "$out" "runs program 'xdp_pass', this data plane's is 'xdp_lb'" "takeover of another program: names both"
t_eq "$(xdp_id)" "$id" "takeover of another program: it stays attached"
out=$("$LUABPF" lb stop "$SVC" 2>&1) || t_fail "lb stop: $out"
t_contains "$out" "detached xdp_pass (ifindex " "lb stop removes what another program left"
t_done
