-- SPDX-License-Identifier: MIT
-- luabpf ls [progs|maps|links|pins [DIR]] [SELECTOR] [--json] [--pretty]: what
-- bpftool prog/map/link show print, for every object in the kernel, with
-- pins, the processes holding them and where programs are attached. Kinds
-- and selectors are bpftool's: unique prefixes (`ls m`), `id N`, `name X`,
-- `pinned PATH`, `tag T`.
local I = require("luabpf._inspect")

local USAGE = [[
usage: luabpf ls [progs|maps|links] [id N | name NAME | pinned PATH | tag TAG] [--json] [--pretty]
       luabpf ls pins [DIR] [--json] [--pretty]

Every BPF program, map and link in the kernel (whoever loaded it), like
bpftool prog/map/link show -f, with where programs are attached and which
processes hold each object. `pins` walks bpffs (default /sys/fs/bpf).
A kind may be shortened as bpftool allows: the first of progs, maps, links,
pins that starts with it (p, m, l, pi). Selectors, as bpftool's:
  id N          the object with id N
  name NAME     objects named NAME (the kernel keeps 15 characters)
  pinned PATH   the object pinned at PATH
  tag TAG       programs whose tag is TAG
--json prints bpftool's field names; --pretty indents it.
Exit codes: 0 listed (also an empty list), 1 a selector matched nothing,
2 bad command line, 3 missing privileges.
]]

local KINDS = { "progs", "maps", "links", "pins" }
local KIND_OF = { progs = "prog", maps = "map", links = "link" }
local SELECTORS = { "id", "name", "pinned", "tag" }
local TEXT = { prog = I.prog_text, map = I.map_text, link = I.link_text }

local function usage_error(msg, hint)
  io.stderr:write("ERROR: ls: ", msg, "\n")
  if hint then io.stderr:write("HINT: ", hint, "\n") end
  io.stderr:write(USAGE)
  os.exit(2)
end

-- bpftool's rule: a word names the first kind it is a prefix of.
local function kind_of(word)
  for _, k in ipairs(KINDS) do
    if k:sub(1, #word) == word then return k end
  end
end

local function selected(o, sel, kind)
  local how, v = sel[1], sel[2]
  if how == "id" then return o.id == tonumber(v) end
  if how == "name" then return o.name ~= nil and o.name == v:sub(1, I.NAME_MAX) end
  if how == "tag" then return kind == "prog" and o.tag == v:lower() end
  for _, p in ipairs(o.pinned or {}) do
    if p == v then return true end
  end
  return false
end

local function nothing(kinds, sel, all)
  local what = #kinds == 1 and kinds[1] or "object"
  local msg = ("no %s with %s '%s'"):format(what, sel[1], sel[2])
  local hint
  if sel[1] == "name" then
    local names = {}
    for _, k in ipairs(kinds) do
      for _, o in ipairs(all[k]) do if o.name then names[#names + 1] = o.name end end
    end
    local near = I.nearest(sel[2], names)
    if near then msg = msg .. ("; did you mean '%s'?"):format(near) end
  elseif sel[1] == "pinned" then
    hint = "luabpf ls pins lists every pin"
  end
  io.stderr:write("ERROR: ls: ", msg, "\n")
  if hint then io.stderr:write("HINT: ", hint, "\n") end
  os.exit(1)
end

return function(...)
  local what, dir, json, pretty, sel
  local argv = { ... }
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--json" or a == "-j" then json = true
    elseif a == "--pretty" or a == "-p" then json, pretty = true, true
    elseif a == "--help" or a == "-h" then io.stdout:write(USAGE) os.exit(0)
    elseif a:sub(1, 1) == "-" then usage_error(("unknown option '%s'"):format(a))
    elseif (a == "id" or a == "name" or a == "pinned" or a == "tag") and what ~= "pins" then
      if sel then usage_error(("one selector at a time ('%s' and '%s')"):format(sel[1], a)) end
      local v = argv[i + 1]
      if not v then usage_error(("%s needs a value (%s)"):format(a, ({ id = "id N", name = "name NAME",
        pinned = "pinned PATH", tag = "tag TAG" })[a])) end
      if a == "id" and not v:match("^%d+$") then
        usage_error(("'%s' is not an id (a positive integer)"):format(v))
      end
      if a == "tag" and what and what ~= "progs" then usage_error("tag selects programs: ls progs tag TAG") end
      sel = { a, v }
      i = i + 1
    elseif not what and not sel then
      what = kind_of(a)
      if not what then
        local near = I.nearest(a, { "progs", "maps", "links", "pins", "id", "name", "pinned", "tag" })
        usage_error(("unknown kind '%s' (progs, maps, links or pins)%s"):format(a,
          near and ("; did you mean '" .. near .. "'?") or ""))
      end
    elseif what == "pins" and not dir then dir = a
    else
      local near = I.nearest(a, SELECTORS)
      usage_error(("unexpected argument '%s'%s"):format(a, near and ("; did you mean '" .. near .. "'?") or ""))
    end
    i = i + 1
  end

  if what == "pins" then
    local list, err, code = I.pins(dir)
    if not list then I.fail(("ls pins: %s"):format(err), code) end
    if json then
      for j, p in ipairs(list) do list[j] = I.ordered(p, { "path", "kind", "id", "type", "name", "prog_id", "error" }) end
      print(I.json(I.array(list), pretty))
    elseif #list > 0 then
      print(I.pins_text(list))
    end
    return
  end

  local kinds = what and { KIND_OF[what] } or { "prog", "map", "link" }
  if sel and sel[1] == "tag" then kinds = { "prog" } end
  if sel and sel[1] == "pinned" and not what then
    -- Only the kind pinned there: one object, whatever it is.
    local info, err, code = bpf.inspect.pin(sel[2])
    if not info then I.fail(("ls: can't open pin '%s': %s"):format(sel[2], err), code) end
    kinds = { info.kind }
  end
  local ctx, result, all = {}, {}, {}
  for _, k in ipairs(kinds) do
    local list, err, code = I.list(k, ctx)
    if not list then I.fail(err, code) end
    all[k] = list
    if sel then
      local keep = {}
      for _, o in ipairs(list) do
        if selected(o, sel, k) then keep[#keep + 1] = o end
      end
      list = keep
    end
    result[k] = list
  end
  if sel then
    local n = 0
    for _, k in ipairs(kinds) do n = n + #result[k] end
    if n == 0 then nothing(kinds, sel, all) end
  end
  local single = what or #kinds == 1
  if json then
    if single then
      print(I.json(I.array(result[kinds[1]]), pretty))
    else
      print(I.json(I.ordered({ progs = I.array(result.prog), maps = I.array(result.map),
        links = I.array(result.link) }, { "progs", "maps", "links" }), pretty))
    end
    return
  end
  local shown = 0
  for _, k in ipairs(kinds) do
    if not single and not (sel and #result[k] == 0) then
      io.stdout:write(shown > 0 and "\n" or "", k, "s:\n")
      shown = shown + 1
    end
    for _, o in ipairs(result[k]) do print(TEXT[k](o)) end
  end
end
