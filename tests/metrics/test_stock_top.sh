# SPDX-License-Identifier: MIT
# The shipped scripts serve metrics from their CONFIG (`metrics =
# "127.0.0.1:9435"`) and `luabpf top NAME` finds each by its name:
#   - lb.lua in the lab: its endpoint is what the control socket says (the
#     registration file removed first), top shows the VIP and backends with
#     rates in units, the exposition passes promtool;
#   - ddos_filter.lua (--name): per reason and rule, the pings and the denied
#     port as they happen, in units; promtool;
#   - a SIGHUP with another port moves the endpoint, top follows;
#   - a second filter on a port in use fails its start with the address, the
#     error and a hint, and leaves no XDP program behind;
#   - a service without metrics: top says so and how to turn them on.
source "$LUABPF_SOURCE_DIR/tests/lb/lb_env.sh"
lab_up "$P" 2
t_netns FA
t_netns FB
t_veth "$FA" f0 10.66.0.1/24 "$FB" f1 10.66.0.2/24
FNAME="flt$T_ID"
FCONF=$(mktemp --suffix=.lua)
FOUT=$(mktemp)
FPID=
stock_cleanup() {
  set +e
  if [ -n "$FPID" ]; then kill -INT "$FPID" 2>/dev/null; wait "$FPID" 2>/dev/null; fi
  rm -f "$FCONF" "$FOUT"
  lb_env_cleanup
}
trap stock_cleanup EXIT

