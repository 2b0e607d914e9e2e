# SPDX-License-Identifier: MIT
# docs/your-own-bpf.md's walk-through, block by block as a reader runs it:
# sourced by tests/cli/test_own_bpf.sh (build tree) and
# tests/packaging/test_deb.sh (installed .deb, in a fresh root).
#
#   own_bpf_walk WORK RUNNER NS_A NS_B
# WORK: an empty directory (the reader's); RUNNER DIR FILE runs the sh block
# FILE with bash -e in DIR and prints what it printed. The first sh block
# (mkdir watch && cd watch) runs in WORK, the rest in WORK/watch; ```c and
# ```lua blocks whose first line names a file (// watch.bpf.c: ...,
# -- watch.lua: ...) are saved there under that name. own-a/own-b become
# NS_A/NS_B. Then asserts what the page says the reader sees.
OWN_BPF_DOC="$LUABPF_SOURCE_DIR/docs/your-own-bpf.md"

own_bpf_walk() {
  local work=$1 runner=$2 nsa=$3 nsb=$4 blocks f n dir out all="" rc
  blocks=$(mktemp -d "$work/.blocks.XXXXXX")
  awk -v dir="$blocks" '
    /^```(sh|c|lua)$/ { n++; f = sprintf("%s/%03d.%s", dir, n, substr($0, 4)); inb = 1; next }
    /^```/ && inb { inb = 0; close(f); next }
    inb { print > f }
  ' "$OWN_BPF_DOC"
  dir=$work
  for f in "$blocks"/*; do
    n=$(basename "$f")
    case $f in
      *.c|*.lua)
        local name
        name=$(head -1 "$f" | sed -nE 's,^(//|--) ([A-Za-z0-9_.]+\.(bpf\.c|lua)):.*,\2,p')
        [ -n "$name" ] && cp "$f" "$dir/$name" && echo "--- saved $name" ;;
      *.sh)
        sed -e "s/own-a/$nsa/g; s/own-b/$nsb/g" "$f" >"$f.run"
        echo "--- block $n (in ${dir#"$work"}/) ---"; cat "$f.run"
        rc=0
        out=$("$runner" "$dir" "$f.run" 2>&1) || rc=$?
        echo "$out"
        t_eq "$rc" 0 "walk-through block $n's exit status"
        all+=$out$'\n'
        [ "$dir" = "$work" ] && dir=$work/watch ;;
    esac
  done
  [ -s "$work/watch/watch.bpf.o" ] && t_pass "luabpf cc wrote watch.bpf.o" || t_fail "no watch/watch.bpf.o"
  t_contains "$all" "new source 10.9.0.2 -> 10.9.0.1 proto 1, 98 bytes" "ring buffer event, addresses by bpf.addr"
  local counts
  counts=$(grep -E '^10\.9\.0\.2: [0-9]+ packets, [0-9]+ bytes$' <<<"$all" | awk '{print $2}' | tr '\n' ' ')
  local c prev=0 ok=1 nlines=0
  for c in $counts; do nlines=$((nlines + 1)); [ "$c" -ge "$prev" ] && [ "$c" -ge 1 ] || ok=0; prev=$c; done
  [ "$nlines" -eq 3 ] && [ "$ok" = 1 ] && t_pass "the map read every second: 3 reads, growing ($counts)" ||
    t_fail "expected 3 growing per-second reads of 10.9.0.2's counters, got '$counts'"
  [ -s "$work/watch/build/watch.bpf.o" ] && t_pass "CMake's luabpf_bpf_objects built build/watch.bpf.o" ||
    t_fail "no watch/build/watch.bpf.o from the CMake block"
}
