-- SPDX-License-Identifier: MIT
-- What `luabpf ls` and `luabpf dump` share: every program, map and link in the
-- kernel (bpf.inspect), joined with their pins, the processes holding them and
-- where they are attached; map entries decoded by BTF; text like bpftool's and
-- JSON with bpftool's field names, so scripts written for `bpftool -j` read it.
-- JSON is _json.lua.
local bpf = require("luabpf")
local uv = require("luv")
local J = require("luabpf._json")

local inspect = bpf.inspect
local M = {}

M.array, M.ordered, M.json = J.array, J.ordered, J.json
local valid_utf8, json_number, is_int64, ordered_keys = J.valid_utf8, J.json_number, J.is_int64, J.ordered_keys

-- ---- errors -----------------------------------------------------------------

-- The CLI's way out: ERROR line, exit 3 for missing privileges, else 1.
function M.fail(msg, code)
  io.stderr:write("ERROR: ", tostring(msg), "\n")
  if code == "EPERM" or code == "EACCES" then
    if not tostring(msg):find("lacks CAP_BPF", 1, true) then
      io.stderr:write("HINT: reading other processes' BPF objects needs root (CAP_SYS_ADMIN or CAP_BPF)\n")
    end
    os.exit(3)
  end
  os.exit(1)
end

-- ---- pins ---------------------------------------------------------------------

local BPFFS = "/sys/fs/bpf"

