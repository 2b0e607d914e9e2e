-- SPDX-License-Identifier: MIT
-- Map operations as scripts use them: update flags and their errno triples,
-- iteration that survives deleting the current key, batches that agree with
-- per-element operations, dump, info, lifetimes and load-order errors.
local t = require("t")

local obj = assert(bpf.open(t.object("maps")))
local flows, counts = obj:map("flows"), obj:map("counts")

-- Before load: info and set_max_entries work, element operations explain.
t.eq(tostring(counts), "luabpf.map 'counts' (hash, 4->8 bytes, 1024 max)", "tostring")
t.eq(counts:name(), "counts", "name")
t.eq(counts:info().type, "hash", "info before load")
t.eq(counts:info().id, nil, "no id before load")
t.raises(function() counts:lookup(1) end,
  "map 'counts': its object is not loaded yet (call obj:load() first)", "lookup before load")
t.raises(function() counts:fd() end, "its object is not loaded yet")
t.ok(obj:map("pc_hash"):set_max_entries(200))
assert(obj:load())
t.eq(obj:map("pc_hash"):info().max_entries, 200, "set_max_entries before load took effect")
t.raises(function() counts:set_max_entries(5) end,
  "map 'counts': set_max_entries must come before obj:load()", "set_max_entries after load")

-- info() after load: bpftool's names and the kernel's numbers.
local info = counts:info()
t.eq(info.type, "hash") t.eq(info.key_size, 4) t.eq(info.value_size, 8)
t.eq(info.max_entries, 1024) t.eq(info.name, "counts") t.eq(info.flags, 0)
t.ok(info.id > 0, "id") t.ok(info.btf_id > 0, "btf_id") t.eq(info.pinned, nil, "not pinned")
t.eq(obj:map("pc_arr"):info().type, "percpu_array")
t.eq(obj:map("lru_pc"):info().type, "lru_percpu_hash")
t.eq(obj:map("routes"):info().type, "lpm_trie")
t.eq(obj:map("outer"):info().type, "hash_of_maps")
t.eq(type(counts:fd()), "number", "fd")

-- Flags: noexist on an existing key, exist on a missing one.
t.eq(counts:update(1, 10, "noexist"), true, "noexist on a new key")
local v, msg, name = counts:update(1, 11, "noexist")
t.eq(v, nil, "noexist again") t.eq(msg, "EEXIST: File exists", "EEXIST message") t.eq(name, "EEXIST", "EEXIST")
v, msg, name = counts:update(2, 1, "exist")
t.eq(v, nil, "exist on missing") t.eq(msg, "ENOENT: No such file or directory") t.eq(name, "ENOENT")
t.eq(counts:update(1, 12, "exist"), true, "exist on existing")
t.eq(counts:lookup(1), 12, "exist updated")
t.raises(function() counts:update(1, 1, "create") end,
  "map 'counts': unknown update flag 'create' (valid: any, noexist, exist, lock)")
v, msg, name = counts:delete(404)
t.eq(v, nil, "delete missing") t.eq(name, "ENOENT", "delete missing errno")
v, msg, name = counts:lookup(404)
t.eq(v, nil) t.eq(msg, "ENOENT: No such file or directory") t.eq(name, "ENOENT")

-- Iteration while deleting the current key visits every key once and empties the map.
for i = 1, 300 do assert(counts:update(i, i * 2)) end
local visits, sum = {}, 0
for k, val in counts:pairs() do
  t.eq(val, k * 2, "value during iteration")
  visits[k] = (visits[k] or 0) + 1
  sum = sum + 1
  assert(counts:delete(k))
end
t.eq(sum, 300, "visited every key")
for i = 1, 300 do t.eq(visits[i], 1, "key " .. i .. " visited once") end
t.eq(counts:keys()(), nil, "map is empty after the loop")

-- keys(): the iterator over keys.
for i = 1, 10 do assert(counts:update(i, i)) end
local nk = 0
for k in counts:keys() do nk = nk + 1; t.ok(k >= 1 and k <= 10, "key in range") end
t.eq(nk, 10, "keys() count")

