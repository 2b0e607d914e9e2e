-- SPDX-License-Identifier: MIT
-- A small ring (16 KiB) and a paused consumer: the producer emits more than
-- fits, the BPF side counts each failed reserve, and after resume
-- produced == delivered + lost, lost being exactly what the BPF side counted.
local t = require("t")
local uv = require("luv")

local RING = 4096 * 4
local PRODUCED = 1000
local obj = assert(bpf.load(t.object("ringbuf"), { max_entries = { events = RING } }))
local lost_map = obj:map("events_lost")

local function pkt(n)
  return string.char(n % 256, math.floor(n / 256) % 256, 0, 0, 0) .. string.rep("\0", 59)
end

local delivered, next_seq, order_ok = 0, 0, true
local rb = bpf.ringbuf(obj:map("events"), function(e)
  -- what fits is the first events, in order; the rest were dropped at reserve
  if tonumber(e.seq) ~= next_seq then order_ok = false end
  next_seq = next_seq + 1
  delivered = delivered + 1
end, { decode = "cdata:struct event", lost_map = lost_map })

rb:pause()
t.eq(rb:stats().paused, true, "paused")
t.eq(rb:lost(), 0, "lost before the flood")
assert(obj:program("emit"):test_run(pkt(PRODUCED)))

local wait_for = t.wait_for -- (5 s)

-- While paused nothing is delivered, even after the loop has had its chance:
-- a check handle runs after each turn's poll for I/O; two of them mean the
-- ring's readable fd was seen (had it been watched) at least once.
local turns = 0
local check = uv.new_check()
check:start(function() turns = turns + 1 end)
wait_for(function() return turns >= 2 end, function()
  check:close()
  t.ok(turns >= 2, "the loop turned while paused (" .. turns .. " turns)")
  t.eq(delivered, 0, "events delivered while paused")
  local bpf_lost = lost_map:lookup_sum(0)
  t.ok(bpf_lost > 0, "the producer overflowed the 16 KiB ring (lost " .. tostring(bpf_lost) .. ")")
  t.ok(rb:stats().pending_bytes > 0, "events wait in the ring")
  rb:resume()
  wait_for(function() return delivered + lost_map:lookup_sum(0) >= PRODUCED end, function()
    local lost = rb:lost()
    t.eq(lost, lost_map:lookup_sum(0), "rb:lost() is what the BPF side counted")
    t.eq(delivered + lost, PRODUCED, "delivered (" .. delivered .. ") + lost (" .. lost .. ")")
    t.ok(order_ok, "delivered events are the first ones, in order")
    -- 56-byte events + 8-byte headers: 256 slots, and the kernel never lets
    -- the producer catch up with the consumer exactly, so one stays free
    t.eq(delivered, RING / 64 - 1, "events that fit")
    local s = rb:stats()
    t.eq(s.events, delivered, "stats().events")
    t.eq(s.lost, lost, "stats().lost")
    rb:close()
  end)
end)
