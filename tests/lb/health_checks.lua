-- SPDX-License-Identifier: MIT
-- Every check type against the servers of health_servers.py (in this
-- namespace, test_health_checks.sh): each outcome with its reason, then the
-- rise/fall state machine on a flapping server and on a known sequence.
local uv = require("luv")
local t = require("t")
local health = require("luabpf.health")
local A = "127.0.0.1"

local probes = {
  -- name, spec, want ok, want reason
  { "http ok (chunked body matched)", { type = "http", addr = A, port = 8001, path = "/health", body = "^ok\n$" }, true },
  { "http HEAD ok", { type = "http", addr = A, port = 8001, method = "HEAD" }, true },
  { "http 503", { type = "http", addr = A, port = 8002 }, false, "status 503" },
  { "http 503 accepted by a set", { type = "http", addr = A, port = 8002, status = { 200, "500-503" } }, true },
  { "http never answers", { type = "http", addr = A, port = 8003, timeout = 0.4 }, false, "timeout" },
  { "http reset", { type = "http", addr = A, port = 8004 }, false, "reset" },
  { "http refused", { type = "http", addr = A, port = 8099 }, false, "refused" },
  { "http slow body obeys the timeout", { type = "http", addr = A, port = 8005, body = "xxxxx", timeout = 0.5 }, false, "timeout" },
  { "http slow body, status only", { type = "http", addr = A, port = 8005, timeout = 0.5 }, true },
  { "http body mismatch", { type = "http", addr = A, port = 8001, body = "healthy" }, false, "body mismatch" },
  { "tcp connect", { type = "tcp", addr = A, port = 8001 }, true },
  { "tcp refused", { type = "tcp", addr = A, port = 8099 }, false, "refused" },
  { "tcp send/expect", { type = "tcp", addr = A, port = 8007, send = "PING\r\n", expect = "^%+PONG" }, true },
  { "tcp expect, closed first", { type = "tcp", addr = A, port = 8007, send = "QUIT\r\n", expect = "PONG" }, false, "closed" },
  { "udp reply", { type = "udp", addr = A, port = 9001, send = "ping", expect = "^pong ping$" }, true },
  { "udp closed port", { type = "udp", addr = A, port = 9099, send = "ping", timeout = 0.5 }, false, "refused" },
  { "exec exit 0", { type = "exec", command = { "/bin/true" } }, true },
  { "exec exit 2", { type = "exec", command = "echo overloaded; exit 2" }, false, "exit 2" },
  { "exec dynamic weight", { type = "exec", command = "exit 7", dynamic = true }, true, nil, 5 },
  { "exec sees its target", { type = "exec", addr = A, port = 8001,
    command = 'curl -sf "http://$LUABPF_CHECK_ADDR:$LUABPF_CHECK_PORT/" >/dev/null' }, true },
  { "exec killed at timeout", { type = "exec", command = "sleep 30", timeout = 0.3 }, false, "timeout" },
  { "exec no such program", { type = "exec", command = { "/nonexistent/check" } }, false, "no such program" },
  { "custom ok", { type = "custom", fn = function(_, done) uv.new_timer():start(10, 0, function() done(true) end) end }, true },
  { "custom fails", { type = "custom", fn = function(_, done) done(false, "quorum of 1") end }, false, "quorum of 1" },
  { "custom never calls back", { type = "custom", timeout = 0.2, fn = function() end }, false, "timeout" },
}

local pending = #probes
local t0 = uv.hrtime()
for _, p in ipairs(probes) do
  health.probe(p[2], function(ok, reason, detail, weight, ms)
    print(("%-36s ok=%-5s reason=%-14s %6.1f ms  %s"):format(p[1], tostring(ok), tostring(reason), ms,
      tostring(detail)))
    p.got = { ok, reason, weight, ms }
    pending = pending - 1
  end)
end

