-- SPDX-License-Identifier: MIT
-- Scale-out needs every node to build the same Maglev table from the same
-- pool, whatever its history (docs/scale-out.md). Three services reach one
-- pool by different histories (another order, backends added, removed and
-- reweighted, a restart from pinned state with its old backend ids); their
-- digests (svc:stats(), by what the slots mean) are equal, and so are their
-- full tables read back from the data plane's maps, though their backend
-- ids differ. A pool with one other weight has another digest.
local lb = require("luabpf.lb")
local uv = require("luv")
local fails = 0
local function check(ok, what)
  print((ok and "ok: " or "FAIL: ") .. what)
  if not ok then fails = fails + 1 end
end
local id = ("st%d"):format(uv.os_getpid())
local root = "/sys/fs/bpf/luabpf-test-" .. id
local VIP = { name = "web", addr = "10.43.0.1", port = 7000, mode = "dsr" }
local function b(n, w) return { name = "b" .. n, addr = "10.42.0.1" .. n, port = 7000, weight = w or 1 } end
local function vip(list)
  local v = {}
  for k, x in pairs(VIP) do v[k] = x end
  v.backends = list
  return v
end
local function new(name, pin)
  return assert(lb.new({ name = id .. name, attach = false, pin = pin or false, pin_root = root,
    ring_size = 65537 }))
end

-- A: the final pool in order, reached by a few runtime changes.
local a = new("a")
a:add_vip(vip({ b(1), b(2), b(3) }))
a:add_backend("web", b(4))
a:remove_backend("web", "b2")
a:set_weight("web", "b3", 2)
a:add_backend("web", b(2))
-- B: the same pool declared at once, in another order, after a backend that came and went.
local bb = new("b")
bb:add_vip(vip({ b(5), b(4), b(3, 2) }))
bb:add_backend("web", b(2))
bb:add_backend("web", b(1))
bb:remove_backend("web", "b5")
-- C: a pinned service restarted: the new instance recovers the old ids, then applies the pool.
local c = new("c", true)
c:add_vip(vip({ b(6), b(3), b(1) }))
c:close()
c = new("c", true)
c:apply({ vip({ b(2), b(1), b(4), b(3, 2) }) })

local function ids(svc)
  local t = {}
  for _, x in ipairs(svc.vips.web.order) do if x.state ~= 3 then t[#t + 1] = x.name .. "=" .. x.id end end
  table.sort(t)
  return table.concat(t, " ")
end
print("backend ids: A " .. ids(a) .. " | B " .. ids(bb) .. " | C " .. ids(c))
check(ids(a) ~= ids(bb) or ids(a) ~= ids(c), "the three services gave their backends different ids")

local da, db, dc = a:stats().vips.web.digest, bb:stats().vips.web.digest, c:stats().vips.web.digest
print(("digests: A %s, B %s, C %s"):format(da, db, dc))
check(da and #da == 8, "a digest of 8 hex digits")
check(da == db and da == dc, "one digest for one pool, whatever the history")

local ta, tb, tc = a:table("web"), bb:table("web"), c:table("web")
check(#ta == 65537 and #tb == 65537 and #tc == 65537, "full tables read back: 65,537 slots each")
local diff, count = 0, {}
for s = 1, #ta do
  if ta[s] ~= tb[s] or ta[s] ~= tc[s] then diff = diff + 1 end
  count[ta[s]] = (count[ta[s]] or 0) + 1
end
check(diff == 0, ("the full tables are slot for slot the same (%d slots differ)"):format(diff))
check((count["10.42.0.13:7000"] or 0) > (count["10.42.0.11:7000"] or 0) and count["-"] == nil,
  "the table is the weighted pool (b3, weight 2, has the most slots; no empty slot)")

-- One weight more: another table, another digest.
local d = new("d")
d:add_vip(vip({ b(1), b(2), b(3, 2), b(4, 2) }))
check(d:stats().vips.web.digest ~= da, "another pool, another digest")

for _, s in ipairs({ a, bb, d }) do s:close() end
c:close({ destroy = true })
os.remove(root)
if fails > 0 then
  print(fails .. " check(s) failed")
  os.exit(1)
end
print("all checks passed")
