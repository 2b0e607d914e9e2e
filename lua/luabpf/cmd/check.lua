-- SPDX-License-Identifier: MIT
-- luabpf check [--kind K] [-q] FILE...: validate configurations without
-- touching the kernel, as `haproxy -c` and `keepalived -t` do. Errors print
-- as "file:line: error: message" (what editors and CI annotate); the exit
-- code says whether every file is valid. The systemd unit runs it before
-- start and before each reload, so a broken file never reaches the service.
local config = require("luabpf.config")
local caret = require("luabpf._caret")

local USAGE = [[
usage: luabpf check [--kind lb|filter|script] [-q] FILE...

Validates each FILE without touching the kernel: nothing is loaded, attached
or pinned, and `bpf` is not reachable from the file.
  lb      a load balancer config (scripts/examples/lb.lua CONFIG): every
          setting, VIP and backend by the rules the service applies
  filter  a DDoS filter config (scripts/examples/ddos_filter.lua CONFIG)
  script  a Lua script: syntax only (it runs only under `luabpf run`)
Without --kind, a file that sets `vips` is an lb config, one that sets
allow/deny/rate_limit/... a filter config, anything else a script.

  -q      print errors and warnings only
Exit codes: 0 every file is valid, 1 an error in a file, 2 bad command line.
]]

return function(...)
  local files, kind, quiet = {}, nil, false
  local argv = { ... }
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--help" or a == "-h" then
      io.stdout:write(USAGE)
      os.exit(0)
    elseif a == "--kind" or a:match("^%-%-kind=") then
      kind = a:match("^%-%-kind=(.*)$")
      if not kind then
        i = i + 1
        kind = argv[i]
      end
      if kind ~= "lb" and kind ~= "filter" and kind ~= "script" then
        io.stderr:write(("ERROR: check: --kind must be lb, filter or script, got '%s'\n"):format(tostring(kind)), USAGE)
        os.exit(2)
      end
    elseif a == "-q" or a == "--quiet" then
      quiet = true
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      io.stderr:write(("ERROR: check: unknown option '%s'\n"):format(a), USAGE)
      os.exit(2)
    else
      files[#files + 1] = a
    end
    i = i + 1
  end
  if #files == 0 then
    io.stderr:write("ERROR: check: no FILE given\n", USAGE)
    os.exit(2)
  end

  local bad = 0
  for _, path in ipairs(files) do
    local rep = config.check(path, kind)
    local w = rep.config and caret.missing_interface(rep.config)
    if w then rep:warn({ "interface" }, w) end
    local lines = caret.lines(path) -- each message is followed by its line and a caret
    for _, e in ipairs(rep.errors) do
      io.stdout:write(("%s: error: %s\n"):format(e.where, e.msg))
      local src = caret.render(lines, e)
      if src then io.stdout:write(src, "\n") end
    end
    for _, x in ipairs(rep.warnings) do
      io.stdout:write(("%s: warning: %s\n"):format(x.where, x.msg))
      local src = caret.render(lines, x)
      if src then io.stdout:write(src, "\n") end
    end
    if rep.ok then
      if not quiet then io.stdout:write(("%s: OK: %s\n"):format(path, rep.summary or rep.kind)) end
    else
      bad = bad + 1
      io.stdout:write(("%s: invalid: %d error%s\n"):format(path, #rep.errors, #rep.errors == 1 and "" or "s"))
    end
  end
  io.stdout:flush()
  os.exit(bad > 0 and 1 or 0)
end
