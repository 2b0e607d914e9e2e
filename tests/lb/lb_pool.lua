-- SPDX-License-Identifier: MIT
-- Pool changes on a timeline while clients hold connections (test_lb_pool.sh):
--   t=0 ready; +2 s add b4; +3 s drain b1 (weight 0); +4 s remove b2.
-- Prints "ready", each step, and at SIGINT (once the clients are done) the
-- flow table's backends.
local uv = require("luv")
local lb = require("luabpf.lb")
local name = assert(arg[1], "usage: lb_pool.lua SERVICE")

local svc = assert(lb.new({ name = name, interface = "eth0", pin = false }))
svc:add_vip({ name = "web", addr = "10.10.100.1", port = 80, mode = "nat", backends = {
  { name = "b1", addr = "10.10.0.11", port = 8080 },
  { name = "b2", addr = "10.10.0.12", port = 8080 },
  { name = "b3", addr = "10.10.0.13", port = 8080 },
} })
print("ready")
io.stdout:flush()

local function at(ms, fn)
  local t = uv.new_timer()
  t:start(ms, 0, function() t:close(); fn(); io.stdout:flush() end)
end
at(2000, function()
  svc:add_backend("web", { name = "b4", addr = "10.10.0.14", port = 8080 })
  print("added b4")
end)
at(3000, function()
  svc:set_weight("web", "b1", 0)
  print("drained b1")
end)
at(4000, function()
  svc:remove_backend("web", "b2")
  print("removed b2")
end)
bpf.on_shutdown(function()
  local per = {}
  for _, f in ipairs(svc:flows("web")) do per[f.backend or "?"] = (per[f.backend or "?"] or 0) + 1 end
  for b, n in pairs(per) do print(("flows %s %d"):format(b, n)) end
  local s = svc:stats()
  print(("b1 state %s, slots %d"):format(s.vips.web.backends.b1.state, s.vips.web.backends.b1.slots))
end)
