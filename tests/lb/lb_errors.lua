-- SPDX-License-Identifier: MIT
-- Bad input to the load balancer's Lua API: each is a clear error and the
-- running service is unharmed (test_lb_errors.sh runs this in a namespace
-- with an interface "dum0" that has no native XDP).
local t = require("t")
local lb = require("luabpf.lb")
local name = assert(arg[1])

-- A mode the interface cannot do: nil, message, and nothing left behind.
local svc, err = lb.new({ name = name .. "n", interface = "dum0", xdp_mode = "native", pin = false })
t.eq(svc, nil, "native XDP on an interface without it")
t.ok(tostring(err):find("couldn't attach to 'dum0'", 1, true), "error names the interface: " .. tostring(err))
t.ok(tostring(err):find("EOPNOTSUPP", 1, true) or tostring(err):find("not supported", 1, true),
  "error says the mode is not supported: " .. tostring(err))
local out = t.sh("ls /sys/fs/bpf/luabpf/lb 2>/dev/null")
t.ok(not out:find(name .. "n", 1, true), "no pins left by the failed start")

svc = assert(lb.new({ name = name, interface = "dum0", xdp_mode = "generic", pin = false }))
svc:add_vip({ name = "web", addr = "10.20.0.100", port = 80, snat = "10.20.0.2", backends = {
  { name = "b1", addr = "10.20.0.11", port = 8080 }, { name = "b2", addr = "10.20.0.12", port = 8080 } } })
local function healthy(what)
  local s = svc:stats()
  t.eq(s.vips.web.backends.b1.state, "active", what .. ": b1 still active")
  t.eq(s.vips.web.backends.b2.slots + s.vips.web.backends.b1.slots, 65537, what .. ": table still full")
  local b = svc:which({ src = "10.20.0.1", sport = 40000, dst = "10.20.0.100", dport = 80 })
  t.ok(b == "b1" or b == "b2", what .. ": which() still answers")
end
healthy("start")

t.raises(function() svc:set_weight("web", "b9", 0) end, "VIP 'web' has no backend 'b9' (backends: b1, b2)",
  "unknown backend")
healthy("after unknown backend")
t.raises(function() svc:remove_backend("nope", "b1") end, "has no VIP 'nope' (VIPs: web)", "unknown VIP")
t.raises(function() svc:add_backend("web", { addr = "10.20.0.300" }) end,
  "'10.20.0.300' is not an IPv4 or IPv6 address", "bad backend address")
t.raises(function() svc:add_backend("web", { addr = "fd00::5" }) end, "must be the same address family",
  "backend of the other family")
t.raises(function() svc:add_backend("web", { addr = "10.20.0.11", port = 8080 }) end,
  "already has backend 'b1'", "duplicate backend")
t.raises(function() svc:add_backend("web", { addr = "10.20.0.13", weight = -1 }) end,
  "weight must be a number >= 0", "negative weight")
t.raises(function() svc:add_backend("web", { addr = "10.20.0.13", prot = 1 }) end,
  "unknown option 'prot'", "misspelt option")
healthy("after bad backends")
t.raises(function() svc:add_vip({ name = "web2", addr = "10.20.0.100", port = 80, snat = "10.20.0.2" }) end,
  "10.20.0.100:80/tcp is already VIP 'web'", "duplicate VIP")
t.raises(function() svc:add_vip({ name = "web", addr = "10.20.0.101", port = 80, snat = "10.20.0.2" }) end,
  "already has a VIP named 'web'", "duplicate VIP name")
t.raises(function() svc:add_vip({ addr = "10.20.0.101", port = 80, mode = "tunnel" }) end,
  "mode must be nat, dsr, ipip or gue", "unknown mode")
t.raises(function() svc:add_vip({ addr = "10.20.0.101", port = 70000 }) end, "port must be 1-65535", "bad port")
t.raises(function() svc:add_vip({ addr = "fd00::1", port = 80 }) end,
  "is in NAT mode and 'dum0' has no IPv6 address: give snat = ADDRESS", "NAT without a source address")
-- A whole configuration with one bad entry changes nothing.
t.raises(function()
  svc:apply({ { name = "web", addr = "10.20.0.100", port = 80, snat = "10.20.0.2",
    backends = { { name = "b1", addr = "10.20.0.11", port = 8080 } } },
    { name = "bad", addr = "nope", port = 81 } })
end, "'nope' is not an IPv4 or IPv6 address", "apply with a bad VIP")
healthy("after a refused apply")
t.eq(svc:stats().vips.bad, nil, "the refused apply added nothing")
svc:close()
t.raises(function() svc:stats() end, "is closed", "use after close")
print("lb_errors: all checks passed")
