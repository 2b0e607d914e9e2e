-- SPDX-License-Identifier: MIT
-- The drain loop walks the ring itself (lua/luabpf/_ringbuf.lua): through a
-- ring of 64 records that wraps every few rounds, with every third record
-- discarded by the producer, each mode hands the handler exactly the
-- submitted records, in order; stats() counts them, and nothing is left
-- pending (the discarded ones are given back too).
local t = require("t")

local obj = assert(bpf.load(t.object("ringbuf"), { max_entries = { events = 4096 } }))
local events, emit = obj:map("events"), obj:program("emit")
local ROUNDS, PER = 40, 30 -- 30 reserved a round, 20 submitted: 1,200 records through 64 slots

-- count (LE u32), 0 = ring buffer, discard every 3rd
local function pkt(n)
  return string.char(n % 256, math.floor(n / 256) % 256, 0, 0, 0, 3) .. string.rep("\0", 58)
end

local function le64(s)
  local v = 0
  for i = 8, 1, -1 do v = v * 256 + s:byte(i) end
  return v
end

local seq_of = {
  cdata = function(e) return tonumber(e.seq) end,
  table = function(e) return e.seq end,
  raw = function(s) return le64(s) end,
}
local decode = { cdata = "cdata:struct event", table = "struct event", raw = "raw" }

local produced = 0
for _, mode in ipairs({ "cdata", "table", "raw" }) do
  local got, bad = {}, nil
  local rb = bpf.ringbuf(events, function(e)
    local seq = seq_of[mode](e)
    if mode == "table" and e.comm ~= "luabpf-test" then bad = bad or ("comm " .. tostring(e.comm)) end
    got[#got + 1] = seq
  end, { decode = decode[mode] })
  rb:pause()
  local first = produced
  for _ = 1, ROUNDS do
    assert(emit:test_run(pkt(PER)))
    produced = produced + PER
    t.eq(rb:consume(), PER - PER / 3, mode .. ": records a round")
  end
  t.ok(not bad, mode .. ": " .. tostring(bad))
  local want = {}
  for s = first, produced - 1 do
    if s % 3 ~= 2 then want[#want + 1] = s end
  end
  t.eq(#got, #want, mode .. ": records handed to the handler")
  for i = 1, #want do
    if got[i] ~= want[i] then
      t.eq(got[i], want[i], mode .. ": record " .. i)
      break
    end
  end
  local s = rb:stats()
  t.eq(s.events, #want, mode .. ": stats().events")
  t.eq(s.pending_bytes, 0, mode .. ": nothing left pending")
  rb:close()
end
obj:close()