-- Batches give exactly what per-element operations give.
local function per_element(m)
  local r = {}
  for k, val in m:pairs() do r[#r + 1] = { k, val } end
  return r
end
local function canon(list, keyfn)
  table.sort(list, function(a, b) return keyfn(a[1]) < keyfn(b[1]) end)
  return list
end
local function zip(ks, vs) local r = {} for i = 1, #ks do r[i] = { ks[i], vs[i] } end return r end

local ks, vs = {}, {}
for i = 1, 500 do ks[i] = 1000 + i; vs[i] = i * 3 end
t.eq(counts:update_batch(ks, vs), true, "update_batch")
local id = function(k) return k end
local bk, bv = counts:lookup_batch({ count = 7 }) -- small chunks: many cursor steps
t.eq(#bk, 510, "lookup_batch returns every entry")
t.same(canon(zip(bk, bv), id), canon(per_element(counts), id), "lookup_batch == pairs (hash)")
local bk2 = counts:lookup_batch()
t.eq(#bk2, 510, "default count")
t.raises(function() counts:lookup_batch({ cnt = 1 }) end, "map 'counts': lookup_batch: unknown option 'cnt' (valid: count)")

-- Struct keys and values, per-CPU values, arrays: batch == per element.
local flows_k = function(k) return k.addr.v4 .. ":" .. k.port end
for i = 1, 40 do
  assert(flows:update({ addr = { v4 = "10.0.0." .. i }, port = i, proto = 6 }, { packets = i, name = "f" .. i }))
end
bk, bv = flows:lookup_batch({ count = 3 })
t.same(canon(zip(bk, bv), flows_k), canon(per_element(flows), flows_k), "lookup_batch == pairs (struct hash)")
local pc = obj:map("pc_hash")
local ncpu = #obj:map("pc_arr"):lookup(0)
for i = 1, 20 do
  local l = {}
  for c = 1, ncpu do l[c] = { packets = i * c, bytes = c } end
  assert(pc:update(i, l))
end
bk, bv = pc:lookup_batch({ count = 4 })
t.eq(#bk, 20, "per-CPU batch count")
t.same(canon(zip(bk, bv), id), canon(per_element(pc), id), "lookup_batch == pairs (percpu_hash)")
local arr = obj:map("pc_small")
bk, bv = arr:lookup_batch()
t.eq(#bk, 4, "percpu_array batch has every index")
t.same(canon(zip(bk, bv), id), canon(per_element(arr), id), "lookup_batch == pairs (percpu_array)")

-- dump() is the same data as {key=, value=} records.
local d = counts:dump()
t.eq(#d, 510, "dump count")
local fromdump = {}
for i, r in ipairs(d) do fromdump[i] = { r.key, r.value } end
t.same(canon(fromdump, id), canon(per_element(counts), id), "dump == pairs")

-- delete_batch, then update_batch flags.
t.eq(counts:delete_batch(ks), true, "delete_batch")
t.eq(#counts:dump(), 10, "delete_batch removed the 500")
t.eq(counts:lookup(1001), nil, "a deleted key is gone")
v, msg, name = counts:update_batch({ 1, 2 }, { 5, 5 }, "noexist")
t.eq(v, nil, "update_batch noexist on existing keys fails") t.eq(name, "EEXIST", "EEXIST from batch")
t.raises(function() counts:update_batch({ 1, 2 }, { 5 }) end, "map 'counts': update_batch got 2 keys and 1 values")
t.raises(function() counts:update_batch({ 1, "xx" }, { 5, 6 }) end, "map 'counts' key: expects __u32 (4 bytes), got a 2-byte string")
-- Array maps can't delete: batch and per-element agree on the error.
v, msg, name = obj:map("arr"):delete_batch({ 1 })
t.eq(v, nil, "array delete_batch fails") t.eq(name, "EINVAL", "EINVAL")

-- Lifetimes: close() then use raises; __gc after close is harmless; the object
-- stays alive while a map is open, and a closed object makes its maps raise.
local c2 = obj:map("counts")
c2:close()
t.raises(function() c2:lookup(1) end, "closed map")
t.eq(tostring(c2), "luabpf.map (closed)", "tostring closed")
c2:close()
local keep = obj:map("counts")
obj:close()
t.raises(function() keep:lookup(1) end, "map 'counts': its object 'maps' is closed")
keep:close()
collectgarbage() collectgarbage()
print("test_map_ops: ok")
