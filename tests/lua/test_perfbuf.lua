-- SPDX-License-Identifier: MIT
-- Perf buffer: events arrive decoded (cdata, table, raw), with their CPU;
-- an overflowing per-CPU buffer reports drops through the lost callback;
-- the kernel's wakeup delivers samples written on every online CPU, by this
-- process or by another one while the reader sleeps, whichever CPU it is on.
--
-- Every wait is for the events, with a deadline counted from now: the loop's
-- clock is the one cached at the start of its turn, and bpf.load() alone holds
-- the loop 100-200 ms on a busy 2-core machine, so a timer started after it
-- without uv.update_time() fires on the loop's first turn, before anything
-- could be read (this test's old fixed 50 ms waits failed that way).
local t = require("t")
local ffi = require("ffi")
local uv = require("luv")

ffi.cdef [[
int sched_setaffinity(int pid, size_t size, const uint64_t *mask);
int sched_getcpu(void);
int getpid(void);
]]

local DEADLINE_MS = 5000

local function pin(cpu)
  local mask = ffi.new("uint64_t[16]")
  mask[math.floor(cpu / 64)] = bit.lshift(1ULL, cpu % 64)
  assert(ffi.C.sched_setaffinity(0, ffi.sizeof(mask), mask) == 0, "sched_setaffinity " .. cpu)
  t.eq(ffi.C.sched_getcpu(), cpu, "pinned to CPU " .. cpu)
end

-- "0-3,5" -> {0, 1, 2, 3, 5}
local function online_cpus()
  local f = assert(io.open("/sys/devices/system/cpu/online"))
  local s = f:read("*l")
  f:close()
  local cpus = {}
  for a, b in s:gmatch("(%d+)%-?(%d*)") do
    for c = tonumber(a), tonumber(b ~= "" and b or a) do cpus[#cpus + 1] = c end
  end
  assert(#cpus > 0, "no online CPU in '" .. s .. "'")
  return cpus
end
local cpus = online_cpus()

-- Stay on one CPU: the kernel reports a drop in the buffer it happened in,
-- when the next sample is written there.
pin(cpus[1])

local obj = assert(bpf.load(t.object("ringbuf")))
local perf, emit = obj:map("perf_events"), obj:program("emit")

local function pkt(n)
  return string.char(n % 256, math.floor(n / 256) % 256, 0, 0, 1) .. string.rep("\0", 59)
end

t.raises(function() bpf.perfbuf(obj:map("events"), print) end,
  "map 'events' is a ringbuf, not a perf_event_array (use luabpf.ringbuf)")
t.raises(function() bpf.perfbuf(perf, print, { pages = 3 }) end, "option 'pages' must be a power of 2")
t.raises(function() bpf.perfbuf(perf, print, { lost = 1 }) end, "option 'lost' expects a function")

-- done() once cond() holds, or at the deadline (t.wait_for).
local function wait_for(cond, done) t.wait_for(cond, done, DEADLINE_MS) end

local steps = {}
local seq0 = 0

-- 1. 500 events, each mode in turn, all delivered in order (64 pages hold them).
for _, mode in ipairs({ "cdata:struct event", "struct event", "raw" }) do
  steps[#steps + 1] = function(next_step)
    local got, bad, cpus_seen = 0, nil, {}
    local first = seq0
    local pb = bpf.perfbuf(perf, function(e, size, cpu)
      local seq
      if mode == "raw" then seq = tonumber(ffi.cast("const uint64_t *", e)[0])
      elseif mode == "struct event" then seq = e.seq; assert(e.comm == "luabpf-test", e.comm)
      else seq = tonumber(e.seq); assert(e.pair.b == seq + 2) end
      if seq ~= first + got and not bad then bad = "seq " .. seq .. " at " .. got end
      assert(size >= 56, "size " .. size)
      cpus_seen[cpu] = true
      got = got + 1
    end, { decode = mode })
    assert(emit:test_run(pkt(500)))
    seq0 = seq0 + 500
    wait_for(function() return got >= 500 end, function()
      t.eq(bad, nil, mode .. ": order")
      t.eq(got, 500, mode .. ": events")
      t.eq(pb:consume(), 0, mode .. ": nothing left in the buffers")
      t.eq(pb:stats().events, 500, mode .. ": stats().events")
      t.eq(tostring(pb), "luabpf.perfbuf 'perf_events' (" .. mode .. ", 500 events, 0 lost)", mode .. ": tostring")
      t.eq(pb:lost(), 0, mode .. ": lost")
      t.same(cpus_seen, { [cpus[1]] = true }, mode .. ": handler got the producer's CPU")
      pb:close()
      t.raises(function() pb:lost() end, "closed perfbuf")
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
  wait_for(function() return got >= 2000 - bpf_lost end, function()
    t.eq(got, 2000 - bpf_lost, "after resume: what fitted is delivered")
    -- the kernel writes its LOST record before the next sample that fits
    assert(emit:test_run(pkt(1)))
    wait_for(function() return got > 2000 - bpf_lost and lost_cb > 0 end, function()
      print(string.format("perf: %d delivered, %d lost (callback), %d failed outputs (BPF)",
        got, lost_cb, bpf_lost))
      t.ok(got > 1 and got < 2001, "some events delivered: " .. got)
      t.ok(lost_cb > 0, "the lost callback reported drops")
      t.eq(pb:lost(), lost_cb, "pb:lost() sums the callback's counts")
      -- best effort: the kernel counts drops only while a LOST record fits
      t.eq(lost_cb, bpf_lost, "dropped samples reported = failed outputs counted by BPF")
      t.eq(got + lost_cb, 2001, "delivered + lost = produced")
      pb:close()
      next_step()
    end)
  end)
end

-- 3. The wakeup, per CPU: this process pinned on each online CPU in turn
-- writes 300 samples there from a loop callback (after the reader's first
-- drain), and only the wakeup can bring them.
steps[#steps + 1] = function(next_step)
  local got, seen = 0, {}
  local pb = bpf.perfbuf(perf, function(e, size, cpu)
    got = got + 1
    seen[cpu] = (seen[cpu] or 0) + 1
  end, { decode = "struct event" })
  local i = 0
  local function round()
    i = i + 1
    local cpu = cpus[i]
    if not cpu then
      pb:close()
      pin(cpus[1])
      return next_step()
    end
    pin(cpu)
    got, seen = 0, {}
    assert(emit:test_run(pkt(300)))
    wait_for(function() return got >= 300 end, function()
      t.same(seen, { [cpu] = 300 }, "written on CPU " .. cpu .. ": delivered, from that CPU's buffer")
      t.eq(pb:lost(), 0, "written on CPU " .. cpu .. ": lost")
      round()
    end)
  end
  local tm = uv.new_timer()
  tm:start(1, 0, function() tm:close(); round() end)
end

-- 4. The wakeup across processes: another process pinned on CPU p renames
-- itself, and the task_rename program writes 200 samples there while this
-- one sleeps in its loop on CPU c, for every producer CPU, with the reader on
-- the same CPU and on another one.
steps[#steps + 1] = function(next_step)
  local N = 200
  local name = string.format("pbw%012x", ffi.C.getpid()) -- 15 characters, this run's alone
  local wobj = assert(bpf.open(t.object("perf_wake")))
  wobj:set("name", name)
  wobj:set("count", N)
  assert(wobj:load())
  local link = assert(wobj:program("wake"):attach())
  local got, seen, bad = 0, {}, nil
  local pb = bpf.perfbuf(wobj:map("perf_events"), function(s, size, cpu)
    got = got + 1
    if s.cpu ~= cpu and not bad then bad = "sample from CPU " .. s.cpu .. " in CPU " .. cpu .. "'s buffer" end
    seen[cpu] = (seen[cpu] or 0) + 1
  end, { decode = "struct wake_sample" })
  local rounds = {}
  for k, p in ipairs(cpus) do
    rounds[#rounds + 1] = { reader = p, producer = p }
    local other = cpus[k % #cpus + 1]
    if other ~= p then rounds[#rounds + 1] = { reader = other, producer = p } end
  end
  local i = 0
  local function round()
    i = i + 1
    local r = rounds[i]
    if not r then
      t.eq(wobj:get("failed"), 0, "bpf_perf_event_output never failed")
      t.eq(wobj:get("produced"), N * #rounds, "samples written")
      pb:close()
      link:detach()
      wobj:close()
      pin(cpus[1])
      return next_step()
    end
    local what = string.format("reader on CPU %d, producer on CPU %d", r.reader, r.producer)
    pin(r.reader)
    got, seen, bad = 0, {}, nil
    local code = string.format([[
      local ffi = require("ffi")
      ffi.cdef("int sched_setaffinity(int, size_t, const uint64_t *); int sched_getcpu(void); int prctl(int, ...);")
      local mask = ffi.new("uint64_t[16]")
      mask[%d] = bit.lshift(1ULL, %d)
      assert(ffi.C.sched_setaffinity(0, ffi.sizeof(mask), mask) == 0, "sched_setaffinity")
      assert(ffi.C.sched_getcpu() == %d, "producer not on its CPU")
      assert(ffi.C.prctl(15, %q) == 0, "prctl(PR_SET_NAME)")
    ]], math.floor(r.producer / 64), r.producer % 64, r.producer, name)
    local exited
    local child, err = uv.spawn(uv.exepath(), { args = { "--no-control", "-e", code }, stdio = { nil, 1, 2 } },
      function(status, signal) exited = { status, signal } end)
    assert(child, err)
    wait_for(function() return exited and got >= N end, function()
      t.same(exited, { 0, 0 }, what .. ": the producer exited 0")
      t.eq(bad, nil, what .. ": samples in their CPU's buffer")
      t.same(seen, { [r.producer] = N }, what .. ": delivered, from the producer's CPU")
      t.eq(pb:lost(), 0, what .. ": lost")
      child:close()
      round()
    end)
  end
  round()
end

local function run(i)
  if steps[i] then steps[i](function() run(i + 1) end) end
end
run(1)
