-- SPDX-License-Identifier: MIT
-- A handler that raises: the error is logged with the buffer's name and a
-- traceback, the event counts as consumed, later events are still delivered
-- and the script goes on to exit 0. Runs a child luabpf to see its stderr.
local t = require("t")

local child = os.tmpname()
local f = assert(io.open(child, "w"))
f:write(([[
local uv = require("luv")
local obj = assert(bpf.load(%q))
local got = {}
local rb = bpf.ringbuf(obj:map("events"), function(e)
  local seq = tonumber(e.seq)
  if seq %% 100 == 7 then error("boom at " .. seq) end
  got[#got + 1] = seq
end, { decode = "cdata:struct event", batch = 64 })
assert(obj:program("emit"):test_run(string.char(232, 3, 0, 0, 0) .. string.rep("\0", 59)))
-- wait (every 1 ms, deadline 5 s) until cond() holds, then run done()
local function wait_for(cond, done)
  uv.update_time()
  local deadline = uv.now() + 5000
  local timer = uv.new_timer()
  timer:start(1, 1, function()
    if cond() or uv.now() >= deadline then timer:close(); done() end
  end)
end
wait_for(function() return rb:stats().events >= 1000 end, function()
  local s = rb:stats()
  print("delivered", #got, "events", s.events, "errors", s.errors, "last", got[#got])
  -- a handler that closes its own buffer mid-batch stops delivery at once
  local n = 0
  local rb2
  rb2 = bpf.ringbuf(obj:map("events"), function() n = n + 1; if n == 3 then rb2:close() end end)
  assert(obj:program("emit"):test_run(string.char(10, 0, 0, 0, 0) .. string.rep("\0", 59)))
  rb:close()
  -- a timer runs between batches, never inside one: once rb2 is closed its
  -- batch is over and n is final
  wait_for(function() return tostring(rb2):find("closed", 1, true) end, function()
    print("after close", n, tostring(rb2))
  end)
end)
]]):format(t.object("ringbuf")))
f:close()

local out, ok = t.sh(os.getenv("LUABPF") .. " run " .. child)
os.remove(child)
t.ok(ok, "the script exits 0 despite handler errors:\n" .. out)
local _, nerr = out:gsub("ERROR: error in ringbuf 'events' handler: [^\n]*boom at %d+", "")
t.eq(nerr, 10, "errors logged (seq 7, 107, ... 907):\n" .. out)
t.ok(out:find("boom at 907", 1, true), "the last error is logged")
t.ok(out:find("stack traceback", 1, true), "errors carry a traceback")
t.ok(out:find("delivered\t990\tevents\t1000\terrors\t10\tlast\t999", 1, true),
  "990 delivered, 1000 consumed, 10 errors, the last one after the errors:\n" .. out)
t.ok(out:find("after close\t3\tluabpf.ringbuf (closed)", 1, true),
  "close() from the handler stops delivery after that event:\n" .. out)
