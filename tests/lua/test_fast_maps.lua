-- SPDX-License-Identifier: MIT
-- The FFI fast path (lua/luabpf/_fastmap.lua) against the C methods it
-- stands in for, on the same fuzzed keys and values, for every map type the
-- map tests use: the same results, the same error messages, the same bytes
-- in the kernel. A cdata key or value is compared with the general path given
-- its bytes as a string (the codec takes a string of exactly the type's size
-- as raw bytes), which is what the fast path passes to the kernel.
local t = require("t")
local ffi = require("ffi")
local fm = require("luabpf._fastmap")
local C = fm.c

local seed = tonumber(os.getenv("LUABPF_FUZZ_SEED")) or os.time()
math.randomseed(seed)
print("seed " .. seed)

local obj = assert(bpf.load(t.object("maps")))

-- Results of pcall(f, ...) as a list, messages without a position prefix.
local function call(f, ...)
  local r = { pcall(f, ...) }
  if not r[1] then r[2] = tostring(r[2]):gsub("^[^:]*:%d+: ", "") end
  return r
end

-- What the general path is given for x: a cdata's bytes, else x itself.
local function plain(x, ct)
  if type(x) == "cdata" and ct and ffi.istype(ct, x) and tonumber(ct()) == nil then return ffi.string(x, ffi.sizeof(ct)) end
  return x
end

local function rand_bytes(n)
  local b = {}
  for i = 1, n do b[i] = string.char(math.random(0, 255)) end
  return table.concat(b)
end

local int_edges = { 0, 1, 7, 255, 256, 65535, 65536, 2 ^ 31 - 1, 2 ^ 31, 2 ^ 32 - 1, 2 ^ 32,
  2 ^ 53, 2 ^ 53 + 2, 2 ^ 63, 2 ^ 64, -1, -2 ^ 31, -2 ^ 63, 0.5, -0.5, 1 / 0, -1 / 0, 0 / 0 }

