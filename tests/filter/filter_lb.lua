-- SPDX-License-Identifier: MIT
-- The filter chained in front of the load balancer on one interface, run by
-- tests/filter/test_filter_lb.sh in the lab's balancer namespace:
--   luabpf --netns NS run filter_lb.lua SERVICE
-- The LB is built unattached (lb.new{attach = false}); the filter is what is
-- attached to eth0 and tail-calls svc.prog for what it lets through.
-- SIGUSR1 denies the client's address, SIGUSR2 lifts it; stats at exit.
local uv = require("luv")
local lb = require("luabpf.lb")
local filter = require("luabpf.filter")

local svc = assert(lb.new({ name = arg[1], attach = false, pin = false }))
svc:add_vip({ name = "web", addr = "10.10.100.1", port = 80, mode = "nat", snat = "10.10.0.2",
  backends = { { name = "b1", addr = "10.10.0.11", port = 8080 },
               { name = "b2", addr = "10.10.0.12", port = 8080 } } })
local f = assert(filter.new({ interface = "eth0", sample = 0 }))
f:deny("23/tcp")
assert(f:chain(svc.prog))

local function on(sig, fn)
  local h = uv.new_signal()
  h:start(sig, fn)
  h:unref()
end
on("sigusr1", function()
  f:deny({ src = "10.10.0.1/32", name = "client" })
  print("denied") io.stdout:flush()
end)
on("sigusr2", function()
  local n = f:stats().rules.client.packets
  f:remove("client")
  print(("allowed (client entry dropped %d)"):format(n)) io.stdout:flush()
end)
bpf.on_shutdown(function()
  local s, l = f:stats(), svc:stats()
  print(("filter pass=%d deny_src=%d; lb forwarded=%d reply=%d"):format(
    s.reasons.pass.packets, s.reasons.deny_src.packets, l.reasons.forwarded, l.reasons.reply))
  io.stdout:flush()
end)
print("ready") io.stdout:flush()
