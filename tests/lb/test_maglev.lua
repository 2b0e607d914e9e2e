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

-- 1,000 backends build in reasonable time (the bench has the figures).
local uv = require("luv")
local t0 = uv.hrtime()
maglev.build(names(1000), size)
print(("1000 backends: %.1f ms"):format((uv.hrtime() - t0) / 1e6))
print("test_maglev: all checks passed")
