-- SPDX-License-Identifier: MIT
-- tc attach in namespaces this test makes: tcx (a kernel link) and clsact
-- (a filter), traffic dropped and counted, and nothing left behind after
-- detach: checked with `bpftool link show`, `tc filter show`, `tc qdisc show`.
local t = require("t")

local A, B = t.unique("lbtca"), t.unique("lbtcb")

local function filters(dir) return t.run("tc -n " .. B .. " filter show dev vb " .. dir) end
local function qdiscs() return t.run("tc -n " .. B .. " qdisc show dev vb") end

local function main()
  local ping, obj, pass, drop = t.progs_pair(A, B, "10.79.0", "tc_pass", "tc_drop")

  -- tcx (this kernel has it): a kernel link, seen by bpftool.
  local link = assert(drop:attach_tc("vb", { netns = B, direction = "ingress" }))
  t.eq(link:description(), "tc ingress on vb in netns '" .. B .. "' (tcx)", "auto picks tcx")
  local info = link:info()
  t.eq(info.type, "tcx", "link type")
  t.eq(info.attach_type, "tcx_ingress", "attach type")
  t.eq(info.prog_name, "tc_drop", "prog name")
  t.eq(t.links_of(drop), info.id .. ":" .. drop:info().id, "bpftool link show lists the tcx link")
  t.ok(not ping(), "tc_drop on ingress drops ping")

  -- update swaps to tc_pass: traffic flows and is counted.
  assert(link:update(pass))
  t.eq(link:info().prog_name, "tc_pass", "updated")
  local n0 = t.counter(pass, "tc_packets")
  t.ok(ping(), "ping works after update to tc_pass")
  t.ok(t.counter(pass, "tc_packets") > n0, "tc_pass counted packets")

  assert(link:detach())
  t.eq(t.links_of(pass, drop), "", "bpftool link show: no link left after detach")
  t.ok(not filters("ingress"):find("tc_", 1, true), "no filter left")

  -- egress, tcx forced.
  link = assert(drop:attach_tc("vb", { netns = B, direction = "egress", mode = "tcx" }))
  t.eq(link:info().attach_type, "tcx_egress", "egress attach type")
  t.ok(not ping(), "tc_drop on egress drops the replies")
  assert(link:detach())
  t.ok(ping(), "ping works after egress detach")
  t.eq(t.links_of(pass, drop), "", "no link left after egress detach")

  -- clsact forced: a filter on a clsact qdisc we create, removed with it.
  t.ok(not qdiscs():find("clsact", 1, true), "no clsact before")
  link = assert(drop:attach_tc("vb", { netns = B, mode = "clsact" }))
  info = link:info()
  t.eq(info.type, "tc_clsact", "clsact link type")
  t.eq(info.owns_qdisc, true, "we created the qdisc")
  t.ok(link:description():find("(clsact, handle " .. info.handle .. " priority " .. info.priority .. ")", 1, true),
    "clsact description: " .. link:description())
  local f = filters("ingress")
  t.ok(f:find("tc_drop", 1, true) and f:find("direct-action", 1, true), "tc filter show lists it:\n" .. f)
  t.ok(qdiscs():find("clsact", 1, true), "clsact qdisc created")
  t.eq(t.links_of(pass, drop), "", "a clsact filter is not a kernel link")
  t.ok(not ping(), "clsact tc_drop drops ping")
  t.raises(function() link:pin("/sys/fs/bpf/x") end, "has no kernel link to pin")
  t.raises(function() link:fd() end, "it has no fd")

  -- update on clsact: replaced in place (same handle and priority).
  assert(link:update(pass))
  f = filters("ingress")
  t.ok(f:find("tc_pass", 1, true) and not f:find("tc_drop", 1, true), "filter replaced:\n" .. f)
  t.ok(ping(), "ping after clsact update")

  -- A second filter at a chosen priority; the first one out hands the qdisc on.
  local link2 = assert(pass:attach_tc("vb", { netns = B, mode = "auto", priority = 7 }))
  t.ok(link2:description():find("clsact, handle %d+ priority 7"), "priority implies clsact: " .. link2:description())
  t.eq(link2:info().owns_qdisc, false, "second filter did not create the qdisc")
  local ok, err, code = pass:attach_tc("vb", { netns = B, mode = "clsact", priority = 7, handle = link2:info().handle })
  t.eq(code, "EEXIST", "same handle and priority: " .. tostring(err))
  t.ok(err:find("a filter with handle " .. link2:info().handle .. " priority 7 exists", 1, true), "EEXIST message: " .. err)

  assert(link:detach())
  t.ok(qdiscs():find("clsact", 1, true), "qdisc stays while our other filter uses it")
  t.eq(link2:info().owns_qdisc, true, "ownership handed on")
  assert(link2:detach())
  t.ok(not filters("ingress"):find("tc_", 1, true), "no filter left:\n" .. filters("ingress"))
  t.ok(not qdiscs():find("clsact", 1, true), "our clsact qdisc removed:\n" .. qdiscs())

  -- A clsact qdisc someone else made stays after we detach.
  t.run("tc -n " .. B .. " qdisc add dev vb clsact")
  link = assert(pass:attach_tc("vb", { netns = B, mode = "clsact", direction = "egress" }))
  t.eq(link:info().owns_qdisc, false, "existing qdisc is not ours")
  t.ok(filters("egress"):find("tc_pass", 1, true), "egress filter")
  assert(link:detach())
  t.ok(not filters("egress"):find("tc_pass", 1, true), "egress filter removed")
  t.ok(qdiscs():find("clsact", 1, true), "their qdisc left alone")

  ok, err, code = pass:attach_tc("vb9", { netns = B })
  t.eq(err, "program 'tc_pass': interface 'vb9' not found in netns '" .. B .. "': ENODEV: No such device",
    "missing interface")
  t.eq(#bpf.links(), 0, "no live links")
  obj:close()
end

t.main(main, "ip netns del " .. A, "ip netns del " .. B)
