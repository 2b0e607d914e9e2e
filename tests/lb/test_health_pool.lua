-- SPDX-License-Identifier: MIT
-- The pool side of health checks, without a network: a service not attached
-- (attach = false), backends whose custom checks follow a table. Down leaves
-- the Maglev table, up rejoins it with slow start; quorum with hysteresis;
-- the keep policy; bad declarations raise and change nothing.
local uv = require("luv")
local t = require("t")
local lb = require("luabpf.lb")

local healthy = { b1 = true, b2 = true, b3 = true, b4 = true }
local events = {}
-- What the data plane picks for 64 flows to the VIP (Maglev, read from the maps).
local svc
local function picks()
  local out = {}
  for i = 1, 64 do out[i] = svc:which({ src = "10.97.0." .. i, sport = 1000 + i, dst = "10.98.0.1", dport = 80 }) or "-" end
  return table.concat(out, " ")
end
-- A quorum event must come once the data plane already agrees: what it picks
-- at the event is what it picks once everything after the change has run.
local quorum_views = {}
svc = assert(lb.new({ name = t.unique("hp"), attach = false, pin = false, prime_neighbours = false,
  on_health = function(ev)
    events[#events + 1] = ev
    if ev.type == "quorum" then
      local at = { state = ev.state, at = picks() }
      quorum_views[#quorum_views + 1] = at
      local tm = uv.new_timer()
      tm:start(0, 0, function() tm:close() at.after = picks() end)
    end
  end }))
local check = { type = "custom", interval = 0.03, rise = 1, fall = 1, jitter = 0, slowstart = 1,
  fn = function(target, done) done(healthy[target.name:match("/(.*)")], "scripted down") end }
local function backends()
  local l = {}
  for i = 1, 4 do l[i] = { name = "b" .. i, addr = "10.98.0." .. (10 + i), port = 8080, weight = 2 } end
  return l
end
svc:add_vip({ name = "web", addr = "10.98.0.1", port = 80, snat = "10.98.0.2", check = check,
  quorum = 5, hysteresis = 2, no_quorum = "keep", backends = backends() })

t.raises(function() svc:apply({ { name = "web", addr = "10.98.0.1", port = 80, snat = "10.98.0.2",
  down_flows = "reset", backends = backends() } }) end, "down_flows must be keep or flush")
t.raises(function() svc:apply({ { name = "web", addr = "10.98.0.1", port = 80, snat = "10.98.0.2",
  no_quorum = "sorry", backends = backends() } }) end, "needs sorry = { addr")
t.raises(function() svc:add_backend("web", { name = "b9", addr = "10.98.0.99", check = { timeout = -1 } }) end,
  "VIP 'web' backend 'b9': check: 'timeout' must be a number >= 0.001")
t.raises(function() svc:add_vip({ name = "x", addr = "10.98.0.5", port = 80, snat = "10.98.0.2",
  check = { type = "http", port = 80, path = "nope" } }) end, "'path' must start with /")

local function b(name) return svc:stats().vips.web.backends[name] end
local steps = {}
local function step(ms, fn) steps[#steps + 1] = { ms, fn } end

step(300, function()
  t.eq(svc:stats().vips.web.healthy, 4, "all healthy at first")
  healthy.b1 = false
end)
step(300, function()
  local s = b("b1")
  t.eq(s.health, "down", "b1 down")
  t.eq(s.slots, 0, "b1 left the Maglev table")
  t.eq(s.state, "down", "b1 is down (not 'draining', an operator's word): no new flows, its flows kept")
  t.eq(s.check.reason, "scripted down", "the custom check's reason")
  t.eq(events[#events].backend, "b1", "an event for b1")
  t.eq(events[#events].reason, "scripted down", "the event's reason")
  -- quorum 5, hysteresis 2: lost below 3. 6 of 8 healthy: still ok.
  t.eq(svc:stats().vips.web.quorum.ok, true, "quorum with 6 of 8")
  healthy.b1 = true
end)
step(400, function()
  local s = b("b1")
  t.eq(s.health, "up", "b1 up again")
  t.ok(s.effective_weight > 0 and s.effective_weight < 2,
    ("slow start: b1's weight ramps (%.2f of 2)"):format(s.effective_weight))
  t.ok(s.slots > 0 and s.slots < b("b2").slots, "slow start: fewer slots than b2 for now")
end)
step(1000, function()
  t.eq(b("b1").effective_weight, 2, "slow start done: full weight")
  healthy.b2, healthy.b3 = false, false
end)
step(300, function()
  -- 4 of 8 healthy: 4 >= 5 - 2, quorum held (hysteresis).
  t.eq(svc:stats().vips.web.quorum.ok, true, "quorum held at 4 of 8 (5 - 2 = 3 needed)")
  healthy.b4 = false
end)
step(300, function()
  local s = svc:stats().vips.web
  t.eq(s.quorum.ok, false, "quorum lost at 2 of 8")
  -- keep: the last set that had quorum (b1 and b4) stays in the table.
  t.ok(b("b4").slots > 0 and b("b1").slots > 0, "keep: b1 and b4, the last set with quorum, keep their slots")
  t.eq(b("b2").slots, 0, "keep: b2, down before, stays out")
  healthy.b2 = true
end)
step(300, function()
  -- 4 of 8: regained only at 5 + 2 = 7.
  t.eq(svc:stats().vips.web.quorum.ok, false, "no quorum at 4 of 8 (7 needed to regain)")
  healthy.b3, healthy.b4 = true, true
end)
step(300, function()
  t.eq(svc:stats().vips.web.quorum.ok, true, "quorum again at 8 of 8")
  local q = 0
  for _, ev in ipairs(events) do if ev.type == "quorum" then q = q + 1 end end
  t.eq(q, 2, "two quorum events: lost, ok")
  for _, v in ipairs(quorum_views) do
    t.eq(v.at, v.after, ("quorum %s: the data plane had changed when it was said"):format(v.state))
  end
  print(("ok: %d events"):format(#events))
  svc:close()
end)

local i = 0
local function run()
  i = i + 1
  local s = steps[i]
  if not s then return end
  local tm = uv.new_timer()
  tm:start(s[1], 0, function()
    tm:close()
    local ok, err = xpcall(s[2], debug.traceback)
    if not ok then print(err); os.exit(1) end
    run()
  end)
end
run()
