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
    local k = fuzz(K, info.key_size, info.max_entries + 2)
    local v = fuzz(V, info.value_size)
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
