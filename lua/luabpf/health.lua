-- SPDX-License-Identifier: MIT
-- Health checks on the host's loop: tcp, http, udp, exec and custom checks,
-- each one non-blocking (luv sockets, uv.spawn), with HAProxy's rise/fall
-- state machine, so thousands of targets are probed without delaying map
-- updates or event handlers.
--
--   local health = require("luabpf.health")
--   local hc = health.new({ on_change = function(ev) print(ev.name, ev.state, ev.reason) end })
--   hc:add("b1", { type = "http", addr = "10.0.0.11", port = 8080, path = "/healthz" })
--   health.probe({ type = "tcp", addr = "10.0.0.12", port = 22 }, function(ok, reason) end)
--
-- docs/health.md has every check and parameter.
--
-- This file is the checks' specs and their rise/fall state machine; the
-- probes themselves (tcp, udp, http, exec, custom) are lua/luabpf/_probe.lua.
local uv = require("luv")
local util = require("luabpf._util")
local probe = require("luabpf._probe")

local M = {}

-- HAProxy's defaults: inter 2s, rise 2, fall 3.
M.DEFAULTS = {
  interval = 2, rise = 2, fall = 3, jitter = 0.1, initial = "up", slowstart = 0,
}

local COMMON = {
  type = true, addr = true, port = true, interval = true, down_interval = true,
  fast_interval = true, timeout = true, rise = true, fall = true, jitter = true, initial = true,
  slowstart = true,
}
local KINDS = {
  tcp = { send = true, expect = true },
  http = { method = true, path = true, host = true, headers = true, status = true, body = true,
    max_body = true },
  udp = { send = true, expect = true },
  exec = { command = true, dynamic = true, env = true },
  custom = { fn = true },
}
local INITIAL = { up = true, down = true, ["fully-up"] = true, ["fully-down"] = true }

local names_of = util.names

local function perr(what, fmt, ...)
  error({ health_error = ("%s: " .. fmt):format(what, ...) })
end

local function num(what, spec, k, min, int)
  local v = spec[k]
  if v == nil then return end
  if type(v) ~= "number" or v < min or (int and v % 1 ~= 0) then
    perr(what, "'%s' must be %s >= %s, got %s", k, int and "an integer" or "a number", min, tostring(v))
  end
end

