# SPDX-License-Identifier: MIT
# docs/your-own-bpf.md from the build tree: an empty directory, `luabpf cc`,
# the script attached in a namespace, its events and map reads; the CMake
# package of the build tree. Then what `luabpf cc` promises: vmlinux.h made
# once per BTF (cached by hash), clang's errors as clang prints them and the
# documented exit codes, --cflags usable by hand.
source "$LUABPF_SOURCE_DIR/tests/lib.sh"
source "$LUABPF_SOURCE_DIR/tests/cli/own_bpf_walk.sh"
WORK=$(mktemp -d)
cleanup() { rm -rf "$WORK"; t_cleanup; }
trap cleanup EXIT
NSA="owna$T_ID" NSB="ownb$T_ID"
T_NETNS+=("$NSA" "$NSB") # removed on exit whatever the blocks did

export LUABPF_CACHE_DIR=$WORK/cache # a fresh cache: the first cc makes vmlinux.h
mkdir "$WORK/reader"
bin=$(dirname "$LUABPF")
run_block() { (cd "$1" && PATH="$bin:$PATH" CMAKE_PREFIX_PATH="$LUABPF_BUILD_DIR" bash -e "$2"); }
own_bpf_walk "$WORK/reader" run_block "$NSA" "$NSB"
ip netns list | grep -qE "$NSA|$NSB" && t_fail "the walk-through left its namespaces" ||
  t_pass "the walk-through removed its namespaces"

# vmlinux.h: one per BTF, named by its hash, made once.
hash=$(sha256sum /sys/kernel/btf/vmlinux | cut -c1-16)
h="$LUABPF_CACHE_DIR/vmlinux/$hash/vmlinux.h"
t_eq "$("$LUABPF" cc --vmlinux)" "$h" "cc --vmlinux"
grep -q "struct xdp_md {" "$h" && t_pass "cached vmlinux.h has the kernel's types" || t_fail "$h lacks struct xdp_md"
before=$(stat -c %Y.%i "$h")
"$LUABPF" cc "$WORK/reader/watch/watch.bpf.c" -o "$WORK/again.bpf.o"
[ -s "$WORK/again.bpf.o" ] && t_pass "cc -o OUT wrote OUT" || t_fail "no again.bpf.o"
t_eq "$(stat -c %Y.%i "$h")" "$before" "second cc reuses vmlinux.h"
t_eq "$(ls "$LUABPF_CACHE_DIR/vmlinux" | wc -l)" 1 "cache entries"

# --cflags by hand gives what cc compiles with.
clang $("$LUABPF" cc --cflags) -I"$WORK/reader/watch" -c "$WORK/reader/watch/watch.bpf.c" -o "$WORK/hand.bpf.o" &&
  t_pass "clang \$(luabpf cc --cflags) compiles" || t_fail "--cflags did not compile"

# clang's errors as clang prints them, then ours; exit 1.
sed 's/ip->saddr = /ipp->saddr = /; s/c = bpf_map_lookup_elem(&sources, &ip->saddr);/c = bpf_map_lookup_elem(\&sources, \&ipp->saddr);/' \
  "$WORK/reader/watch/watch.bpf.c" >"$WORK/bad.bpf.c"
rc=0; out=$("$LUABPF" cc "$WORK/bad.bpf.c" 2>&1) || rc=$?
t_eq "$rc" 1 "exit code on a compile error"
t_contains "$out" "bad.bpf.c:" "clang's file:line"
t_contains "$out" "error: use of undeclared identifier 'ipp'" "clang's message"
t_contains "$out" "^" "clang's caret"
t_contains "$out" "ERROR: cc: clang could not compile" "our line after clang's"
[ -e "$WORK/bad.bpf.o" ] && t_fail "a failed compile left bad.bpf.o" || t_pass "no object from a failed compile"

rc=0; out=$("$LUABPF" cc "$WORK/nope.bpf.c" 2>&1) || rc=$?
t_eq "$rc" 2 "exit code for a missing file"; t_contains "$out" "ERROR: cc: can't read" "missing file message"
rc=0; out=$("$LUABPF" cc --bogus 2>&1) || rc=$?
t_eq "$rc" 2 "exit code for an unknown option"; t_contains "$out" "clang's options go after --" "unknown option hint"
rc=0; out=$(LUABPF_CACHE_DIR=/proc/ownbpf "$LUABPF" cc "$WORK/reader/watch/watch.bpf.c" -o "$WORK/x.o" 2>&1) || rc=$?
t_eq "$rc" 3 "exit code when the cache can't be written"; t_contains "$out" "HINT: set LUABPF_CACHE_DIR" "cache hint"
rc=0; out=$(LUABPF_VMLINUX_BTF=/nonexistent "$LUABPF" cc "$WORK/reader/watch/watch.bpf.c" -o "$WORK/x.o" 2>&1) || rc=$?
t_eq "$rc" 3 "exit code without kernel BTF"; t_contains "$out" "no kernel BTF at /nonexistent" "no BTF message"
t_contains "$("$LUABPF" help)" "cc FILE.bpf.c" "luabpf help lists cc"
t_done
