# SPDX-License-Identifier: MIT
# A weight change, then a node change (docs/scale-out.md, the Maglev paper's
# caveat). The weight change alone breaks nothing: each node's flow table
# keeps its flows' backends, and every node has the same new table (one
# digest). Then node 1 is drained: its flows move, and with the router's plain
# multipath route about half of the others move between the nodes left too.
# A flow that changed node is looked up in the new table there: it breaks if
# and only if its slot now names another backend. The test takes the flows
# that changed node (new entries in the other nodes' flow tables), predicts
# from the table which of them break, and counts what really broke: equal.
source "$LUABPF_SOURCE_DIR/tests/scale_out/so_env.sh"
N=${SO_CONNS:-300}

so_up 3
so_wait_paths 3 20 >/dev/null || { t_fail "the router never had 3 paths"; t_done; }
so_start_conns "$N"

# The weight change, on every node (as a config reload or an orchestrator would).
so_mark
for i in 1 2 3; do "$LUABPF" lb weight "${P}n$i" web b3 3 >/dev/null; done
d1=$("$LUABPF" lb show "${P}n1" --json | "$SO_PY" -c 'import json,sys; print(json.load(sys.stdin)["vips"][0]["table"]["digest"])')
for i in 2 3; do
  t_eq "$("$LUABPF" lb show "${P}n$i" --json | "$SO_PY" -c 'import json,sys; print(json.load(sys.stdin)["vips"][0]["table"]["digest"])')" \
    "$d1" "node $i's table digest after the weight change (node 1's)"
done
so_progress 10 20 || t_fail "weight: connections stopped answering"
so_broken "the weight change alone"

# Drain node 1: its flows move, and with a plain multipath route about half
# of the others' move between the nodes left too (hash-threshold).
so_mark
"$LUABPF" lb drain-node "${P}n1" >/dev/null
so_wait_paths 2 10 >/dev/null || t_fail "drain: the router still has $(so_paths) paths"
so_progress 10 20 || true # the broken ones never answer again
# The flows that changed node: new in node 2's or 3's flow table (a moved
# packet makes an entry there, broken or not).
for i in 1 2 3; do so_sports "$i" >"$SO_DIR/now.n$i" || t_fail "node $i's flow table: $(cat "$SO_DIR/now.n$i")"; done
# What the table says for every connection: its slot in the new table (read from node 2's maps).
all=$(so_q '" ".join(str(c["sport"]) for c in d["conns"])')
pred=$(cat <<EOL | "$LUABPF" attach "${P}n2" 2>&1 | tr -d '"'
local lb = require("luabpf.lb")
local t = lb_service:table("web")
local out = {}
for sp in ("$all"):gmatch("%d+") do
  local h = lb.flow_hash("10.41.0.1", tonumber(sp), "$VIP", $VPORT, 6)
  out[#out + 1] = sp .. "=" .. t[h % 65537 + 1]
end
return table.concat(out, " ")
EOL
)
# Predicted to break: flows that changed node and whose slot names another
# backend than the one that answered them before the drain. Where the count
# differs, each connection it disagrees on, with where it was and is.
read -r nmoved predicted < <("$SO_PY" - "$SO_DIR" "$pred" <<'EOP'
import json, sys
d, pred = sys.argv[1], dict(p.split("=") for p in sys.argv[2].split())
was = {c["sport"]: c["backend"] for c in json.load(open(d + "/mark.json"))["conns"] if c["state"] == "ok"}
now = {c["sport"]: c for c in json.load(open(d + "/conns.json"))["conns"]}
names = {"10.42.0.1%d:7000" % i: "b%d" % i for i in (1, 2, 3)}
def ports(f):
    return {int(x) for x in open(f).read().split()}
mark = {i: ports("%s/mark.n%d" % (d, i)) for i in (1, 2, 3)}
cur = {i: ports("%s/now.n%d" % (d, i)) for i in (1, 2, 3)}
moved = set().union(*(cur[i] - mark[i] for i in (2, 3)))
brk = {sp for sp in moved if sp in was and names.get(pred.get(str(sp))) != was[sp]}
bad = {sp for sp, c in now.items() if c["state"] != "ok"}
for sp in sorted(brk ^ bad):
    print("  port %d: predicted %s, %s; was on %s, now in %s; new table %s" % (sp,
        "broken" if sp in brk else "ok", now[sp]["state"], [i for i in mark if sp in mark[i]],
        [i for i in cur if sp in cur[i]], pred.get(str(sp))), file=sys.stderr)
print(len(moved), len(brk))
EOP
)
echo "$nmoved flows changed node; the new table gives $predicted of them another backend"
[ "$nmoved" -gt 0 ] && [ "$predicted" -gt 0 ] || t_fail "nothing moved or nothing predicted: the step tells nothing"
broken=$(so_q 'd["broken"]')
t_eq "$broken" "$predicted" "connections broken by the drain after the weight change (predicted from the table)"
t_done
