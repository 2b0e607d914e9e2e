-- SPDX-License-Identifier: MIT
-- Ring buffer: 100,000 events reach the handler in order, none lost, in each
-- decode mode (cdata, table, raw), drained by the loop in bounded batches;
-- misuse raises naming the map.
local t = require("t")
local ffi = require("ffi")
local uv = require("luv")

local N = 100000
local obj = assert(bpf.load(t.object("ringbuf"), { max_entries = { events = 2 ^ 23 } }))
local events, lost_map = obj:map("events"), obj:map("events_lost")
local emit = obj:program("emit")

-- The producer's packet: count (LE u32), then 0 = ring buffer.
local function pkt(n, perf)
  return string.char(n % 256, math.floor(n / 256) % 256, math.floor(n / 65536) % 256,
    math.floor(n / 16777216), perf or 0) .. string.rep("\0", 59)
end

-- ---- misuse ----------------------------------------------------------------
t.raises(function() bpf.ringbuf(obj:map("not_a_ring"), print) end,
  "map 'not_a_ring' is a hash, not a ringbuf")
t.raises(function() bpf.ringbuf(obj:map("perf_events"), print) end,
  "not a ringbuf (use luabpf.perfbuf)")
t.raises(function() bpf.ringbuf(events, print, { decod = "raw" }) end,
  "unknown option 'decod'")
t.raises(function() bpf.ringbuf(events, print, { decode = "struct nope" }) end,
  "ringbuf 'events' handler: decode 'struct nope': no struct nope in the BTF of map 'events'")
t.raises(function() bpf.ringbuf(events, print, { batch = 0 }) end, "option 'batch' must be")
t.raises(function() bpf.ringbuf(events, print, { slice_us = -1 }) end,
  "ringbuf 'events': option 'slice_us' must be 0..1000000 (microseconds a wake may drain; 0: one batch), got -1")
t.raises(function() bpf.ringbuf(events, print, { lost_map = obj:map("not_a_ring") }) end,
  "lost_map 'not_a_ring' must be a percpu_array")
t.raises(function() bpf.ringbuf(events, "print") end, "function expected")
do
  local rb = bpf.ringbuf(events, print)
  rb:close()
  rb:close() -- idempotent
  t.raises(function() rb:stats() end, "closed ringbuf")
  t.eq(tostring(rb), "luabpf.ringbuf (closed)", "tostring of a closed ringbuf")
end

-- ---- delivery in each mode -----------------------------------------------------
local function check_event(seq, pid, port, flag, comm, ts, a, b, tag1)
  if pid ~= seq * 7 % 2^32 or port ~= seq % 65536 or flag ~= seq % 2 or comm ~= "luabpf-test"
    or ts ~= seq * 1000 or a ~= seq + 1 or b ~= seq + 2 or tag1 ~= 0xbeef then
    error(string.format("event %d decoded wrong: pid=%s port=%s flag=%s comm=%q ts=%s a=%s b=%s tag[1]=%s",
      seq, pid, port, flag, comm, ts, a, b, tag1), 2)
  end
end

local handlers = {
  -- zero-copy: fields are JIT-compiled loads from the ring
  ["cdata:struct event"] = function(st) return function(e, len)
    local seq = tonumber(e.seq)
    if seq ~= st.next then error("cdata: got seq " .. seq .. ", want " .. st.next) end
    if st.next % 997 == 0 then
      check_event(seq, e.pid, e.port, e.flag, ffi.string(e.comm), tonumber(e.ts), e.pair.a, e.pair.b, e.tag[1])
    end
    t.eq(len, 56, "cdata event length")
    st.next = st.next + 1
  end end,
  ["struct event"] = function(st) return function(e, len)
    if e.seq ~= st.next then error("table: got seq " .. tostring(e.seq) .. ", want " .. st.next) end
    if st.next % 997 == 0 then
      check_event(e.seq, e.pid, e.port, e.flag, e.comm, e.ts, e.pair.a, e.pair.b, e.tag[2])
    end
    st.next = st.next + 1
  end end,
  raw = function(st) return function(s, len)
    local seq = ffi.cast("const uint64_t *", s)[0]
    if seq ~= st.next then error("raw: got seq " .. tostring(seq) .. ", want " .. st.next) end
    if #s ~= 56 or len ~= 56 then error("raw: got " .. #s .. " bytes") end
    if s:sub(16, 26) ~= "luabpf-test" then error("raw: comm not at offset 15: " .. s:sub(16, 26)) end
    st.next = st.next + 1
  end end,
}

local modes = { "cdata:struct event", "struct event", "raw" }
local results = {}

local function finish(ok, err)
  if not ok then
    io.stderr:write("FAIL: ", tostring(err), "\n")
    bpf.stop(1)
  end
end

local function run_mode(i)
  local mode = modes[i]
  if not mode then
    -- all done: every mode saw N in order with no loss
    for _, m in ipairs(modes) do t.ok(results[m], "mode " .. m .. " finished") end
    io.stdout:write("ok: ", table.concat(modes, ", "), "\n")
    return
  end
  -- each mode's run produces N more: sequence numbers go on from the last
  local st = { next = (i - 1) * N }
  local first = st.next
  local rb
  rb = bpf.ringbuf(events, handlers[mode](st), { decode = mode, lost_map = lost_map })
  t.ok(tostring(rb):find("luabpf.ringbuf 'events'", 1, true), "tostring")
  t.eq(tostring(rb), "luabpf.ringbuf 'events' (" .. mode .. ", 0 events)", "tostring names the decode mode")
  local r = assert(emit:test_run(pkt(N)))
  t.eq(r.verdict, "XDP_PASS", "producer verdict")
  local waited = 0
  local timer = uv.new_timer()
  timer:start(20, 20, function()
    finish(pcall(function()
      waited = waited + 20
      if st.next - first < N and waited < 20000 then return end
      timer:close()
      local s = rb:stats()
      t.eq(st.next - first, N, mode .. ": events delivered")
      t.eq(s.events, N, mode .. ": stats().events")
      t.eq(s.errors, 0, mode .. ": handler errors")
      t.eq(rb:lost(), 0, mode .. ": lost")
      t.eq(s.lost, 0, mode .. ": stats().lost")
      t.eq(s.pending_bytes, 0, mode .. ": nothing left in the ring")
      -- bounded: 100,000 events can't have come in fewer than 100000/256 wakes
      t.ok(s.batches >= math.ceil(N / 256), mode .. ": batches " .. s.batches .. " >= " .. math.ceil(N / 256))
      rb:close()
      results[mode] = true
      run_mode(i + 1)
    end))
  end)
end

run_mode(1)
