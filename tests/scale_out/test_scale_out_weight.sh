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
moved=""
for i in 2 3; do
  moved+=" $(comm -13 <(tr ' ' '\n' <"$SO_DIR/mark.n$i" | sort -u) <(so_sports "$i" | tr ' ' '\n' | sort -u) | tr '\n' ' ')"
done
# What the table says for each: its slot in the new table (read from node 2's maps).
pred=$(cat <<EOL | "$LUABPF" attach "${P}n2" 2>&1 | tr -d '"'
local lb = require("luabpf.lb")
local t = lb_service:table("web")
local out = {}
for sp in ("$moved"):gmatch("%d+") do
  local h = lb.flow_hash("10.41.0.1", tonumber(sp), "$VIP", $VPORT, 6)
  out[#out + 1] = sp .. "=" .. t[h % 65537 + 1]
end
return table.concat(out, " ")
EOL
)
# Predicted to break: moved flows whose slot names another backend than the
# one that answered them before the drain.
read -r nmoved predicted < <("$SO_PY" -c '
import json, sys
was = {c["sport"]: c["backend"] for c in json.load(open(sys.argv[1]))["conns"] if c["state"] == "ok"}
names = {"10.42.0.1%d:7000" % i: "b%d" % i for i in (1, 2, 3)}
pairs = dict(p.split("=") for p in sys.argv[2].split())  # a flow may be new on both nodes
print(len(pairs), sum(1 for sp, a in pairs.items() if int(sp) in was and names.get(a) != was[int(sp)]))
' "$SO_DIR/mark.json" "$pred")
echo "$nmoved flows changed node; the new table gives $predicted of them another backend"
[ "$nmoved" -gt 0 ] && [ "$predicted" -gt 0 ] || t_fail "nothing moved or nothing predicted: the step tells nothing"
broken=$(so_q 'd["broken"]')
# Where they differ, which connections and what became of them.
[ "$broken" = "$predicted" ] || "$SO_PY" -c '
import json, sys
was = {c["sport"]: c["backend"] for c in json.load(open(sys.argv[1]))["conns"] if c["state"] == "ok"}
now = {c["sport"]: c for c in json.load(open(sys.argv[3]))["conns"]}
names = {"10.42.0.1%d:7000" % i: "b%d" % i for i in (1, 2, 3)}
pred = {int(sp) for sp, a in (p.split("=") for p in sys.argv[2].split()) if int(sp) in was and names.get(a) != was[int(sp)]}
for sp in sorted(pred | {s for s, c in now.items() if c["state"] != "ok"}):
    if (sp in pred) != (now[sp]["state"] != "ok"):
        print("  port %d: predicted %s, %s" % (sp, "broken" if sp in pred else "ok", now[sp]), file=sys.stderr)
' "$SO_DIR/mark.json" "$pred" "$SO_STATUS"
t_eq "$broken" "$predicted" "connections broken by the drain after the weight change (predicted from the table)"
t_done