-- A random input for a slot of ctype ct (key or value) of size bytes.
local function fuzz(ct, size, small)
  local r = math.random(1, 12)
  if r <= 3 then return int_edges[math.random(#int_edges)] end
  if r <= 5 then return math.random(0, small or 64) end
  if r == 6 then return rand_bytes(size) end
  if r == 7 then return rand_bytes(math.random(0, size + 2)) end
  if r >= 8 and r <= 11 and ct and tonumber(ct()) ~= nil then
    return ct(math.random(0, 2 ^ 31)) -- a scalar cdata holds a value, not bytes
  end
  if r == 8 and ct then
    local x = ct()
    ffi.copy(x, rand_bytes(size), size)
    return x
  end
  if r == 9 then return ({ true, false, "x", {}, { packets = 1 }, { packets = "x" }, { nope = 1 } })[math.random(7)] end
  if r == 10 then return ({ bpf.u64(math.random(0, 99)), ffi.new("int64_t", -math.random(0, 99)),
    bpf.u64("18446744073709551615"), ffi.new("uint32_t", 3) })[math.random(4)] end
  if r == 11 and ct then -- a cdata of the right type holding small numbers
    local x = ct()
    local b = ffi.cast("uint8_t *", x)
    for i = 0, size - 1, 4 do b[i] = math.random(0, 3) end
    return x
  end
  return math.random(0, small or 64)
end

-- A table for a flat struct plan (fields by name): edges, wrong types,
-- missing and unknown fields, array items, metatables.
local function fuzz_table(plan)
  local x = {}
  for _, f in ipairs(plan.fields) do
    local r = math.random(1, 12)
    if r <= 5 then x[f.name] = int_edges[math.random(#int_edges)]
    elseif r <= 9 then x[f.name] = math.random(0, 2 ^ 31)
    elseif r == 10 then x[f.name] = ({ "x", "7", true, false, bpf.u64(5), bpf.u64("18446744073709551615"),
      ffi.new("int64_t", -1), 1.5, {} })[math.random(9)]
    end -- else missing
  end
  local r = math.random(1, 16)
  if r == 1 then x.nope = 1
  elseif r == 2 then x[1] = 5
  elseif r == 3 then setmetatable(x, {})
  elseif r == 4 then setmetatable(x, { __index = { [plan.fields[1].name] = 3 } })
  elseif r == 5 then x[true] = 1
  end
  return x
end

-- A key or value for a slot with plan (as fast.kplan, fast.vplan), tables
-- by field name a third of the time where the plan is a struct.
local function fuzz_slot(ct, size, plan, small)
  if plan and plan.struct and math.random(3) == 1 then return fuzz_table(plan) end
  return fuzz(ct, size, small)
end

local names = { "counts", "big", "cfg", "arr", "lru", "routes", "bench", "raw", "flows", "pc_hash",
  "jmp" }
local compared = 0
for _, name in ipairs(names) do
  local m = obj:map(name)
  local info = m:info()
  local K, V = m:ctypes()
  local fast = K ~= nil
  t.eq(fast, name ~= "pc_hash" and name ~= "jmp", name .. ": ctypes only where the FFI path applies")
  for _ = 1, 300 do
    local p = fast and fm.plan(m)
    local k = fuzz_slot(K, info.key_size, p and p.kplan, info.max_entries + 2)
    local v = fuzz_slot(V, info.value_size, p and p.vplan)
    local kp, vp = plain(k, K), plain(v, V)
    -- general first, then the same through the methods (fast where it can be)
    local g_up = call(C.update, m, kp, vp)
    local g_look = call(C.lookup, m, kp)
    local g_del = call(C.delete, m, kp)
    local f_up = call(m.update, m, k, v)
    local f_state = call(C.lookup, m, kp) -- what the kernel holds, read the old way
    local f_look = call(m.lookup, m, k)
    local f_del = call(m.delete, m, k)
    local what = ("map '%s' key %s value %s"):format(name, tostring(k), tostring(v))
    t.same(f_up, g_up, what .. ": update")
    t.same(f_state, g_look, what .. ": the bytes written")
    t.same(f_look, g_look, what .. ": lookup")
    t.same(f_del, g_del, what .. ": delete")
    local into = fast and tonumber(V()) == nil
    local k_fast = fast and (type(k) == "number" or (type(k) == "cdata" and ffi.istype(K, k)))
    if into and not k_fast and g_look[1] and g_look[2] ~= nil then
      t.raises(function() m:lookup(k, V()) end, "lookup into a cdata takes the key as the map's key type",
        what .. ": lookup into out with a key the FFI path does not take")
    end
    if into and k_fast and g_look[1] and g_look[2] ~= nil then
      -- lookup into a cdata: its bytes, written back the old way, read the same
      local out = V()
      call(C.update, m, kp, vp)
      local r = call(m.lookup, m, k, out)
      t.ok(r[1] and r[2] == out, what .. ": lookup into out returns out")
      call(C.update, m, kp, ffi.string(out, ffi.sizeof(V)))
      t.same(call(C.lookup, m, kp), g_look, what .. ": out holds the value")
      call(C.delete, m, kp)
    end
    compared = compared + 1
  end
end
print(("compared %d operations"):format(compared))

-- Batches of lists (encoded and decoded in Lua where the plan allows)
-- against the C methods: the same results and messages, the same entries.
local function entries(m)
  local ks, vs = C.lookup_batch(m)
  local e = {}
  for i = 1, #ks do e[#e + 1] = { ks[i], vs[i] } end
  table.sort(e, function(a, b) return tostring(a[1]) < tostring(b[1]) end)
  return e
end
local function clear(m)
  for _, e in ipairs(entries(m)) do C.delete(m, e[1]) end
end
local lists = 0
for _, name in ipairs({ "counts", "big", "bench", "cfg", "raw", "lru" }) do
  local m = obj:map(name)
  local info = m:info()
  local K, V = m:ctypes()
  local p = fm.plan(m)
  for _ = 1, 150 do
    local n = math.random(0, 12)
    local ks, vs = {}, {}
    for i = 1, n do
      -- mostly what the plan takes, sometimes anything
      ks[i] = math.random(4) == 1 and fuzz(K, info.key_size, info.max_entries + 2)
        or math.random(0, info.max_entries - 1)
      vs[i] = math.random(4) == 1 and fuzz_slot(V, info.value_size, p.vplan)
        or (p.vplan and p.vplan.struct and fuzz_table(p.vplan)) or math.random(0, 2 ^ 40)
    end
    if math.random(8) == 1 then vs[#vs + 1] = 1 end -- lengths differ
    if math.random(10) == 1 then ks[math.max(n, 1)] = nil end -- a hole
    local flags = ({ nil, "any", "noexist", "exist", "bogus" })[math.random(5)]
    local what = ("map '%s' update_batch of %d"):format(name, n)
    clear(m)
    local g = call(C.update_batch, m, ks, vs, flags)
    local ge = entries(m)
    clear(m)
    local f = call(m.update_batch, m, ks, vs, flags)
    t.same(f, g, what .. ": result")
    t.same(entries(m), ge, what .. ": the entries written")
    -- reading them back, in chunks of count (small ones grow on ENOSPC)
    local opts = ({ nil, {}, { count = math.random(1, 4) }, { count = 0 }, { count = 1.5 },
      { cnt = 1 }, "x", setmetatable({}, { __index = { count = 2 } }) })[math.random(8)]
    t.same(call(m.lookup_batch, m, opts), call(C.lookup_batch, m, opts), what .. ": lookup_batch")
    local dk = {}
    for i = 1, math.random(0, n) do dk[i] = ks[i] end
    if math.random(6) == 1 then dk[#dk + 1] = "x" end
    g = call(C.delete_batch, m, dk)
    ge = entries(m)
    clear(m)
    call(C.update_batch, m, ks, vs, flags)
    f = call(m.delete_batch, m, dk)
    t.same(f, g, what .. ": delete_batch")
    t.same(entries(m), ge, what .. ": the entries left by delete_batch")
    lists = lists + 1
  end
  clear(m)
end
print(("compared %d batches of lists"):format(lists))

-- Tables by field name and lists of them take the FFI path: with the C
-- methods out of reach, they still work.
do
  local m = obj:map("bench")
  local saved = {}
  for _, op in ipairs({ "update", "update_batch", "lookup_batch", "delete_batch" }) do
    saved[op] = C[op]
    C[op] = function() error("the C method was called") end
  end
  t.eq(m:update(1, { packets = 2, bytes = 2 ^ 53 + 2 }), true, "update from a table, fast")
  t.same(m:lookup(1), { packets = 2, bytes = bpf.u64(2) ^ 53 + 2 }, "and back")
  t.eq(m:update_batch({ 2, 3 }, { { packets = 5 }, {} }), true, "update_batch from lists, fast")
  local ks, vs = m:lookup_batch({ count = 1 })
  t.eq(#ks, 3, "lookup_batch into lists, fast")
  t.eq(m:delete_batch({ 1, 2, 3 }), true, "delete_batch from a list, fast")
  for op, f in pairs(saved) do C[op] = f end
end

-- Batches: cdata arrays against lists of the same bytes.
local b = obj:map("bench")
local K, V = b:ctypes()
local n = 300
local ks, vs = ffi.new(ffi.typeof("$[?]", K), n), ffi.new(ffi.typeof("$[?]", V), n)
for i = 0, n - 1 do ks[i] = i * 7; vs[i].packets = i; vs[i].bytes = bpf.u64(2) ^ 60 + i end
t.eq(b:update_batch(ks, vs), true, "update_batch from cdata arrays")
local gk, gv = C.lookup_batch(b)
t.eq(#gk, n, "the general path reads every entry written")
local ok, ov = ffi.new(ffi.typeof("$[?]", K), n + 5), ffi.new(ffi.typeof("$[?]", V), n + 5)
t.eq(b:lookup_batch({ keys = ok, values = ov, count = 64 }), n, "lookup_batch into cdata arrays")
local seen = {}
for i = 1, #gk do seen[gk[i]] = gv[i] end
for i = 0, n - 1 do
  local want = seen[ok[i]]
  t.ok(want, "key " .. ok[i] .. " read by both")
  t.eq(ov[i].packets, want.packets, "packets of " .. ok[i])
  t.eq(ov[i].bytes, want.bytes, "bytes of " .. ok[i])
end
t.raises(function() b:lookup_batch({ keys = ok, values = {} }) end,
  "map 'bench': lookup_batch: keys and values must be cdata arrays", "values not cdata")
t.raises(function() b:lookup_batch({ keys = ok, values = ov, cnt = 1 }) end,
  "map 'bench': lookup_batch: unknown option 'cnt'", "unknown option")
t.eq(b:delete_batch(ks), true, "delete_batch from a cdata array")
t.eq(#C.lookup_batch(b), 0, "every entry deleted")
-- Arrays of another type go to the C method, which says what it always said.
t.raises(function() b:update_batch(ffi.new("uint64_t[2]"), vs) end,
  "map 'bench': update_batch expects a list of keys, got cdata", "keys of the wrong type")

-- Maps of one type share their ctypes, also in another load of the object
-- (a reload): a cdata made for one takes the other's fast path.
do
  local again = assert(bpf.load(t.object("maps")))
  local b2 = again:map("bench")
  local K2, V2 = b2:ctypes()
  t.ok(K2 == K and V2 == V, "the same ctypes in another load of the object")
  local saved = C.update
  C.update = function() error("the C method was called") end
  local v = V()
  v.packets, v.bytes = 7, 8
  t.eq(b2:update(5, v), true, "a cdata made for the first load updates the second, fast")
  C.update = saved
  t.same(b2:lookup(5), { packets = 7, bytes = 8 }, "and reads back")
  again:close()
end

-- Closed objects and maps: the C method's messages.
local o2 = assert(bpf.open(t.object("maps")))
local early = o2:map("counts")
t.raises(function() early:lookup(1) end, "its object is not loaded yet", "before load")
assert(o2:load())
t.eq(early:update(1, 5), true, "after load the same userdata works")
t.eq(early:lookup(1), 5, "and reads back")
o2:close()
t.raises(function() early:lookup(1) end, "map 'counts': its object 'maps' is closed", "object closed")
local own = obj:map("counts")
own:close()
t.raises(function() own:update(1, 2) end, "closed map", "map closed")
t.raises(function() own:ctypes() end, "closed map", "ctypes of a closed map")
obj:close()
print("ok")
