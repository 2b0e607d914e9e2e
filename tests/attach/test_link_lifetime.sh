# SPDX-License-Identifier: MIT
# Links and process exit: a pinned link stays attached after its process
# ends and a second process opens it by pin to detach and unpin it; an
# unpinned link is gone when its process ends; SIGTERM detaches and exits 0.
# Checked with `ip -d link show` and `bpftool link show`.
source "$LUABPF_SOURCE_DIR/tests/lib.sh"
OBJ="$LUABPF_TEST_BPF_DIR/progs.bpf.o"
PIN="/sys/fs/bpf/lbtlink$T_ID"
trap 'rm -f "$PIN"; t_cleanup' EXIT

t_netns B
ip -n "$B" link add vb type veth peer name vc
ip -n "$B" link set vb up
ip -n "$B" link set vc up

xdp_on_vb() { ip -n "$B" -d link show vb | grep -o 'prog/xdp id [0-9]*' || true; }

# 1. A pinned XDP link and an unpinned tc one; the script ends.
out=$("$LUABPF" -e '
local obj = assert(bpf.load(arg[1]))
local xdp = assert(obj:program("xdp_pass"):attach_xdp("vb", {netns = arg[2]}))
assert(xdp:pin(arg[3]))
assert(obj:program("tc_pass"):attach_tc("vc", {netns = arg[2]}))
print("xdp link " .. xdp:info().id .. " tc link " .. bpf.links()[2]:info().id)
' "$OBJ" "$B" "$PIN" 2>&1)
rc=$?
t_eq "$rc" 0 "first process exit code"
xdp_id=$(sed -n 's/^xdp link \([0-9]*\) tc link.*/\1/p' <<<"$out")
tc_id=$(sed -n 's/.* tc link \([0-9]*\)$/\1/p' <<<"$out")
[ -n "$xdp_id" ] && [ -n "$tc_id" ] || t_fail "no link ids in: $out"
t_contains "$(xdp_on_vb)" "prog/xdp id" "pinned XDP link still attached after exit"
t_contains "$(bpftool link show id "$xdp_id" 2>&1)" "xdp" "bpftool still has the pinned link $xdp_id"
if bpftool link show id "$tc_id" >/dev/null 2>&1; then
  t_fail "unpinned tc link $tc_id outlived its process"
else
  t_pass "unpinned tc link $tc_id gone with its process"
fi
[ -e "$PIN" ] && t_pass "pin exists" || t_fail "pin $PIN missing"

# 2. A second process opens it by pin, checks it, detaches and unpins.
out=$("$LUABPF" -e '
local link = assert(bpf.link_from_pin(arg[1]))
local info = link:info()
print("id " .. info.id .. " type " .. info.type .. " prog " .. info.prog_name .. " pinned " .. info.pinned)
assert(link:unpin())
assert(link:detach())
' "$PIN" 2>&1)
t_eq "$?" 0 "second process exit code"
t_contains "$out" "id $xdp_id type xdp prog xdp_pass pinned $PIN" "link_from_pin sees the link"
t_eq "$(xdp_on_vb)" "" "XDP detached by the second process"
[ -e "$PIN" ] && t_fail "pin $PIN still there" || t_pass "pin removed"
bpftool link show id "$xdp_id" >/dev/null 2>&1 && t_fail "link $xdp_id still in bpftool link show" || t_pass "link $xdp_id gone from bpftool link show"

# link_from_pin on something that is not a link says so.
out=$("$LUABPF" -e '
local obj = assert(bpf.load(arg[1]))
assert(obj:program("xdp_pass"):pin(arg[2]))
print(bpf.link_from_pin(arg[2]))
obj:program("xdp_pass"):unpin(arg[2])
print(bpf.link_from_pin(arg[2]))
' "$OBJ" "$PIN" 2>&1)
t_contains "$out" "'$PIN' is pinned but is not a link (a map or a program?)	EINVAL" "program pin is not a link"
t_contains "$out" "can't open pinned link '$PIN': ENOENT" "missing pin"

# 3. SIGTERM while attached: detach, run shutdown hooks, exit 0.
log=$(mktemp)
"$LUABPF" -e '
local uv = require("luv")
local obj = assert(bpf.load(arg[1]))
local link = assert(obj:program("xdp_drop"):attach_xdp("vb", {netns = arg[2]}))
bpf.on_shutdown(function() print("shutdown hook, link " .. link:info().id) end)
print("attached") io.stdout:flush()
local tm = uv.new_timer()
tm:start(60000, 0, function() print("timeout") end)
' "$OBJ" "$B" >"$log" 2>&1 &
pid=$!
T_PIDS+=("$pid")
t_wait 10 grep -q attached "$log" || t_fail "not attached in 10 s: $(cat "$log")"
t_contains "$(xdp_on_vb)" "prog/xdp id" "attached while running"
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
t_eq "$rc" 0 "exit code after SIGTERM"
t_contains "$(cat "$log")" "shutdown hook, link" "shutdown hook ran while the link was live"
t_eq "$(xdp_on_vb)" "" "SIGTERM detached the XDP program"
term_id=$(sed -n 's/^shutdown hook, link //p' "$log")
bpftool link show id "$term_id" >/dev/null 2>&1 && t_fail "link $term_id left after SIGTERM" || t_pass "link $term_id gone from bpftool link show"
rm -f "$log"

t_done