-- exec timeouts kill the whole process group: no sleep left behind.
local function after_probes()
  for _, p in ipairs(probes) do
    t.eq(p.got[1], p[3], p[1] .. ": ok")
    if p[4] then t.eq(p.got[2], p[4], p[1] .. ": reason") end
    if p[5] then t.eq(p.got[3], p[5], p[1] .. ": weight") end
    if p[4] == "timeout" then
      t.ok(p.got[4] < (p[2].timeout * 1000 + 300), p[1] .. ": gave up near its timeout, not later")
    end
  end
  t.eq(t.sh("pgrep -f '^sleep 30$'"):match("%d+"), nil, "a timed-out exec check's child was killed")
  print(("all %d probes answered in %.0f ms"):format(#probes, (uv.hrtime() - t0) / 1e6))
end

-- Misuse raises and names the thing.
t.raises(function() health.probe({ type = "http", addr = A, port = 80, stauts = 200 }, print) end,
  "unknown option 'stauts' for a http check")
t.raises(function() health.probe({ type = "ping", addr = A }, print) end, "'type' must be one of")
t.raises(function() health.probe({ type = "http", addr = A, port = 80, status = "2xx" }, print) end,
  "'status' entries must be a code")
t.raises(function() health.probe({ type = "tcp", addr = A, port = 70000 }, print) end, "'port' must be 1-65535")
t.raises(function() health.probe({ type = "tcp", addr = A, port = 80, rise = 0 }, print) end, "'rise' must be an integer >= 1")

-- The state machine: a server answering 200 and 503 in turns, checked every
-- 50 ms. rise 2 / fall 3 (HAProxy's): a single pass or fail never changes
-- the state once it has settled, so at most the first failure (initial
-- "up", as HAProxy starts a server) changes it.
local function machine()
  local flips, results = {}, 0
  local hc = health.new({ log = false, defaults = { interval = 0.05, jitter = 0 },
    on_change = function(ev) flips[#flips + 1] = ev end,
    on_result = function() results = results + 1 end })
  hc:add("flap", { type = "http", addr = A, port = 8006, timeout = 1 })
  -- A known sequence: runs of 3 failures and 2 passes flip it every run;
  -- runs of 2 failures and 1 pass never take it down (fully-up start).
  local seqs = { runs = { 0, 0, 0, 1, 1 }, short = { 0, 0, 1 } }
  local n = { runs = 0, short = 0 }
  local function seq(name)
    return function(_, done)
      n[name] = n[name] + 1
      local s = seqs[name]
      done(s[(n[name] - 1) % #s + 1] == 1, "scripted")
    end
  end
  local seq_flips = { runs = 0, short = 0 }
  local hc2 = health.new({ log = false, defaults = { interval = 0.02, jitter = 0 },
    on_change = function(ev) seq_flips[ev.name] = seq_flips[ev.name] + 1 end })
  hc2:add("runs", { type = "custom", fn = seq("runs"), initial = "fully-up" })
  hc2:add("short", { type = "custom", fn = seq("short"), initial = "fully-up" })
  uv.new_timer():start(2000, 0, function()
    local ok, err = xpcall(function()
    local st = hc:stats().flap
    hc:close()
    local runs, short = n.runs, n.short
    hc2:close()
    print(("flapping server: %d checks, %d state changes (%s)"):format(results, #flips,
      #flips > 0 and (flips[1].state .. " on " .. tostring(flips[1].reason)) or "none"))
    t.ok(results >= 15, "the flapping server was checked many times (" .. results .. ")")
    t.ok(#flips <= 1, "alternating pass/fail changes the state at most once, got " .. #flips)
    t.eq(st.transitions, #flips, "stats count the transitions")
    if #flips == 1 then t.eq(flips[1].reason, "status 503", "flap: the reason") end
    -- runs: 3 fails (down), 2 passes (up) per 5 checks: 2 changes per full cycle.
    local cycles = math.floor(runs / 5)
    print(("scripted runs of 3 fails/2 passes: %d checks, %d changes; 2 fails/1 pass: %d checks, %d changes")
      :format(runs, seq_flips.runs, short, seq_flips.short))
    t.ok(seq_flips.runs >= 2 * cycles and seq_flips.runs <= 2 * cycles + 2,
      ("3 fails/2 passes: %d changes over %d cycles"):format(seq_flips.runs, cycles))
    t.ok(cycles >= 5, "the scripted check ran long enough")
    t.eq(seq_flips.short, 0, "2 fails/1 pass with fall 3 never takes it down")
    print("ok")
    end, debug.traceback)
    if not ok then print(err); os.exit(1) end
  end)
end

local wait = uv.new_timer()
wait:start(50, 50, function()
  if pending > 0 then return end
  wait:close()
  -- A failed assertion in a callback must fail the test, not just be logged.
  local ok, err = xpcall(after_probes, debug.traceback)
  if not ok then print(err); os.exit(1) end
  machine()
end)