# top NS NAME: two plain refreshes of `luabpf top NAME` run in namespace NS.
top() { "$LUABPF" --netns "$1" top "$2" --interval 0.5 --count 2 --plain 2>&1; }
# The last refresh of a plain top output.
last() { awk '/^[0-9:]+ luabpf top/ { b = "" } { b = b $0 "\n" } END { printf "%s", b }' <<<"$1"; }
scrape() { "$LUABPF" --netns "$1" -e "
  require('luabpf._http').get('$2', function(r, e)
    if not r then io.stderr:write(e, '\n') os.exit(1) end
    io.stdout:write(r.body) end)"; }
has_line() { # TEXT LINE WHAT
  if grep -qxF -- "$2" <<<"$1"; then t_pass "$3"; else t_fail "$3: no line '$2' in:"$'\n'"$(grep -F "${2%% *}" <<<"$1")"; fi
}
promtool_ok() {
  if promtool check metrics <<<"$1" >/dev/null 2>&1; then t_pass "$2: promtool check metrics"
  else t_fail "$2: promtool: $(promtool check metrics <<<"$1" 2>&1 | head -5)"; fi
}

# 1. The stock balancer with metrics on.
cat >"$CONF" <<EOF
service = "$SVC"
interface = "eth0"
metrics = "127.0.0.1:9435"
vips = { { name = "web", addr = "10.10.100.1", port = 80, backends = {
  { name = "b1", addr = "10.10.0.11", port = 8080 }, { name = "b2", addr = "10.10.0.12", port = 8080 } } } }
EOF
lb_start
t_contains "$(cat "$LBOUT")" "metrics on http://127.0.0.1:9435/metrics (luabpf top $SVC)" "lb.lua announces its endpoint"
# Only the control socket tells where: the registration file goes.
rm -f "/run/luabpf/metrics/$SVC"
out=$(client spread 10.10.100.1 80 40)
t_eq "$(json 'd["errors"]' "$out")" 0 "40 connections through the balancer"
out=$(top "$P-lb" "$SVC")
view=$(last "$out")
echo "$view"
t_contains "$view" "luabpf top  http://127.0.0.1:9435/metrics" "top $SVC found the endpoint through the control socket"
t_contains "$view" "VIP / BACKEND" "the balancer's view"
vrow=$(grep "^$SVC/web " <<<"$view")
t_contains "$vrow" "tcp 10.10.100.1:80 nat" "the VIP row"
[[ "$vrow" =~ [0-9.]+\ k?pps\ +[0-9.]+\ [kM]?bit/s ]] && t_pass "rates in units: ${BASH_REMATCH[0]}" ||
  t_fail "no rate in units in: $vrow"
pk=$(awk '{ gsub(",", "", $NF); print $NF }' <<<"$vrow")
[ "${pk:-0}" -ge 200 ] 2>/dev/null && t_pass "VIP packets counted ($pk)" || t_fail "VIP packets '$pk'"
t_eq "$(grep -cE '^  b[12] +active' <<<"$view")" 2 "both backends, active"
promtool_ok "$(scrape "$P-lb" http://127.0.0.1:9435/metrics)" "lb.lua"

# 2. The stock filter with metrics on: pings pass, port 23 is denied.
cat >"$FCONF" <<EOF
deny = { "23/tcp" }
metrics = "127.0.0.1:9435"
EOF
"$LUABPF" --netns "$FA" --name "$FNAME" run "$LUABPF_SOURCE_DIR/scripts/examples/ddos_filter.lua" --iface f0 \
  --mode generic "$FCONF" >"$FOUT" 2>&1 &
FPID=$!
t_wait 10 grep -q "filter on f0" "$FOUT" || { cat "$FOUT" >&2; t_fail "the filter did not start"; t_done; }
t_contains "$(cat "$FOUT")" "metrics on http://127.0.0.1:9435/metrics (luabpf top $FNAME)" "ddos_filter.lua announces its endpoint"
ip netns exec "$FB" ping -q -c 20 -i 0.01 10.66.0.1 >/dev/null 2>&1 || t_fail "pings through the filter"
# Exactly 5 SYNs to the denied port (a connect would retransmit its SYN).
ip netns exec "$FB" hping3 -q -S -p 23 -c 5 -i u20000 10.66.0.1 >/dev/null 2>&1 || true
# Pings go on while top watches: a rate to see.
ip netns exec "$FB" ping -q -i 0.02 -c 200 10.66.0.1 >/dev/null 2>&1 &
PING=$!
T_PIDS+=("$PING")
out=$(top "$FA" "$FNAME")
view=$(last "$out")
echo "$view"
t_contains "$view" "luabpf top  http://127.0.0.1:9435/metrics" "top $FNAME found the filter's endpoint"
t_contains "$view" "FILTER / REASON" "the filter's view"
t_contains "$view" "f0  (0 banned now)" "the filter's name and its bans"
prow=$(grep -E '^  pass ' <<<"$view")
[[ "$prow" =~ \ pass\ +[0-9.]+\ pps\ +[0-9.]+\ k?bit/s ]] && t_pass "passed packets with a rate in units: $prow" ||
  t_fail "no rate in units for 'pass': $prow"
t_contains "$(grep -E '^  deny_port ' <<<"$view")" "drop" "denied SYNs counted as drops"
t_contains "$view" "23/tcp" "the deny rule's row"
M=$(scrape "$FA" http://127.0.0.1:9435/metrics)
has_line "$M" "luabpf_filter_packets_total{filter=\"f0\",reason=\"deny_port\",verdict=\"drop\"} 5" \
  "exposition: the 5 SYNs to port 23, dropped"
has_line "$M" "luabpf_filter_rule_packets_total{filter=\"f0\",rule=\"23/tcp\",action=\"deny\"} 5" \
  "exposition: the rule's 5 packets"
t_contains "$M" 'luabpf_prog_runs_total{prog="xdp_filter"' "exposition: the data plane's run count"
promtool_ok "$M" "ddos_filter.lua"

# 3. Reload to another port: the endpoint moves, top follows.
sed -i 's/9435/9436/' "$FCONF"
m=$(wc -l <"$FOUT")
kill -HUP "$FPID"
t_wait 5 sh -c "tail -n +$((m + 1)) '$FOUT' | grep -q 'reloaded'" || t_fail "no reload: $(tail -n +$((m + 1)) "$FOUT")"
t_contains "$(tail -n +$((m + 1)) "$FOUT")" "metrics on http://127.0.0.1:9436/metrics" "reload moved the endpoint"
t_contains "$(top "$FA" "$FNAME")" "luabpf top  http://127.0.0.1:9436/metrics" "top follows it"
kill "$PING" 2>/dev/null || true

# 4. A second filter on a port in use: refused before it attaches anything.
ip -n "$FA" link add f9 type veth peer name f9p
ip -n "$FA" link set f9 up
printf 'metrics = "127.0.0.1:9436"\n' >"$FCONF.2"
rc=0
out=$("$LUABPF" --netns "$FA" --name "${FNAME}x" run "$LUABPF_SOURCE_DIR/scripts/examples/ddos_filter.lua" \
  --iface f9 --mode generic "$FCONF.2" 2>&1) || rc=$?
rm -f "$FCONF.2"
t_eq "$rc" 1 "a port in use: exit code"
t_contains "$out" "ERROR: config $FCONF.2: metrics: can't listen on 127.0.0.1:9436: EADDRINUSE" "the error names the address"
t_contains "$out" "HINT: another process listens there" "and hints"
t_eq "$(ip -n "$FA" -d link show f9 | grep -c 'prog/xdp' || true)" 0 "no XDP program left on f9"

# 5. A service without metrics: top says how to turn them on.
kill -INT "$FPID"; wait "$FPID" || t_fail "the filter exited with $?"; FPID=
printf 'deny = { "23/tcp" }\n' >"$FCONF"
"$LUABPF" --netns "$FA" --name "$FNAME" run "$LUABPF_SOURCE_DIR/scripts/examples/ddos_filter.lua" --iface f0 \
  --mode generic "$FCONF" >"$FOUT" 2>&1 &
FPID=$!
t_wait 10 grep -q "filter on f0" "$FOUT" || t_fail "the filter did not restart"
rc=0
out=$(top "$FA" "$FNAME") || rc=$?
t_eq "$rc" 1 "top on a service without metrics: exit code"
t_contains "$out" "ERROR: service '$FNAME' runs but serves no metrics" "top says it serves none"
t_contains "$out" "HINT: set metrics = \"127.0.0.1:9435\" in its config" "and how to turn them on"
t_done