--- Every pin under dir (default /sys/fs/bpf), recursively, sorted by path:
-- { {path=, kind=, id=, type=, name=} or {path=, error=} }.
function M.pins(dir)
  dir = (dir or BPFFS):gsub("(.)/+$", "%1")
  local st, err, code = uv.fs_stat(dir)
  if not st then return nil, err, code end
  local list = {}
  local function walk(d)
    local req = uv.fs_scandir(d)
    if not req then return end
    local names = {}
    while true do
      local name, t = uv.fs_scandir_next(req)
      if not name then break end
      names[#names + 1] = { name, t }
    end
    table.sort(names, function(a, b) return a[1] < b[1] end)
    for _, e in ipairs(names) do
      local p = (d == "/" and "" or d) .. "/" .. e[1]
      if e[2] == "directory" then
        walk(p)
      else
        local info, ierr = inspect.pin(p)
        if info then
          list[#list + 1] = { path = p, kind = info.kind, id = info.id, type = info.type, name = info.name,
            prog_id = info.prog_id }
        else
          list[#list + 1] = { path = p, error = ierr }
        end
      end
    end
  end
  if st.type == "directory" then
    walk(dir)
  else
    local info, ierr, icode = inspect.pin(dir)
    if not info then return nil, ierr, icode end
    list[1] = { path = dir, kind = info.kind, id = info.id, type = info.type, name = info.name,
      prog_id = info.prog_id }
  end
  return list
end

-- ---- attach points ------------------------------------------------------------

-- Names for cgroup ids (the cgroup directory's inode on cgroup2) and netns inodes.
local function cgroup_paths()
  local byid, root = {}, "/sys/fs/cgroup"
  local function walk(d, depth)
    local st = uv.fs_stat(d)
    if st then byid[tostring(st.ino)] = d end
    if depth > 8 then return end
    local req = uv.fs_scandir(d)
    while req do
      local name, t = uv.fs_scandir_next(req)
      if not name then break end
      if t == "directory" then walk(d .. "/" .. name, depth + 1) end
    end
  end
  walk(root, 0)
  return byid
end

local function netns_names()
  local byino = {}
  local req = uv.fs_scandir("/run/netns")
  while req do
    local name = uv.fs_scandir_next(req)
    if not name then break end
    local st = uv.fs_stat("/run/netns/" .. name)
    if st then byino[tostring(st.ino)] = name end
  end
  local self = uv.fs_stat("/proc/self/ns/net")
  if self and not byino[tostring(self.ino)] then byino[tostring(self.ino)] = "(this netns)" end
  return byino
end

local function dev(l)
  return l.devname or ("ifindex " .. tostring(l.ifindex) .. (l.ifindex and " (another netns?)" or ""))
end

-- "xdp on veth0", "tcx_ingress on eth1", "cgroup_inet_ingress on /sys/fs/cgroup/web"...
local function describe_link(l, ctx)
  local t = l.type
  if t == "xdp" then return "xdp on " .. dev(l) end
  if t == "tcx" or t == "netkit" then return (l.attach_type or t) .. " on " .. dev(l) end
  if t == "cgroup" then
    ctx.cgroups = ctx.cgroups or cgroup_paths()
    local path = ctx.cgroups[tostring(l.cgroup_id)]
    return (l.attach_type or "cgroup") .. " on " .. (path or ("cgroup id " .. tostring(l.cgroup_id)))
  end
  if t == "netns" then
    ctx.netns = ctx.netns or netns_names()
    local name = ctx.netns[tostring(l.netns_ino)]
    return (l.attach_type or "netns") .. " in " .. (name and ("netns '" .. name .. "'") or ("netns ino " .. tostring(l.netns_ino)))
  end
  if t == "raw_tracepoint" then return "raw_tracepoint " .. tostring(l.tp_name) end
  if t == "tracing" then
    return (l.attach_type or "tracing") .. " to btf id " .. tostring(l.target_btf_id)
      .. ((l.target_obj_id or 0) ~= 0 and (" of object " .. l.target_obj_id) or "")
  end
  if t == "perf_event" then
    local what = l.tp_name or l.func or l.file
    return (l.event_type or "perf_event") .. (what and (" " .. what) or "")
      .. (l.file and l.offset and ("+0x%x"):format(l.offset) or "")
  end
  if t == "netfilter" then
    return ("netfilter pf %d hook %d prio %d"):format(l.pf or 0, l.hooknum or 0, l.prio or 0)
  end
  if t == "struct_ops" or t == "sockmap" then
    return t .. " on map " .. tostring(l.map_id) .. (l.attach_type and (" (" .. l.attach_type .. ")") or "")
  end
  return t
end

-- ---- listing -------------------------------------------------------------------

local ORDER = {
  prog = { "id", "type", "name", "tag", "gpl_compatible", "loaded_at", "uid", "bytes_xlated", "jited",
    "bytes_jited", "bytes_memlock", "map_ids", "btf_id", "run_time_ns", "run_cnt", "recursion_misses",
    "verified_insns", "pinned", "attached", "pids" },
  map = { "id", "type", "name", "flags", "bytes_key", "bytes_value", "max_entries", "bytes_memlock",
    "owner_prog_type", "owner_jited", "map_extra", "frozen", "btf_id", "btf_key_type_id",
    "btf_value_type_id", "pinned", "pids" },
  link = { "id", "type", "prog_id", "prog_name", "attach", "devname", "ifindex", "attach_type",
    "cgroup_id", "netns_ino", "tp_name", "func", "file", "target_obj_id", "target_btf_id", "pinned",
    "pids" },
}

--- Every object of kind ("prog", "map", "link") with pins, pids and attach
-- points joined in; ctx caches what kinds share (pins, holders, links).
-- Returns the list sorted by id, or nil, msg, errno.
function M.list(kind, ctx)
  ctx = ctx or {}
  local ids, err, code = inspect.ids(kind)
  if not ids then return nil, err, code end
  if not ctx.pins then
    ctx.pins = {}
    for _, p in ipairs(M.pins() or {}) do
      if p.kind then
        local key = p.kind .. ":" .. p.id
        ctx.pins[key] = ctx.pins[key] or M.array()
        table.insert(ctx.pins[key], p.path)
      end
    end
  end
  ctx.holders = ctx.holders or inspect.holders()
  local list = {}
  for _, id in ipairs(ids) do
    local info, ierr, icode = inspect.info(kind, id)
    if info then
      info.kind = nil
      info.pinned = ctx.pins[kind .. ":" .. id]
      local h = ctx.holders[kind][id]
      if h then
        for i, p in ipairs(h) do h[i] = M.ordered(p, { "pid", "comm" }) end
        info.pids = M.array(h)
      end
      if info.map_ids then M.array(info.map_ids) end
      list[#list + 1] = M.ordered(info, ORDER[kind])
    elseif icode ~= "ENOENT" then -- ENOENT: gone since we listed it
      return nil, ierr, icode
    end
  end
  if kind == "link" then
    ctx.links = list
    for _, l in ipairs(list) do
      local p = inspect.info("prog", l.prog_id)
      l.prog_name = p and p.name or nil
      l.attach = describe_link(l, ctx)
    end
  elseif kind == "prog" then
    if not ctx.links then
      local links = M.list("link", ctx)
      ctx.links = links or {}
    end
    local byprog = {}
    local function add(id, text)
      byprog[id] = byprog[id] or M.array()
      table.insert(byprog[id], text)
    end
    for _, l in ipairs(ctx.links) do add(l.prog_id, l.attach .. " (link " .. l.id .. ")") end
    local linked = {}
    for _, l in ipairs(ctx.links) do
      if l.type == "xdp" and l.devname then linked[l.devname .. ":" .. l.prog_id] = true end
    end
    for _, x in ipairs(inspect.xdp()) do
      if not linked[x.devname .. ":" .. x.prog_id] then
        add(x.prog_id, "xdp on " .. x.devname .. " (" .. x.mode .. ", netlink)")
      end
    end
    for _, p in ipairs(list) do p.attached = byprog[p.id] end
  end
  return list
end

-- ---- text like bpftool's -------------------------------------------------------

local function pids_text(pids)
  local t = {}
  for _, p in ipairs(pids) do t[#t + 1] = ("%s(%d)"):format(p.comm, p.pid) end
  return table.concat(t, ", ")
end

local function common_tail(out, o)
  for _, p in ipairs(o.pinned or {}) do out[#out + 1] = "\tpinned " .. p end
  if o.pids then out[#out + 1] = "\tpids " .. pids_text(o.pids) end
end

function M.prog_text(p)
  local out = {}
  out[1] = ("%d: %s  name %s  tag %s%s"):format(p.id, p.type, p.name, p.tag, p.gpl_compatible and "  gpl" or "")
  if p.run_time_ns then out[1] = out[1] .. ("  run_time_ns %s run_cnt %s"):format(p.run_time_ns, p.run_cnt) end
  out[#out + 1] = ("\tloaded_at %s  uid %d"):format(os.date("%Y-%m-%dT%H:%M:%S%z", p.loaded_at), p.uid)
  local l3 = ("\txlated %dB  %s  memlock %sB"):format(p.bytes_xlated,
    p.jited and ("jited %dB"):format(p.bytes_jited) or "not jited", tostring(p.bytes_memlock or "?"))
  if #p.map_ids > 0 then l3 = l3 .. "  map_ids " .. table.concat(p.map_ids, ",") end
  out[#out + 1] = l3
  if p.btf_id then out[#out + 1] = "\tbtf_id " .. p.btf_id end
  for _, a in ipairs(p.attached or {}) do out[#out + 1] = "\tattached " .. a end
  common_tail(out, p)
  return table.concat(out, "\n")
end

function M.map_text(m)
  local out = {}
  out[1] = ("%d: %s  name %s  flags 0x%x"):format(m.id, m.type, m.name, m.flags)
  out[2] = ("\tkey %dB  value %dB  max_entries %d  memlock %sB"):format(m.bytes_key, m.bytes_value,
    m.max_entries, tostring(m.bytes_memlock or "?"))
  if m.owner_prog_type then
    out[#out + 1] = ("\towner_prog_type %s  owner%s jited"):format(m.owner_prog_type, m.owner_jited and "" or " not")
  end
  if m.map_extra then out[#out + 1] = "\tmap_extra " .. tostring(m.map_extra) end
  if m.frozen ~= 0 then out[#out + 1] = "\tfrozen" end
  if m.btf_id then out[#out + 1] = "\tbtf_id " .. m.btf_id end
  common_tail(out, m)
  return table.concat(out, "\n")
end

function M.link_text(l)
  local out = {}
  out[1] = ("%d: %s  prog %d%s"):format(l.id, l.type, l.prog_id, l.prog_name and (" (" .. l.prog_name .. ")") or "")
  out[2] = "\t" .. l.attach
  common_tail(out, l)
  return table.concat(out, "\n")
end

function M.pins_text(list)
  local w = 0
  for _, p in ipairs(list) do w = math.max(w, #p.path) end
  local out = {}
  for _, p in ipairs(list) do
    if p.kind then
      local name = p.name or (p.prog_id and ("prog " .. p.prog_id)) or ""
      out[#out + 1] = ("%-" .. w .. "s  %-4s %-6d %-16s %s"):format(p.path, p.kind, p.id, p.type, name)
    else
      out[#out + 1] = ("%-" .. w .. "s  ?    %s"):format(p.path, p.error)
    end
  end
  return table.concat(out, "\n")
end

-- ---- finding a map ---------------------------------------------------------------

local BPF_OBJ_NAME_LEN = 16
M.NAME_MAX = BPF_OBJ_NAME_LEN - 1 -- what the kernel keeps of a name

-- Edit distance (insert, delete, substitute, swap two neighbours).
local function distance(a, b)
  local d = {}
  for i = 0, #a do d[i] = { [0] = i } end
  for j = 0, #b do d[0][j] = j end
  for i = 1, #a do
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      local v = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        v = math.min(v, d[i - 2][j - 2] + 1)
      end
      d[i][j] = v
    end
  end
  return d[#a][#b]
end

--- The candidate nearest to word for a "did you mean" (nil if none is near:
-- at most a third of the word's letters off, at least one), ties by order.
function M.nearest(word, candidates)
  local best, bestd
  local limit = math.max(1, math.floor(#word / 3))
  for _, c in ipairs(candidates) do
    if c ~= word then
      local dd = distance(word, c)
      if c:sub(1, #word) == word then dd = math.min(dd, 1) end -- a prefix is near
      if dd <= limit and (not bestd or dd < bestd) then best, bestd = c, dd end
    end
  end
  return best
end

--- The map that spec names: an id ("42"), a pin path (has a '/'), or a name
-- (unique among loaded maps). kind_hint: "id", "name" or "pinned" (bpftool's words).
-- Returns its info (with .pinned for a path), or nil, msg, errno.
function M.find_map(spec, kind_hint)
  if kind_hint == "id" or (not kind_hint and spec:match("^%d+$")) then
    local id = tonumber(spec)
    if not id or id < 1 or id ~= math.floor(id) or id > 4294967295 then
      return nil, ("'%s' is not a map id (a positive integer)"):format(spec), "EINVAL"
    end
    return inspect.info("map", id)
  end
  if kind_hint == "pinned" or (not kind_hint and spec:find("/", 1, true)) then
    local info, err, code = inspect.pin(spec)
    if not info then return nil, err, code end
    if info.kind ~= "map" then
      return nil, ("'%s' is a pinned %s (id %d, '%s'), not a map"):format(spec,
        info.kind == "prog" and "program" or info.kind, info.id, info.name or info.type), "EINVAL"
    end
    info.pinned = spec
    return info
  end
  local ids, err, code = inspect.ids("map")
  if not ids then return nil, err, code end
  -- The kernel keeps 15 characters of a name: compare what it kept.
  local want = spec:sub(1, BPF_OBJ_NAME_LEN - 1)
  local found = {}
  for _, id in ipairs(ids) do
    local info = inspect.info("map", id)
    if info and info.name == want then found[#found + 1] = info end
  end
  if #found == 1 then return found[1] end
  if #found == 0 then
    local names = {}
    for _, id in ipairs(ids) do
      local info = inspect.info("map", id)
      if info then names[#names + 1] = info.name end
    end
    table.sort(names)
    local near = M.nearest(want, names)
    return nil, ("no loaded map is named '%s'%s"):format(spec,
      near and ("; did you mean '" .. near .. "'?") or " (see luabpf ls maps)"), "ENOENT"
  end
  local desc = {}
  for _, m in ipairs(found) do desc[#desc + 1] = ("%d (%s)"):format(m.id, m.type) end
  return nil, ("%d maps are named '%s': ids %s; give an id or a pin path"):format(#found, spec,
    table.concat(desc, ", ")), "EEXIST"
end

-- ---- decoded values ------------------------------------------------------------

local function printable(s)
  return valid_utf8(s) and not s:find("[%z\1-\8\11\12\14-\31\127]")
end

local function hex(s)
  return "0x" .. s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)
end

--- A decoded value shaped for output: fields in BTF order, enum names,
-- unprintable bytes as hex. layout comes from bpf.inspect.layout().
function M.shape(v, layout)
  local tv = type(v)
  if tv == "string" then return printable(v) and v or hex(v) end
  if layout and layout.enum and (tv == "number" or is_int64(v)) then
    return layout.enum[tonumber(v)] or v
  end
  if tv ~= "table" then return v end
  if layout and layout.fields then
    local t = {}
    for k, x in pairs(v) do t[k] = M.shape(x, layout.sub[k]) end
    return M.ordered(t, layout.fields)
  end
  local elem = layout and layout.elem
  if #v > 0 or next(v) == nil then
    local t = M.array()
    for i, x in ipairs(v) do t[i] = M.shape(x, elem) end
    return t
  end
  local t = {}
  for k, x in pairs(v) do t[k] = M.shape(x, nil) end
  return t
end

local idents = "^[%a_][%w_]*$"

-- Lua-like text of a shaped value on one line.
local function inline(v)
  local tv = type(v)
  if tv == "string" then return (v:match("^0x%x+$") and v) or string.format("%q", v):gsub("\\\n", "\\n") end
  if tv == "number" or is_int64(v) then return json_number(v) end
  if tv ~= "table" then return tostring(v) end
  local mt = getmetatable(v) or {}
  local parts = {}
  if mt.__json == "array" then
    for i = 1, #v do parts[i] = inline(v[i]) end
  else
    for _, k in ipairs(ordered_keys(v, mt)) do
      local ks = type(k) == "string" and k:match(idents) and k or ("[" .. inline(k) .. "]")
      parts[#parts + 1] = ks .. " = " .. inline(v[k])
    end
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end
M.inline = inline

-- Multi-line when one line would be too long: one field per line, nested inline when short.
local WIDTH = 100
local function pretty(v, indent)
  local s = inline(v)
  if #s + #indent <= WIDTH or type(v) ~= "table" then return s end
  local mt = getmetatable(v) or {}
  local lines = {}
  local inner = indent .. "  "
  if mt.__json == "array" then
    for i = 1, #v do lines[#lines + 1] = inner .. pretty(v[i], inner) end
  else
    local keys = ordered_keys(v, mt)
    for _, k in ipairs(keys) do
      local ks = type(k) == "string" and k:match(idents) and k or ("[" .. inline(k) .. "]")
      lines[#lines + 1] = inner .. ks .. " = " .. pretty(v[k], inner)
    end
  end
  return "{\n" .. table.concat(lines, ",\n") .. "\n" .. indent .. "}"
end
M.pretty = pretty

local NO_ENTRIES = {
  ringbuf = "read it with bpf.ringbuf()",
  user_ringbuf = "it is written by user space",
  perf_event_array = "read it with bpf.perfbuf()",
  queue = "its values have no keys: bpf.map_from_id(ID):peek() reads the head",
  stack = "its values have no keys: bpf.map_from_id(ID):peek() reads the top",
  bloom_filter = "a bloom filter can only be asked whether it holds a value",
}

--- Dump the map described by info (from find_map) to out (a function taking
-- a string). json: a JSON array like bpftool's "formatted" output (pretty:
-- indented). Returns
-- the number of entries, or nil, msg, errno.
--- nil when the map has entries to dump, else why not (and an errno name).
function M.undumpable(info)
  local why = NO_ENTRIES[info.type]
  if why then
    return ("map %d '%s' is a %s: it has no entries to dump (%s)"):format(info.id, info.name,
      info.type, why), "EOPNOTSUPP"
  end
end

-- Raw keys and values beside the decoded ones, for bpftool's "key"/"value"
-- byte arrays: libbpf's calls through the FFI on the map's fd, in step with
-- m:pairs() (both walk bpf_map_get_next_key from the same previous key).
local ffi = require("ffi")
pcall(ffi.cdef, [[
int bpf_map_get_next_key(int fd, const void *key, void *next_key);
int bpf_map_lookup_elem(int fd, const void *key, void *value);
int libbpf_num_possible_cpus(void);
]])

local function hex_bytes(p, n)
  local t = M.array()
  for i = 0, n - 1 do t[i + 1] = ("0x%02x"):format(p[i]) end
  return t
end

local function raw_walker(m, info, percpu)
  local fd = m:fd()
  local ks, vs = info.bytes_key, info.bytes_value
  local ncpu = percpu and ffi.C.libbpf_num_possible_cpus() or 1
  local stride = percpu and math.floor((vs + 7) / 8) * 8 or vs
  local prev, cur = ffi.new("uint8_t[?]", ks), ffi.new("uint8_t[?]", ks)
  local val = ffi.new("uint8_t[?]", stride * ncpu)
  local first = true
  return function()
    if ffi.C.bpf_map_get_next_key(fd, not first and prev or nil, cur) ~= 0 then return nil end
    first = false
    ffi.copy(prev, cur, ks)
    local key = hex_bytes(cur, ks)
    if ffi.C.bpf_map_lookup_elem(fd, cur, val) ~= 0 then return key, nil end
    if not percpu then return key, hex_bytes(val, vs) end
    local values = M.array()
    for c = 0, ncpu - 1 do
      values[c + 1] = M.ordered({ cpu = c, value = hex_bytes(val + c * stride, vs) }, { "cpu", "value" })
    end
    return key, values
  end
end

function M.dump(info, json, out, pretty_json)
  local why, wcode = M.undumpable(info)
  if why then return nil, why, wcode end
  local m, err, code
  if info.pinned and type(info.pinned) == "string" then
    m, err, code = bpf.map_from_pin(info.pinned)
  else
    m, err, code = bpf.map_from_id(info.id)
  end
  if not m then return nil, err, code end
  local klay, vlay
  if info.btf_id then
    klay = info.btf_key_type_id ~= 0 and inspect.layout(info.btf_id, info.btf_key_type_id) or nil
    vlay = info.btf_value_type_id ~= 0 and inspect.layout(info.btf_id, info.btf_value_type_id) or nil
  end
  local percpu = info.type:find("percpu", 1, true) ~= nil
  local raw = json and raw_walker(m, info, percpu)
  local n = 0
  if json then out("[") end
  local ok, perr = pcall(function()
    for k, v in m:pairs() do
      n = n + 1
      local key = M.shape(k, klay)
      local entry
      if percpu then
        local values = M.array()
        for cpu, x in ipairs(v) do
          values[cpu] = M.ordered({ cpu = cpu - 1, value = M.shape(x, vlay) }, { "cpu", "value" })
        end
        local sok, sum = pcall(bpf.sum, v)
        entry = M.ordered({ key = key, values = values, sum = sok and M.shape(sum, vlay) or nil },
          { "key", "values", "sum" })
      else
        entry = M.ordered({ key = key, value = M.shape(v, vlay) }, { "key", "value" })
      end
      if json then
        -- bpftool -j map dump: bytes as "0x.." strings, the decoded entry in "formatted".
        local rk, rv = raw()
        local top = percpu and M.ordered({ key = rk, values = rv, formatted = entry }, { "key", "values", "formatted" })
          or M.ordered({ key = rk, value = rv, formatted = entry }, { "key", "value", "formatted" })
        out((n > 1 and ",\n" or "\n") .. M.json(top, pretty_json))
      elseif percpu then
        local lines = { inline(key) .. (entry.sum and (" => sum " .. pretty(entry.sum, "")) or " =>") }
        for _, c in ipairs(entry.values) do
          lines[#lines + 1] = ("  cpu%d %s"):format(c.cpu, pretty(c.value, "  "))
        end
        out(table.concat(lines, "\n") .. "\n")
      else
        out(inline(key) .. " => " .. pretty(entry.value, "") .. "\n")
      end
    end
  end)
  m:close()
  if json then out(n > 0 and "\n]\n" or "]\n") end
  if not ok then
    return nil, ("map %d '%s': %s"):format(info.id, info.name, tostring(perr):gsub("^[^:]*:%d+: ", "")), "EIO"
  end
  return n
end

return M
