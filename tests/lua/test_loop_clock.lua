-- SPDX-License-Identifier: MIT
-- A timer counts from when it is started, not from the loop's cached clock:
-- after blocking work (bpf.load takes 100-200 ms here, test_run loops) a
-- 50 ms timer started right away must still wait 50 ms of wall time.
local t = require("t")
local uv = require("luv")

local DELAY_MS = 50
-- hrtime and the loop clock are both CLOCK_MONOTONIC, the loop's in whole
-- milliseconds: allow for that rounding, nothing more.
local SLACK_MS = 1

-- Called in each timer's callback: a failure stops the loop with exit 1 (a
-- timer that never fired would keep the loop alive until ctest's timeout).
local function check(what, started)
  local waited = (uv.hrtime() - started) / 1e6
  local ok, err = pcall(t.ok, waited >= DELAY_MS - SLACK_MS,
    string.format("%s: a %d ms timer fired after %.1f ms of wall time", what, DELAY_MS, waited))
  if not ok then io.stderr:write("FAIL: ", tostring(err), "\n"); bpf.stop(1) end
  print(string.format("%s: fired after %.1f ms", what, waited))
end

-- Hold the loop the way a load does: the cached clock falls behind.
local function block(ms)
  local stop = uv.hrtime() + ms * 1e6
  while uv.hrtime() < stop do end
end

-- Each step starts its timer last, so nothing else holds the loop while it runs.
local step2, step3

-- 1. timer:start right after bpf.load (the case seen in the ring buffer tests)
local obj = assert(bpf.load(t.object("ringbuf")))
do
  local started = uv.hrtime()
  local timer = uv.new_timer()
  timer:start(DELAY_MS, 0, function()
    check("timer:start after bpf.load", started)
    timer:close()
    step2()
  end)
end

-- 2. uv.timer_start (the function form) after a test_run and blocking work
function step2()
  assert(obj:program("emit"):test_run(string.char(10, 0, 0, 0, 0) .. string.rep("\0", 59)))
  block(100)
  local started = uv.hrtime()
  local timer = uv.new_timer()
  uv.timer_start(timer, DELAY_MS, 0, function()
    check("uv.timer_start after test_run", started)
    timer:close()
    step3()
  end)
end

-- 3. timer:again (restart from the repeat value) after blocking work
function step3()
  local timer = uv.new_timer()
  local started
  timer:set_repeat(DELAY_MS)
  timer:start(DELAY_MS, DELAY_MS, function()
    check("timer:again after blocking", started)
    timer:close()
  end)
  block(100)
  started = uv.hrtime()
  timer:again()
end
