# SPDX-License-Identifier: MIT
# The first ten minutes (issue 13): what a new user types, and the exact
# message each mistake gets. Options after `run`, help and version, pins under
# `ip netns exec` (no bpffs there), an object built without -g, an index past
# an array's end, and callbacks that raised.
source "$LUABPF_SOURCE_DIR/tests/lib.sh"
dir=$(mktemp -d)
PIN_ROOT="/sys/fs/bpf/luabpf-test-$T_ID"
trap 'rm -rf "$dir" "$PIN_ROOT"; t_cleanup' EXIT

# run EXPECTED_RC WHAT -- ARGS...: run luabpf, check its exit code; output in $out.
run() {
  local want_rc=$1 what=$2 rc=0
  shift 3
  out=$("$LUABPF" "$@" 2>&1) || rc=$?
  t_eq "$rc" "$want_rc" "$what: exit code"
}
lacks() { if grep -qF -- "$2" <<<"$1"; then t_fail "$3: output has '$2':"$'\n'"$1"; else t_pass "$3"; fi; }

# ---- global options after `run`, help, version --------------------------
t_netns NS
printf 'local uv = require("luv")\nprint("netns", uv.fs_stat("/proc/self/ns/net").ino, "args", ...)\n' >"$dir/where.lua"
want_ino=$(stat -L -c %i "/run/netns/$NS")
run 0 "run --netns NS -v SCRIPT ARGS" -- run --netns "$NS" -v --no-control "$dir/where.lua" a -v --netns
t_contains "$out" "netns	$want_ino	args	a	-v	--netns" \
  "options between run and SCRIPT apply; everything after SCRIPT is the script's"
run 0 "run -- SCRIPT" -- run --no-control -- "$dir/where.lua" b
t_contains "$out" "args	b" "-- ends the options"
run 2 "run --bogus" -- run --bogus "$dir/where.lua"
t_contains "$out" "ERROR: unknown option '--bogus'" "unknown option after run"
run 2 "run --netns without NAME" -- run --netns
t_contains "$out" "ERROR: --netns needs NAME" "run --netns: message"
run 2 "run -v without SCRIPT" -- run -v
t_contains "$out" "ERROR: run needs a SCRIPT" "run -v: message"

run 0 "--help" -- --help
help=$out
for f in "$LUABPF_SOURCE_DIR"/lua/luabpf/cmd/*.lua; do
  c=$(basename "$f" .lua)
  if grep -qE "^  $c( |$)" <<<"$help"; then t_pass "--help lists $c"; else t_fail "--help lacks command '$c':"$'\n'"$help"; fi
done
for c in run -e help; do
  if grep -qE "^  $c( |$)" <<<"$help"; then t_pass "--help lists $c"; else t_fail "--help lacks '$c'"; fi
done
t_contains "$help" "Options (before the command, or between run and SCRIPT):" "--help says where options go"
run 0 "help" -- help
t_eq "$out" "$help" "luabpf help prints --help"
run 0 "run --help" -- run --help
t_eq "$out" "$help" "luabpf run --help prints --help"
run 0 "--version" -- --version
version=$out
t_contains "$version" "luabpf 0." "--version"
run 0 "version" -- version
t_eq "$out" "$version" "luabpf version prints --version"
run 0 "top --help" -- top --help
top_help=$out
t_contains "$top_help" "--interval INTERVAL" "top --help shows top's own options"
t_contains "$top_help" "usage: luabpf top [OPTIONS] [TARGET]" "top --help: usage names the command (not luabpf run top)"
lacks "$top_help" "Runs a Lua script" "top --help is not the global help"
run 0 "help top" -- help top
t_eq "$out" "$top_help" "luabpf help top prints top --help"
run 0 "help ls" -- help ls
t_contains "$out" "usage: luabpf ls" "luabpf help ls prints ls --help"
run 2 "help nosuch" -- help nosuch
t_contains "$out" "ERROR: unknown command 'nosuch'" "help of an unknown command"

# ---- objects for the checks below: one built with -g, one without --------
cat >"$dir/counters.bpf.c" <<'C'
#define SEC(n) __attribute__((section(n), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
struct {
	__uint(type, 2); /* BPF_MAP_TYPE_ARRAY */
	__uint(max_entries, 16);
	__type(key, unsigned int);
	__type(value, unsigned long long);
	__uint(pinning, PINNING);
} counters SEC(".maps");
SEC("xdp") int xdp_pass(void *ctx) { return 2; }
char LICENSE[] SEC("license") = "GPL";
C
clang -g -O2 -target bpf -DPINNING=0 -c "$dir/counters.bpf.c" -o "$dir/counters.bpf.o"
clang -g -O2 -target bpf -DPINNING=1 -c "$dir/counters.bpf.c" -o "$dir/pinned.bpf.o"
clang -O2 -target bpf -DPINNING=0 -c "$dir/counters.bpf.c" -o "$dir/nobtf.bpf.o"

