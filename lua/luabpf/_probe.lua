-- SPDX-License-Identifier: MIT
-- One probe of each kind for luabpf.health: tcp, udp, http (with its
-- incremental response parser), exec and custom, each non-blocking on the
-- host's loop, and run_once, which runs one with its timeout. Private to
-- lua/luabpf/health.lua (the specs it gets are already normalized there).
local uv = require("luv")
local spawn = require("luabpf._spawn")

local P = {}

local function status_text(st)
  local p = {}
  for _, r in ipairs(st) do p[#p + 1] = r[1] == r[2] and tostring(r[1]) or (r[1] .. "-" .. r[2]) end
  return table.concat(p, ",")
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
  -- Tied (luabpf/_spawn.lua): the command ends with luabpf, even on SIGKILL.
  -- Not found is said before, as uv.spawn would (a tied one exits 127).
  local path
  for _, e in ipairs(env) do path = e:match("^PATH=(.*)") or path end
  -- Not run at all: the pipes closed, the failure said, nothing to cancel.
  local function not_run(err)
    safe_close(out)
    safe_close(errp)
    done(false, reason_of(err))
    return function() end
  end
  local found, nf = spawn.findable(s.argv[1], path)
  if not found then return not_run(nf) end
  -- detached: its own process group, so a timeout kills the children it made too.
  proc, pid = spawn.tied(s.argv[1], { args = args, env = env, stdio = { nil, out, errp }, detached = true },
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
  if not proc then return not_run(pid) end
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


P.status_text, P.reason_of, P.host_port, P.safe_close = status_text, reason_of, host_port, safe_close
P.http_parser, P.run_once = http_parser, run_once
return P
