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
local uv = require("luv")
local util = require("luabpf._util")

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

local function status_text(st)
  local p = {}
  for _, r in ipairs(st) do p[#p + 1] = r[1] == r[2] and tostring(r[1]) or (r[1] .. "-" .. r[2]) end
  return table.concat(p, ",")
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

-- A luv error ("ECONNREFUSED: connection refused") as a short reason.
local REASONS = {
  ECONNREFUSED = "refused", ECONNRESET = "reset", ETIMEDOUT = "timeout", EHOSTUNREACH = "unreachable",
  ENETUNREACH = "unreachable", EPIPE = "reset", ECONNABORTED = "reset", EOF = "closed",
  EADDRNOTAVAIL = "unreachable", ENOENT = "no such program", EACCES = "permission denied",
}
local function reason_of(err)
  local code = tostring(err):match("^(%u[%u%d]+)")
  return REASONS[code] or (code and code:lower()) or tostring(err), tostring(err)
end

local function host_port(s)
  return (s.addr and s.addr:find(":", 1, true)) and ("[%s]:%d"):format(s.addr, s.port)
    or ("%s:%s"):format(tostring(s.addr), tostring(s.port))
end

-- Each runner starts one check and calls done(ok, reason, detail, weight)
-- at most once; it returns a function that tears down whatever is open
-- (called on timeout and after done).
local runners = {}

local function safe_close(h)
  if h and not h:is_closing() then h:close() end
end

function runners.tcp(s, done)
  local sock = uv.new_tcp()
  local buf = ""
  sock:connect(s.addr, s.port, function(err)
    if err then return done(false, reason_of(err)) end
    if not s.send and not s.expect then return done(true) end
    if s.send then sock:write(s.send) end
    if not s.expect then return done(true) end
    sock:read_start(function(rerr, data)
      if rerr then return done(false, reason_of(rerr)) end
      if not data then
        return done(false, "closed", ("closed after %d bytes, before a reply matching %q"):format(#buf, s.expect))
      end
      buf = buf .. data
      if buf:find(s.expect) then return done(true) end
      if #buf > 65536 then return done(false, "unexpected reply", buf:sub(1, 80)) end
    end)
  end)
  return function() safe_close(sock) end
end

function runners.udp(s, done)
  local sock = uv.new_udp()
  local ok, err = sock:connect(s.addr, s.port)
  if not ok then
    done(false, reason_of(err))
    return function() safe_close(sock) end
  end
  sock:recv_start(function(rerr, data)
    if rerr then return done(false, reason_of(rerr)) end
    if not data then return end
    if not s.expect or data:find(s.expect) then return done(true) end
    done(false, "unexpected reply", data:sub(1, 80))
  end)
  local _, serr = sock:send(s.send, nil, nil, function(e)
    if e then done(false, reason_of(e)) end
  end)
  if serr then done(false, reason_of(serr)) end
  return function() safe_close(sock) end
end

-- An incremental HTTP/1.x response parser: status line and headers, then a
-- body by Content-Length, chunked transfer coding, or until the close.
local function http_parser(s)
  local p = { buf = "", state = "head", body = {}, body_len = 0 }
  local function want_body(status)
    if s.method == "HEAD" or status == 204 or status == 304 then return false end
    return s.body ~= nil
  end
  local function status_ok(code)
    for _, r in ipairs(s.status) do
      if code >= r[1] and code <= r[2] then return true end
    end
    return false
  end
  local function add_body(data)
    p.body_len = p.body_len + #data
    if p.body_len <= s.max_body then p.body[#p.body + 1] = data end
  end
  local function finish_body()
    local body = table.concat(p.body)
    if body:find(s.body) then return true end
    return false, "body mismatch", ("status %d, body does not match %q: %q"):format(p.code, s.body, body:sub(1, 60))
  end
  -- Feeds data (nil at EOF); returns nil to go on, or ok, reason, detail.
  function p.feed(data)
    if data == nil then
      if p.state == "close" then return finish_body() end
      return false, "closed", ("connection closed %s"):format(p.state == "head"
        and ("after %d bytes, before a complete response head"):format(#p.buf) or "in the middle of the body")
    end
    p.buf = p.buf .. data
    while true do
      if p.state == "head" then
        local e = p.buf:find("\r\n\r\n", 1, true)
        if not e then
          if #p.buf > 16384 then return false, "bad response", "response head over 16 KiB" end
          if #p.buf >= 5 and p.buf:sub(1, 5) ~= "HTTP/" then
            return false, "bad response", ("not HTTP: %q"):format(p.buf:sub(1, 40))
          end
          return
        end
        local head = p.buf:sub(1, e - 1)
        p.buf = p.buf:sub(e + 4)
        local code = tonumber(head:match("^HTTP/1%.[01] (%d%d%d)"))
        if not code then return false, "bad response", ("bad status line: %q"):format(head:match("^[^\r]*"):sub(1, 60)) end
        if code >= 100 and code < 200 then
          -- 100 Continue and friends: a final response follows.
        else
          p.code = code
          if not status_ok(code) then
            return false, "status " .. code, ("status %d, expected %s"):format(code, status_text(s.status))
          end
          if not want_body(code) then return true end
          local te = head:lower():match("\r\ntransfer%-encoding:%s*([^\r]*)")
          local cl = head:lower():match("\r\ncontent%-length:%s*(%d+)")
          if te and te:find("chunked", 1, true) then
            p.state = "chunk_size"
          elseif cl then
            p.state, p.left = "length", tonumber(cl)
          else
            p.state = "close"
          end
        end
      elseif p.state == "length" then
        local take = p.buf:sub(1, p.left)
        p.buf = p.buf:sub(#take + 1)
        add_body(take)
        p.left = p.left - #take
        if p.left == 0 then return finish_body() end
        return
      elseif p.state == "close" then
        add_body(p.buf)
        p.buf = ""
        return
      elseif p.state == "chunk_size" then
        local e = p.buf:find("\r\n", 1, true)
        if not e then
          if #p.buf > 1024 then return false, "bad response", "chunk size line too long" end
          return
        end
        local n = tonumber(p.buf:match("^%s*(%x+)"), 16)
        if not n then return false, "bad response", ("bad chunk size: %q"):format(p.buf:sub(1, e - 1)) end
        p.buf = p.buf:sub(e + 2)
        if n == 0 then
          -- Trailers are not needed for the verdict.
          return finish_body()
        end
        p.state, p.left = "chunk_data", n
      elseif p.state == "chunk_data" then
        if #p.buf < p.left + 2 then
          if #p.buf > p.left then return end
          add_body(p.buf)
          p.left = p.left - #p.buf
          p.buf = ""
          return
        end
        add_body(p.buf:sub(1, p.left))
        p.buf = p.buf:sub(p.left + 3) -- data and its CRLF
        p.state = "chunk_size"
      end
      if p.body_len > s.max_body then
        return false, "body too long", ("body over max_body (%d bytes) without a match"):format(s.max_body)
      end
    end
  end
  return p
end
M._http_parser = http_parser

local function http_request(s)
  local host = s.host or (s.addr:find(":", 1, true) and "[" .. s.addr .. "]" or s.addr)
  if s.port ~= 80 and not s.host then host = host .. ":" .. s.port end
  local lines = { ("%s %s HTTP/1.1"):format(s.method, s.path), "Host: " .. host,
    "User-Agent: luabpf-health", "Accept: */*", "Connection: close" }
  for k, v in pairs(s.headers or {}) do lines[#lines + 1] = tostring(k) .. ": " .. tostring(v) end
  return table.concat(lines, "\r\n") .. "\r\n\r\n"
end

function runners.http(s, done)
  local sock = uv.new_tcp()
  local p = http_parser(s)
  sock:connect(s.addr, s.port, function(err)
    if err then return done(false, reason_of(err)) end
    s.request = s.request or http_request(s)
    sock:write(s.request)
    sock:read_start(function(rerr, data)
      if rerr then return done(false, reason_of(rerr)) end
      local ok, reason, detail = p.feed(data)
      if ok ~= nil then done(ok, reason, detail) end
    end)
  end)
  return function() safe_close(sock) end
end

local ENV
local function base_env()
  if not ENV then
    ENV = {}
    for k, v in pairs(uv.os_environ()) do ENV[#ENV + 1] = k .. "=" .. v end
  end
  return ENV
end

-- keepalived's MISC_CHECK: healthy on exit 0; with `dynamic`, 1 fails and
-- 2-255 pass with weight = code - 2 (misc_dynamic).
function runners.exec(s, done, target)
  local env = {}
  for i, e in ipairs(base_env()) do env[i] = e end
  env[#env + 1] = "LUABPF_CHECK_NAME=" .. tostring(target.name)
  if s.addr then env[#env + 1] = "LUABPF_CHECK_ADDR=" .. s.addr end
  if s.port then env[#env + 1] = "LUABPF_CHECK_PORT=" .. s.port end
  for k, v in pairs(s.env or {}) do env[#env + 1] = tostring(k) .. "=" .. tostring(v) end
  local out, errp = uv.new_pipe(false), uv.new_pipe(false)
  local first = ""
  local args = {}
  for i = 2, #s.argv do args[i - 1] = s.argv[i] end
  local proc, pid
  -- detached: its own process group, so a timeout kills the children it made too.
  proc, pid = uv.spawn(s.argv[1], { args = args, env = env, stdio = { nil, out, errp }, detached = true },
    function(code, signal)
      safe_close(out)
      safe_close(errp)
      local line = (first:match("^%s*([^\n]*)") or ""):sub(1, 120)
      line = line ~= "" and line or nil
      if signal ~= 0 then return done(false, "signal " .. signal, line) end
      if code == 0 then return done(true, nil, line) end
      if s.dynamic and code >= 2 then return done(true, nil, line, code - 2) end
      done(false, "exit " .. code, line)
    end)
  if not proc then
    safe_close(out)
    safe_close(errp)
    done(false, reason_of(pid))
    return function() end
  end
  -- The first line of output, for the log: "exit 2 (disk full)".
  local function keep(_, data)
    if data and #first < 512 then first = first .. data end
  end
  out:read_start(keep)
  errp:read_start(keep)
  return function()
    if not proc:is_closing() then
      uv.kill(-pid, "sigkill")
      proc:close()
    end
    safe_close(out)
    safe_close(errp)
  end
end

function runners.custom(s, done, target)
  local cancel = s.fn({ name = target.name, addr = s.addr, port = s.port }, function(ok, reason, weight)
    if ok then return done(true, nil, nil, weight) end
    done(false, reason and tostring(reason) or "failed")
  end)
  return function()
    if type(cancel) == "function" then pcall(cancel) end
  end
end

-- Run one check with its timeout; cb(ok, reason, detail, weight, ms).
local function run_once(s, target, cb)
  local timer = uv.new_timer()
  local finished, teardown = false, nil
  local t0 = uv.hrtime()
  local function done(ok, reason, detail, weight)
    if finished then return end
    finished = true
    safe_close(timer)
    if teardown then teardown() end
    local ms = (uv.hrtime() - t0) / 1e6
    if not ok and not detail then
      detail = reason == "timeout" and ("no answer in %g s"):format(s.timeout) or reason
    end
    cb(ok and true or false, not ok and reason or nil, detail, weight, ms)
  end
  timer:start(math.floor(s.timeout * 1000 + 0.5), 0, function() done(false, "timeout") end)
  local ok, res = pcall(runners[s.type], s, done, target)
  if not ok then
    done(false, "error", tostring(res))
  elseif finished then
    if res then res() end
  else
    teardown = res
  end
end

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
