# SPDX-License-Identifier: MIT
# `luabpf ls` and `luabpf dump` speak bpftool: selectors (id, name, pinned,
# tag), kinds shortened as bpftool allows (ls m, ls p), a nearest name or
# kind on a typo, and `dump --json` in `bpftool -j map dump`'s shape,
# compared with bpftool field by field for maps bpftool loaded itself.
source "$LUABPF_SOURCE_DIR/tests/lib.sh"
DIR=/sys/fs/bpf/luabpf-test-sel$T_ID
cleanup() { rm -rf "$DIR"; t_cleanup; }
trap cleanup EXIT
mkdir -p "$DIR"
bpftool prog loadall "$LUABPF_TEST_BPF_DIR/maps.bpf.o" "$DIR/p" pinmaps "$DIR/m"
"$LUABPF" -e "
  local d = ...
  assert(bpf.map_from_pin(d .. '/m/cfg'):update(1, { proto = 6, port = 80, addr = '192.168.7.1' }))
  assert(bpf.map_from_pin(d .. '/m/counts'):update(7, bpf.u64('18446744073709551615')))
  assert(bpf.map_from_pin(d .. '/m/counts'):update(8, 42))
  assert(bpf.map_from_pin(d .. '/m/pc_hash'):update(5, { packets = 2, bytes = 100 }))
  assert(bpf.map_from_pin(d .. '/m/arr'):update(2, { packets = 3, bytes = 4500, name = 'api', kind = 'PK_UDP',
    nested = { a = 7, b = 9 }, ports = { 1, 2, 3, 4 } }))" "$DIR"

j() { /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); r=($1); print(*r) if isinstance(r, tuple) else print(r)"; }
prog_id=$(bpftool -j prog show pinned "$DIR/p/xdp_count" | j 'd["id"]')
tag=$(bpftool -j prog show pinned "$DIR/p/xdp_count" | j 'd["tag"]')
cfg_id=$(bpftool -j map show pinned "$DIR/m/cfg" | j 'd["id"]')

# Selectors: exactly the object asked for, with bpftool's fields.
out=$("$LUABPF" ls progs id "$prog_id" --json)
t_eq "$(j 'len(d), d[0]["id"], d[0]["name"]' <<<"$out")" "1 $prog_id xdp_count" "ls progs id N"
bt=$(bpftool -j prog show id "$prog_id")
t_eq "$(/usr/bin/python3 -c '
import json,sys
a=json.loads(sys.argv[1])[0]; b=json.loads(sys.argv[2])
bad=[k for k in b if k not in ("pids",) and a.get(k)!=b[k]]
print(bad or "same")' "$out" "$bt")" same "ls progs id N agrees with bpftool prog show id N, field by field"
out=$("$LUABPF" ls p tag "$tag" --json)
t_eq "$(j 'any(p["id"] == '"$prog_id"' for p in d) and all(p["tag"] == "'"$tag"'" for p in d)' <<<"$out")" True "ls p tag T"
out=$("$LUABPF" ls m name cfg --json)
t_eq "$(j 'any(m["id"] == '"$cfg_id"' for m in d) and all(m["name"] == "cfg" for m in d)' <<<"$out")" True "ls m name cfg"
out=$("$LUABPF" ls pinned "$DIR/m/cfg" --json)
t_eq "$(j '[m["id"] for m in d]' <<<"$out")" "[$cfg_id]" "ls pinned PATH (kind from the pin)"
out=$("$LUABPF" ls maps pinned "$DIR/m/cfg")
t_contains "$out" "$cfg_id: hash  name cfg" "ls maps pinned PATH, text"
t_contains "$out" "pinned $DIR/m/cfg" "the pin shown"
t_eq "$(grep -c '^[0-9]*: ' <<<"$out")" 1 "objects listed for one pin"

# Kinds shortened as bpftool allows.
for w in m ma map; do
  t_eq "$("$LUABPF" ls $w id "$cfg_id" --json | j 'd[0]["bytes_key"]')" 4 "ls $w is ls maps"
done
t_eq "$("$LUABPF" ls p id "$prog_id" --json | j 'd[0]["type"]')" xdp "ls p is ls progs"
t_contains "$("$LUABPF" ls pi "$DIR/m")" "$DIR/m/cfg" "ls pi DIR is ls pins"
t_eq "$("$LUABPF" ls l --json | j 'type(d).__name__')" list "ls l is ls links"

