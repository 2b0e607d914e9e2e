-- SPDX-License-Identifier: MIT
-- luabpf lb: operate a running load balancer (scripts/examples/lb.lua) over
-- its control socket, as HAProxy's stats socket and Katran's client do. The
-- service does the work (lua/luabpf/lb/_ops.lua): each command sends it one
-- short chunk and prints what comes back.
local uv = require("luv")
local P = require("luabpf._repl_proto")
local sys = bpf._sys

local USAGE = [==[
usage: luabpf lb list [--json]
       luabpf lb show NAME [--json]
       luabpf lb weight NAME VIP BACKEND N
       luabpf lb drain NAME VIP BACKEND
       luabpf lb enable NAME VIP BACKEND
       luabpf lb add NAME VIP BACKEND ADDR[:PORT] [weight N]
       luabpf lb remove NAME VIP BACKEND
       luabpf lb stop NAME
       luabpf lb drain-node NAME | enable-node NAME

Operates the load balancer NAME (its config's `service`) while it runs,
through its control socket ]==] .. P.run_dir() .. [==[/NAME.sock.
  list     the balancers running, one a line
  show     VIPs and backends: weight, state, health and why, Maglev slots,
           packets, flows, rates over the last second, runtime changes
  weight   set a backend's weight (0: no new flows; its flows go on)
  drain    weight 0, remembering the weight; enable gives it back
  add      add a backend (IPv6: [ADDR]:PORT; PORT defaults to the VIP's)
  remove   remove a backend: it leaves the table and its flows move
  stop     detach and remove the pinned state (as --destroy); the service exits;
           with no process running it, the pinned state is removed here
  drain-node   withdraw this node's VIPs from BGP (config `bgp`): routers move
           its flows away, the program serves what still arrives; enable-node
           announces them again (docs/scale-out.md)

Each change is logged by the service with the uid and pid that asked.
Runtime changes survive a SIGHUP reload unless the reloaded config changed
that backend (then the config wins); a restart applies the config alone.
`show` marks what differs from the config (RUNTIME).

Exit codes: 0 done; 1 the service refused the change or is gone; 2 bad
command line; 3 not allowed (only root or the service's user).
Docs: docs/cli.md, docs/lb.md ("Operating it")]==]

local function fail(code, msg, hint)
  io.stdout:flush()
  io.stderr:write("ERROR: ", msg, "\n")
  if hint then io.stderr:write("HINT: ", hint, "\n") end
  io.stderr:flush()
  os.exit(code)
end

-- A greeted connection to NAME, or nil, exit code, message, hint.
-- How long a service may take to answer before the command gives up on it:
-- one that is stuck (a handler in a loop, a debugger) must not hang `lb`.
local ANSWER_S = 10 -- a command to one service
local LIST_S = 3 -- each service `lb list` asks

local function open(name, limit)
  local path = P.socket_path(name)
  local c, err, code = P.connect(path)
  if not c then
    if code == P.ENOENT then
      return nil, 1, ("no service named '%s' (no %s)"):format(name, path),
        "running balancers: luabpf lb list"
    elseif code == P.EACCES then
      return nil, 3, ("can't reach %s: %s"):format(path, err), "only root and the service's own user may operate it"
    elseif code == P.ECONNREFUSED then
      return nil, 1, ("service '%s' is not running (%s is left from a process that is gone)"):format(name, path)
    end
    return nil, 1, ("can't connect to %s: %s"):format(path, err)
  end
  c:timeout(limit or ANSWER_S)
  local kind, payload = c:recv()
  if kind == "refused" then
    c:close()
    return nil, 3, ("service '%s' refused the connection: %s"):format(name, payload)
  elseif kind ~= "hello" then
    c:close()
    return nil, 1, ("service '%s' did not greet: %s"):format(name, tostring(payload or kind)),
      "a service that answers nothing is busy or stuck: luabpf attach " .. name .. " shows it; SIGUSR1 prints its state"
  end
  c:send("hello", ("pid=%d tty=false client=lb"):format((sys.ids())))
  c.pid = tonumber(payload:match("pid=(%d+)"))
  return c
end

-- Lua source for a value: strings quoted, numbers as they are, tables of those.
local function lit(v)
  if type(v) == "string" then return ("%q"):format(v) end
  if type(v) == "number" then return ("%.17g"):format(v) end
  if type(v) == "boolean" then return tostring(v) end
  local parts = {}
  for k, x in pairs(v) do
    parts[#parts + 1] = type(k) == "number" and ("[%d]=%s"):format(k, lit(x)) or ("[%q]=%s"):format(k, lit(x))
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- Run ops.run(lb_service, cmd, args) in the service: the text, or nil and the error.
local function ask(c, cmd, args)
  local src = ("io.write(require('luabpf.lb._ops').run(rawget(getfenv(1), 'lb_service'), %s, %s))")
    :format(lit(cmd), lit(args or {}))
  local ok, err = c:send("eval", src)
  if not ok then return nil, "can't send to the service: " .. err end
  local out = {}
  while true do
    local kind, payload = c:recv()
    if not kind then return nil, payload end
    if kind == "out" then
      out[#out + 1] = payload
    elseif kind == "value" then
      return table.concat(out)
    elseif kind == "error" then
      -- The message, without the service's traceback.
      return nil, (payload:gsub("\n+stack traceback:.*$", ""):gsub("^input:%d+: ", ""))
    elseif kind == "bye" then
      return nil, "the service stopped: " .. payload
    end
  end
end

-- Connect to NAME and ask; prints the answer or fails.
local function one(name, cmd, args)
  local c, code, msg, hint = open(name)
  if not c then fail(code, msg, hint) end
  local text, err = ask(c, cmd, args)
  c:close()
  if not text then fail(1, ("lb %s %s: %s"):format(cmd, name, err)) end
  io.stdout:write(text)
end

-- A tiny reader for the flat JSON records the service sends (list, stop).
local function field(json, k)
  local s = json:match('"' .. k .. '":"([^"]*)"')
  if s then return s end
  local n = json:match('"' .. k .. '":(%-?[%d%.]+)')
  return tonumber(n)
end

local function gone(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return true end
  local stat = f:read("*l") or ""
  f:close()
  return stat:match("^%d+ %b() (%a)") == "Z" -- exited, not yet reaped
end

local function cmd_list(args)
  local json = args[1] == "--json"
  if args[1] and not json then fail(2, ("lb list: unexpected argument '%s'"):format(args[1]), "luabpf lb --help") end
  local rows, recs = {}, {}
  for _, name in ipairs(P.services()) do
    local c, _, msg = open(name, LIST_S)
    if c then
      local text, err = ask(c, "summary")
      c:close()
      if not text and err and err:find("^no answer") then
        io.stderr:write(("luabpf lb list: service '%s' left out: %s (busy or stuck)\n"):format(name, err))
      end
      if text then
        recs[#recs + 1] = text
        local F = require("luabpf.lb._ops_fmt")
        rows[#rows + 1] = { field(text, "service"), field(text, "pid"), field(text, "interface") or "-",
          F.count(field(text, "vips")), F.count(field(text, "backends")), F.count(field(text, "packets")),
          F.count(field(text, "runtime_changes")) }
      end
    elseif msg and msg:find("no answer", 1, true) then
      io.stderr:write(("luabpf lb list: service '%s' left out: %s\n"):format(name, msg))
    end
  end
  if json then
    print("[" .. table.concat(recs, ",") .. "]")
  elseif #rows == 0 then
    io.stderr:write("no load balancer runs with a control socket in ", P.run_dir(), "\n")
  else
    print(require("luabpf.lb._ops_fmt").columns({ "NAME", "PID", "INTERFACE", "VIPS", "BACKENDS", "PACKETS",
      "RUNTIME CHANGES" }, rows, { [2] = true, [4] = true, [5] = true, [6] = true, [7] = true }))
  end
end

local function cmd_show(args)
  local name, json
  for _, a in ipairs(args) do
    if a == "--json" or a == "-j" then json = true
    elseif a:sub(1, 1) == "-" then fail(2, ("lb show: unknown option '%s'"):format(a), "luabpf lb --help")
    elseif name then fail(2, ("lb show: one NAME only (got '%s' and '%s')"):format(name, a))
    else name = a end
  end
  if not name then fail(2, "lb show needs a NAME", "running balancers: luabpf lb list") end
  local c, code, msg, hint = open(name)
  if not c then fail(code, msg, hint) end
  -- Rates are over the last second: the service's sampler starts with the
  -- first command and needs two samples.
  local deadline = uv.hrtime() + 3e9
  while true do
    local wait, err = ask(c, "prime")
    if not wait then c:close() fail(1, ("lb show %s: %s"):format(name, err)) end
    if tonumber(wait) == 0 or uv.hrtime() > deadline then break end
    uv.sleep(200)
  end
  local text, err = ask(c, "show", { json = json })
  c:close()
  if not text then fail(1, ("lb show %s: %s"):format(name, err)) end
  io.stdout:write(text)
end

local function cmd_stop(args)
  if #args ~= 1 then fail(2, "usage: luabpf lb stop NAME") end
  local name = args[1]
  local c, code, msg, hint = open(name)
  if not c then
    -- No process runs it: its pinned state (a stopped service) goes here.
    local done, derr, dhint = require("luabpf.lb._life").destroy(name)
    if done then return print(done) end
    if derr then fail(1, derr, dhint) end
    fail(code, msg, hint)
  end
  local text, err = ask(c, "stop")
  if not text then c:close() fail(1, ("lb stop %s: %s"):format(name, err)) end
  -- The service says bye (or closes) once its shutdown hooks ran: detached.
  repeat local kind = c:recv() until not kind or kind == "bye"
  c:close()
  local pid, dir = field(text, "pid"), field(text, "state_dir")
  local deadline = uv.hrtime() + 10e9
  while pid and not gone(pid) and uv.hrtime() < deadline do uv.sleep(50) end
  if pid and not gone(pid) then fail(1, ("service '%s' (pid %d) did not exit within 10 s"):format(name, pid)) end
  if dir and uv.fs_stat(dir) then
    fail(1, ("service '%s' exited but its state is still in %s"):format(name, dir), "rm -r " .. dir)
  end
  print(("service '%s' stopped (pid %d): detached from %s, %s removed"):format(name, pid or 0,
    tostring(field(text, "interface")), tostring(dir)))
end

local function need(args, n, usage)
  if #args ~= n then fail(2, "usage: luabpf lb " .. usage, "luabpf lb --help") end
end

local function number(s, what)
  local n = tonumber(s)
  if not n or n < 0 or n ~= n or n == math.huge then
    fail(2, ("%s must be a number >= 0, got '%s'"):format(what, tostring(s)))
  end
  return n
end

return function(sub, ...)
  local args = { ... }
  if sub == nil or sub == "--help" or sub == "-h" or sub == "help" then
    print(USAGE)
    if sub == nil then os.exit(2) end
    return
  end
  for _, a in ipairs(args) do
    if a == "--help" or a == "-h" then print(USAGE) return end
  end
  if sub == "list" then return cmd_list(args) end
  if sub == "show" then return cmd_show(args) end
  if sub == "stop" then return cmd_stop(args) end
  if sub == "weight" then
    need(args, 4, "weight NAME VIP BACKEND N")
    return one(args[1], "weight", { args[2], args[3], number(args[4], "weight") })
  elseif sub == "drain" or sub == "enable" then
    need(args, 3, sub .. " NAME VIP BACKEND")
    return one(args[1], sub, { args[2], args[3] })
  elseif sub == "add" then
    if #args ~= 4 and not (#args == 6 and args[5] == "weight") then
      fail(2, "usage: luabpf lb add NAME VIP BACKEND ADDR[:PORT] [weight N]", "luabpf lb --help")
    end
    return one(args[1], "add", { args[2], args[3], args[4], args[6] and number(args[6], "weight") or nil })
  elseif sub == "drain-node" or sub == "enable-node" then
    need(args, 1, sub .. " NAME")
    return one(args[1], sub, {})
  elseif sub == "remove" then
    need(args, 3, "remove NAME VIP BACKEND")
    return one(args[1], "remove", { args[2], args[3] })
  end
  fail(2, ("lb: unknown command '%s' (list, show, weight, drain, enable, add, remove, stop, drain-node, enable-node)"):format(sub),
    "luabpf lb --help")
end
