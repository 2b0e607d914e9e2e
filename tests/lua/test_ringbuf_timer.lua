-- SPDX-License-Identifier: MIT
-- Bounded batches: while a flood of 100,000 events is drained by a slow
-- handler (about 1 s of work in all), a 10 ms timer still fires on time. A
-- drain that emptied the ring in one go would hold the loop for the whole
-- second and the timer's longest gap would show it. The gap is judged by the
-- process's CPU time between two ticks (what the loop did meanwhile): on a
-- busy machine the wall gap also counts waiting for a CPU (it is printed).
local t = require("t")
local uv = require("luv")

local N = 100000
local SPIN_NS = 10000
local obj = assert(bpf.load(t.object("ringbuf"), { max_entries = { events = 2 ^ 23 } }))

local delivered, drain_start, drain_end = 0, nil, nil
local hrtime = uv.hrtime
local rb = bpf.ringbuf(obj:map("events"), function()
  local now = hrtime()
  drain_start = drain_start or now
  while hrtime() - now < SPIN_NS do end
  delivered = delivered + 1
  if delivered == N then drain_end = hrtime() end
end, { decode = "raw" })

assert(obj:program("emit"):test_run(string.char(0xa0, 0x86, 0x01, 0, 0) .. string.rep("\0", 59)))

local ticks, max_gap, max_cpu, last, last_cpu = 0, 0, 0, nil, nil
local timer = uv.new_timer()
timer:start(10, 10, function()
  local now = hrtime()
  if drain_start and not drain_end then
    ticks = ticks + 1
    if last then
      max_gap = math.max(max_gap, now - last)
      max_cpu = math.max(max_cpu, os.clock() - last_cpu)
    end
  end
  last, last_cpu = now, os.clock()
  if not drain_end then return end
  timer:close()
  local ok, err = pcall(function()
    local s = rb:stats()
    local ms = (drain_end - drain_start) / 1e6
    print(string.format("drained %d events in %.0f ms, %d batches; timer fired %d times, longest gap %.1f ms"
      .. " (CPU %.1f ms)", delivered, ms, s.batches, ticks, max_gap / 1e6, max_cpu * 1e3))
    t.eq(delivered, N, "events delivered")
    t.ok(ms > 500, "the drain took long enough to matter (" .. ms .. " ms)")
    t.ok(ticks >= ms / 10 / 3, "the timer fired during the drain: " .. ticks .. " times")
    -- 10 ms between ticks, plus at most a 1 ms slice and one batch of 256 * 10 us
    t.ok(max_cpu < 0.030, "longest gap between timer callbacks, in CPU time " .. max_cpu * 1e3 .. " ms")
    rb:close()
  end)
  if not ok then io.stderr:write("FAIL: ", err, "\n"); bpf.stop(1) end
end)
