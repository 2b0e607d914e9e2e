-- SPDX-License-Identifier: MIT
-- Maglev table: shares follow weights; removing one of N backends moves about
-- 1/N of the slots; same input, same table; bad input raises.
local t = require("t")
local maglev = require("luabpf.lb.maglev")

local function names(n, w)
  local b = {}
  for i = 1, n do b[i] = { name = ("10.0.0.%d:80"):format(i), weight = w and w[i] or 1 } end
  return b
end

local size = 65537
local b = names(3, { 1, 2, 3 })
local tab = maglev.build(b, size)
local sh = maglev.shares(tab, size)
for i, w in ipairs({ 1, 2, 3 }) do
  local want = size * w / 6
  t.ok(math.abs(sh[i] - want) / want < 0.01, ("backend %d share %d within 1%% of %d"):format(i, sh[i], want))
end
t.eq(sh[0], nil, "every slot filled")

-- Deterministic: a restarted service computes the same table.
local again = maglev.build(names(3, { 1, 2, 3 }), size)
local same = true
for s = 0, size - 1 do if again[s] ~= tab[s] then same = false break end end
t.ok(same, "same backends, same table")

-- Removing one of 10 moves its own slots and very few others.
local ten = names(10)
local before = maglev.build(ten, size)
local nine = {}
for i = 1, 9 do nine[i] = ten[i] end
local after = maglev.build(nine, size)
local moved_other = 0
for s = 0, size - 1 do
  if before[s] ~= 10 and before[s] ~= after[s] then moved_other = moved_other + 1 end
end
local share = moved_other / size
print(("removing 1 of 10: %.2f%% of slots of surviving backends moved"):format(share * 100))
t.ok(share < 0.02, "surviving backends keep at least 98% of their slots")

-- Weight 0 (draining) places nothing; all zero gives an empty table.
local drained = maglev.shares(maglev.build(names(3, { 1, 0, 1 }), size), size)
t.eq(drained[2], nil, "weight 0 backend has no slots")
t.eq(maglev.shares(maglev.build(names(2, { 0, 0 }), size), size)[0], size, "no live backend: all empty")
t.raises(function() maglev.build(names(2), 65536) end, "not prime", "non-prime size")
t.raises(function() maglev.build({ { name = "x", weight = -1 } }, 7) end, "weight must be", "negative weight")

