-- SPDX-License-Identifier: MIT
-- Events per second delivered to a Lua handler that reads one field, against
-- a C consumer (libbpf's ring_buffer__consume, bench/ringbuf_consumer.c,
-- loaded into this process) draining the same ring in the same run. The same
-- producer fills the ring before each measurement (tests/bpf/ringbuf.bpf.c
-- through BPF_PROG_TEST_RUN + bpf_loop), so only consumption is timed.
-- Medians of ROUNDS rounds; the ratio is Lua's rate over C's.
-- usage: luabpf run bench/ringbuf_bench.lua BUILD_DIR [N] [ROUNDS]
local ffi = require("ffi")
local uv = require("luv")
local build = assert(arg[1], "usage: ringbuf_bench.lua BUILD_DIR [N] [ROUNDS]")
local N = tonumber(arg[2]) or 200000
local ROUNDS = tonumber(arg[3]) or 5

ffi.cdef [[
struct bench_rb { void *rb; uint64_t sum; };
int bench_rb_open(struct bench_rb *b, int map_fd);
int bench_rb_consume(struct bench_rb *b);
void bench_rb_close(struct bench_rb *b);
]]
local clib = ffi.load(build .. "/bench/libringbuf_consumer.so")

-- 64 bytes a record: 2^24 holds 262,144 events
local obj = assert(bpf.load(build .. "/tests/bpf/ringbuf.bpf.o", { max_entries = { events = 2 ^ 24 } }))
local events, emit = obj:map("events"), obj:program("emit")
local pkt = string.char(N % 256, math.floor(N / 256) % 256, math.floor(N / 65536) % 256, 0, 0)
  .. string.rep("\0", 59)
local function produce() assert(emit:test_run(pkt)) end

local crb = ffi.new("struct bench_rb")
assert(clib.bench_rb_open(crb, events:fd()) == 0, "ring_buffer__new")

local sum = 0
local loop_done, loop_n
local buffers = {
  cdata = bpf.ringbuf(events, function(e) sum = sum + e.pid end, { decode = "cdata:struct event" }),
  table = bpf.ringbuf(events, function(e) sum = sum + e.pid end, { decode = "struct event" }),
  raw = bpf.ringbuf(events, function(s) sum = sum + #s end, { decode = "raw" }),
  loop = bpf.ringbuf(events, function(e)
    sum = sum + e.pid
    loop_n = loop_n + 1
    if loop_n == N then loop_done = uv.hrtime() end
  end, { decode = "cdata:struct event" }),
}
for _, rb in pairs(buffers) do rb:pause() end

local rows = {
  { key = "c", label = "C: libbpf ring_buffer__consume" },
  { key = "cdata", label = "Lua cdata, rb:consume()" },
  { key = "loop", label = "Lua cdata, on the loop (batch 256)" },
  { key = "table", label = "Lua table, rb:consume()" },
  { key = "raw", label = "Lua raw string, rb:consume()" },
}
local rates = {}
for _, r in ipairs(rows) do rates[r.key] = {} end

local function timed(fn)
  produce()
  local t0 = uv.hrtime()
  local n = fn()
  local dt = (uv.hrtime() - t0) / 1e9
  assert(n == N, "drained " .. tostring(n) .. " of " .. N)
  return N / dt
end

local function sync_round()
  local r = {}
  r.c = timed(function() return clib.bench_rb_consume(crb) end)
  r.cdata = timed(function() return buffers.cdata:consume() end)
  r.table = timed(function() return buffers.table:consume() end)
  r.raw = timed(function() return buffers.raw:consume() end)
  return r
end

local function median(t)
  table.sort(t)
  return t[math.floor((#t + 1) / 2)]
end

local function report()
  local c = median(rates.c)
  print(string.format("ringbuf: %d events of 56 bytes per run, medians of %d runs (%s)",
    N, ROUNDS, jit.version))
  print(string.format("  %-38s %9s %9s %8s", "consumer", "Mev/s", "ns/event", "vs C"))
  for _, row in ipairs(rows) do
    local m = median(rates[row.key])
    print(string.format("  %-38s %9.2f %9.1f %8.2f", row.label, m / 1e6, 1e9 / m, m / c))
  end
  clib.bench_rb_close(crb)
  for _, rb in pairs(buffers) do rb:close() end
  obj:close()
  assert(sum > 0)
end

-- Rounds alternate the synchronous drains with one drain by the loop.
local round = 0
local timer = uv.new_timer()
local function next_round()
  round = round + 1
  if round > ROUNDS then timer:close(); return report() end
  for k, v in pairs(sync_round()) do table.insert(rates[k], v) end
  produce()
  loop_n, loop_done = 0, nil
  local t0 = uv.hrtime()
  buffers.loop:resume()
  timer:start(1, 1, function()
    if not loop_done then return end
    timer:stop()
    buffers.loop:pause()
    table.insert(rates.loop, N / ((loop_done - t0) / 1e9))
    next_round()
  end)
end
next_round()
