-- SPDX-License-Identifier: MIT
-- The control socket of a running service (`luabpf attach NAME`).
--
-- `luabpf run` claims the socket before the script runs (claim: a live
-- service with the same name refuses the start; a stale socket file from a
-- dead one is replaced), then starts answering after the main chunk (start):
-- each command runs in the script's environment on the service's loop,
-- between events, with print captured and results printed here.
--
-- Security: the directory is 0700 and the socket 0600, and each connection's
-- SO_PEERCRED must be root or the service's own uid; others are refused and
-- logged. Never a TCP listener.
local uv = require("luv")
local P = require("luabpf._repl_proto")
local sys = bpf._sys

local M = {}

-- A client must say hello this soon, and is closed after this long without a
-- request (seconds; HAProxy's stats socket closes idle clients too). A prompt
-- left idle that long is told why ("bye") and `luabpf attach` exits.
M.HELLO_TIMEOUT = tonumber(os.getenv("LUABPF_CONTROL_HELLO_TIMEOUT")) or 5
M.IDLE_TIMEOUT = tonumber(os.getenv("LUABPF_CONTROL_IDLE_TIMEOUT")) or 3600

local server, path, svc_name, env
local clients, nclients = {}, 0
local next_conn, next_token = 0, 0

local function log(level, fmt, ...)
  bpf.log(level, ("control socket '%s': " .. fmt):format(svc_name, ...))
end

-- The directory exists, is ours, and only ours.
local function prepare_dir(dir)
  local _, _, euid = sys.ids()
  local ok, err, code = uv.fs_mkdir(dir, tonumber("700", 8))
  if not ok and code ~= "EEXIST" then
    return nil, ("can't create %s: %s"):format(dir, err)
  end
  local st = uv.fs_stat(dir)
  if not st or st.type ~= "directory" then return nil, dir .. " is not a directory" end
  if st.uid ~= euid then
    return nil, ("%s belongs to uid %d, not to this service (uid %d): refusing to listen there")
      :format(dir, st.uid, euid), "set LUABPF_RUN_DIR to a directory of your own"
  end
  if st.mode % 512 ~= tonumber("700", 8) then
    local ok2, cerr = uv.fs_chmod(dir, tonumber("700", 8))
    if not ok2 then return nil, ("can't make %s mode 0700: %s"):format(dir, cerr) end
  end
  return true
end

-- Is there a live service on p? "live", pid | "stale" | "none" | nil, message.
local function probe(p)
  local st = uv.fs_lstat(p)
  if not st then return "none" end
  if st.type ~= "socket" then return nil, p .. " exists and is not a socket" end
  local c, err, code = P.connect(p)
  if c then
    local pid = sys.peercred(c.fd)
    c:close()
    return "live", pid
  end
  if code == P.ECONNREFUSED then return "stale" end
  return nil, ("can't probe %s: %s"):format(p, err)
end

--- Claim NAME's socket: true, or nil, message, hint. A live service with
--- the same name refuses an explicit name (--name); a name taken by default
--- (the script's file name) becomes NAME-PID instead, so two instances of one
--- script (xdp_count.lua on two interfaces) both run.
function M.claim(name, explicit)
  if server then return true end
  local p = P.socket_path(name)
  -- sun_path holds 107 bytes and a NUL: a longer path would be cut short
  -- silently, leaving a file under another name.
  if #p > 107 then
    return nil, ("the control socket's path is %d bytes, at most 107 fit: %s"):format(#p, p),
      "give the service a shorter name with --name NAME, or set LUABPF_RUN_DIR to a shorter directory"
  end
  local dir = p:match("^(.*)/[^/]*$")
  local ok, err, hint = prepare_dir(dir)
  if not ok then return nil, err, hint end
  local state, pid = probe(p)
  if not state then return nil, pid end
  if state == "live" and not explicit then
    local other = pid
    name = ("%s-%d"):format(name, (sys.ids()))
    p = P.socket_path(name)
    bpf.log("info", ("control socket: a service named '%s' runs already (pid %s): this one is '%s'")
      :format(name:match("^(.*)%-%d+$"), tostring(other), name))
    state, pid = probe(p)
    if not state then return nil, pid end
  end
  svc_name = name
  M.name = name
  M.explicit = explicit
  if state == "live" then
    return nil, ("a service named '%s' is already running (pid %s, %s)"):format(name, tostring(pid), p),
      "stop it first, or give this one another name with --name NAME (or --no-control)"
  end
  if state == "stale" then
    os.remove(p)
    bpf.log("info", ("control socket '%s': replaced the stale %s of a service that is gone"):format(name, p))
  end
  local s = uv.new_pipe(false)
  local old = P.umask(tonumber("177", 8))
  local bound, berr = s:bind(p)
  P.umask(old)
  if not bound then
    s:close()
    return nil, ("can't listen on %s: %s"):format(p, berr)
  end
  uv.fs_chmod(p, tonumber("600", 8))
  local listening, lerr = s:listen(16, function(e)
    if e then return log("warn", "accept: %s", e) end
    M.accept()
  end)
  if not listening then
    s:close()
    os.remove(p)
    return nil, ("can't listen on %s: %s"):format(p, lerr)
  end
  -- The socket never keeps a service running on its own.
  s:unref()
  server, path = s, p
  sys.listen_interrupts()
  if not M.hooked then
    bpf.on_shutdown(M.stop)
    M.hooked = true
  end
  return true
end

--- Name the socket after what the script serves (lb.lua: the config's
--- `service`), so `luabpf attach web` reaches service 'web'. A name given with
--- --name stays. A live service by that name keeps it: this one becomes
--- NAME-PID, as a default name does. true, or nil, message, hint (the old
--- socket then stays).
function M.rename(name)
  if not server or M.explicit or name == svc_name then return true end
  local old_server, old_path, old_name = server, path, svc_name
  server, path = nil, nil
  local ok, err, hint = M.claim(name, false)
  if not ok then
    server, path, svc_name, M.name = old_server, old_path, old_name, old_name
    return nil, err, hint
  end
  old_server:close()
  os.remove(old_path)
  return true
end

local function send(c, kind, payload)
  if c.closed then return end
  pcall(c.pipe.write, c.pipe, P.frame(kind, payload))
end

local function drop(c, why)
  if c.closed then return end
  c.closed = true
  if c.timer and not c.timer:is_closing() then c.timer:close() end
  if clients[c] then
    clients[c] = nil
    nclients = nclients - 1
    if c.greeted then log(c.level, "pid %d (uid %d) detached%s", c.pid, c.uid, why and (": " .. why) or "") end
  end
  if not c.pipe:is_closing() then c.pipe:close() end
end

local function handle(c, kind, payload)
  if kind == "hello" then
    c.greeted = true
    -- A prompt is worth a line in the log; a script's `echo ... | attach` is not.
    c.level = payload:find("tty=true", 1, true) and "info" or "debug"
    log(c.level, "pid %d (uid %d) attached (%d client%s)", c.pid, c.uid, nclients, nclients == 1 and "" or "s")
  elseif kind == "eval" then
    next_token = next_token % 0x3fffffff + 1
    -- Written now, not queued: the loop is blocked until the command ends,
    -- and the client needs the token to interrupt it.
    pcall(c.pipe.try_write, c.pipe, P.frame("start", tostring(next_token)))
    bpf.log("debug", ("control socket '%s': pid %d runs %q"):format(svc_name, c.pid, payload:sub(1, 200)))
    -- Who asked, for what the command changes (luabpf lb logs it): set only
    -- while the command runs.
    M.caller = { pid = c.pid, uid = c.uid }
    local res = require("luabpf.repl").eval(payload, env, { token = next_token, capture = true })
    M.caller = nil
    if res.out and res.out ~= "" then send(c, "out", res.out) end
    if res.more then
      send(c, "more", res.err)
    elseif res.ok then
      send(c, "value", require("luabpf.repl").values_text(res))
    else
      send(c, "error", res.err)
    end
  elseif kind == "complete" then
    local ok, list = pcall(require("luabpf.repl").complete, env, payload)
    send(c, "matches", ok and table.concat(list, "\n") or "")
  else
    send(c, "error", ("protocol: unknown request '%s'"):format(kind))
    drop(c, "it sent an unknown request")
  end
end

--- Accept one connection on the server (the listen callback).
function M.accept()
  local pipe = uv.new_pipe(false)
  if not server:accept(pipe) then
    pipe:close()
    return
  end
  local _, _, euid = sys.ids()
  local pid, uid = sys.peercred(pipe:fileno())
  if not pid or (uid ~= 0 and uid ~= euid) then
    local why = pid and ("uid %d is not allowed: only root and the service's uid (%d) may attach"):format(uid, euid)
      or ("can't read its credentials: " .. tostring(uid))
    log("warn", "refused a connection from pid %s (uid %s): %s", tostring(pid), tostring(uid), why)
    pipe:write(P.frame("refused", why), function() pipe:close() end)
    return
  end
  next_conn = next_conn + 1
  local c = { pipe = pipe, pid = pid, uid = uid, id = next_conn }
  clients[c] = true
  nclients = nclients + 1
  pipe:unref()
  send(c, "hello", ("luabpf %s name=%s pid=%d"):format(bpf.version(), svc_name, (sys.ids())))
  local decode = P.decoder()
  -- No hello in HELLO_TIMEOUT, or nothing for IDLE_TIMEOUT: closed, logged.
  c.last = uv.now()
  c.timer = uv.new_timer()
  c.timer:unref()
  c.timer:start(M.HELLO_TIMEOUT * 1000, 1000, function()
    if not c.greeted then
      log("warn", "pid %d (uid %d) said no hello in %g s: closing it", pid, uid, M.HELLO_TIMEOUT)
      return drop(c)
    end
    if uv.now() - c.last >= M.IDLE_TIMEOUT * 1000 then
      log("info", "pid %d (uid %d) idle for %g s: closing it", pid, uid, M.IDLE_TIMEOUT)
      send(c, "bye", ("idle for %g s"):format(M.IDLE_TIMEOUT))
      return drop(c)
    end
  end)
  pipe:read_start(function(err, data)
    if err or not data then return drop(c, err) end
    c.last = uv.now()
    local frames, perr = decode(data)
    if not frames then
      log("warn", "pid %d sent something that is not the protocol (%s): closing it", pid, perr)
      send(c, "error", "protocol: " .. perr)
      return drop(c)
    end
    for _, f in ipairs(frames) do
      if c.closed then return end
      handle(c, f[1], f[2])
    end
  end)
end

--- After the script's main chunk: answer commands in its environment.
function M.start(name, script_env)
  env = script_env or sys.new_env(name)
  M.env = env
  if not server then
    local ok, err, hint = M.claim(name, true)
    if not ok then
      io.stderr:write("ERROR: ", err, "\n", hint and ("HINT: " .. hint .. "\n") or "")
      bpf.stop(1)
      return
    end
  end
end

--- Close the socket and every client; remove the socket file.
function M.stop()
  for c in pairs(clients) do
    if not c.closed then pcall(c.pipe.try_write, c.pipe, P.frame("bye", "the service stops")) end
    drop(c)
  end
  if server and not server:is_closing() then server:close() end
  if path then os.remove(path) end
  server, path = nil, nil
end

--- M.caller: { pid =, uid = } of the client whose command is running (from
--- SO_PEERCRED), nil outside a command.

--- Where the socket is (nil before claim).
function M.path()
  return path
end

return M