-- The build before it moved to FFI arrays (commit b34aaf8), kept here as the
-- reference: Lua tables, the same hashes, placing backends in list order.
local function ref_build(backends, size)
  local bit = require("bit")
  local band, bxor, rshift, tobit = bit.band, bit.bxor, bit.rshift, bit.tobit
  local mul32 = maglev.mul32
  local function fnv1a(s, seed)
    local h = tobit(bxor(0x811c9dc5, seed))
    for i = 1, #s do h = mul32(bxor(h, s:byte(i)), 0x01000193) end
    h = bxor(h, rshift(h, 16)); h = mul32(h, 0x85ebca6b)
    h = bxor(h, rshift(h, 13)); h = mul32(h, 0xc2b2ae35)
    return bxor(h, rshift(h, 16))
  end
  local function unsigned(x) return x < 0 and x + 4294967296 or x end
  local n, maxw = #backends, 0
  local offset, skip, nexti, credit, live = {}, {}, {}, {}, {}
  for i = 1, n do
    local w = backends[i].weight or 1
    if w > maxw then maxw = w end
    offset[i] = unsigned(fnv1a(backends[i].name, 0x2545f491)) % size
    skip[i] = unsigned(fnv1a(backends[i].name, 0x9e3779b9)) % (size - 1) + 1
    nexti[i], credit[i] = 0, 0
  end
  local entry = {}
  for s = 0, size - 1 do entry[s] = 0 end
  if maxw == 0 then return entry end
  for i = 1, n do
    if (backends[i].weight or 1) > 0 then live[#live + 1] = i end
  end
  local filled = 0
  while true do
    for _, i in ipairs(live) do
      credit[i] = credit[i] + (backends[i].weight or 1) / maxw
      while credit[i] >= 1 do
        credit[i] = credit[i] - 1
        local c = (offset[i] + nexti[i] * skip[i]) % size
        while entry[c] ~= 0 do
          nexti[i] = nexti[i] + 1
          c = (offset[i] + nexti[i] * skip[i]) % size
        end
        entry[c] = i
        nexti[i] = nexti[i] + 1
        filled = filled + 1
        if filled == size then return entry end
      end
    end
  end
end

-- Slots whose owner (by name) differs between the new build of `list` and
-- the reference build of the same pool listed by name; 0 when they agree.
local function differ(list, sz, fill)
  sz = sz or size
  local sorted = {}
  for i, x in ipairs(list) do sorted[i] = x end
  table.sort(sorted, function(a, b) return a.name < b.name end)
  local new, ref = maglev.build(list, sz, fill), ref_build(sorted, sz)
  local d = 0
  for s = 0, sz - 1 do
    local a = new[s] > 0 and list[new[s]].name or "-"
    local b = ref[s] > 0 and sorted[ref[s]].name or "-"
    if a ~= b then d = d + 1 end
  end
  return d
end

-- Pools: weights (integers, fractions as slow start gives, zeros), sizes,
-- then a pool after removes and adds. Listed out of name order on purpose.
local function pool(n, wfn, prefix)
  local l = {}
  for i = n, 1, -1 do l[#l + 1] = { name = ("%s%d"):format(prefix or "10.1.0.", i), weight = wfn and wfn(i) or 1 } end
  return l
end
local pools = {
  { "3 backends weights 1,2,3", names(3, { 1, 2, 3 }) },
  { "10 equal", pool(10) },
  { "100 weights 1-5", pool(100, function(i) return i % 5 + 1 end) },
  { "100 slow start and drained", pool(100, function(i) return i % 7 == 0 and 0 or (i % 3 == 0 and 2 * 0.05 or 2) end) },
  { "1000 equal", pool(1000, nil, "10.2.") },
  { "1000 weights 1-3, 17 drained", pool(1000, function(i) return i % 59 == 0 and 0 or i % 3 + 1 end, "b") },
  { "one backend", pool(1) },
  { "size 251, 40 backends", pool(40, function(i) return i % 4 end), 251 },
}
local changed = pool(1000, nil, "10.2.")
for i = 1000, 1, -97 do table.remove(changed, i) end
for i = 1, 5 do changed[#changed + 1] = { name = "10.3.0." .. i, weight = i } end
pools[#pools + 1] = { "1000 after 11 removes and 5 adds", changed }
-- Both fills: the host's C loop (what build uses in luabpf) and the Lua one.
t.eq(maglev.fill, "c", "luabpf's build fills the table in C (host/maglev.c)")
for _, fill in ipairs({ "c", "lua" }) do
  for _, p in ipairs(pools) do
    t.eq(differ(p[2], p[3], fill), 0, ("%s fill: same table as the reference build (by name): %s"):format(fill, p[1]))
  end
end

-- A pool changed a few backends at a time: the build keeps its last
-- canonical order and places new names into it by binary search (more than
-- 32 new ones: sorted again). Each step's table is the reference's.
local steps = pool(1000, nil, "10.4.")
t.eq(differ(steps), 0, "steps: the start")
table.remove(steps, 500)
t.eq(differ(steps), 0, "steps: one removed")
steps[#steps + 1] = { name = "10.4.0", weight = 1 } -- first by name
steps[#steps + 1] = { name = "10.4.9999", weight = 2 } -- last
table.insert(steps, 3, { name = "10.4.500", weight = 1 }) -- the removed one, back
t.eq(differ(steps), 0, "steps: three added (first, last, middle by name)")
for i = 1, 40 do steps[#steps + 1] = { name = "10.5." .. i } end
t.eq(differ(steps), 0, "steps: forty added")

-- A check that the comparison can fail: the reference build in list order
-- (today's order before the canonical one) differs from the new build.
local mixed = pool(100, function(i) return i % 5 + 1 end)
local new, ref = maglev.build(mixed, size), ref_build(mixed, size)
local d = 0
for s = 0, size - 1 do if new[s] ~= ref[s] then d = d + 1 end end
t.ok(d > 0, ("listing order no longer matters: %d slots differ from a list-order build"):format(d))

-- Canonical order: two histories that end with the same pool (backends
-- added in another order, one removed and added back) give the same table.
local function owners(list)
  local tab, o = maglev.build(list, size), {}
  for s = 0, size - 1 do o[s] = tab[s] > 0 and list[tab[s]].name or "-" end
  return o
end
local h1 = pool(300, function(i) return i % 4 end)
local h2 = {}
for i = 1, #h1, 2 do h2[#h2 + 1] = h1[i] end
for i = 2, #h1, 2 do h2[#h2 + 1] = h1[i] end
local x = table.remove(h2, 7)
h2[#h2 + 1] = x
local o1, o2 = owners(h1), owners(h2)
local same_hist = 0
for s = 0, size - 1 do if o1[s] == o2[s] then same_hist = same_hist + 1 end end
t.eq(same_hist, size, "two histories of one pool, same table")

-- 1,000 backends build in reasonable time (the bench has the figures).
local uv = require("luv")
local t0 = uv.hrtime()
maglev.build(names(1000), size)
print(("1000 backends: %.1f ms"):format((uv.hrtime() - t0) / 1e6))
print("test_maglev: all checks passed")
