# SPDX-License-Identifier: MIT
# luabpf lb against a running scripts/examples/lb.lua in the lab: list, show
# (text and JSON), weight, drain, enable, add, remove, each seen in `show`,
# in the traffic and in the service's log with the uid that asked; what a
# SIGHUP reload keeps (runtime changes to backends the config left alone) and
# drops (those it changed); a uid that may not use the socket is refused;
# stop detaches, removes the pins and the service exits 0.
source "$LUABPF_SOURCE_DIR/tests/lb/lb_env.sh"
lab_up "$P" 3
conf() { lb_conf "check = { type = 'tcp', interval = 0.3 }," "$@"; } # BACKENDS...: "name addr weight"
conf "b1 10.10.0.11 1" "b2 10.10.0.12 1"
lb_start
lb() { "$LUABPF" lb "$@"; }
show_json() { lb show "$SVC" --json; }
# bj FIELD BACKEND JSON: a backend's field in `show --json`.
bj() { json "[b for b in d['vips'][0]['backends'] if b['name'] == '$2'][0]['$1']" "$3"; }
spread() { client spread 10.10.100.1 80 "$1"; }

# list: this service, its pid and interface.
out=$(lb list) && rc=0 || rc=$?
echo "$out"
t_eq "$rc" 0 "list: exit status"
t_contains "$out" "NAME" "list: header"
line=$(echo "$out" | awk -v s="$SVC" '$1 == s')
t_eq "$(echo "$line" | awk '{print $2, $3, $4, $5}')" "$LBPID eth0 1 2" "list: pid, interface, VIPs, backends"
t_eq "$(json "[x['pid'] for x in d if x['service'] == '$SVC'][0]" "$(lb list --json)")" "$LBPID" "list --json: pid"

# show, after traffic: counts, slots, digest, rates.
out=$(spread 300)
t_eq "$(json 'd["errors"]' "$out")" 0 "traffic through the balancer"
text=$(lb show "$SVC") && rc=0 || rc=$?
echo "$text"
t_eq "$rc" 0 "show: exit status"
t_contains "$text" "VIP web  10.10.100.1:80/tcp  nat  quorum ok" "show: the VIP line"
t_contains "$text" "Maglev table: 65,537 slots, digest " "show: table size with separators, digest"
t_eq "$(echo "$text" | awk '$1 == "BACKEND"' | tr -s ' ')" \
  " BACKEND ADDRESS WEIGHT STATE HEALTH SLOTS PACKETS FLOWS PKT/S BIT/S FLOW/S RUNTIME" "show: columns"
t_eq "$(echo "$text" | awk '$1 == "b1" {print $2, $3, $4, $5, $NF}')" "10.10.0.11:8080 1 active up -" \
  "show: b1's row"
col=$(echo "$text" | awk '$1 == "BACKEND" {print index($0, "PACKETS") + 6}')
t_eq "$(echo "$text" | awk -v c="$col" '$1 == "b1" || $1 == "b2" {print substr($0, c, 1)}' | grep -c '[0-9]')" \
  2 "show: PACKETS right-aligned (a digit under its header's last letter)"
j=$(show_json)
t_eq "$(json "sum(b['flows'] for b in d['vips'][0]['backends'])" "$j")" 300 "show --json: flows add up to the connections"
t_eq "$(json "[b['name'] for b in d['vips'][0]['backends']]" "$j")" "['b1', 'b2']" "show --json: backends in order"
t_eq "$(json "sum(b['slots'] for b in d['vips'][0]['backends']) == d['vips'][0]['table']['size'] == 65537" "$j")" \
  True "show --json: the slots fill the table"
t_eq "$(json "len(d['vips'][0]['table']['digest'])" "$j")" 8 "show --json: digest"
t_eq "$(json "all(type(b[k]) is int for b in d['vips'][0]['backends'] for k in ('packets', 'bytes', 'flows', 'weight'))" "$j")" \
  True "show --json: counts are numbers"
t_eq "$(json "type(d['vips'][0]['pps']) in (int, float)" "$j")" True "show --json: rates are numbers"
t_eq "$(json "sorted(d['vips'][0]['backends'][0].keys()) == sorted(['name', 'addr', 'port', 'weight', 'config_weight', 'effective_weight', 'state', 'health', 'reason', 'detail', 'slots', 'packets', 'bytes', 'flows', 'pps', 'bps', 'flows_per_s', 'runtime', 'sorry'])" "$j")" \
  True "show --json: the documented backend fields, all present"
