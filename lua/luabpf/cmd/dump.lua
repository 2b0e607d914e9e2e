-- SPDX-License-Identifier: MIT
-- luabpf dump MAP [--json]: every entry of a map, keys and values decoded by
-- its BTF (bpftool map dump, readable). MAP is an id, a pin path or a name,
-- or bpftool's `id N`, `pinned PATH`, `name NAME`.
local I = require("luabpf._inspect")

local USAGE = [[
usage: luabpf dump MAP [--json] [--pretty]

MAP: an id (42), a pin path (/sys/fs/bpf/lb/backends), a name unique among
loaded maps (backends), or bpftool's `id 42`, `pinned PATH`, `name NAME`.
Keys and values are decoded by the map's BTF: structs by field name, IP
addresses as text, enums by name. Per-CPU maps show each CPU and the sum.
--json prints what `bpftool -j map dump` prints: [{"key":["0x01",..],
"value":["0x06",..],"formatted":{"key":..,"value":..}}] (per CPU: "values":
[{"cpu":0,"value":[..]}], and "formatted" has "values" and their "sum"),
"formatted" decoded as above, integers exact.
Exit codes: 0 dumped, 1 no such map or it can't be dumped (a nearest name is
suggested), 2 bad command line, 3 missing privileges.
]]

return function(...)
  local args, json, pretty, hint = {}, false, false, nil
  for _, a in ipairs({ ... }) do
    if a == "--json" or a == "-j" then json = true
    elseif a == "--pretty" or a == "-p" then json, pretty = true, true
    elseif a == "--help" or a == "-h" then io.stdout:write(USAGE) os.exit(0)
    elseif a:sub(1, 1) == "-" then
      io.stderr:write(("ERROR: dump: unknown option '%s'\n"):format(a), USAGE) os.exit(2)
    elseif #args == 0 and (a == "id" or a == "name" or a == "pinned") and not hint then hint = a
    else args[#args + 1] = a
    end
  end
  if #args ~= 1 then
    io.stderr:write(#args == 0 and "ERROR: dump: which map? (an id, a pin path or a name)\n"
      or "ERROR: dump: one map at a time\n", USAGE)
    os.exit(2)
  end
  local info, err, code = I.find_map(args[1], hint)
  if not info then I.fail(err, code) end
  err, code = I.undumpable(info)
  if err then I.fail(err, code) end
  local out = function(s) io.stdout:write(s) end
  if not json then
    out(("# map %d '%s': %s, key %dB, value %dB, max_entries %d%s\n"):format(info.id, info.name,
      info.type, info.bytes_key, info.bytes_value, info.max_entries, info.btf_id and "" or " (no BTF: raw bytes)"))
  end
  local n
  n, err, code = I.dump(info, json, out, pretty)
  if not n then I.fail(err, code) end
  if not json then out(("# %d %s\n"):format(n, n == 1 and "entry" or "entries")) end
end
