-- SPDX-License-Identifier: MIT
-- Events per second delivered to a Lua handler that reads one field (pid),
-- against C consumers loaded into this process (bench/ringbuf_consumer.c:
-- libbpf's ring_buffer__consume and perf_buffer__consume with a C callback)
-- draining the same ring or perf buffer in the same round. The same producer
-- (tests/bpf/ringbuf.bpf.c through BPF_PROG_TEST_RUN + bpf_loop) fills the
-- buffer before each measurement, so only consumption is timed.
--
-- Each round runs every Lua way, in order, each right after a C run of its
-- kind; a Lua figure's ratio is its rate over that C run's, and the table
-- gives the median over the rounds with the lowest and highest. Rates per wall second and per CPU
-- second of the process (steadier on a shared machine: time spent preempted
-- counts in neither). Each measurement starts after a full garbage collection.
--   consume()  rb:consume() / pb:consume() from Lua: all at once
--   loop       the buffer resumed and drained by the host's loop, at its
--              defaults (batch 256, slice_us 1000: a wake runs batches for up
--              to 1 ms); "1 batch/wake" is slice_us = 0 (what a wake did before).
--              The handler is the same as consume()'s; the clock stops in the
--              loop's turn that handed out the last event (wait_loop)
--   general    table mode through the general C decoder (host/btf_decode.c,
--              what table mode used before the generated decoders)
--   Lua alone  no ring: a new 56-byte Lua string per event, kept, which raw
--              mode can't do without (its ceiling on this machine)
-- usage: luabpf run bench/ringbuf_bench.lua BUILD_DIR [N] [ROUNDS]
local ffi = require("ffi")
local uv = require("luv")
local R = require("luabpf._ringbuf")
local build = assert(arg[1], "usage: ringbuf_bench.lua BUILD_DIR [N] [ROUNDS]")
local N = tonumber(arg[2]) or 200000
local ROUNDS = tonumber(arg[3]) or 15
local NPERF = math.floor(N * 0.4)
local PAGES = 2048 -- per CPU: 8 MiB holds NPERF 72-byte samples

ffi.cdef [[
struct bench_rb { void *rb; uint64_t sum; };
int bench_rb_open(struct bench_rb *b, int map_fd);
int bench_rb_consume(struct bench_rb *b);
void bench_rb_close(struct bench_rb *b);
struct bench_pb { void *pb; uint64_t sum, n; };
int bench_pb_open(struct bench_pb *b, int map_fd, int pages);
int bench_pb_consume(struct bench_pb *b);
void bench_pb_close(struct bench_pb *b);
struct rb_timespec { long tv_sec; long tv_nsec; };
int clock_gettime(int clk, struct rb_timespec *ts);
]]
local clib = ffi.load(build .. "/bench/libringbuf_consumer.so")
local ts = ffi.new("struct rb_timespec")
local function cpu_s()
  ffi.C.clock_gettime(2, ts) -- CLOCK_PROCESS_CPUTIME_ID
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

-- 64 bytes a record: 2^24 holds 262,144 events
local obj = assert(bpf.load(build .. "/tests/bpf/ringbuf.bpf.o", { max_entries = { events = 2 ^ 24 } }))
local events, perf, emit = obj:map("events"), obj:map("perf_events"), obj:program("emit")
local produced = 0 -- the producer's sequence numbers: the last event of a run is produced - 1
local function produce(n, to_perf)
  produced = produced + n
  assert(emit:test_run(string.char(n % 256, math.floor(n / 256) % 256, math.floor(n / 65536) % 256, 0,
    to_perf and 1 or 0) .. string.rep("\0", 59)))
end

local co
local sum, done_wall, done_cpu = 0, nil, nil
-- Every way's handler, loop-driven or not, reads one field, as the C
-- consumers' callback does.
local handlers = {
  cdata = function(e) sum = sum + e.pid end,
  table = function(e) sum = sum + e.pid end,
  raw = function(s) sum = sum + #s end,
}
local decode = { cdata = "cdata:struct event", table = "struct event", raw = "raw" }

-- Wait on the loop until done() (the events the buffer has handed out since
-- it was resumed) reaches n. A check handle looks after each turn's poll (a
-- ring drains there) and a prepare handle after each turn's idle handles (a
-- resumed perf buffer drains there first), so the clock stops in the turn
-- that drained the last event, or now if resume() drained them itself.
local function wait_loop(done, n)
  if done() >= n then
    done_wall, done_cpu = uv.hrtime(), cpu_s()
    return
  end
  local check, prepare = uv.new_check(), uv.new_prepare()
  local function look()
    if done_wall or done() < n then return end
    done_wall, done_cpu = uv.hrtime(), cpu_s()
    check:close()
    prepare:close()
    assert(coroutine.resume(co))
  end
  check:start(look)
  prepare:start(look)
  coroutine.yield()
