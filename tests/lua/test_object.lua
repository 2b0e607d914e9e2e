-- SPDX-License-Identifier: MIT
-- Objects: open by path and by shipped name, globals before and after load,
-- lists of maps and programs, closing, and the errors for each misuse.
local t = require("t")

-- By shipped name and by path give the same object.
local a = assert(bpf.open("xdp_count"))
local b = assert(bpf.open(os.getenv("LUABPF_BUILD_DIR") .. "/bpf/xdp_count.bpf.o"))
t.eq(a:name(), "xdp_count", "name of shipped object")
t.same(a:maps(), b:maps(), "same maps by name and path")
t.same(a:programs(), { "xdp_count" }, "programs")
t.eq(tostring(a), "luabpf.object 'xdp_count' (not loaded)", "tostring before load")
a:close()
t.raises(function() a:maps() end, "closed object", "use after close")
a:close() -- idempotent
b:close()

-- const volatile globals before load, as libbpf-bootstrap's tunables.
local obj = assert(bpf.open(t.object("globals")))
t.eq(obj:get("drop_when"), 0, "default const volatile")
obj:set("drop_when", 3)
obj:set("big", 2 ^ 40 + 1)
obj:set("tunables", { port = 8080, weight = 5, label = "edge" })
t.same(obj:get("tunables"), { port = 8080, weight = 5, label = "edge" }, "struct global round trip")
t.raises(function() obj:set("nosuch", 1) end, "object 'globals' has no global 'nosuch'", "unknown global")
t.raises(function() obj:set("drop_when", "three") end, "object 'globals' global 'drop_when'", "wrong type")
t.eq(obj:get("drop_when"), 3, "a failed set keeps the old value")
assert(obj:load())
t.eq(tostring(obj), "luabpf.object 'globals' (loaded)", "tostring after load")
t.raises(function() obj:set("drop_when", 4) end, "is const volatile and the object is loaded",
  "const volatile after load")
t.raises(function() obj:load() end, "already loaded", "load twice")
t.eq(obj:get("drop_when"), 3, "const volatile value after load")
t.eq(obj:get("big"), 2 ^ 40 + 1, "u64 const volatile")

-- The program sees what Lua set; .bss/.data are live after load.
local prog = obj:program("globals_prog")
local pkt = string.rep("\0", 64)
local r1 = assert(prog:test_run(pkt))
t.eq(r1.verdict, "XDP_PASS", "first run passes")
t.eq(obj:get("seen"), 1, ".bss written by the program, read live")
t.eq(obj:get("last_port"), 8080, "program read the struct tunable")
obj:set("step", 2) -- .data, live: next run adds 2 -> seen == 3 == drop_when
local r2 = assert(prog:test_run(pkt))
t.eq(r2.verdict, "XDP_DROP", "live .data change reached the program")
t.eq(obj:get("seen"), 3, "seen after two runs")

-- bpf.load with globals and max_entries, and a failed load leaves nothing open.
local c = assert(bpf.load("xdp_count", { max_entries = { counters = 8 } }))
t.eq(c:map("counters"):info().max_entries, 8, "max_entries set before load")
t.raises(function() bpf.load("xdp_count", { max_entries = { nosuch = 1 } }) end,
  "max_entries names map 'nosuch'", "max_entries for an unknown map")
local f = assert(bpf.load(t.object("maps"), { map_flags = { counts = 1 } })) -- BPF_F_NO_PREALLOC
t.eq(f:map("counts"):info().flags, 1, "map_flags set before load")
f:close()
t.raises(function() bpf.load("xdp_count", { map_flags = { nosuch = 0 } }) end,
  "map_flags names map 'nosuch'", "map_flags for an unknown map")
local g = assert(bpf.load(t.object("globals"), { globals = { drop_when = 1 } }))
t.eq(g:get("drop_when"), 1, "globals option")
t.eq(assert(g:program("globals_prog"):test_run(pkt)).verdict, "XDP_DROP", "globals option reached the program")

-- A map keeps its object alive after the object's userdata is gone.
local m = assert(bpf.load("xdp_count")):map("counters")
collectgarbage(); collectgarbage()
t.ok(m:lookup_sum(0), "map usable after its object userdata was collected")
print("test_object: all checks passed")
