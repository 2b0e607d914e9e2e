# SPDX-License-Identifier: MIT
# Bad input at the command line and in scripts: each gets a clear message,
# the documented exit code, and leaves nothing behind.
source "$LUABPF_SOURCE_DIR/tests/lib.sh"
dir=$(mktemp -d)
trap 'rm -rf "$dir"; t_cleanup' EXIT

# run EXPECTED_RC PATTERN WHAT -- ARGS...: run luabpf, check exit code and output.
run() {
  local want_rc=$1 pattern=$2 what=$3 rc=0 out
  shift 4
  out=$("$LUABPF" "$@" 2>&1) || rc=$?
  t_eq "$rc" "$want_rc" "$what: exit code"
  t_contains "$out" "$pattern" "$what: message"
}

run 0 "luabpf 0." "version" -- --version
run 0 "usage: luabpf" "help" -- --help
run 2 "ERROR: no command given" "no command" --
run 2 "ERROR: unknown command 'frobnicate'" "unknown command" -- frobnicate
run 2 "ERROR: unknown option '--bogus'" "unknown option" -- --bogus run x.lua
run 1 "can't open script '$dir/missing.lua': No such file or directory" "missing script" -- run "$dir/missing.lua"

printf 'local x = 1\nlocal y = = 2\n' >"$dir/syntax.lua"
run 1 "ERROR: $dir/syntax.lua:2:" "syntax error names file:line" -- run "$dir/syntax.lua"

printf 'local function f()\n  error("bad config value")\nend\nf()\n' >"$dir/raise.lua"
run 1 "raise.lua:2: bad config value" "top-level error" -- run "$dir/raise.lua"
run 1 "stack traceback" "top-level error has a traceback" -- run "$dir/raise.lua"

printf 'print(undeclared_name)\n' >"$dir/strict.lua"
run 1 "undeclared global 'undeclared_name'" "strict mode read" -- run "$dir/strict.lua"
printf 'local function f() typo = 1 end\nf()\n' >"$dir/strict2.lua"
run 1 "assignment to undeclared global 'typo'" "strict mode write" -- run "$dir/strict2.lua"

# A handler that raises is logged; the service keeps running and exits 0.
cat >"$dir/handler.lua" <<'LUA'
local uv = require("luv")
local n = 0
local t = uv.new_timer()
t:start(5, 5, function()
  n = n + 1
  if n <= 2 then error("handler failed #" .. n) end
  if n == 5 then print("still running after " .. n .. " ticks"); t:close() end
end)
LUA
run 0 "still running after 5 ticks" "raising handler: service goes on" -- run "$dir/handler.lua"
run 0 "handler.lua:6: handler failed #2" "raising handler: error logged" -- run "$dir/handler.lua"

# Objects: missing, not ELF, ELF for another machine, verifier rejection, unknown names.
run 1 "can't open BPF object '$dir/none.bpf.o': ENOENT" "missing object" -- \
  -e "assert(bpf.open('$dir/none.bpf.o'))"
run 1 "no shipped BPF object 'nosuch' (looked for" "unknown shipped object" -- -e "assert(bpf.open('nosuch'))"
run 1 "shipped: " "unknown shipped object lists the shipped ones" -- -e "assert(bpf.open('nosuch'))"
echo "not elf" >"$dir/text.bpf.o"
run 1 "is not a BPF object: not an ELF file" "text file as object" -- -e "assert(bpf.open('$dir/text.bpf.o'))"
run 1 "is not a BPF object: ELF machine 62, not BPF" "x86 ELF as object" -- -e "assert(bpf.open('/bin/true'))"
bad="$LUABPF_TEST_BPF_DIR/bad_verifier.bpf.o"
run 1 "program 'unchecked_read' rejected by the verifier: invalid access to packet" "verifier rejection" -- \
  -e "assert(bpf.load('$bad'))"
run 1 "verifier log, last" "verifier rejection carries the log's tail" -- -e "assert(bpf.load('$bad'))"
run 0 "EACCES" "load returns the errno name" -- \
  -e "local o, err, errno = bpf.load('$bad'); print(errno)"
run 1 "object 'xdp_count' has no map 'nosuch' (maps: counters" "unknown map lists the valid ones" -- \
  -e "bpf.open('xdp_count'):map('nosuch')"
run 1 "object 'xdp_count' has no program 'nosuch' (programs: xdp_count)" "unknown program" -- \
  -e "bpf.open('xdp_count'):program('nosuch')"
run 1 "luabpf.load: unknown option 'global' (valid: globals" "unknown option" -- \
  -e "bpf.load('xdp_count', {global = {}})"

# Without CAP_BPF (and CAP_SYS_ADMIN, which also allows BPF): says what is missing, exits 3.
if command -v capsh >/dev/null; then
  rc=0
  out=$(capsh --drop=cap_bpf,cap_sys_admin,cap_perfmon -- -c \
        "'$LUABPF' -e \"assert(bpf.load('xdp_count'))\"" 2>&1) || rc=$?
  t_eq "$rc" 3 "no CAP_BPF: exit code"
  t_contains "$out" "lacks CAP_BPF" "no CAP_BPF: message names the capability"
else
  t_fail "capsh (libcap2-bin) is missing: run scripts/setup.sh"
fi
t_done
