-- SPDX-License-Identifier: MIT
-- The load balancer with its metrics, as a user adds them to a service
-- script (the three lines marked below), for tests/metrics/test_lb_metrics.sh.
--   luabpf --netns LAB-lb run lb_exporter.lua SERVICE
local lb = require("luabpf.lb")
local metrics = require("luabpf.metrics")

local svc = assert(lb.new({ name = arg[1], interface = "eth0" }))
svc:add_vip({
  name = "dns", addr = "10.10.100.1", port = 5353, proto = "udp", mode = "dsr",
  backends = { { name = "b1", addr = "10.10.0.11" }, { name = "b2", addr = "10.10.0.12" } },
})
svc:add_vip({
  name = "web", addr = "10.10.100.1", port = 80, proto = "tcp", mode = "nat",
  backends = { { name = "b1", addr = "10.10.0.11", port = 8080 }, { name = "b2", addr = "10.10.0.12", port = 8080 } },
})
local reg = metrics.registry()                                 -- 1
reg:lb(svc)                                                    -- 2
local srv = assert(metrics.serve(reg, { port = 0, name = arg[1] })) -- 3
reg:programs(svc.obj)
print("metrics on " .. srv.url)
io.stdout:flush()
bpf.on_shutdown(function() svc:close({ destroy = true }) end)
