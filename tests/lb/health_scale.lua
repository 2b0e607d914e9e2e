-- SPDX-License-Identifier: MIT
-- 1,000 backends checked every second by HTTP, as pool members of one VIP
-- (test_health_scale.sh): how late a 10 ms timer runs meanwhile (the loop's
-- lag), measured over several seconds and reported. Then every server goes
-- at once: 1,000 transitions, the policy for a VIP without quorum, and the lag
-- while the Maglev table is rebuilt.
-- usage: health_scale.lua SERVICE FIRST_PORT N
local uv = require("luv")
local t = require("t")
local lb = require("luabpf.lb")
local name, first, n = arg[1], tonumber(arg[2]), tonumber(arg[3])
local INTERVAL = 1

local svc = assert(lb.new({ name = name, attach = false, pin = false, max_backends = n + 8,
  prime_neighbours = false, on_health = function() end }))
local backends = {}
for i = 1, n do
  backends[i] = { name = "b" .. i, addr = "127.0.0.1", port = first + i - 1 }
end
local function cpu()
  local r = uv.getrusage()
  return r.utime.sec + r.utime.usec / 1e6 + r.stime.sec + r.stime.usec / 1e6
end

-- The lag: a 10 ms timer, how late each tick runs. Each tick also notes the
-- CPU time the process used since the last one (os.clock): a tick late by
-- 50 ms while the process ran for 2 ms was late because the machine ran
-- something else (2 cores, 1,000 servers), not because the loop was blocked;
-- one late by 50 ms with 50 ms of CPU was blocked by our own code. "oncpu" is
-- the part of each tick's lateness the process could have spent running.
local function lag_meter()
  local m = { samples = {}, oncpu = {} }
  local timer = uv.new_timer()
  local last, lastc = uv.hrtime(), os.clock()
  timer:start(10, 10, function()
    local now, c = uv.hrtime(), os.clock()
    local late = math.max(0, (now - last) / 1e6 - 10)
    m.samples[#m.samples + 1] = late
    m.oncpu[#m.oncpu + 1] = math.min(late, (c - lastc) * 1e3)
    last, lastc = now, c
  end)
  function m.stop()
    timer:close()
    table.sort(m.samples)
    table.sort(m.oncpu)
    local s = m.samples
    local function q(p) return s[math.max(1, math.ceil(#s * p))] or 0 end
    local o = m.oncpu
    return { n = #s, p50 = q(0.5), p99 = q(0.99), max = s[#s] or 0,
      p99_oncpu = o[math.max(1, math.ceil(#o * 0.99))] or 0, max_oncpu = o[#o] or 0 }
  end
  return m
end

local function fail(err)
  print(err)
  os.exit(1)
end

local function at(ms, fn)
  local tm = uv.new_timer()
  tm:start(ms, 0, function()
    tm:close()
    local ok, err = xpcall(fn, debug.traceback)
    if not ok then fail(err) end
  end)
end

-- The same meter with nothing else on the loop first: what this machine
-- gives an idle loop right now (other tests, other processes).
local meter, c0, m0, cpu0, base_max, base_p99, all_down
meter = lag_meter()
at(2000, function()
local base = meter.stop()
base_max, base_p99 = base.max, base.p99
print(("baseline, no checks: loop lag median %.2f ms, p99 %.2f ms, max %.2f ms"):format(base.p50, base.p99, base.max))
local t0 = uv.hrtime()
svc:add_vip({ name = "web", addr = "10.99.0.1", port = 80, snat = "10.99.0.2", no_quorum = "drop",
  check = { type = "http", path = "/", interval = INTERVAL, timeout = 0.5 }, backends = backends })
print(("%d backends declared with their checks in %.0f ms"):format(n, (uv.hrtime() - t0) / 1e6))
end)

local function checks_done()
  local c = 0
  for _, b in pairs(svc:stats().vips.web.backends) do c = c + (b.check and b.check.checks or 0) end
  return c
end

-- An idle loop in another process, measured over the same window: what the
-- machine gives any loop right then (other tests, builds, other processes),
-- so the bound holds the checks to their own cost on a busy machine and a
-- quiet one alike. It prints "idle P99 MAX" when its window ends.
local IDLE = [[
local uv = require("luv")
local s, last, t, skip = {}, uv.hrtime(), uv.new_timer(), 50
t:start(10, 10, function()
  local now = uv.hrtime()
  if skip > 0 then skip = skip - 1 else s[#s + 1] = math.max(0, (now - last) / 1e6 - 10) end
  last = now
  if #s >= 560 then
    t:close()
    table.sort(s)
    print(("idle %.3f %.3f"):format(s[math.ceil(#s * 0.99)], s[#s]))
  end
end)
]]
local idle = {}
local function idle_meter()
  local out = uv.new_pipe(false)
  local h = uv.spawn(assert(os.getenv("LUABPF"), "LUABPF unset"), { args = { "-e", IDLE }, stdio = { nil, out, 2 } },
    function() end)
  assert(h, "can't start the idle lag meter")
  local buf = ""
  out:read_start(function(_, data)
    if not data then return out:close() end
    buf = buf .. data
    local p99, max = buf:match("idle ([%d.]+) ([%d.]+)")
    if p99 then idle.p99, idle.max = tonumber(p99), tonumber(max) end
  end)
end

-- wait_idle(fn): fn() once the idle meter has reported (deadline 10 s).
local function wait_idle(fn, left)
  left = left or 100
  if idle.p99 then return fn() end
  if left == 0 then fail("the idle lag meter never reported") end
  at(100, function() wait_idle(fn, left - 1) end)
end

-- Warm up one interval and a half (the first checks spread over one), then measure 6 s.
-- The idle meter starts 500 ms before the window (and skips its first 50
-- ticks): spawning it forks this process, and the copy-on-write faults that
-- follow in this process (its pages were shared with the child until exec)
-- took 15-35 ms of CPU on a VM whose page faults are slow: the meter's cost,
-- not the checks'.
at(3000, idle_meter)
at(3500, function()
  -- stats() reads 2,000 per-CPU counters: not inside the measured window.
  c0 = checks_done()
  meter, m0, cpu0 = lag_meter(), uv.hrtime(), cpu()
end)
at(9500, function()
  local lag = meter.stop()
  wait_idle(function()
  local secs = (uv.hrtime() - m0) / 1e9
  local busy = (cpu() - cpu0) / secs * 100
  local rate = (checks_done() - c0) / secs
  local s = svc:stats().vips.web
  print(("steady state: %d backends, %d healthy, %.0f checks/s, luabpf at %.0f%% of a CPU; loop lag over "
    .. "%d ticks of 10 ms: median %.2f ms, p99 %.2f ms (%.2f ms running), max %.2f ms (%.2f ms running)"):format(n,
      s.healthy, rate, busy, lag.n, lag.p50, lag.p99, lag.p99_oncpu, lag.max, lag.max_oncpu))
  t.eq(s.healthy, n, "healthy backends")
  t.ok(rate > 0.8 * n / INTERVAL, ("every backend checked about once a second (%.0f checks/s)"):format(rate))
  -- The checks' own lag is what is measured: an idle loop measured in the
  -- same window moves the bound by as much as the machine delayed it
  -- (CI on a quiet machine: 1-3 ms).
  print(("idle loop in the same window: p99 %.2f ms, max %.2f ms"):format(idle.p99, idle.max))
  -- Both bounds judge the part of each tick's lateness the process spent
  -- running (see lag_meter): a fresh root's suite beside other builds saw
  -- p99 73 ms late of which at most 25 ms running (1,000 servers starved).
  t.ok(lag.p99_oncpu < 10 + idle.p99, ("p99 loop lag %.2f ms (%.2f ms of it running) is under 10 ms + the idle "
    .. "loop's p99 %.2f ms"):format(lag.p99, lag.p99_oncpu, idle.p99))
  -- The longest stall our own code could have caused: a tick's lateness,
  -- no more than the CPU the process used over it (a GC pause or a burst of
  -- checks run on the CPU; a deschedule by a busy machine does not).
  t.ok(lag.max_oncpu < math.max(10, math.max(idle.max, base_max) + 5),
    ("max loop lag %.2f ms, of which the process was running %.2f ms (idle loop %.2f ms, idle before %.2f ms)")
    :format(lag.max, lag.max_oncpu, idle.max, base_max))
  io.stdout:write("kill\n")
  io.stdout:flush()
  meter = lag_meter()
  at(5000, all_down)
  end)
end)
-- The shell kills the servers on "kill"; all are down within fall x interval + timeout.
all_down = function()
  local lag = meter.stop()
  local s = svc:stats()
  local v = s.vips.web
  print(("all servers gone: %d of %d healthy, quorum %s (%s), drop_no_backend ready; loop lag while "
    .. "%d went down: median %.2f ms, p99 %.2f ms, max %.2f ms"):format(v.healthy, n,
      v.quorum.ok and "ok" or "lost", v.quorum.policy, n, lag.p50, lag.p99, lag.max))
  t.eq(v.healthy, 0, "healthy backends after the servers went")
  t.eq(v.quorum.ok, false, "quorum lost")
  local slots = 0
  for _, b in pairs(v.backends) do slots = slots + b.slots end
  t.eq(slots, 0, "no backend has a Maglev slot (policy drop)")
  print("done")
  svc:close()
  os.exit(0)
end