digest0=$(json "d['vips'][0]['table']['digest']" "$j")

# weight: visible in show (RUNTIME), in the traffic, in the log with the uid.
out=$(lb weight "$SVC" web b2 3) && rc=0 || rc=$?
t_eq "$rc $out" "0 VIP 'web' backend 'b2': weight 1 -> 3" "weight: answer"
t_wait 5 grep -q "VIP 'web' backend 'b2': weight 1 -> 3 (weight; runtime change by uid 0 (root), pid " "$LBOUT" &&
  t_pass "weight: logged with uid and pid" || t_fail "weight: not logged with who asked: $(tail -3 "$LBOUT")"
j=$(show_json)
t_eq "$(bj weight b2 "$j") $(bj config_weight b2 "$j") $(bj runtime b2 "$j")" "3 1 weight" "weight: show --json"
t_eq "$(lb show "$SVC" | awk '$1 == "b2" {print $3, $(NF-2), $(NF-1), $NF}')" "3 weight (config 1)" "weight: show's RUNTIME column"
[ "$(json "d['vips'][0]['table']['digest']" "$j")" != "$digest0" ] && t_pass "weight: a new table digest" ||
  t_fail "weight: the table digest did not change"
out=$(spread 400)
echo "b2 weight 3: $out"
t_eq "$(json 'd["b2"] > 2 * d["b1"] and d["errors"] == 0' "$out")" True "weight: b2 gets about 3 times b1's connections"

# drain and enable.
t_eq "$(lb drain "$SVC" web b1)" "VIP 'web' backend 'b1': weight 1 -> 0" "drain: answer"
t_eq "$(lb show "$SVC" | awk '$1 == "b1" {print $3, $4}')" "0 draining" "drain: show"
out=$(spread 200)
t_eq "$(json 'd.get("b1", 0), d["errors"]' "$out")" "0 0" "drain: b1 gets no new connection"
t_eq "$(lb drain "$SVC" web b1)" "VIP 'web' backend 'b1' is drained already (weight 0)" "drain twice: said, no change"
t_eq "$(lb enable "$SVC" web b1)" "VIP 'web' backend 'b1': weight 0 -> 1" "enable: the weight before the drain"
t_eq "$(bj runtime b1 "$(show_json)")" None "enable: b1 is as the config says again"
t_contains "$(cat "$LBOUT")" "VIP 'web' backend 'b1': weight 1 -> 0 (drain; runtime change by uid 0" "drain: logged"
out=$(spread 200)
t_eq "$(json 'd.get("b1", 0) > 0' "$out")" True "enable: b1 serves again"

# add and remove.
out=$(lb add "$SVC" web b3 10.10.0.13:8080 weight 1) && rc=0 || rc=$?
t_eq "$rc $out" "0 VIP 'web' backend 'b3': added as 10.10.0.13:8080 weight 1" "add: answer"
t_eq "$(lb show "$SVC" | awk '$1 == "b3" {print $2, $(NF-3), $(NF-2), $(NF-1), $NF}')" \
  "10.10.0.13:8080 added (not in config)" "add: show"
out=$(lb remove "$SVC" web b2) && rc=0 || rc=$?
t_eq "$rc $out" "0 VIP 'web' backend 'b2' (10.10.0.12:8080): removed" "remove: answer"
j=$(show_json)
t_eq "$(bj state b2 "$j") $(bj runtime b2 "$j") $(bj config_weight b2 "$j")" "removed removed 1" "remove: show keeps the config's b2, marked"
out=$(spread 300)
echo "b2 removed, b3 added: $out"
t_eq "$(json 'd.get("b2", 0), d["b3"] > 0, d["errors"]' "$out")" "0 True 0" "add/remove: in the traffic"
out=$(lb add "$SVC" web b4 10.10.0.14:8080 weight x 2>&1) && rc=0 || rc=$?
t_eq "$rc" 2 "add with a bad weight: exit status"
out=$(lb add "$SVC" nope b4 10.10.0.14:8080 2>&1) && rc=0 || rc=$?
t_eq "$rc $out" "1 ERROR: lb add $SVC: service '$SVC' has no VIP 'nope' (VIPs: web)" "an unknown VIP: the service's message"
out=$(lb weight "$SVC" web b9 1 2>&1) && rc=0 || rc=$?
t_eq "$rc $out" "1 ERROR: lb weight $SVC: VIP 'web' has no backend 'b9' (backends: b1, b3)" "an unknown backend: named"

