-- SPDX-License-Identifier: MIT
-- luabpf repl [SCRIPT [ARGS...]]: a Lua prompt with the API loaded; with
-- SCRIPT, the script runs first and the prompt opens in its environment,
-- with the loop running. Stdin that is not a terminal is run as one chunk.
local repl = require("luabpf.repl")
local rl = require("luabpf._readline")
local sys = bpf._sys

local USAGE = [==[
usage: luabpf repl [SCRIPT [ARGS...]]

A Lua prompt with the luabpf API (`bpf`, `require("luv")`) loaded. With SCRIPT,
the script runs first (as `luabpf run` would) and the prompt opens in its
environment: its globals are there, and its timers and handlers keep firing
while the prompt waits. Ctrl-D or :quit stops it (shutdown hooks run).
When stdin is not a terminal, it is run as one chunk, its results printed:
exit 0, or 1 with the error. Docs: docs/repl.md]==]

local function traceback(e)
  return debug.traceback(tostring(e), 2)
end

-- As `luabpf run` does: arg, ..., the script's directory on package.path.
local function run_script(script, args)
  local env = sys.new_env(script)
  local a = { [0] = script }
  for i, v in ipairs(args) do a[i] = v end
  rawset(env, "arg", a)
  local fn, err = loadfile(script)
  if not fn then return nil, err end
  package.path = (script:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
  setfenv(fn, env)
  local ok, e = xpcall(function() return fn(repl.unpack(args)) end, traceback)
  if not ok then return nil, e end
  return env
end

return function(...)
  local argv = { ... }
  if argv[1] == "--help" or argv[1] == "-h" then
    print(USAGE)
    return
  end
  if argv[1] and argv[1]:sub(1, 1) == "-" then
    io.stderr:write("ERROR: repl: unknown option '", argv[1], "'\n", USAGE, "\n")
    return bpf.stop(2)
  end
  local env, err
  if argv[1] then
    local script = table.remove(argv, 1)
    env, err = run_script(script, argv)
    if not env then
      io.stderr:write("ERROR: ", err, "\n")
      return bpf.stop(1)
    end
  else
    env = sys.new_env("repl")
  end

  if not rl.isatty(0) then
    local ok = repl.batch(io.stdin:read("*a"), env)
    return bpf.stop(ok and 0 or 1)
  end
  local ed
  ed, err = repl.interactive({
    env = env,
    banner = ("luabpf %s (%s): Lua with the bpf module; :help for help, Ctrl-D to leave")
      :format(bpf.version(), jit.version),
  })
  if not ed then
    io.stderr:write("ERROR: repl: ", err, "\n")
    return bpf.stop(1)
  end
end
