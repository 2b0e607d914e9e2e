-- SPDX-License-Identifier: MIT
-- Command-line options for shipped scripts: `--name value`, `--name=value`,
-- flags, choices, defaults, positionals, --help. A usage error prints what is
-- wrong and the usage, then exits 2 (the CLI's "bad command line" code).
local M = {}

local function usage(spec)
  -- A command of luabpf's own (spec.command) is `luabpf NAME`; a script is `luabpf run NAME`.
  local out = { ("usage: luabpf %s%s [OPTIONS]"):format(spec.command and "" or "run ", spec.name) }
  for _, p in ipairs(spec.positional or {}) do
    out[1] = out[1] .. (p.required and " " .. p[1]:upper() or " [" .. p[1]:upper() .. "]")
  end
  if spec.summary then out[#out + 1] = "\n" .. spec.summary end
  out[#out + 1] = "\noptions:"
  for _, o in ipairs(spec.options or {}) do
    local left = "  --" .. o[1] .. (o.type == "flag" and "" or " " .. (o.metavar or o[1]:upper()))
    local right = o.help or ""
    if o.choices then right = right .. " (" .. table.concat(o.choices, "|") .. ")" end
    if o.default ~= nil then right = right .. " [default: " .. tostring(o.default) .. "]" end
    if o.required then right = right .. " (required)" end
    out[#out + 1] = ("%-26s %s"):format(left, right)
  end
  out[#out + 1] = ("%-26s %s"):format("  --help", "show this help")
  return table.concat(out, "\n") .. "\n"
end
M.usage = usage

local function die(spec, msg)
  io.stderr:write(("ERROR: %s: %s\n"):format(spec.name, msg), usage(spec))
  os.exit(2)
end

local function convert(spec, o, v)
  if o.type == "number" then
    local n = tonumber(v)
    if not n then die(spec, ("--%s expects a number, got '%s'"):format(o[1], v)) end
    return n
  end
  if o.choices then
    for _, c in ipairs(o.choices) do if c == v then return v end end
    die(spec, ("--%s must be one of %s, got '%s'"):format(o[1], table.concat(o.choices, ", "), v))
  end
  return v
end

--- Parse argv (a list of strings) against spec; returns a table of values.
-- Errors exit 2 with a message; spec.exit=false raises instead (for tests).
function M.parse(argv, spec)
  local byname, res, pos = {}, {}, {}
  for _, o in ipairs(spec.options or {}) do
    byname[o[1]] = o
    if o.default ~= nil then res[o[1]] = o.default end
  end
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--help" or a == "-h" then
      io.stdout:write(usage(spec))
      os.exit(0)
    elseif a:sub(1, 2) == "--" and #a > 2 then
      local name, val = a:match("^%-%-([^=]+)=(.*)$")
      name = name or a:sub(3)
      local o = byname[name]
      if not o then die(spec, ("unknown option '--%s'"):format(name)) end
      if o.type == "flag" then
        if val then die(spec, ("--%s takes no value"):format(name)) end
        res[name] = true
      else
        if not val then
          i = i + 1
          val = argv[i]
          if val == nil then die(spec, ("--%s needs a value"):format(name)) end
        end
        res[name] = convert(spec, o, val)
      end
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  for k, p in ipairs(spec.positional or {}) do
    if pos[k] == nil and p.required then die(spec, ("missing %s"):format(p[1]:upper())) end
    res[p[1]] = pos[k]
  end
  if #pos > #(spec.positional or {}) then
    die(spec, ("unexpected argument '%s'"):format(pos[#(spec.positional or {}) + 1]))
  end
  for _, o in ipairs(spec.options or {}) do
    if o.required and res[o[1]] == nil then
      die(spec, ("--%s is required (%s)"):format(o[1], o.help or o[1]))
    end
  end
  return res
end

--- Print "ERROR: msg" (and "HINT: hint") to stderr and exit (default code 1).
-- For failures a script cannot go on from: a missing interface, a busy hook.
function M.fatal(msg, hint, code)
  -- Under systemd (JOURNAL_STREAM), the journal files it at error priority.
  io.stderr:write(os.getenv("JOURNAL_STREAM") and "<3>" or "", "ERROR: ", tostring(msg), "\n")
  if hint then io.stderr:write("HINT: ", hint, "\n") end
  os.exit(code or 1)
end

return M