-- "200", 200, "200-399", { 200, 204, "300-302" }: a list of {lo, hi}.
local function parse_status(what, s)
  local out = {}
  local function one(x)
    if type(x) == "number" and x >= 100 and x <= 599 and x % 1 == 0 then
      out[#out + 1] = { x, x }
      return
    end
    if type(x) == "string" then
      local lo, hi = x:match("^%s*(%d%d%d)%s*%-%s*(%d%d%d)%s*$")
      if lo then
        out[#out + 1] = { tonumber(lo), tonumber(hi) }
        return
      end
      local n = tonumber(x:match("^%s*(%d%d%d)%s*$"))
      if n then
        out[#out + 1] = { n, n }
        return
      end
    end
    perr(what, "'status' entries must be a code (200) or a range (\"200-399\"), got %s", tostring(x))
  end
  if type(s) == "table" then
    for _, x in ipairs(s) do one(x) end
    if #out == 0 then perr(what, "'status' is an empty list") end
  else
    one(s)
  end
  return out
end

local function normalize(spec, what, defaults)
  what = what or "check"
  if type(spec) ~= "table" then perr(what, "expects a table, got %s", type(spec)) end
  local s = {}
  for k, v in pairs(defaults or {}) do s[k] = v end
  for k, v in pairs(spec) do s[k] = v end
  local kind = KINDS[s.type]
  if not kind then
    perr(what, "'type' must be one of custom, exec, http, tcp, udp, got %s", tostring(s.type))
  end
  for k in pairs(s) do
    if not COMMON[k] and not kind[k] then
      local valid = {}
      for n in pairs(COMMON) do valid[n] = true end
      for n in pairs(kind) do valid[n] = true end
      perr(what, "unknown option '%s' for a %s check (valid: %s)", tostring(k), s.type, names_of(valid))
    end
  end
  for k, v in pairs(M.DEFAULTS) do if s[k] == nil then s[k] = v end end
  num(what, s, "interval", 0.01)
  num(what, s, "down_interval", 0.01)
  num(what, s, "fast_interval", 0.01)
  num(what, s, "timeout", 0.001)
  num(what, s, "rise", 1, true)
  num(what, s, "fall", 1, true)
  num(what, s, "jitter", 0)
  num(what, s, "slowstart", 0)
  if s.jitter > 0.5 then perr(what, "'jitter' is a fraction of the interval, 0 to 0.5, got %s", s.jitter) end
  if not INITIAL[s.initial] then
    perr(what, "'initial' must be up, down, fully-up or fully-down, got %s", tostring(s.initial))
  end
  s.timeout = s.timeout or s.interval -- HAProxy: without `timeout check`, inter bounds the check
  s.down_interval = s.down_interval or s.interval
  s.fast_interval = s.fast_interval or s.interval
  if s.type ~= "exec" and s.type ~= "custom" then
    if type(s.addr) ~= "string" then perr(what, "'addr' is required (the address to check)") end
    if type(s.port) ~= "number" or s.port < 1 or s.port > 65535 or s.port % 1 ~= 0 then
      perr(what, "'port' must be 1-65535, got %s", tostring(s.port))
    end
  end
  if s.type == "tcp" or s.type == "udp" then
    if s.send ~= nil and type(s.send) ~= "string" then perr(what, "'send' must be a string") end
    if s.expect ~= nil and type(s.expect) ~= "string" then perr(what, "'expect' must be a Lua pattern (a string)") end
    if s.type == "udp" and s.send == nil then perr(what, "a udp check needs 'send' (the payload to send)") end
    if s.type == "tcp" and s.expect and not s.send then
      -- A banner protocol (SMTP, SSH): expect without send is fine.
      s.send = nil
    end
  elseif s.type == "http" then
    s.method = s.method or "GET"
    if s.method ~= "GET" and s.method ~= "HEAD" then perr(what, "'method' must be GET or HEAD, got %s", tostring(s.method)) end
    s.path = s.path or "/"
    if type(s.path) ~= "string" or s.path:sub(1, 1) ~= "/" or s.path:find("[%s]") then
      perr(what, "'path' must start with / and have no spaces, got %s", tostring(s.path))
    end
    if s.host ~= nil and type(s.host) ~= "string" then perr(what, "'host' must be a string") end
    if s.headers ~= nil and type(s.headers) ~= "table" then perr(what, "'headers' must be a table of name = value") end
    s.status = parse_status(what, s.status or "200-399") -- HAProxy's httpchk: 2xx and 3xx pass
    if s.body ~= nil and type(s.body) ~= "string" then perr(what, "'body' must be a Lua pattern (a string)") end
    if s.body and s.method == "HEAD" then perr(what, "'body' needs method GET (HEAD has no body)") end
    num(what, s, "max_body", 1, true)
    s.max_body = s.max_body or 65536
  elseif s.type == "exec" then
    local c = s.command
    if type(c) == "string" then
      s.argv = { "/bin/sh", "-c", c }
    elseif type(c) == "table" and type(c[1]) == "string" then
      s.argv = {}
      for i, a in ipairs(c) do s.argv[i] = tostring(a) end
    else
      perr(what, "'command' must be a shell command string or a list { program, args... }")
    end
    if s.env ~= nil and type(s.env) ~= "table" then perr(what, "'env' must be a table of NAME = value") end
  elseif s.type == "custom" then
    if type(s.fn) ~= "function" then perr(what, "a custom check needs 'fn = function(target, done)'") end
  end
  return s
end

--- Validate a check declaration and fill in its defaults; raises at the
-- caller's `level` with a message naming `what`.
function M.normalize(spec, what, level, defaults)
  local ok, res = pcall(normalize, spec, what, defaults)
  if ok then return res end
  if type(res) == "table" and res.health_error then error(res.health_error, (level or 1) + 1) end
  error(res, 0)
end

local host_port, safe_close, run_once = probe.host_port, probe.safe_close, probe.run_once
M._http_parser = probe.http_parser

--- Run a check once: cb(ok, reason, detail, weight, ms). For tools and tests.
function M.probe(spec, cb)
  local s = M.normalize(spec, "health.probe", 2)
  if type(cb) ~= "function" then error("health.probe: expects a callback", 2) end
  run_once(s, { name = "probe" }, cb)
end

local NEW_OPTS = { on_change = true, on_result = true, log = true, defaults = true, name = true }

local Monitor = {}
Monitor.__index = Monitor
local Check = {}
Check.__index = Check

--- A set of checks sharing a change handler: health.new({ on_change = fn,
-- on_result = fn, log = true, defaults = { interval = 1, ... } }).
function M.new(o)
  o = o or {}
  util.check_keys("health.new", o, NEW_OPTS, 2)
  return setmetatable({ checks = {}, on_change = o.on_change, on_result = o.on_result,
    log = o.log ~= false, defaults = o.defaults, name = o.name or "health", count = 0 }, Monitor)
end

function Monitor:_check_open()
  if not self.checks then error("closed health monitor", 3) end
end

--- Add a check named `name` (unique in this monitor); returns it.
function Monitor:add(name, spec)
  self:_check_open()
  if type(name) ~= "string" then error("health:add: name must be a string", 2) end
  if self.checks[name] then error(("health:add: there is already a check named '%s'"):format(name), 2) end
  local s = M.normalize(spec, ("check '%s'"):format(name), 2, self.defaults)
  local c = setmetatable({ name = name, spec = s, monitor = self, timer = uv.new_timer(),
    checks = 0, failures = 0, transitions = 0, since = uv.now(), weight = nil }, Check)
  -- HAProxy's health counter: 0..rise+fall-1, up while >= rise.
  local top = s.rise + s.fall - 1
  c.health = ({ up = s.rise, ["fully-up"] = top, down = s.rise - 1, ["fully-down"] = 0 })[s.initial]
  c.state = c.health >= s.rise and "up" or "down"
  self.checks[name] = c
  self.count = self.count + 1
  -- The first checks spread over one interval, as HAProxy spreads them.
  c:_schedule(math.random() * s.interval * 1000)
  return c
end

function Monitor:get(name)
  self:_check_open()
  return self.checks[name]
end

--- Stop and forget a check.
function Monitor:remove(name)
  self:_check_open()
  local c = self.checks[name]
  if not c then return false end
  c:_stop()
  self.checks[name] = nil
  self.count = self.count - 1
  return true
end

--- Per check: state, last reason, counters.
function Monitor:stats()
  self:_check_open()
  local out = {}
  for name, c in pairs(self.checks) do out[name] = c:info() end
  return out
end

function Monitor:close()
  if not self.checks then return end
  for _, c in pairs(self.checks) do c:_stop() end
  self.checks = nil
end

function Check:info()
  local s = self.spec
  return { state = self.state, type = s.type, target = s.addr and host_port(s) or nil,
    reason = self.reason, detail = self.detail, checks = self.checks, failures = self.failures,
    transitions = self.transitions, since = (uv.now() - self.since) / 1000, last_ms = self.last_ms,
    weight = self.weight, health = self.health, rise = s.rise, fall = s.fall }
end

function Check:_stop()
  self.stopped = true
  if self.cancel then self.cancel() end
  safe_close(self.timer)
end

function Check:_interval()
  local s = self.spec
  local top = s.rise + s.fall - 1
  local iv
  if self.state == "down" then
    iv = self.health > 0 and s.fast_interval or s.down_interval
  else
    iv = self.health < top and s.fast_interval or s.interval
  end
  return iv * 1000 * (1 + s.jitter * (2 * math.random() - 1))
end

function Check:_schedule(ms)
  if self.stopped then return end
  self.timer:start(math.max(0, math.floor(ms)), 0, function() self:_run() end)
end

function Check:_run()
  if self.stopped then return end
  local started = uv.now()
  local live = true
  self.cancel = function() live = false end
  run_once(self.spec, self, function(ok, reason, detail, weight, ms)
    if not live or self.stopped then return end
    self.cancel = nil
    self:_result(ok, reason, detail, weight, ms)
    -- The next check starts one interval after this one started.
    self:_schedule(started + self:_interval() - uv.now())
  end)
end

function Check:_result(ok, reason, detail, weight, ms)
  local s, m = self.spec, self.monitor
  local top = s.rise + s.fall - 1
  self.checks = self.checks + 1
  self.last_ms = ms
  local from = self.state
  if ok then
    self.reason, self.detail = nil, detail
    if self.health < top then
      self.health = self.health + 1
      if self.health >= s.rise then self.health = top end
    end
  else
    self.failures = self.failures + 1
    self.reason, self.detail = reason, detail
    if self.health > s.rise then
      self.health = self.health - 1
    else
      self.health = 0
    end
  end
  local new = self.health >= s.rise and "up" or "down"
  local old_weight = self.weight
  if ok then self.weight = weight end
  if m.on_result then
    m.on_result({ name = self.name, ok = ok, reason = reason, detail = detail, weight = weight, ms = ms,
      state = new })
  end
  if new ~= from then
    local ev = { name = self.name, state = new, from = from, reason = ok and "passed" or reason,
      detail = detail, after = (uv.now() - self.since) / 1000, checks = self.checks,
      target = s.addr and host_port(s) or nil, type = s.type, weight = self.weight, rise = s.rise,
      fall = s.fall, slowstart = new == "up" and s.slowstart > 0 and s.slowstart or nil }
    self.state = new
    self.since = uv.now()
    self.transitions = self.transitions + 1
    if m.log then M.log_event(m.name, ev) end
    if m.on_change then m.on_change(ev) end
  elseif ok and new == "up" and weight ~= old_weight and m.on_change then
    m.on_change({ name = self.name, state = "up", from = "up", reason = "weight", weight = weight,
      target = s.addr and host_port(s) or nil, type = s.type })
  end
end

--- The log line for a transition (also used by the load balancer).
function M.describe(ev)
  if ev.state == "down" then
    return ("%s (%s%s) is DOWN: %s%s, after %.1f s up"):format(ev.name, ev.type, ev.target and " " .. ev.target or "",
      ev.reason, (ev.detail and ev.detail ~= ev.reason) and " (" .. ev.detail .. ")" or "", ev.after or 0)
  end
  return ("%s (%s%s) is UP: %d check(s) passed, after %.1f s down%s"):format(ev.name, ev.type,
    ev.target and " " .. ev.target or "", ev.rise or 0, ev.after or 0,
    ev.slowstart and (", slow start over %g s"):format(ev.slowstart) or "")
end

function M.log_event(prefix, ev)
  bpf.log(ev.state == "down" and "warn" or "info", prefix .. ": " .. M.describe(ev))
end

M.Monitor, M.Check = Monitor, Check
return M
