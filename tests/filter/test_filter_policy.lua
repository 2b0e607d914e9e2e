-- SPDX-License-Identifier: MIT
-- The filter's policy loop through test_run: a source over the auto-ban
-- threshold is banned from the sampled packets, its packets dropped, and the
-- ban lifted on expiry, all seen as events in Lua; the top talkers are
-- estimated from the samples. (SYN cookies: tests/filter/test_filter_syn.sh.)
local t = require("t")
local bit = require("bit")
local uv = require("luv")
local filter = require("luabpf.filter")

local function be16(n) return string.char(bit.rshift(n, 8) % 256, n % 256) end
local CMAC, SMAC = "\2\0\0\0\0\1", "\2\0\0\0\0\2"
local f, prog
-- ---- auto-ban and expiry, from Lua events -------------------------------------
local function udp4(src)
  local l4 = be16(40000) .. be16(53) .. be16(8) .. "\0\0"
  return SMAC .. CMAC .. be16(0x0800) .. "\69\0" .. be16(28) .. "\0\1\64\0\64\17\0\0" .. src
    .. "\10\9\0\1" .. l4
end
local LOUD, QUIET = "\203\0\113\9", "\203\0\113\10"
local events = {}
local t0 = uv.hrtime()
f = assert(filter.new({ attach = false, sample = 1, window = 0.2, on_event = function(ev)
  ev.at = (uv.hrtime() - t0) / 1e9
  events[#events + 1] = ev
end }))
f:auto_ban({ pps = 200, seconds = 1 })
prog = f.prog
local function send(src, n)
  local seen = {}
  for _ = 1, n do
    local v = assert(prog:test_run(udp4(src))).verdict
    seen[v] = (seen[v] or 0) + 1
  end
  return seen
end
t.same(send(LOUD, 400), { XDP_PASS = 400 }, "the loud source passes until banned")
t.same(send(QUIET, 5), { XDP_PASS = 5 }, "a quiet source")

local guard = uv.new_timer()
guard:start(10000, 0, function()
  io.stderr:write("FAIL: no ban and unban within 10 s; events: " .. t.dump(events) .. "\n")
  os.exit(1)
end)
local phase = "ban"
local poll = uv.new_timer()
poll:start(50, 50, function()
  local last = events[#events]
  if phase == "ban" and last and last.type == "ban" then
    t.eq(last.src, "203.0.113.9/32", "banned source")
    t.ok(last.reason:match("^auto: %d+ pkt/s"), "reason says why: " .. last.reason)
    t.eq(last.seconds, 1, "for the configured time")
    t.eq(#events, 1, "only the loud source is banned")
    local top = f:top(2)
    t.eq(top[1].src, "203.0.113.9", "top talker")
    t.eq(top[2].src, "203.0.113.10", "second talker")
    t.same(send(LOUD, 10), { XDP_DROP = 10 }, "banned: dropped")
    t.same(send(QUIET, 2), { XDP_PASS = 2 }, "the quiet one still passes")
    t.eq(f:stats().reasons.banned.packets, 10, "counted as banned")
    t.eq(f:bans()["203.0.113.9/32"].packets, 10, "counted on the ban")
    phase = "unban"
  elseif phase == "unban" and last and last.type == "unban" then
    t.eq(last.src, "203.0.113.9/32", "lifted")
    t.eq(last.reason, "expired", "on expiry")
    t.ok(last.at - events[1].at >= 0.9 and last.at - events[1].at < 3, "after about a second: "
      .. (last.at - events[1].at))
    t.same(send(LOUD, 3), { XDP_PASS = 3 }, "passes again")
    t.eq(next(f:bans()), nil, "no bans left")
    poll:close()
    guard:close()
    f:close()
    print("ok")
  end
end)
