-- SPDX-License-Identifier: MIT
-- The table digest (lb show, scale-out) follows every publish: a publish
-- writes the idle half's array in place, so a digest kept per array must be
-- forgotten then. Two weight changes with no digest asked between them bring
-- the first half back rewritten: its digest must be the new table's, and
-- equal to that of a service that built the same pool directly.
local uv = require("luv")
local t = require("t")
local lb = require("luabpf.lb")

local pid = uv.os_getpid()
local function service(tag)
  return assert(lb.new({ name = ("dig%s%d"):format(tag, pid), attach = false, pin = false,
    prime_neighbours = false }))
end
local function pool(w1, w2)
  local l = {}
  for i = 1, 5 do l[i] = { name = "b" .. i, addr = "10.99.0." .. i, weight = 1 } end
  l[1].weight, l[2].weight = w1, w2
  return { name = "web", addr = "10.98.0.1", port = 80, mode = "dsr", backends = l }
end

local a, b = service("a"), service("b")
local ok, err = pcall(function()
  a:add_vip(pool(1, 1))
  local d1 = a:_digest(a.vips.web)
  a:set_weight("web", "b1", 3)
  a:set_weight("web", "b2", 3) -- the first half again, rewritten in place
  local d3 = a:_digest(a.vips.web)
  t.ok(d1 ~= d3, ("the digest changed with the table (%s, %s)"):format(d1, d3))
  b:add_vip(pool(3, 3))
  t.eq(d3, b:_digest(b.vips.web), "same pool, same digest as a service that built it directly")
  -- A backend removed and added back: the idle half holds the pool's table
  -- and is flipped to as it is. The data plane's table (read from the map)
  -- is the one built directly, slot for slot.
  a:remove_backend("web", "b5")
  a:add_backend("web", { name = "b5", addr = "10.99.0.5", weight = 1 })
  t.eq(a.vips.web.slots_written, 0, "added back: the idle half's table, no slot written")
  t.eq(a:_digest(a.vips.web), b:_digest(b.vips.web), "added back: same digest as built directly")
  local ta, tb, differ = a:table("web"), b:table("web"), 0
  for s = 1, #tb do if ta[s] ~= tb[s] then differ = differ + 1 end end
  t.eq(differ, 0, "added back: the data plane's table is the one built directly")
end)
a:close()
b:close()
assert(ok, err)
print("test_lb_digest: all checks passed")