# ---- `ip netns exec` mounts a fresh /sys: no bpffs at /sys/fs/bpf ---------
HINT="HINT: run 'luabpf --netns NS ...' instead of 'ip netns exec', or mount bpffs: mount -t bpf bpf /sys/fs/bpf"
NOFS="'/sys/fs/bpf' is not a BPF filesystem here (ip netns exec mounts a fresh /sys without one)"
if [ "$(ip netns exec "$NS" stat -f -c %T /sys/fs/bpf)" = bpf_fs ]; then
  echo "skip: ip netns exec keeps bpffs at /sys/fs/bpf on this system"
else
  rc=0
  out=$(ip netns exec "$NS" "$LUABPF" -e \
    "assert(bpf.load('$dir/pinned.bpf.o', {pin_root_path = '$PIN_ROOT'}))" 2>&1) || rc=$?
  t_eq "$rc" 3 "ip netns exec + pins: exit code (missing bpffs)"
  t_contains "$out" "ERROR: (command line):1: object 'pinned': can't pin map 'counters' at '$PIN_ROOT/counters': $NOFS" \
    "ip netns exec + pins: names the path and the cause"
  t_contains "$out" "$HINT" "ip netns exec + pins: hint"
  lacks "$out" "failed to mkdir" "ip netns exec + pins: not libbpf's mkdir error"

  rc=0
  out=$(ip netns exec "$NS" "$LUABPF" -e \
    "assert(assert(bpf.load('$dir/counters.bpf.o')):map('counters'):pin('$PIN_ROOT-counters'))" 2>&1) || rc=$?
  t_eq "$rc" 3 "ip netns exec + map:pin: exit code"
  t_contains "$out" "map 'counters': can't pin at '$PIN_ROOT-counters': $NOFS" "ip netns exec + map:pin: cause"
  t_contains "$out" "$HINT" "ip netns exec + map:pin: hint"

  out=$(ip netns exec "$NS" "$LUABPF" -e "print(bpf.map_from_pin('$PIN_ROOT/counters'))" 2>&1) || true
  t_contains "$out" "can't open pinned map '$PIN_ROOT/counters': $NOFS" "ip netns exec + map_from_pin: cause"
  t_contains "$out" "$HINT" "ip netns exec + map_from_pin: hint"
  out=$(ip netns exec "$NS" "$LUABPF" -e "print(bpf.link_from_pin('$PIN_ROOT/link'))" 2>&1) || true
  t_contains "$out" "can't open pinned link '$PIN_ROOT/link': $NOFS" "ip netns exec + link_from_pin: cause"
  t_contains "$out" "$HINT" "ip netns exec + link_from_pin: hint"

  # What everyone types first: the shipped load balancer under ip netns exec.
  t_netns PEER
  t_veth "$NS" va 10.77.0.1/24 "$PEER" vb 10.77.0.2/24
  cat >"$dir/lb.conf.lua" <<LUA
service = "first$T_ID"
interface = "va"
vips = { { name = "web", addr = "10.77.100.1", port = 80, proto = "tcp", mode = "nat",
  backends = { { name = "b1", addr = "10.77.0.2", port = 8080 } } } }
