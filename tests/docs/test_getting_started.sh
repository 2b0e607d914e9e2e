# SPDX-License-Identifier: MIT
# docs/getting-started.md as a new user reads it: every ```sh block runs as
# written (in the source tree, one bash each, stopping at the first failing
# command), and so does every complete ```lua script (first line
# `-- NAME.lua: luabpf run NAME.lua`); the output a user sees is asserted.
# Only two things are substituted: the namespaces demo-a/demo-b get this
# test's unique names, and ./build is the build tree under test.
source "$LUABPF_SOURCE_DIR/tests/lib.sh"
DOC="$LUABPF_SOURCE_DIR/docs/getting-started.md"
WORK=$(mktemp -d)
cleanup() { rm -rf "$WORK"; t_cleanup; }
trap cleanup EXIT

NSA="gsa$T_ID" NSB="gsb$T_ID"
T_NETNS+=("$NSA" "$NSB") # removed on exit whatever the blocks did

# Split the page into numbered block files: WORK/N.sh, WORK/N.lua.
awk -v dir="$WORK" '
  /^```(sh|lua)$/ { n++; lang = substr($0, 4); f = dir "/" n "." lang; inb = 1; next }
  /^```/ && inb { inb = 0; close(f); next }
  inb { print > f }
' "$DOC"
nsh=$(ls "$WORK"/*.sh 2>/dev/null | wc -l)
[ "$nsh" -ge 2 ] || t_fail "found $nsh sh blocks in getting-started.md, expected at least 2"

rel_build=$(realpath --relative-to="$LUABPF_SOURCE_DIR" "$LUABPF_BUILD_DIR")
subst() {
  sed -e "s/demo-a/$NSA/g; s/demo-b/$NSB/g" \
      -e "s#\./build/#./$rel_build/#g; s#-B build\b#-B $rel_build#g; s#--build build\b#--build $rel_build#g" "$1"
}

for f in $(ls "$WORK"/*.sh | sort -V); do
  n=$(basename "$f" .sh)
  subst "$f" >"$f.run"
  echo "--- block $n ---"; cat "$f.run"
  rc=0
  out=$(cd "$LUABPF_SOURCE_DIR" && bash -e "$f.run" 2>&1) || rc=$?
  echo "$out"
  t_eq "$rc" 0 "sh block $n's exit status"
  # What the reader is told to expect from each block.
  if grep -q -- "--version" "$f"; then
    t_contains "$out" "luabpf " "block $n prints the version"
  fi
  if grep -q "xdp_count.lua" "$f"; then
    t_contains "$out" "totals" "block $n: the counter printed its totals on Ctrl-C"
    icmp=$(awk '$1 == "L4" && $2 == "icmp" { print $3 }' <<<"$out" | tail -1)
    [ "${icmp:-0}" -ge 1 ] && t_pass "block $n counted the pings (icmp $icmp)" ||
      t_fail "block $n counted no ICMP packets (icmp '${icmp:-}')"
    ip netns list | grep -q "$NSA" && t_fail "block $n left namespace $NSA" || t_pass "block $n removed its namespaces"
  fi
done

for f in "$WORK"/*.lua; do
  first=$(head -1 "$f")
  [[ "$first" =~ ^--\ ([a-z_]+\.lua):\ luabpf\ run ]] || continue # a fragment, not a script
  name=${BASH_REMATCH[1]}
  cp "$f" "$WORK/$name"
  rc=0
  out=$(cd "$WORK" && "$LUABPF" run "$name" 2>&1) || rc=$?
  echo "--- $name ---"; echo "$out"
  t_eq "$rc" 0 "$name's exit status"
  case "$name" in
    hello.lua)
      t_contains "$out" "maps:" "hello.lua lists the maps"
      t_contains "$out" "counters" "hello.lua names the counters map"
      t_contains "$out" "timer fired on the host's loop" "hello.lua's timer fired" ;;
    *) t_fail "docs/getting-started.md has a script '$name' this test does not know: add what it prints" ;;
  esac
done
t_done
