-- SPDX-License-Identifier: MIT
-- Configuration files of the shipped services, read and validated without
-- touching the kernel: what `luabpf check` (haproxy -c, keepalived -t) and a
-- service's SIGHUP reload use to refuse a bad file with its file:line.
--
--   local config = require("luabpf.config")
--   local r = config.check("/etc/luabpf/web.conf.lua")     -- kind guessed
--   for _, e in ipairs(r.errors) do print(e.where, e.msg) end  -- "file:12", "..."
--   local cfg, err = config.load("/etc/luabpf/web.conf.lua", "lb")  -- cfg or nil, "file:12: ..."
--
-- A config is Lua: it sets globals (or returns a table). Errors in the Lua
-- itself carry their line from Lua; for a wrong value (a port of 70000, a
-- typo in an option's name) the line is found in the source text: the file's
-- table constructors are scanned, and the error's place (VIP 2, backend 3,
-- field port) is looked up there.
local M = {}

local lb = require("luabpf.lb")
local addr = require("luabpf._addr")
local maglev = require("luabpf.lb.maglev")

---------------------------------------------------------------------------
-- Where things are in the source: a small Lua lexer and a map of the table
-- constructors, by path ({"vips", 2, "backends", 1, "port"}) to line.

local function lex(src)
  local toks, i, line, n = {}, 1, 1, #src
  local function push(t, v, l) toks[#toks + 1] = { t = t, v = v, line = l } end
  while i <= n do
    local c = src:sub(i, i)
    if c == "\n" then
      line, i = line + 1, i + 1
    elseif c:match("%s") then
      i = i + 1
    elseif src:match("^%-%-", i) then
      local lvl = src:match("^%-%-%[(=*)%[", i)
      local stop
      if lvl then
        stop = select(2, src:find("]" .. lvl .. "]", i, true)) or n
      else
        stop = (src:find("\n", i, true) or n + 1) - 1
      end
      for _ in src:sub(i, stop):gmatch("\n") do line = line + 1 end
      i = stop + 1
    elseif c == "[" and src:match("^%[=*%[", i) then
      local lvl = src:match("^%[(=*)%[", i)
      local stop = select(2, src:find("]" .. lvl .. "]", i, true)) or n
      local body = src:sub(i + #lvl + 2, stop - #lvl - 2)
      push("string", body, line)
      for _ in src:sub(i, stop):gmatch("\n") do line = line + 1 end
      i = stop + 1
    elseif c == '"' or c == "'" then
      local j, buf = i + 1, {}
      while j <= n do
        local d = src:sub(j, j)
        if d == "\\" then
          buf[#buf + 1] = src:sub(j, j + 1)
          j = j + 2
        elseif d == c or d == "\n" then
          break
        else
          buf[#buf + 1] = d
          j = j + 1
        end
      end
      push("string", table.concat(buf), line)
      i = j + 1
    elseif src:match("^%d", i) or src:match("^%.%d", i) then
      local num = src:match("^0[xX][%x%.]+[pP]?[%-+]?%x*", i) or src:match("^[%d%.]+[eE][%-+]?%d+", i)
        or src:match("^[%d%.]+", i)
      push("number", num, line)
      i = i + #num
    elseif src:match("^[%a_]", i) then
      local word = src:match("^[%w_]+", i)
      push("name", word, line)
      i = i + #word
    else
      local op = src:match("^%.%.%.", i) or src:match("^[=~<>]=", i) or src:match("^%.%.", i)
        or src:match("^::", i) or c
      push("op", op, line)
      i = i + #op
    end
  end
  push("eof", nil, line)
  return toks
end

-- A table constructor: { line, keys = {name -> field}, items = {i -> field},
-- order = {field...} }; a field: { key, line, value (literal text), tbl }.
local parse_table

-- Skip an expression (a field's value or an assignment's right side) up to
-- a ',' ';' or closing bracket of the level it started at.
local function skip_expr(toks, i, stop_at_name)
  local depth = 0
  while toks[i].t ~= "eof" do
    local t = toks[i]
    if t.t == "op" and (t.v == "(" or t.v == "{" or t.v == "[") then
      depth = depth + 1
    elseif t.t == "op" and (t.v == ")" or t.v == "}" or t.v == "]") then
      if depth == 0 then return i end
      depth = depth - 1
    elseif depth == 0 and t.t == "op" and (t.v == "," or t.v == ";") then
      return i
    elseif depth == 0 and stop_at_name and t.t == "name" and toks[i - 1].t ~= "op" then
      -- A statement ends where a name follows a value: `a = 1 b = 2`.
      return i
    end
    i = i + 1
  end
  return i
end

-- A value: a constructor (parsed) or anything else (skipped). Returns the
-- field's value text (a literal's), its table node, and the next index.
local function parse_value(toks, i, stmt)
  local t = toks[i]
  if t.t == "op" and t.v == "{" then
    local node, j = parse_table(toks, i)
    return nil, node, j
  end
  local text = (t.t == "string" or t.t == "number" or t.t == "name") and t.v or nil
  if t.t == "op" and t.v == "-" and toks[i + 1].t == "number" then text = "-" .. toks[i + 1].v end
  return text, nil, skip_expr(toks, i + 1, stmt)
end

parse_table = function(toks, i)
  local node = { line = toks[i].line, keys = {}, items = {}, order = {} }
  i = i + 1
  local pos = 0
  while toks[i].t ~= "eof" do
    local t = toks[i]
    if t.t == "op" and t.v == "}" then return node, i + 1 end
    if t.t == "op" and (t.v == "," or t.v == ";") then
      i = i + 1
    else
      local key, line = nil, t.line
      if t.t == "name" and toks[i + 1].t == "op" and toks[i + 1].v == "=" then
        key, i = t.v, i + 2
      elseif t.t == "op" and t.v == "[" and toks[i + 2].t == "op" and toks[i + 2].v == "]"
        and toks[i + 3].v == "=" then
        key = toks[i + 1].t == "number" and tonumber(toks[i + 1].v) or toks[i + 1].v
        i = i + 4
      else
        pos = pos + 1
        key = pos
      end
      local text, sub, j = parse_value(toks, i, false)
      local f = { key = key, line = line, value = text, tbl = sub }
      if type(key) == "number" then node.items[key] = f else node.keys[key] = f end
      node.order[#node.order + 1] = f
      i = j
    end
  end
  return node, i
end

--- Map the configuration source: a locator with :find(path, msg) -> line.
function M.locator(src)
  local ok, toks = pcall(lex, src)
  local root = { keys = {}, items = {}, order = {}, line = 1 }
  if not ok then return setmetatable({ root = root }, { __index = M.Locator }) end
  local i, depth = 1, 0
  while toks[i].t ~= "eof" do
    local t = toks[i]
    if t.t == "op" and (t.v == "(" or t.v == "[" or t.v == "{") then
      depth = depth + 1
      i = i + 1
    elseif t.t == "op" and (t.v == ")" or t.v == "]" or t.v == "}") then
      depth = depth - 1
      i = i + 1
    elseif depth == 0 and t.t == "name" and t.v == "return" and toks[i + 1].v == "{" then
      root.ret = (parse_table(toks, i + 1))
      break
    elseif depth == 0 and t.t == "name" and toks[i + 1].t == "op" and toks[i + 1].v == "="
      and not (toks[i - 1] and toks[i - 1].t == "op" and toks[i - 1].v == ".")
      and not (toks[i - 1] and toks[i - 1].v == "local") then
      local text, sub, j = parse_value(toks, i + 2, true)
      local f = { key = t.v, line = t.line, value = text, tbl = sub }
      root.keys[t.v] = f
      root.order[#root.order + 1] = f
      i = j
    else
      i = i + 1
    end
  end
  return setmetatable({ root = root.ret or root }, { __index = M.Locator })
end

M.Locator = {}

local function word_in(msg, w)
  return msg:find("%f[%w_]" .. w:gsub("%p", "%%%0") .. "%f[^%w_]") ~= nil
end

--- The line for path (a list of keys and indexes) and the error's message:
-- the deepest table found, then the field the message names (an unknown
-- option, a quoted value, a field's name). nil when the path is not literal.
function M.Locator:find(path, msg)
  local node, line = self.root, nil
  for _, k in ipairs(path) do
    local f = node and (type(k) == "number" and node.items[k] or node.keys[k])
    -- Not in the source (missing, or built by code): the deepest line found.
    if not f then return line end
    line = f.line
    node = f.tbl
    if not node then return line end
  end
  if not node or not msg then return line end
  msg = tostring(msg)
  local unknown = msg:match("unknown option '([^']+)'") or msg:match("unknown setting '([^']+)'")
  if unknown and node.keys[unknown] then return node.keys[unknown].line end
  for _, f in ipairs(node.order) do
    if f.value and type(f.key) == "string" and #f.value > 0
      and (msg:find("'" .. f.value .. "'", 1, true) or word_in(msg, "got " .. f.value)) then
      return f.line
    end
  end
  local best, at
  for _, f in ipairs(node.order) do
    if type(f.key) == "string" then
      local s = msg:find("%f[%w_]" .. f.key .. "%f[^%w_]")
      if s and (not at or s < at) then best, at = f, s end
    end
  end
  return best and best.line or line or node.line
end

---------------------------------------------------------------------------
-- Reading a config: Lua in its own environment, bounded. A config is data
-- written as Lua: it gets the language and its pure libraries, not `bpf`,
-- `io`, `os` (but os.getenv), `require` or `debug`, so checking one can't
-- touch the kernel or the files, and a loop in it is an error, not a hang
-- (systemd's reload runs `luabpf check` first).

-- What a config may use. os.getenv stays: a unit's Environment= may choose
-- an interface or an address; it reads, it changes nothing.
local SAFE = {
  "assert", "error", "ipairs", "next", "pairs", "pcall", "print", "rawequal", "rawget", "rawlen",
  "rawset", "select", "setmetatable", "getmetatable", "tonumber", "tostring", "type", "unpack",
  "xpcall", "_VERSION",
}
local SAFE_LIBS = { "string", "table", "math", "bit" }
local SAFE_OS = { getenv = true, time = true, date = true, clock = true }
-- Names a script has and a config has not: using one is an error naming it
-- (nil would surface later as "attempt to call a nil value").
local REFUSED = {
  io = true, require = true, bpf = true, debug = true, package = true, jit = true, ffi = true,
  load = true, loadstring = true, loadfile = true, dofile = true, module = true,
  setfenv = true, getfenv = true, collectgarbage = true, newproxy = true, coroutine = true,
}
M.MAX_STRING = 16 * 1024 * 1024 -- string.rep's largest result in a config

local function refused(what, level)
  error(("a config can't use %s: it is data, read without touching the system (only "
    .. "os.getenv, os.time, os.date and os.clock are there); do that in the script"):format(what), level + 1)
end

local function sandbox()
  local g = {}
  for _, k in ipairs(SAFE) do g[k] = rawget(_G, k) end
  for _, k in ipairs(SAFE_LIBS) do
    local lib = rawget(_G, k)
    if lib then
      local copy = {}
      for n, f in pairs(lib) do copy[n] = f end
      g[k] = copy
    end
  end
  g.string.dump = nil
  -- LuaJIT runs no hook in xpcall's message handler, so a looping handler
  -- would escape the budget: the handler runs after the pcall instead.
  g.xpcall = function(f, handler, ...)
    local r = { pcall(f, ...) }
    if r[1] then return unpack(r, 1, table.maxn(r)) end
    return false, handler(r[2])
  end
  -- A few bytes repeated into gigabytes would take the checker's memory
  -- and seconds in one C call the instruction budget can't see.
  local rep = string.rep
  g.string.rep = function(s, n, sep)
    local len = #tostring(s) + (sep and #tostring(sep) or 0)
    if type(n) == "number" and n * len > M.MAX_STRING then
      error(("string.rep: %d x %d bytes is more than a config may build (%d bytes)"):format(n, len,
        M.MAX_STRING), 2)
    end
    return rep(s, n, sep)
  end
  g.os = setmetatable({}, { __index = function(_, k)
    if SAFE_OS[k] then return os[k] end
    refused("os." .. tostring(k), 2)
  end })
  g._G = g
  return setmetatable(g, { __index = function(_, k)
    if REFUSED[k] then refused(k, 2) end
  end })
end

--- The instruction budget of one config's evaluation (about a second of
-- interpreted Lua here); a config that runs longer is refused as a loop.
M.BUDGET = 2e8
local STEP = 1e5 -- instructions between two looks at the budget

-- Run chunk under the budget: true, ret; or false, message. The chunk runs
-- interpreted (jit.off: compiled code never calls a count hook), and once
-- the budget is spent the hook raises at every step, so a pcall in the
-- config that catches the first error can't keep it running.
local function bounded(chunk, path)
  if jit then jit.off(chunk, true) end
  local budget = math.max(1, math.floor(M.BUDGET / STEP))
  local steps, at = 0, nil
  local ohook, omask, ocount = debug.gethook()
  local msg = ("the config did not finish within %d Lua instructions (about a second): a loop? "
    .. "A config only builds tables"):format(M.BUDGET)
  local function hook()
    steps = steps + 1
    if steps >= budget then
      local i = debug.getinfo(2, "Sl")
      local ours = i and i.source == "@" .. path
      if at and not ours then return end -- only the config's own code stops
      if not at then
        at = ours and i.currentline and i.currentline > 0 and i.currentline or 0
        -- From now on every instruction raises: a pcall around the loop
        -- that caught this error can't run one more.
        debug.sethook(hook, "", 1)
      end
      error(msg, 0)
    end
  end
  debug.sethook(hook, "", STEP)
  local ok, ret = pcall(chunk)
  debug.sethook(ohook, omask or "", ocount or 0)
  if at then return false, at > 0 and ("%s:%d: %s"):format(path, at, msg) or msg end
  return ok, ret
end

-- Returns the config table and the globals it set, or nil and "file:line: msg".
local function run(path)
  local f, oerr = io.open(path, "r")
  if not f then return nil, oerr end
  local src = f:read("*a")
  f:close()
  local chunk, err = loadstring(src, "@" .. path)
  if not chunk then return nil, err, src end
  local env = setmetatable({}, { __index = sandbox() })
  setfenv(chunk, env)
  local ok, ret = bounded(chunk, path)
  if not ok then return nil, tostring(ret), src end
  return type(ret) == "table" and ret or env, nil, src
end

---------------------------------------------------------------------------
-- Kinds of configuration.

local LB_KEYS = {
  service = true, interface = true, netns = true, xdp_mode = true, pin = true, ring_size = true,
  max_vips = true, max_backends = true, flows = true, flow_sample = true, drop_sample = true, vips = true,
  flow_table = true, ct_mark = true, ct_fastpath = true, ct_sync = true, metrics = true, bgp = true,
}
local FILTER_KEYS = {
  default = true, allow = true, deny = true, rate_limit = true, protect = true, auto_ban = true,
  sample = true, window = true, syn_threshold = true, metrics = true,
}

-- `metrics = "127.0.0.1:9435"` (both kinds): where the service serves them.
local function check_metrics(c, rep)
  if c.metrics == nil or c.metrics == false then return end
  local ok, e = require("luabpf.metrics").listen(c.metrics)
  if not ok then rep:error({ "metrics" }, e) end
end

-- Strip a "file:line: " position that points into our own library.
local function clean(msg)
  msg = tostring(msg)
  return (msg:gsub("^[^\n:]*/luabpf/[%w_/]+%.lua:%d+: ", ""))
end

local shallow = require("luabpf._util").copy

-- One VIP through lb.lua's own normalization (lb.Service._norm_vip): the
-- same rules the running service applies. NAT without snat would ask the
-- interface for its address: a placeholder stands in, the kernel is not asked.
local function norm_vip(o)
  if type(o) == "table" and o.snat == nil and (o.mode == nil or o.mode == "nat") then
    local okv, a = pcall(addr.check, "vip addr", o.addr)
    if okv then
      o = shallow(o)
      o.snat = addr.is_v4(a) and "192.0.2.1" or "2001:db8::1"
    end
  elseif type(o) == "table" and o.encap_src == nil and (o.mode == "ipip" or o.mode == "gue") then
    -- The tunnels' source defaults to the interface's address in the backends' family.
    local first = type(o.backends) == "table" and type(o.backends[1]) == "table" and o.backends[1].addr
    local okv, a = pcall(addr.check, "addr", first or o.addr)
    if okv then
      o = shallow(o)
      o.encap_src = addr.is_v4(a) and "192.0.2.1" or "2001:db8::1"
    end
  end
  return pcall(lb.Service._norm_vip, { interface = "-" }, o, 1)
end

local function check_lb(c, rep)
  local function err(path, msg) rep:error(path, clean(msg)) end
  for k in pairs(c) do
    if not LB_KEYS[k] and type(c[k]) ~= "function" then
      rep:warn({ k }, ("unknown setting '%s' (lb.lua ignores it; settings: %s)"):format(tostring(k),
        "service, interface, xdp_mode, vips, netns, pin, flows, max_vips, max_backends, ring_size, flow_sample, drop_sample, flow_table, ct_mark, ct_fastpath, ct_sync, metrics, bgp"))
    end
  end
  check_metrics(c, rep)
  if type(c.interface) ~= "string" then
    err({ "interface" }, "'interface' is required (the interface XDP attaches to)")
  end
  local svc = c.service or "lb"
  if type(svc) ~= "string" or not svc:match("^[%w_-]+$") then
    err({ "service" }, ("service must be a word of letters, digits, '_' and '-' (it names the pin directory), got %s")
      :format(tostring(c.service)))
  end
  if c.xdp_mode ~= nil and c.xdp_mode ~= "auto" and c.xdp_mode ~= "native" and c.xdp_mode ~= "generic" then
    err({ "xdp_mode" }, ("xdp_mode must be auto, native or generic, got %s"):format(tostring(c.xdp_mode)))
  end
  for _, k in ipairs({ "max_vips", "max_backends", "flows", "ring_size", "flow_sample", "drop_sample" }) do
    local v = c[k]
    if v ~= nil and (type(v) ~= "number" or v < 0 or v % 1 ~= 0) then
      err({ k }, ("%s must be a whole number, got %s"):format(k, tostring(v)))
    end
  end
  if type(c.ring_size) == "number" and not maglev.is_prime(c.ring_size) then
    err({ "ring_size" }, ("ring_size %d is not prime (65537 is)"):format(c.ring_size))
  end
  if type(c.vips) ~= "table" then
    err({ "vips" }, "'vips' is required (a list)")
    return
  end
  local names, services, nb = {}, {}, 0
  for i, o in ipairs(c.vips) do
    local ok, n = norm_vip(o)
    local vname = type(o) == "table" and o.name and ("vip '%s': "):format(tostring(o.name)) or ""
    local function verr(path, msg)
      msg = clean(msg)
      err(path, (vname == "" or msg:find(vname:sub(1, -3), 1, true)) and msg or vname .. msg)
    end
    if not ok then
      -- Narrow the error down: the VIP's own fields, each backend (all of
      -- them, not only the first bad one), a duplicate, its sorry server.
      local found = false
      if type(o) == "table" and type(o.backends) == "table" then
        local bare = shallow(o)
        bare.backends, bare.sorry = {}, nil
        if norm_vip(bare) then
          local seen = {}
          for j, b in ipairs(o.backends) do
            bare.backends = { b }
            local bok, berr = norm_vip(bare)
            if not bok then
              verr({ "vips", i, "backends", j }, berr)
              found = true
            elseif type(b) == "table" then
              local at = tostring(b.addr) .. ":" .. tostring(b.port or o.port)
              if (b.name and seen[b.name]) or seen[at] then
                verr({ "vips", i, "backends", j }, n)
                found = true
              end
              if b.name then seen[b.name] = true end
              seen[at] = true
            end
          end
          if not found then
            verr({ "vips", i, "sorry" }, n)
            found = true
          end
        end
      end
      if not found then verr({ "vips", i }, n) end
      if type(o) == "table" and o.name ~= nil then
        if names[o.name] then verr({ "vips", i, "name" }, ("VIP '%s' is declared twice"):format(tostring(o.name))) end
        names[o.name] = true
      end
    else
      nb = nb + #n.backends
      local key = addr.mapped(n.addr) .. "|" .. n.port .. "|" .. n.proto
      if names[n.name] then
        err({ "vips", i, "name" }, ("VIP '%s' is declared twice"):format(n.name))
      elseif services[key] then
        err({ "vips", i }, ("VIPs '%s' and '%s' are both %s:%d/%s"):format(services[key], n.name, n.addr,
          n.port, n.proto == 17 and "udp" or "tcp"))
      end
      names[n.name], services[key] = true, n.name
    end
  end
  local maxb, all = c.max_backends or 1024, 0
  for _, o in ipairs(c.vips) do
    if type(o) == "table" then
      all = all + (type(o.backends) == "table" and #o.backends or 0) + (o.sorry and 1 or 0)
    end
  end
  if type(maxb) == "number" and all > maxb then
    err({ "max_backends" }, ("%d backends, but max_backends is %d (each declared backend and sorry server "
      .. "takes a slot)"):format(all, maxb))
  end
  -- bgp: lb/_bgp.lua's own rules; a VIP it names must be declared.
  if c.bgp ~= nil then
    local b, berr = require("luabpf.lb._bgp").check(c.bgp)
    if not b then
      local f = berr:match("^bgp: (%w+) must") or berr:match("unknown setting '([^']+)'") or berr:match("^bgp: (protocol)%[")
      err((f and type(c.bgp) == "table" and c.bgp[f] ~= nil) and { "bgp", f } or { "bgp" }, berr)
    elseif type(b.protocol) == "table" then
      for vip in pairs(b.protocol) do
        if not names[vip] then
          err({ "bgp", "protocol" }, ("bgp: protocol names VIP '%s', which the config does not declare"):format(vip))
        end
      end
    end
  end
  local max = c.max_vips or 16
  if type(max) == "number" and #c.vips > max then
    err({ "vips" }, ("%d VIPs, but max_vips is %d"):format(#c.vips, max))
  end
  rep.summary = ("load balancer '%s' on %s: %d VIP(s), %d backend(s)"):format(tostring(svc),
    tostring(c.interface), #c.vips, nb)
end

local function check_filter(c, rep)
  local filter = require("luabpf.filter")
  for k in pairs(c) do
    if not FILTER_KEYS[k] and type(c[k]) ~= "function" then
      rep:error({ k }, ("unknown setting '%s' (settings: allow, deny, default, rate_limit, protect, auto_ban, sample, window, syn_threshold, metrics)")
        :format(tostring(k)))
    end
  end
  check_metrics(c, rep)
  if c.default ~= nil and c.default ~= "pass" and c.default ~= "drop" then
    rep:error({ "default" }, ("default must be pass or drop, got %s"):format(tostring(c.default)))
  end
  local n = 0
  for _, list in ipairs({ "allow", "deny" }) do
    if c[list] ~= nil and type(c[list]) ~= "table" then
      rep:error({ list }, ("%s must be a list of rules, got %s"):format(list, type(c[list])))
    else
      for i, r in ipairs(c[list] or {}) do
        local ok, e = pcall(filter.parse_rule, r)
        if not ok then rep:error({ list, i }, clean(e)) else n = n + 1 end
      end
    end
  end
  for _, k in ipairs({ "rate_limit", "protect", "auto_ban" }) do
    if c[k] ~= nil and type(c[k]) ~= "table" then
      rep:error({ k }, ("%s must be a table, got %s"):format(k, type(c[k])))
    end
  end
  rep.summary = ("DDoS filter: %d rule(s), default %s"):format(n, tostring(c.default or "pass"))
end

-- Which kind a file is, from what it sets at the top level.
local function guess(loc, src)
  local keys = loc.root.keys
  if keys.vips then return "lb" end
  for k in pairs(FILTER_KEYS) do if keys[k] then return "filter" end end
  if src:find("%f[%w_]bpf%s*%.") or src:find("%f[%w_]require%s*[%(\"']") then return "script" end
  return "script"
end

local Report = {}
Report.__index = Report

function Report:_add(list, path, msg)
  local line = self.loc and self.loc:find(path, msg)
  list[#list + 1] = { where = line and (self.path .. ":" .. line) or self.path, line = line, msg = msg }
end
function Report:error(path, msg) self:_add(self.errors, path, msg) end
function Report:warn(path, msg) self:_add(self.warnings, path, msg) end

--- Check one file without touching the kernel. kind: "lb", "filter",
-- "script" (syntax only) or nil to guess from what the file sets. Returns a
-- report: { path, kind, ok, errors = {{where, line, msg}}, warnings, summary, config }.
function M.check(path, kind)
  local rep = setmetatable({ path = path, errors = {}, warnings = {}, kind = kind }, Report)
  local f, oerr = io.open(path, "r")
  if not f then
    rep.errors[1] = { where = path, msg = "can't read: " .. tostring(oerr):gsub("^[^:]*: ", "") }
    rep.ok = false
    return rep
  end
  local src = f:read("*a")
  f:close()
  rep.loc = M.locator(src)
  rep.kind = kind or guess(rep.loc, src)
  if rep.kind == "script" then
    -- A script runs with bpf at hand: only its syntax is checked here.
    local _, err = loadstring(src, "@" .. path)
    if err then
      local line, msg = err:match("^.-:(%d+): (.*)$")
      rep.errors[1] = { where = line and (path .. ":" .. line) or path, line = tonumber(line), msg = msg or err }
    end
    rep.summary = "script (syntax checked; it runs with the kernel only under luabpf run)"
  else
    local c, err = run(path)
    if not c then
      local line, msg = tostring(err):match("^[^\n]-:(%d+): (.*)$")
      rep.errors[1] = { where = line and (path .. ":" .. line) or path, line = tonumber(line), msg = msg or err }
    elseif rep.kind == "lb" then
      check_lb(c, rep)
      rep.config = c
    elseif rep.kind == "filter" then
      check_filter(c, rep)
      rep.config = c
    else
      error(("config.check: kind must be lb, filter or script, got %s"):format(tostring(kind)), 2)
    end
  end
  -- By line; those without one (a setting that is missing) last, in order.
  for n, e in ipairs(rep.errors) do e.seq = n end
  table.sort(rep.errors, function(a, b)
    local la, lb_ = a.line or math.huge, b.line or math.huge
    if la ~= lb_ then return la < lb_ end
    return a.seq < b.seq
  end)
  rep.ok = #rep.errors == 0
  return rep
end

--- Read and validate a config of kind ("lb", "filter"): the config table, or
-- nil and "file:line: message" for its first error (what a reload refuses with).
function M.load(path, kind)
  local rep = M.check(path, kind)
  if not rep.ok then
    local e = rep.errors[1]
    return nil, ("%s: %s"):format(e.where, e.msg), rep
  end
  return rep.config, nil, rep
end

--- load for a service script's start and reloads: its warnings logged
-- ("warn", "where: message"), then the config, or nil and "file:line: message".
function M.read(path, kind)
  local c, err, rep = M.load(path, kind)
  for _, w in ipairs(rep.warnings) do bpf.log("warn", ("%s: %s"):format(w.where, w.msg)) end
  return c, err
end

return M
