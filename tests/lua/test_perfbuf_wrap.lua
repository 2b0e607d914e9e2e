-- SPDX-License-Identifier: MIT
-- Perf buffers are read by the host itself (host/l_perfbuf.c), in chunks of
-- up to 64 samples: over a one-page buffer, 200 rounds of 50 samples wrap
-- around its end again and again (72-byte records in 4096 bytes), and every
-- sample arrives once, in order, whole, in each decode mode, with its CPU.
-- A handler that pauses the buffer stops delivery after that sample, and
-- the rest waits in the buffer for resume (nothing is dropped).
local t = require("t")
local ffi = require("ffi")

ffi.cdef [[ int sched_getcpu(void); ]]

local obj = assert(bpf.load(t.object("ringbuf")))
local perf, emit = obj:map("perf_events"), obj:program("emit")
local function produce(n)
  assert(emit:test_run(string.char(n % 256, math.floor(n / 256), 0, 0, 1) .. string.rep("\0", 59)))
end

t.raises(function() bpf.perfbuf(perf, print, { batch = 0 }) end,
  "perfbuf 'perf_events': option 'batch' must be 1..16777216, got 0")
t.raises(function() bpf.perfbuf(perf, print, { slice_us = 2e6 }) end,
  "perfbuf 'perf_events': option 'slice_us' must be 0..1000000")
t.raises(function() bpf.perfbuf(perf, print, { slice = 1 }) end, "unknown option 'slice'")

local ROUNDS, PER = 200, 50
for _, mode in ipairs({ "cdata:struct event", "struct event", "raw" }) do
  local last, bad, got = nil, nil, 0
  local pb = bpf.perfbuf(perf, function(e, size, cpu)
    local seq, comm, tag
    if mode == "raw" then
      seq = tonumber(ffi.cast("const uint64_t *", e)[0])
      comm, tag = e:sub(16, 26), ffi.cast("const uint32_t *", ffi.cast("const char *", e) + 48)[1]
    elseif mode == "struct event" then
      seq, comm, tag = e.seq, e.comm, e.tag[2]
    else
      seq, comm, tag = tonumber(e.seq), ffi.string(e.comm), e.tag[1]
    end
    if last and seq ~= last + 1 then bad = bad or ("seq %d after %d"):format(seq, last) end
    if comm ~= "luabpf-test" or tag ~= 0xbeef or size < 56 or type(cpu) ~= "number" then
      bad = bad or ("sample %d: comm %q tag %s size %s cpu %s"):format(seq, comm, tag, size, cpu)
    end
    last = seq
    got = got + 1
  end, { decode = mode, pages = 1 })
  pb:pause()
  for _ = 1, ROUNDS do
    produce(PER)
    local n = pb:consume()
    if n ~= PER then bad = bad or ("consume() gave %d, want %d"):format(n, PER) end
  end
  t.eq(bad, nil, mode .. ": every sample whole and in order")
  t.eq(got, ROUNDS * PER, mode .. ": samples delivered")
  t.eq(pb:lost(), 0, mode .. ": nothing lost")
  pb:close()
end
print(("ok: %d samples through a one-page buffer in each mode"):format(ROUNDS * PER))

-- pause() from the handler: the current sample is the last; the rest waits.
local got = 0
local pb
pb = bpf.perfbuf(perf, function()
  got = got + 1
  if got == 10 then pb:pause() end
end, { decode = "raw", pages = 4 })
pb:pause()
produce(30)
pb:resume()
t.eq(pb:consume(), 10, "consume() stops after the sample that paused")
t.eq(got, 10, "samples before the pause")
t.eq(pb:consume(), 20, "the rest waited in the buffer")
t.eq(pb:lost(), 0, "nothing lost")
pb:close()
print("ok: pause from the handler keeps the rest")
