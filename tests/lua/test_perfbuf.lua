-- SPDX-License-Identifier: MIT
-- Perf buffer: events arrive decoded (cdata, table, raw), with their CPU;
-- an overflowing per-CPU buffer reports drops through the lost callback.
local t = require("t")
local ffi = require("ffi")
local uv = require("luv")

-- Stay on one CPU: the kernel reports a drop in the buffer it happened in,
-- when the next sample is written there.
ffi.cdef [[int sched_setaffinity(int pid, size_t size, const uint64_t *mask);]]
assert(ffi.C.sched_setaffinity(0, 8, ffi.new("uint64_t[1]", 1)) == 0, "sched_setaffinity")

local obj = assert(bpf.load(t.object("ringbuf")))
local perf, emit = obj:map("perf_events"), obj:program("emit")

local function pkt(n)
  return string.char(n % 256, math.floor(n / 256) % 256, 0, 0, 1) .. string.rep("\0", 59)
end

t.raises(function() bpf.perfbuf(obj:map("events"), print) end,
  "map 'events' is a ringbuf, not a perf_event_array (use luabpf.ringbuf)")
t.raises(function() bpf.perfbuf(perf, print, { pages = 3 }) end, "option 'pages' must be a power of 2")
t.raises(function() bpf.perfbuf(perf, print, { lost = 1 }) end, "option 'lost' expects a function")

local function fail(err) io.stderr:write("FAIL: ", tostring(err), "\n"); bpf.stop(1) end

local steps = {}
local seq0 = 0

-- 1. 500 events, each mode in turn, all delivered in order (64 pages hold them).
for _, mode in ipairs({ "cdata:struct event", "struct event", "raw" }) do
  steps[#steps + 1] = function(next_step)
    local got, bad, cpus = 0, nil, {}
    local first = seq0
    local pb = bpf.perfbuf(perf, function(e, size, cpu)
      local seq
      if mode == "raw" then seq = tonumber(ffi.cast("const uint64_t *", e)[0])
      elseif mode == "struct event" then seq = e.seq; assert(e.comm == "luabpf-test", e.comm)
      else seq = tonumber(e.seq); assert(e.pair.b == seq + 2) end
      if seq ~= first + got and not bad then bad = "seq " .. seq .. " at " .. got end
      assert(size >= 56, "size " .. size)
      cpus[cpu] = true
      got = got + 1
    end, { decode = mode })
    assert(emit:test_run(pkt(500)))
    seq0 = seq0 + 500
    local timer = uv.new_timer()
    timer:start(50, 0, function()
      timer:close()
      local ok, err = pcall(function()
        t.eq(bad, nil, mode .. ": order")
        t.eq(got, 500, mode .. ": events")
        t.eq(pb:stats().events, 500, mode .. ": stats().events")
        t.eq(tostring(pb), "luabpf.perfbuf 'perf_events' (" .. mode .. ", 500 events, 0 lost)", mode .. ": tostring")
        t.eq(pb:lost(), 0, mode .. ": lost")
        t.ok(next(cpus) ~= nil, mode .. ": handler got the CPU")
        pb:close()
        t.raises(function() pb:lost() end, "closed perfbuf")
      end)
      if not ok then return fail(err) end
      next_step()
    end)
  end
end

-- 2. One page per CPU and a paused reader: 2000 events overflow it.
steps[#steps + 1] = function(next_step)
  local got, lost_cb = 0, 0
  local pb = bpf.perfbuf(perf, function() got = got + 1 end, {
    pages = 1, lost = function(cpu, n) lost_cb = lost_cb + n end })
  pb:pause()
  local before = obj:map("events_lost"):lookup_sum(0)
  assert(emit:test_run(pkt(2000)))
  local bpf_lost = obj:map("events_lost"):lookup_sum(0) - before
  pb:resume()
  local timer = uv.new_timer()
  timer:start(50, 0, function()
    -- the kernel writes its LOST record before the next sample that fits
    assert(emit:test_run(pkt(1)))
  timer:start(50, 0, function()
    timer:close()
    local ok, err = pcall(function()
      print(string.format("perf: %d delivered, %d lost (callback), %d failed outputs (BPF)",
        got, lost_cb, bpf_lost))
      t.ok(got > 1 and got < 2001, "some events delivered: " .. got)
      t.ok(lost_cb > 0, "the lost callback reported drops")
      t.eq(pb:lost(), lost_cb, "pb:lost() sums the callback's counts")
      -- best effort: the kernel counts drops only while a LOST record fits
      t.eq(lost_cb, bpf_lost, "dropped samples reported = failed outputs counted by BPF")
      t.eq(got + lost_cb, 2001, "delivered + lost = produced")
      pb:close()
    end)
    if not ok then return fail(err) end
    next_step()
  end)
  end)
end

local function run(i)
  if steps[i] then steps[i](function() run(i + 1) end) end
end
run(1)
