-- SPDX-License-Identifier: MIT
-- luabpf ls [progs|maps|links|pins [DIR]] [--json] [--pretty]: what bpftool
-- prog/map/link show print, for every object in the kernel, with pins, the
-- processes holding them and where programs are attached.
local I = require("luabpf._inspect")

local USAGE = [[
usage: luabpf ls [progs|maps|links] [--json] [--pretty]
       luabpf ls pins [DIR] [--json] [--pretty]

Every BPF program, map and link in the kernel (whoever loaded it), like
bpftool prog/map/link show -f, with where programs are attached and which
processes hold each object. `pins` walks bpffs (default /sys/fs/bpf).
--json prints bpftool's field names; --pretty indents it.
]]

local KINDS = { progs = "prog", maps = "map", links = "link", prog = "prog", map = "map", link = "link" }
local TEXT = { prog = I.prog_text, map = I.map_text, link = I.link_text }

return function(...)
  local what, dir, json, pretty
  for _, a in ipairs({ ... }) do
    if a == "--json" or a == "-j" then json = true
    elseif a == "--pretty" or a == "-p" then json, pretty = true, true
    elseif a == "--help" or a == "-h" then io.stdout:write(USAGE) os.exit(0)
    elseif a:sub(1, 1) == "-" then
      io.stderr:write(("ERROR: ls: unknown option '%s'\n"):format(a), USAGE) os.exit(2)
    elseif not what then
      what = a
      if what ~= "pins" and what ~= "pin" and not KINDS[what] then
        io.stderr:write(("ERROR: ls: unknown kind '%s' (progs, maps, links or pins)\n"):format(a), USAGE)
        os.exit(2)
      end
    elseif (what == "pins" or what == "pin") and not dir then dir = a
    else io.stderr:write(("ERROR: ls: unexpected argument '%s'\n"):format(a), USAGE) os.exit(2)
    end
  end

  if what == "pins" or what == "pin" then
    local list, err, code = I.pins(dir)
    if not list then I.fail(("ls pins: %s"):format(err), code) end
    if json then
      for i, p in ipairs(list) do list[i] = I.ordered(p, { "path", "kind", "id", "type", "name", "prog_id", "error" }) end
      print(I.json(I.array(list), pretty))
    elseif #list > 0 then
      print(I.pins_text(list))
    end
    return
  end

  local kinds = what and { KINDS[what] } or { "prog", "map", "link" }
  local ctx, result = {}, {}
  for _, k in ipairs(kinds) do
    local list, err, code = I.list(k, ctx)
    if not list then I.fail(err, code) end
    result[k] = list
  end
  if json then
    if what then
      print(I.json(I.array(result[kinds[1]]), pretty))
    else
      print(I.json(I.ordered({ progs = I.array(result.prog), maps = I.array(result.map),
        links = I.array(result.link) }, { "progs", "maps", "links" }), pretty))
    end
    return
  end
  for i, k in ipairs(kinds) do
    if not what then io.stdout:write(i > 1 and "\n" or "", k, "s:\n") end
    for _, o in ipairs(result[k]) do print(TEXT[k](o)) end
  end
end
