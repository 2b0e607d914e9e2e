-- SPDX-License-Identifier: MIT
-- The drain looks at the clock less often while events are quick (up to 4
-- batches apart), and a handler that turns slow brings it back: after
-- 200,000 quick events (a few ns each), 20,000 take 20 us each (0.4 s in
-- all), and a 10 ms timer's longest gap during the drain stays under 10 ms +
-- the 1 ms slice + 4 batches of slow events (4 * 256 * 20 us = 20.5 ms), by
-- the process's CPU time between ticks (as test_ringbuf_timer.lua). Looks
-- that went on doubling up to 64 batches held it 51-67 ms (two runs).
-- A first round of quick events warms the ring up: events in pages the
-- process touches for the first time take ~40 ns, not a few.
local t = require("t")
local uv = require("luv")

local QUICK, SLOW = 200000, 20000
local N = QUICK + SLOW
local SPIN_NS = 20000
local obj = assert(bpf.load(t.object("ringbuf"), { max_entries = { events = 2 ^ 24 } }))

local function produce(n) -- n events (a count of 3 bytes, LE) to the ring buffer
  local count = string.char(n % 256, math.floor(n / 256) % 256, math.floor(n / 65536), 0, 0)
  assert(obj:program("emit"):test_run(count .. string.rep("\0", 59)))
end

local round, delivered, slow_start, drain_end = 1, 0, nil, nil
local hrtime = uv.hrtime
local rb = bpf.ringbuf(obj:map("events"), function()
  delivered = delivered + 1
  if round == 2 and delivered > QUICK then
    local now = hrtime()
    slow_start = slow_start or now
    while hrtime() - now < SPIN_NS do end
  end
  if delivered == N then drain_end = hrtime() end
end, { decode = "cdata:struct event" })

local ticks, max_cpu, last_cpu = 0, 0, nil
local timer = uv.new_timer()
timer:start(10, 10, function()
  if round == 1 then
    if not last_cpu then
      produce(N)
    elseif drain_end then -- warmed up: the measured round, drained from the next turn on
      round, delivered, drain_end = 2, 0, nil
      produce(N)
    end
  elseif not drain_end then
    ticks = ticks + 1
    max_cpu = math.max(max_cpu, os.clock() - last_cpu)
  end
  last_cpu = os.clock()
  if round == 1 or not drain_end then return end
  timer:close()
  local ok, err = pcall(function()
    local ms = (drain_end - slow_start) / 1e6
    print(string.format("%d slow events in %.0f ms; timer fired %d times during the drain, longest gap (CPU)"
      .. " %.1f ms", SLOW, ms, ticks, max_cpu * 1e3))
    t.eq(delivered, N, "events delivered")
    t.ok(ms > 300, "the slow part took long enough to matter (" .. ms .. " ms)")
    t.ok(ticks >= ms / 10 / 3, "the timer fired during the drain: " .. ticks .. " times")
    t.ok(max_cpu < 0.035, "longest gap between timer callbacks, in CPU time " .. max_cpu * 1e3 .. " ms")
    rb:close()
  end)
  if not ok then io.stderr:write("FAIL: ", err, "\n"); bpf.stop(1) end
end)