end

-- One measurement: {wall rate, CPU rate}. start() returns the count
-- drained, or for a loop-driven way a function that says how many so far.
local function measure(n, to_perf, start, loop, bare)
  done_wall, done_cpu = nil, nil
  if not bare then produce(n, to_perf) end
  collectgarbage() -- each way starts with no garbage from the one before
  local t0, c0 = uv.hrtime(), cpu_s()
  local k = start()
  if loop then
    wait_loop(k, n)
  else
    assert(k == n, "drained " .. tostring(k) .. " of " .. n)
    done_wall, done_cpu = uv.hrtime(), cpu_s()
  end
  return { n / ((done_wall - t0) / 1e9), n / (done_cpu - c0) }
end

-- ring buffers: one buffer per way, paused between measurements
local ring = {}
local function ringbuf(mode, opts)
  opts = opts or {}
  opts.decode = decode[mode]
  R.general = opts.general
  opts.general = nil
  local rb = bpf.ringbuf(events, handlers[mode], opts)
  R.general = nil
  rb:pause()
  return rb
end
local crb = ffi.new("struct bench_rb")
assert(clib.bench_rb_open(crb, events:fd()) == 0, "ring_buffer__new")

local rows = {
  { "ring", "c", "C: libbpf ring_buffer__consume", function() return clib.bench_rb_consume(crb) end },
  { "ring", "cdata", "cdata, consume()" },
  { "ring", "cdata_loop", "cdata, loop" },
  { "ring", "cdata_loop1", "cdata, loop, 1 batch/wake", { slice_us = 0 } },
  { "ring", "table", "table, consume()" },
  { "ring", "table_loop", "table, loop" },
  { "ring", "table_general", "table, general, consume()", { general = true } },
  { "ring", "raw", "raw, consume()" },
  { "ring", "raw_loop", "raw, loop" },
  -- No ring: what raw mode can't do without, a new 56-byte Lua string per
  -- event (kept where the JIT can't sink it away), paired with a C run like
  -- the others: raw mode's ceiling.
  { "ring", "bare_string", "Lua alone: new 56-byte string" },
  { "perf", "c", "C: libbpf perf_buffer__consume" },
  { "perf", "cdata", "cdata, consume()" },
  { "perf", "cdata_loop", "cdata, loop" },
  { "perf", "table", "table, consume()" },
  { "perf", "raw", "raw, consume()" },
}
for _, row in ipairs(rows) do
  row.kind, row.key, row.label, row.fn = row[1], row[2], row[3], row[4]
  row.mode = row.key:match("^(%a+)")
  row.loop = row.key:find("loop") ~= nil
  row.rates = { {}, {} }
  if row.key:match("^bare_") then
    row.bare = true
    local buf = ffi.new("uint8_t[56]")
    local seq = ffi.cast("uint64_t *", buf)
    local keep = {}
    row.fn = function()
      for i = 1, N do
        seq[0] = i
        keep[1] = ffi.string(buf, 56)
      end
      return N
    end
  elseif row.kind == "ring" and row.key ~= "c" then
    local opts = type(row.fn) == "table" and row.fn or nil
    local rb = ringbuf(row.mode, opts)
    ring[row.key] = rb
    row.fn = function()
      if row.loop then
        local base = rb:stats().events
        rb:resume()
        return function() return rb:stats().events - base end
      end
      return rb:consume()
    end
    row.after = function() rb:pause() end
  elseif row.kind == "perf" then
    -- Perf buffers claim the map's CPU slots: each is opened for its
    -- measurement (and warmed up on a few samples), then closed.
    local pb, cpb
    row.before = function()
      if row.key == "c" then
        cpb = ffi.new("struct bench_pb")
        assert(clib.bench_pb_open(cpb, perf:fd(), PAGES) == 0, "perf_buffer__new")
        produce(2000, true)
        assert(clib.bench_pb_consume(cpb) == 2000)
      else
        pb = assert(bpf.perfbuf(perf, handlers[row.mode],
          { decode = decode[row.mode], pages = PAGES }))
        pb:pause()
        produce(2000, true)
        assert(pb:consume() == 2000)
      end
    end
    row.fn = function()
      if row.key == "c" then return clib.bench_pb_consume(cpb) end
      if row.loop then
        local base = pb:stats().events
        pb:resume()
        return function() return pb:stats().events - base end
      end
      return pb:consume()
    end
    row.after = function()
      if cpb then clib.bench_pb_close(cpb); cpb = nil end
      if pb then pb:close(); pb = nil end
    end
  end
end

-- Warm up (traces, page faults), then the rounds.
local function run_row(row)
  if row.before then row.before() end
  local r = measure(row.kind == "perf" and NPERF or N, row.kind == "perf", row.fn, row.loop, row.bare)
  if row.after then row.after() end
  return r
end

local median = require("_bench").median -- (the upper middle of an even count)

local function report()
  print(string.format("ringbuf: %d events (perf: %d) of 56 bytes per run, %d rounds (%s); "
    .. "ratio: Lua/C of the C run just before, median [lowest-highest]", N, NPERF, ROUNDS, jit.version))
  print(string.format("  %-36s %8s %9s  %-17s %-17s", "consumer", "Mev/s", "ns/event", "vs C (wall)",
    "vs C (CPU)"))
  -- ratios[k]: the sorted Lua/C ratios of a row's pairs (k 1 wall, 2 CPU)
  local function ratios(row, k)
    local r = {}
    for i = 1, #row.rates[k] do r[i] = row.rates[k][i] / row.crates[k][i] end
    table.sort(r)
    return r
  end
  local function col(r) return string.format("%4.2f [%4.2f-%4.2f]", median(r), r[1], r[#r]) end
  for _, row in ipairs(rows) do
    local m = median(row.rates[1])
    print(string.format("  %-36s %8.2f %9.1f  %-17s %-17s", row.kind .. " " .. row.label, m / 1e6, 1e9 / m,
      row.key == "c" and "1" or col(ratios(row, 1)), row.key == "c" and "1" or col(ratios(row, 2))))
  end
  local function by(kind, key)
    for _, row in ipairs(rows) do if row.kind == kind and row.key == key then return row end end
  end
  local tf, tg = by("ring", "table"), by("ring", "table_general")
  local function gain(k) -- generated over general, per round: median [lowest-highest]
    local r = {}
    for i = 1, #tf.rates[k] do r[i] = tf.rates[k][i] / tg.rates[k][i] end
    table.sort(r)
    return string.format("%.1fx [%.1f-%.1f]", median(r), r[1], r[#r])
  end
  print(string.format("  table mode, generated / general decoder, same round: %s (wall), %s (CPU)", gain(1),
    gain(2)))
  local function goal(kind, key, k) return col(ratios(by(kind, key), k)) end
  print("  goals (issue 16), CPU [wall]: ring cdata, loop >= 0.8 of C: " .. goal("ring", "cdata_loop", 2)
    .. " [" .. goal("ring", "cdata_loop", 1) .. "]; table decode >= 10x the general decoder: " .. gain(2)
    .. "; raw >= 0.3 of C: " .. goal("ring", "raw_loop", 2) .. " (loop), " .. goal("ring", "raw", 2)
    .. " (consume); perf cdata, loop: " .. goal("perf", "cdata_loop", 2))
  print("  raw mode's ceiling: Lua making a new 56-byte string per event, no ring, runs at "
    .. goal("ring", "bare_string", 2) .. " of C (CPU)")
  clib.bench_rb_close(crb)
  for _, rb in pairs(ring) do rb:close() end
  obj:close()
  assert(sum > 0)
end

co = coroutine.create(function()
  for _, row in ipairs(rows) do run_row(row) end
  -- Each Lua way is paired with a C run of its kind just before it (the
  -- machine's load changes between rows of one round).
  local c = {}
  for _, row in ipairs(rows) do
    if row.key == "c" then c[row.kind] = row end
    row.crates = { {}, {} }
  end
  local function add(rates, r)
    table.insert(rates[1], r[1])
    table.insert(rates[2], r[2])
  end
  for _ = 1, ROUNDS do
    for _, row in ipairs(rows) do
      if row.key ~= "c" then
        local cr = c[row.kind]
        local r = run_row(cr)
        add(cr.rates, r)
        add(row.crates, r)
        add(row.rates, run_row(row))
      end
    end
  end
  report()
end)
local kick = uv.new_timer()
kick:start(0, 0, function() kick:close(); assert(coroutine.resume(co)) end)
