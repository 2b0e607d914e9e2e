-- SPDX-License-Identifier: MIT
-- luabpf attach NAME: a prompt inside a running service, over its control
-- socket. Commands run in the service's script environment, on its loop;
-- what they print, their results and errors come back here. With stdin not
-- a terminal (or -e CODE), the input runs as one command: exit 0, or 1 with
-- the error on stderr.
local P = require("luabpf._repl_proto")
local repl = require("luabpf.repl")
local rl = require("luabpf._readline")
local sys = bpf._sys

local USAGE = [==[
usage: luabpf attach NAME [-e CODE]
       luabpf attach            (lists the services you can attach to)

Opens a Lua prompt inside the service NAME started by `luabpf run` (its
--name, or its script's file name without .lua), through its control socket
]==] .. P.run_dir() .. [==[/NAME.sock (NAME may also be a socket's path).
Input runs in the service's script environment, on its loop between events:
its globals (`lb_service:stats()`), maps and the bpf module are there.
Ctrl-C interrupts a running command; the service goes on. Ctrl-D detaches.

  -e CODE   run CODE, print the result and exit (as `echo CODE | luabpf attach NAME`)

Exit codes: 0 done; 1 the command raised (the error is on stderr) or the
service is gone; 3 not allowed (only root or the service's user may attach).
Docs: docs/repl.md]==]

local function fail(code, msg, hint)
  io.stderr:write("ERROR: ", msg, "\n")
  if hint then io.stderr:write("HINT: ", hint, "\n") end
  io.stderr:flush()
  bpf.stop(code)
end

local function connect(name)
  local path = P.socket_path(name)
  local c, err, code = P.connect(path)
  if c then return c end
  if code == P.ENOENT then
    local list = P.services()
    return nil, 1, ("no service named '%s' (no %s)"):format(name, path),
      #list > 0 and ("running services: " .. table.concat(list, ", "))
        or "start one with `luabpf run SCRIPT` (--name NAME names it; --no-control has no socket)"
  elseif code == P.EACCES then
    return nil, 3, ("can't reach %s: %s"):format(path, err),
      "only root and the service's own user may attach"
  elseif code == P.ECONNREFUSED then
    return nil, 1, ("service '%s' is not running (%s is left from a process that is gone)"):format(name, path)
  end
  return nil, 1, ("can't connect to %s: %s"):format(path, err)
end

-- Send one command and print what comes back. Returns "value", "error",
-- "more" (unfinished input), or nil, message (connection lost, detached).
local function command(c, svc_pid, src, out)
  local ok, err = c:send("eval", src)
  if not ok then return nil, "can't send to the service: " .. err end
  local token, interrupts = nil, 0
  sys.take_sigint() -- Ctrl-Cs at the prompt were for the prompt
  local function on_eintr()
    local n = sys.take_sigint()
    if n == 0 then return nil end
    interrupts = interrupts + n
    if interrupts == 1 and token then
      sys.interrupt(svc_pid, token)
      return nil
    end
    return "detached: the command may still be running in the service"
  end
  while true do
    local kind, payload = c:recv(on_eintr)
    if not kind then return nil, payload end
    if kind == "start" then
      token = tonumber(payload)
      if interrupts > 0 and token then sys.interrupt(svc_pid, token) end
    elseif kind == "out" then
      out.stdout(payload)
    elseif kind == "value" then
      if payload ~= "" then out.stdout(payload .. "\n") end
      return "value"
    elseif kind == "error" then
      out.stderr(payload .. "\n")
      return "error"
    elseif kind == "more" then
      return "more", payload
    elseif kind == "bye" then
      return nil, "the service stopped"
    end
  end
end

local function complete(c, line)
  if not c:send("complete", line) then return {} end
  local kind, payload = c:recv()
  if kind ~= "matches" or payload == "" then return {} end
  local list = {}
  for m in payload:gmatch("[^\n]+") do list[#list + 1] = m end
  return list
end

local function interactive(c, svc, svc_pid)
  local ed
  local prompt1 = svc .. "> "
  local prompt2 = (" "):rep(math.max(#prompt1 - 5, 0)) .. "...> "
  local out = {
    stdout = function(s) io.stdout:write(s) io.stdout:flush() end,
    stderr = function(s) io.stdout:write("error: ", s) io.stdout:flush() end,
  }
  local function leave(code, msg)
    ed:close()
    sys.catch_sigint(nil)
    c:close()
    if msg then io.stderr:write("\n", msg, "\n") else io.stdout:write("\n") end
    bpf.stop(code or 0)
  end
  local lines = repl.line_handler({
    help = (repl.HELP:gsub("Ctrl%-D, :quit  leave", "Ctrl-D, :quit  detach (the service goes on)")),
    prompt = prompt1, prompt2 = prompt2, leave = function() leave(0) end,
    editor = function() return ed end,
    run = function(src)
      local r, err = command(c, svc_pid, src, out)
      if not r then
        leave(1, "ERROR: " .. err)
        return nil
      end
      return r == "more" and "more" or true
    end,
  })
  local err
  ed, err = rl.new({
    prompt = prompt1,
    history = rl.history_path(),
    on_line = lines.on_line,
    complete = function(line) return complete(c, line) end,
  })
  if not ed then
    c:close()
    return fail(1, "attach: " .. err, "pipe the commands in instead: echo 'return x' | luabpf attach " .. svc)
  end
  sys.catch_sigint(function()
    -- Already taken by an interrupted command: nothing left for the prompt.
    if sys.take_sigint() == 0 then return end
    lines.reset()
    ed:reset()
  end)
end

return function(...)
  local argv = { ... }
  local name, code
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--help" or a == "-h" then
      print(USAGE)
      return
    elseif a == "-e" then
      code = argv[i + 1]
      if not code then return fail(2, "attach: -e needs CODE") end
      i = i + 1
    elseif a:sub(1, 1) == "-" then
      return fail(2, ("attach: unknown option '%s'"):format(a), "luabpf attach --help")
    elseif name then
      return fail(2, ("attach: one NAME only (got '%s' and '%s')"):format(name, a))
    else
      name = a
    end
    i = i + 1
  end
  if not name then
    local list = P.services()
    if #list == 0 then
      return fail(2, "attach needs a NAME, and no service runs with a control socket in " .. P.run_dir())
    end
    print(table.concat(list, "\n"))
    return
  end

  local c, ecode, msg, hint = connect(name)
  if not c then return fail(ecode, msg, hint) end
  local svc_pid = sys.peercred(c.fd)
  local kind, payload = c:recv()
  if kind == "refused" then
    c:close()
    return fail(3, ("service '%s' refused the connection: %s"):format(name, payload))
  elseif kind ~= "hello" then
    c:close()
    return fail(1, ("service '%s' did not greet: %s"):format(name, tostring(payload or kind)))
  end
  local svc = payload:match("name=(%S+)") or name
  c:send("hello", ("pid=%d tty=%s"):format((sys.ids()), tostring(rl.isatty(0))))

  if code or not rl.isatty(0) then
    local src = code or io.stdin:read("*a")
    if not src:find("%S") then
      c:close()
      return
    end
    -- Ctrl-C interrupts the command here too, rather than leaving it running.
    sys.catch_sigint(function() end)
    local failed = false
    local r, err = command(c, svc_pid, src, {
      stdout = function(s) io.stdout:write(s) end,
      stderr = function(s) failed = true io.stderr:write("ERROR: ", s) end,
    })
    sys.catch_sigint(nil)
    c:close()
    io.stdout:flush()
    if not r then return fail(1, err) end
    if r == "more" then return fail(1, "unfinished input: " .. err) end
    return bpf.stop(failed and 1 or 0)
  end
  io.stdout:write(("attached to '%s' (pid %d, %s): :help for help, Ctrl-D to detach\n")
    :format(svc, svc_pid or 0, payload:match("^(luabpf %S+)") or "luabpf"))
  interactive(c, svc, svc_pid)
end