# A backend added with nothing listening: its check takes it down, and show
# says why (health and its reason; state down, not draining).
lb add "$SVC" web b4 10.10.0.13:8081 >/dev/null
b4_down() { [ "$(bj state b4 "$(show_json)")" = down ]; }
t_wait 10 b4_down && t_pass "health: b4 goes down" || t_fail "health: b4 never down: $(lb show "$SVC")"
text=$(lb show "$SVC")
echo "$text"
t_eq "$(echo "$text" | awk '$1 == "b4" {print $4, $5, $6}')" "down down (refused)" "health: show's STATE and HEALTH (reason)"
t_eq "$(bj reason b4 "$(show_json)")" refused "health: show --json's reason"
lb remove "$SVC" web b4 >/dev/null
t_eq "$(json "[b['name'] for b in d['vips'][0]['backends']]" "$(show_json)")" "['b1', 'b3', 'b2']" \
  "a backend added and removed at runtime leaves no trace"

# SIGHUP: runtime changes to what the config left alone stay; a backend the
# config changed takes the config's value.
lb weight "$SVC" web b1 2 >/dev/null
kill -HUP "$LBPID"
t_wait 5 grep -q "reloaded $CONF" "$LBOUT" && t_pass "reload 1: done" || t_fail "reload 1: not logged"
j=$(show_json)
t_eq "$(bj weight b1 "$j") $(bj runtime b1 "$j") $(bj state b2 "$j") $(bj runtime b3 "$j")" "2 weight removed added" \
  "reload, same config: the runtime changes stay"
t_contains "$(cat "$LBOUT")" "reload keeps the runtime change to VIP 'web' backend 'b1' (weight 2): the config's weight 1 is unchanged" \
  "reload 1: logged"
conf "b1 10.10.0.11 5" "b2 10.10.0.12 1"
kill -HUP "$LBPID"
t_wait 5 sh -c "grep -c 'reloaded $CONF' '$LBOUT' | grep -qx 2" && t_pass "reload 2: done" || t_fail "reload 2: not logged"
j=$(show_json)
t_eq "$(bj weight b1 "$j") $(bj runtime b1 "$j") $(bj state b2 "$j") $(bj runtime b3 "$j")" "5 None removed added" \
  "reload, b1 changed in the config: the config's weight; the other changes stay"
t_contains "$(cat "$LBOUT")" "reload: the config changed VIP 'web' backend 'b1': its runtime change (weight 2) is dropped" \
  "reload 2: the dropped change is logged"
out=$(spread 200)
t_eq "$(json 'd.get("b2", 0), d["errors"]' "$out")" "0 0" "after the reloads: b2 still out of the pool"

# Another uid: refused by SO_PEERCRED (past the directory with
# CAP_DAC_OVERRIDE), logged, nothing changed. It must reach the binary: a
# build tree in a closed home directory makes this test install one.
t_nobody_luabpf
out=$(LUABPF_RUN_DIR=/run/luabpf setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=+dac_override \
  --ambient-caps=+dac_override "$NLUABPF" lb drain "$SVC" web b1 2>&1) && rc=0 || rc=$?
t_eq "$rc" 3 "nobody: exit status"
t_contains "$out" "refused the connection: uid 65534 is not allowed" "nobody: refused"
t_contains "$(cat "$LBOUT")" "refused a connection from pid" "nobody: the refusal is logged"
t_eq "$(bj weight b1 "$(show_json)")" 5 "nobody: nothing changed"

# stop: detach, remove the pins, exit 0.
out=$(lb stop "$SVC") && rc=0 || rc=$?
echo "$out"
t_eq "$rc $out" "0 service '$SVC' stopped (pid $LBPID): detached from eth0, /sys/fs/bpf/luabpf/lb/$SVC removed" "stop: answer"
wait "$LBPID" && LBRC=0 || LBRC=$?
LBPID=
t_eq "$LBRC" 0 "stop: the service exited 0"
t_contains "$(cat "$LBOUT")" "stop requested by uid 0 (root), pid" "stop: logged with who asked"
[[ "$(ip -n "$P-lb" -d link show eth0)" == *xdp* ]] && t_fail "stop: XDP still attached" || t_pass "stop: XDP detached"
[ -e "/sys/fs/bpf/luabpf/lb/$SVC" ] && t_fail "stop: pins left" || t_pass "stop: pins removed"
out=$(lb show "$SVC" 2>&1) && rc=0 || rc=$?
t_eq "$rc" 1 "show after stop: exit status"
t_contains "$out" "no service named '$SVC'" "show after stop: said"
t_done