LUA
  rc=0
  out=$(ip netns exec "$NS" timeout 60 "$LUABPF" run "$LUABPF_SOURCE_DIR/scripts/examples/lb.lua" \
    "$dir/lb.conf.lua" 2>&1) || rc=$?
  t_eq "$rc" 1 "ip netns exec lb.lua: exit code"
  t_contains "$out" "ERROR: object 'lb': can't pin map 'vips' at '/sys/fs/bpf/luabpf/lb/first$T_ID/vips': $NOFS" \
    "ip netns exec lb.lua: names the pin path and the cause"
  t_contains "$out" "$HINT" "ip netns exec lb.lua: hint"
fi
# What the hint says works: --netns keeps the host's bpffs, and the pin is there.
run 0 "--netns NS + pins" -- --netns "$NS" -e \
  "local o = assert(bpf.load('$dir/pinned.bpf.o', {pin_root_path = '$PIN_ROOT'})) print(o:map('counters'):update(3, 7))"
t_contains "$out" "true" "--netns NS + pins: loaded"
[ -e "$PIN_ROOT/counters" ] && t_pass "--netns NS: the pin is on the host's bpffs" || t_fail "no pin at $PIN_ROOT/counters"

# ---- an object built without -g ----------------------------------------
run 1 "object without BTF" -- -e "assert(bpf.open('$dir/nobtf.bpf.o'))"
t_contains "$out" "ERROR: (command line):1: can't open BPF object '$dir/nobtf.bpf.o': object has no BTF: compile with clang -g" \
  "object without BTF: says why and what to do"
lacks "$out" "ENOENT" "object without BTF: no bare ENOENT"
run 1 "object without BTF, -v" -- -v -e "assert(bpf.open('$dir/nobtf.bpf.o'))"
t_contains "$out" "luabpf: WARN: libbpf: BTF is required, but is missing or corrupted." "libbpf's warning, one prefix"
lacks "$out" "libbpf: libbpf:" "no doubled libbpf: prefix"

# ---- an index past an array's end --------------------------------------
run 0 "array out of range" -- -e "
local m = assert(bpf.load('$dir/counters.bpf.o')):map('counters')
print('update', m:update(99, 1))
print('lookup', m:lookup(99))
print('delete', m:delete(99))
print('delete in range', m:delete(3))
print('last', m:update(15, 1), m:lookup(15))"
t_contains "$out" "update	nil	map 'counters': index 99 is out of range 0..15 (array of 16 entries)	E2BIG" "update past the end"
t_contains "$out" "lookup	nil	map 'counters': index 99 is out of range 0..15 (array of 16 entries)	ENOENT" "lookup past the end"
t_contains "$out" "delete	nil	map 'counters': index 99 is out of range 0..15 (array of 16 entries)	EINVAL" "delete past the end"
t_contains "$out" "delete in range	nil	map 'counters' is an array: its entries can't be deleted (update one to zero it)	EINVAL" \
  "delete from an array"
t_contains "$out" "last	true	1" "the last index works"

# ---- callbacks that raised: exit 0 (documented), and a summary says so --
cat >"$dir/raise.lua" <<'LUA'
local uv = require("luv")
local n = 0
local t = uv.new_timer()
t:start(1, 1, function()
  n = n + 1
  if n <= 2 then error("tick " .. n) end
  t:close()
end)
LUA
run 0 "callbacks raised" -- run --no-control "$dir/raise.lua"
t_contains "$out" "luabpf: ERROR: error in luv callback: $dir/raise.lua:6: tick 2" "each error is logged"
t_contains "$out" "luabpf: WARN: 2 errors in callbacks during this run (logged above); they do not change the exit code (docs/cli.md#exit-codes)" \
  "the exit says how many callbacks raised"
run 0 "no callback raised" -- run --no-control "$dir/where.lua"
lacks "$out" "errors in callbacks" "no summary when nothing raised"
t_done