# Typos: the nearest kind or name, and the exit code.
rc=0; out=$("$LUABPF" ls mpas 2>&1) || rc=$?
t_eq "$rc" 2 "ls mpas exit code"; t_contains "$out" "unknown kind 'mpas' (progs, maps, links or pins); did you mean 'maps'?" "ls mpas"
rc=0; out=$("$LUABPF" ls maps nmae cfg 2>&1) || rc=$?
t_eq "$rc" 2 "misspelt selector exit code"; t_contains "$out" "unexpected argument 'nmae'; did you mean 'name'?" "misspelt selector"
rc=0; out=$("$LUABPF" ls maps name pc_hsah 2>&1) || rc=$?
t_eq "$rc" 1 "no such name exit code"; t_contains "$out" "ERROR: ls: no map with name 'pc_hsah'; did you mean 'pc_hash'?" "ls name typo"
rc=0; out=$("$LUABPF" dump pc_hsah 2>&1) || rc=$?
t_eq "$rc" 1 "dump typo exit code"; t_contains "$out" "no loaded map is named 'pc_hsah'; did you mean 'pc_hash'?" "dump name typo"
rc=0; out=$("$LUABPF" ls progs id 4294967295 2>&1) || rc=$?
t_eq "$rc" 1 "no such id exit code"; t_contains "$out" "no prog with id '4294967295'" "ls progs id N, N unknown"
rc=0; out=$("$LUABPF" ls progs id x 2>&1) || rc=$?
t_eq "$rc" 2 "bad id exit code"
rc=0; out=$("$LUABPF" ls maps tag "$tag" 2>&1) || rc=$?
t_eq "$rc" 2 "tag on maps exit code"; t_contains "$out" "tag selects programs" "tag on maps"

# dump --json against bpftool -j map dump: same top level, same bytes; the
# formatted part field by field, except where luabpf decodes what bpftool
# prints raw (cfg's __be16 port and ipv4_t addr; arr's bitfields, which bpftool
# prints as hex strings, its in6_addr a6 and an anonymous union's "" member)
# and luabpf's extra "sum".
for m in counts cfg pc_hash arr; do
  ours=$("$LUABPF" dump pinned "$DIR/m/$m" --json)
  theirs=$(bpftool -j map dump pinned "$DIR/m/$m")
  res=$(/usr/bin/python3 - "$ours" "$theirs" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
DECODED = {"port", "addr", "flags", "level", "delta", "a6", ""}  # printed otherwise by bpftool
errs = []
if len(a) != len(b): errs.append("entries %d vs %d" % (len(a), len(b)))
bk = {json.dumps(e["key"]): e for e in b}
def cmp(x, y, path):
    if isinstance(y, dict):
        if not isinstance(x, dict): errs.append(path + ": not an object"); return
        for k in y:
            if k in DECODED: continue
            if k not in x: errs.append(path + "." + k + " missing")
            else: cmp(x[k], y[k], path + "." + k)
    elif isinstance(y, list) and y and isinstance(y[0], dict):
        if len(x) != len(y): errs.append(path + ": length"); return
        for i, (p, q) in enumerate(zip(x, y)): cmp(p, q, "%s[%d]" % (path, i))
    elif x != y: errs.append("%s: %r vs %r" % (path, x, y))
for e in a:
    f = bk.get(json.dumps(e["key"]))
    if f is None: errs.append("key %s not in bpftool's dump" % e["key"]); continue
    if [k for k in e if k != "formatted"] != list(k for k in f if k != "formatted"):
        errs.append("top-level fields %s vs %s" % (list(e), list(f)))
    for k in f:
        if k != "formatted" and e.get(k) != f[k]: errs.append("%s differs" % k)
    if "formatted" in f: cmp(e.get("formatted"), f["formatted"], "formatted")
print("; ".join(errs) or "same (%d entries)" % len(a))
PY
)
  t_contains "$res" "same" "dump $m --json vs bpftool -j map dump: $res"
done
t_eq "$("$LUABPF" dump pinned "$DIR/m/pc_hash" --json | j 'd[0]["formatted"]["sum"]["packets"] == 2 * len(d[0]["values"])')" True "per-CPU sum in formatted"
t_done
