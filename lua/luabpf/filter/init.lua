-- SPDX-License-Identifier: MIT
-- The XDP DDoS filter's Lua side: turns allow/deny entries, rate limits,
-- protected ports and bans into the maps of bpf/filter/filter.bpf.c, reads the
-- sampled packets it reports, and runs the policy (top talkers, auto-ban and
-- its expiry) on the loop.
--
--   local filter = require("luabpf.filter")
--   local f = assert(filter.new{ interface = "eth0" })
--   f:deny("192.0.2.0/24")              -- a source prefix
--   f:allow("192.0.2.128/25")           -- allow wins
--   f:deny({ port = 23, proto = "tcp" })
--   f:rate_limit{ pps = 1000, burst_packets = 100 }
--   f:protect(80)                       -- SYN cookies from XDP
--   f:auto_ban{ pps = 5000, seconds = 60 }
--
-- docs/filter.md has the whole API and the order of the checks.
local ffi = require("ffi")
local bit = require("bit")
local uv = require("luv")
local addr = require("luabpf._addr")
local util = require("luabpf._util")

local M = {}

-- enum filter_reason, in order (bpf/filter/filter.h).
M.REASONS = {
  "pass", "pass_non_ip", "allow", "deny_src", "deny_port", "deny_proto", "banned", "rate_pps",
  "rate_bps", "default_drop", "malformed", "syn_cookie", "syn_cookie_ok", "syn_cookie_bad",
}
-- Reasons whose packets are dropped.
M.DROPS = {
  deny_src = true, deny_port = true, deny_proto = true, banned = true, rate_pps = true,
  rate_bps = true, default_drop = true, malformed = true, syn_cookie_bad = true,
}

local PROTOS = {
  icmp = 1, igmp = 2, tcp = 6, udp = 17, gre = 47, esp = 50, ah = 51, icmpv6 = 58,
  ["ipv6-icmp"] = 58, sctp = 132, udplite = 136,
}
local PROTO_NAMES = {}
for n, v in pairs(PROTOS) do
  if not PROTO_NAMES[v] or #n < #PROTO_NAMES[v] then PROTO_NAMES[v] = n end
end
PROTO_NAMES[58] = "icmpv6"
local FA_ALLOW, FA_DENY = 1, 2
local NO_RULE = 0xffffffff
local V4_PREFIX = string.rep("\0", 10) .. "\255\255"
local ZERO16 = string.rep("\0", 16)

local Filter = {}
Filter.__index = Filter

local function fail(level, fmt, ...)
  error(fmt:format(...), level + 1)
end

local check_opts = util.check_opts

local function number_opt(what, v, lo, hi, level)
  if type(v) ~= "number" or v ~= v or v < lo or (hi and v > hi) then
    fail(level + 1, "%s must be a number %s, got %s", what,
      hi and ("from %s to %s"):format(lo, hi) or (">= " .. lo), tostring(v))
  end
  return v
end

-- Bytes of a 16-byte address with everything past `plen` bits cleared.
local function mask(bytes, plen)
  local out = {}
  for i = 1, 16 do
    local b = bytes:byte(i)
    local keep = plen - (i - 1) * 8
    if keep <= 0 then b = 0 elseif keep < 8 then b = bit.band(b, bit.lshift(0xff, 8 - keep)) end
    out[i] = string.char(b)
  end
  return table.concat(out)
end
M._mask = mask

ffi.cdef [[ const char *inet_ntop(int af, const void *src, char *dst, unsigned int size); ]]
local ntop_buf = ffi.new("char[64]")
function M._ntop(b)
  if b:sub(1, 12) == V4_PREFIX then
    return ffi.string(ffi.C.inet_ntop(2, b:sub(13), ntop_buf, 64))
  end
  return ffi.string(ffi.C.inet_ntop(10, b, ntop_buf, 64))
end

--- Parse "10.0.0.0/8", "10.0.0.1", "fd00::/8": returns 16 mapped bytes, the
-- 128-bit prefix length and the canonical text; raises naming what is wrong.
function M.parse_prefix(s, level)
  level = (level or 1) + 1
  if type(s) ~= "string" then fail(level, "expects a prefix such as '10.0.0.0/8', got %s", type(s)) end
  local a, len = s:match("^([^/]+)/(%d+)$")
  if not a then
    if s:find("/", 1, true) then fail(level, "'%s' is not an IPv4 or IPv6 prefix", s) end
    a = s
  end
  local ok, bytes = pcall(addr.bytes, a)
  if not ok then fail(level, "'%s' is not an IPv4 or IPv6 prefix", s) end
  local v4 = bytes:sub(1, 12) == V4_PREFIX
  local max = v4 and 32 or 128
  local n = len and tonumber(len) or max
  if n > max then
    fail(level, "'%s': prefix length must be 0-%d for %s", s, max, v4 and "IPv4" or "IPv6")
  end
  local plen = v4 and 96 + n or n
  local net = mask(bytes, plen)
  if net ~= bytes then
    fail(level, "'%s' has bits set past /%d (the network is %s/%d)", s, n, M._ntop(net), n)
  end
  return net, plen, ("%s/%d"):format(M._ntop(net), n)
end

-- a/alen contains b/blen
local function contains(a, alen, b, blen)
  return alen <= blen and mask(b, alen) == a
end

local function parse_proto(p, level)
  if type(p) == "number" and p >= 0 and p <= 255 and p % 1 == 0 then return p end
  if type(p) == "string" then
    local n = PROTOS[p:lower()] or tonumber(p:match("^%d+$") or "")
    if n and n <= 255 then return n end
  end
  fail(level + 1, "unknown protocol '%s' (a name: tcp, udp, icmp, icmpv6, gre, ...; or 0-255)", tostring(p))
end

local function parse_ports(p, level)
  local lo, hi
  if type(p) == "number" then
    lo, hi = p, p
  elseif type(p) == "string" then
    local a, b = p:match("^(%d+)%-(%d+)$")
    if a then lo, hi = tonumber(a), tonumber(b) else lo = tonumber(p:match("^%d+$") or ""); hi = lo end
  end
  if not lo or lo % 1 ~= 0 or hi % 1 ~= 0 or lo < 1 or hi > 65535 or lo > hi then
    fail(level + 1, "port must be 1-65535 or a range 'LO-HI', got %s", tostring(p))
  end
  return lo, hi
end

-- A rule as a table: { kind = "src"|"port"|"proto", ... }, from the forms
-- "10.0.0.0/8", "22/tcp", "53" (tcp and udp), "6000-6100/udp", "icmp",
-- { src = }, { port =, proto = }, { proto = }, each with an optional name.
local function parse_rule(what, r, level)
  level = level + 1
  if type(r) == "string" then
    local port, proto = r:match("^([%d%-]+)/(%a+)$")
    if port then
      r = { port = port, proto = proto }
    elseif r:match("^[%d%-]+$") and not r:find("%.") then
      r = { port = r }
    elseif PROTOS[r:lower()] then
      r = { proto = r }
    else
      r = { src = r }
    end
  end
  if type(r) ~= "table" then
    fail(level, "%s: expects a prefix, '22/tcp', a protocol name or a table, got %s", what, type(r))
  end
  check_opts(what, r, { src = true, port = true, proto = true, name = true }, level)
  if r.name ~= nil and type(r.name) ~= "string" then fail(level, "%s: name must be a string", what) end
  local out = { name = r.name }
  if r.src then
    if r.port or r.proto then
      fail(level, "%s: give a source prefix, or a port (with a protocol), or a protocol: one per rule", what)
    end
    local ok, net, plen, text = pcall(M.parse_prefix, r.src, 1)
    if not ok then fail(level, "%s: %s", what, net) end
    out.kind, out.net, out.plen, out.text = "src", net, plen, text
  elseif r.port then
    local ok, lo, hi = pcall(parse_ports, r.port, 1)
    if not ok then fail(level, "%s: %s", what, lo) end
    local protos
    if r.proto == nil then
      protos = { 6, 17 }
    else
      local ok2, p = pcall(parse_proto, r.proto, 1)
      if not ok2 then fail(level, "%s: %s", what, p) end
      if p ~= 6 and p ~= 17 then fail(level, "%s: ports are for tcp or udp, not %s", what, tostring(r.proto)) end
      protos = { p }
    end
    if (hi - lo + 1) * #protos > 4096 then
      fail(level, "%s: %d-%d is more ports than the list holds (4096)", what, lo, hi)
    end
    out.kind, out.lo, out.hi, out.protos = "port", lo, hi, protos
    out.text = (lo == hi and tostring(lo) or lo .. "-" .. hi) .. "/" ..
      (#protos == 2 and "tcp+udp" or PROTO_NAMES[protos[1]])
  elseif r.proto then
    local ok, p = pcall(parse_proto, r.proto, 1)
    if not ok then fail(level, "%s: %s", what, p) end
    out.kind, out.proto, out.text = "proto", p, "proto " .. (PROTO_NAMES[p] or tostring(p))
  else
    fail(level, "%s: a rule needs src, port or proto", what)
  end
  out.name = out.name or out.text
  return out
end
M.parse_rule = function(r) return parse_rule("rule", r, 1) end

--- Load the data plane and attach it. See docs/filter.md for the options.
function M.new(o)
  o = o or {}
  check_opts("filter.new", o, {
    name = true, interface = true, netns = true, xdp_mode = true, attach = true, default = true,
    sample = true, window = true, max_rules = true, max_bans = true, max_sources = true,
    on_event = true, on_sample = true, rate_limit = true, protect = true, auto_ban = true,
    syn_threshold = true,
  }, 2)
  if o.attach ~= false and type(o.interface) ~= "string" then
    fail(2, "filter.new: interface is required (the interface XDP attaches to)")
  end
  if o.default ~= nil and o.default ~= "pass" and o.default ~= "drop" then
    fail(2, "filter.new: default must be 'pass' or 'drop', got %s", tostring(o.default))
  end
  for _, k in ipairs({ "on_event", "on_sample" }) do
    if o[k] ~= nil and type(o[k]) ~= "function" then fail(2, "filter.new: %s must be a function", k) end
  end
  local self = setmetatable({
    name = o.name or o.interface or "filter", interface = o.interface, netns = o.netns,
    default = o.default or "pass",
    sample = math.floor(number_opt("filter.new: sample", o.sample or 100, 0, 2 ^ 32 - 1, 2)),
    window = number_opt("filter.new: window", o.window or 1, 0.01, nil, 2),
    syn_threshold = math.floor(number_opt("filter.new: syn_threshold", o.syn_threshold or 0, 0, 2 ^ 32 - 1, 2)),
    max_rules = number_opt("filter.new: max_rules", o.max_rules or 8192, 16, 1 * 2 ^ 20, 2),
    by_name = {}, order = {}, banned = {}, ports = {}, src = { allow = {}, deny = {} },
    protos = {}, protected = {}, rate = nil, autoban = nil,
    on_event = o.on_event, on_sample = o.on_sample,
    seen = {}, top_list = {}, last = {},
  }, Filter)
  local obj, err = bpf.load("filter", {
    max_entries = { rule_stats = self.max_rules, bans = o.max_bans or 65536,
      buckets = o.max_sources or 65536 },
  })
  if not obj then return nil, err end
  self.obj = obj
  self.m = {}
  for _, n in ipairs(obj:maps()) do self.m[n] = obj:map(n) end
  self.prog = obj:program("xdp_filter")
  self.free_ids = {}
  for id = self.max_rules - 1, 0, -1 do self.free_ids[#self.free_ids + 1] = id end
  local ok, res = pcall(function()
    if o.rate_limit then self:rate_limit(o.rate_limit) end
    if o.auto_ban then self:auto_ban(o.auto_ban) end
    if o.protect then self:protect(o.protect) end
    self:_write_config()
  end)
  if not ok then
    obj:close()
    error(res, 2)
  end
  if o.attach ~= false then
    local link, aerr = self.prog:attach_xdp(o.interface, { mode = o.xdp_mode or "auto", netns = o.netns })
    if not link then
      obj:close()
      return nil, ("filter '%s': couldn't attach to '%s': %s"):format(self.name, o.interface, aerr)
    end
    self.link = link
  end
  self.events = bpf.ringbuf(self.m.events, function(ev) self:_sample(ev) end,
    { decode = "cdata:struct filter_event", lost_map = self.m.events_lost })
  self.tick = uv.new_timer()
  self.next_window = uv.hrtime() + self.window * 1e9
  self.tick:start(100, 100, function() self:_tick() end)
  self.tick:unref() -- the ring buffer keeps the service running, not the timer
  bpf.on_shutdown(function() self:close() end)
  return self
end

function Filter:_check_open(level)
  if not self.obj then error(("filter '%s' is closed"):format(self.name), (level or 2) + 1) end
end

function Filter:_write_config()
  local r = self.rate or {}
  assert(self.m.filter_cfg:update(0, {
    pkt_ns = r.pkt_ns or 0, pkt_burst_ns = r.pkt_burst_ns or 0,
    byte_rate = r.bytes_per_sec or 0, byte_burst_ns = r.byte_burst_ns or 0,
    prefix4 = r.prefix4 or 32, prefix6 = r.prefix6 or 64,
    sample = self.sample, syn_threshold = self.syn_threshold,
    default_drop = self.default == "drop" and 1 or 0,
  }))
end

function Filter:_new_id(level)
  local id = table.remove(self.free_ids)
  if not id then fail(level + 1, "filter '%s': all %d rule slots are in use (max_rules)", self.name, self.max_rules) end
  assert(self.m.rule_stats:update(id, { packets = 0, bytes = 0 }))
  return id
end

local function other(action) return action == "allow" and "deny" or "allow" end

-- Raise if rule r (to go in list `action`) overlaps what is there already.
function Filter:_check_overlap(action, r, level)
  level = level + 1
  if r.kind == "src" then
    for _, e in pairs(self.src[action]) do
      if e.net == r.net and e.plen == r.plen then
        fail(level, "%s %s: already in the %s list (rule '%s')", action, r.text, action, e.name)
      end
      if contains(e.net, e.plen, r.net, r.plen) or contains(r.net, r.plen, e.net, e.plen) then
        fail(level, "%s %s overlaps %s %s (rule '%s'): one list holds disjoint prefixes; "
          .. "remove one, or put the exception in the %s list", action, r.text, action, e.text, e.name,
          other(action))
      end
    end
    for _, e in pairs(self.src[other(action)]) do
      if action == "deny" and contains(e.net, e.plen, r.net, r.plen) then
        fail(level, "deny %s is inside allow %s (rule '%s'): allow wins, so it would never match",
          r.text, e.text, e.name)
      end
      if action == "allow" and contains(r.net, r.plen, e.net, e.plen) then
        fail(level, "allow %s covers deny %s (rule '%s'): allow wins, so that deny would never "
          .. "match; remove it first", r.text, e.text, e.name)
      end
    end
  elseif r.kind == "port" then
    for _, p in ipairs(r.protos) do
      for port = r.lo, r.hi do
        local e = self.ports[p * 65536 + port]
        if e then
          fail(level, "%s %s: port %d/%s is already in %s rule '%s'%s", action, r.text, port,
            PROTO_NAMES[p], e.action, e.name,
            e.action ~= action and " (allow wins: remove that first)" or "")
        end
      end
    end
  else
    local e = self.protos[r.proto]
    if e then
      fail(level, "%s %s: protocol already in %s rule '%s'%s", action, r.text, e.action, e.name,
        e.action ~= action and " (allow wins: remove that first)" or "")
    end
  end
  if self.by_name[r.name] then
    fail(level, "%s %s: there is already a rule named '%s' (%s %s)", action, r.text, r.name,
      self.by_name[r.name].action, self.by_name[r.name].text)
  end
end

local function port_key(proto, port) return { proto = proto, port = port } end

function Filter:_add(action, spec, level)
  level = level + 1
  self:_check_open(level)
  local r = parse_rule(action, spec, level)
  self:_check_overlap(action, r, level)
  r.action = action
  r.id = self:_new_id(level)
  if r.kind == "src" then
    local map = self.m[action .. "_src"]
    local ok, err = map:update({ prefixlen = r.plen, addr = r.net }, r.id)
    if not ok then
      table.insert(self.free_ids, r.id)
      fail(level, "%s %s: %s", action, r.text, err)
    end
    self.src[action][r.name] = r
  elseif r.kind == "port" then
    local map = self.m[action .. "_port"]
    local keys, vals = {}, {}
    for _, p in ipairs(r.protos) do
      for port = r.lo, r.hi do
        keys[#keys + 1] = port_key(p, port)
        vals[#vals + 1] = r.id
      end
    end
    local ok, err = map:update_batch(keys, vals)
    if not ok then
      map:delete_batch(keys)
      table.insert(self.free_ids, r.id)
      fail(level, "%s %s: %s", action, r.text, err)
    end
    for _, p in ipairs(r.protos) do
      for port = r.lo, r.hi do self.ports[p * 65536 + port] = r end
    end
  else
    assert(self.m.protos:update(r.proto, { action = action == "allow" and FA_ALLOW or FA_DENY, id = r.id }))
    self.protos[r.proto] = r
  end
  self.by_name[r.name] = r
  self.order[#self.order + 1] = r
  return r.name
end

--- Add an allow entry: a source prefix, a destination port, or a protocol.
-- A packet that matches any allow entry passes, whatever else matches.
function Filter:allow(spec) return self:_add("allow", spec, 2) end

--- Add a deny entry (the same forms as allow).
function Filter:deny(spec) return self:_add("deny", spec, 2) end

--- Remove a rule by its name (or the text it was added with).
function Filter:remove(name)
  self:_check_open()
  local r = self.by_name[name]
  if not r then
    -- Also by what it was added with: f:remove("22/tcp"), f:remove{port = 22, proto = "tcp"}.
    local ok, parsed = pcall(parse_rule, "remove", name, 1)
    if ok then r = self.by_name[parsed.name] end
  end
  if not r then
    local names = {}
    for _, x in ipairs(self.order) do names[#names + 1] = x.name end
    fail(2, "filter '%s' has no rule '%s' (rules: %s)", self.name, tostring(name),
      #names > 0 and table.concat(names, ", ") or "none")
  end
  if r.kind == "src" then
    self.m[r.action .. "_src"]:delete({ prefixlen = r.plen, addr = r.net })
    self.src[r.action][r.name] = nil
  elseif r.kind == "port" then
    local keys = {}
    for _, p in ipairs(r.protos) do
      for port = r.lo, r.hi do
        keys[#keys + 1] = port_key(p, port)
        self.ports[p * 65536 + port] = nil
      end
    end
    self.m[r.action .. "_port"]:delete_batch(keys)
  else
    self.m.protos:update(r.proto, { action = 0, id = 0 })
    self.protos[r.proto] = nil
  end
  self.by_name[r.name] = nil
  for i, x in ipairs(self.order) do if x == r then table.remove(self.order, i) break end end
  self.free_ids[#self.free_ids + 1] = r.id
  return true
end

--- The rules, in the order they were added: { {name, action, kind, text, packets, bytes}, ... }.
function Filter:rules()
  self:_check_open()
  local out = {}
  for _, r in ipairs(self.order) do
    local c = self.m.rule_stats:lookup_sum(r.id)
    out[#out + 1] = { name = r.name, action = r.action, kind = r.kind, text = r.text,
      packets = tonumber(c.packets), bytes = tonumber(c.bytes) }
  end
  return out
end

--- Per-source token bucket: { pps=, bytes_per_sec=, burst_packets=, burst_bytes=,
-- prefix4 = 32, prefix6 = 64 } (sources sharing a /prefix share a bucket);
-- false removes the limit.
function Filter:rate_limit(o)
  self:_check_open()
  if o == false or o == nil then
    self.rate = nil
    self:_write_config()
    return true
  end
  check_opts("rate_limit", o, { pps = true, bytes_per_sec = true, burst_packets = true,
    burst_bytes = true, prefix4 = true, prefix6 = true }, 2)
  if not o.pps and not o.bytes_per_sec then fail(2, "rate_limit: give pps, bytes_per_sec or both") end
  local r = { prefix4 = 32, prefix6 = 64 }
  if o.pps then
    number_opt("rate_limit: pps", o.pps, 1e-3, 1e9, 2)
    local burst = number_opt("rate_limit: burst_packets", o.burst_packets or math.max(1, o.pps), 1, nil, 2)
    r.pps, r.burst_packets = o.pps, burst
    r.pkt_ns = math.floor(1e9 / o.pps)
    r.pkt_burst_ns = math.floor(burst * r.pkt_ns)
  elseif o.burst_packets then
    fail(2, "rate_limit: burst_packets needs pps")
  end
  if o.bytes_per_sec then
    number_opt("rate_limit: bytes_per_sec", o.bytes_per_sec, 1, 1e12, 2)
    local burst = number_opt("rate_limit: burst_bytes", o.burst_bytes or math.max(1514, o.bytes_per_sec),
      64, nil, 2)
    r.bytes_per_sec, r.burst_bytes = math.floor(o.bytes_per_sec), burst
    r.byte_burst_ns = math.floor(burst * 1e9 / o.bytes_per_sec)
  elseif o.burst_bytes then
    fail(2, "rate_limit: burst_bytes needs bytes_per_sec")
  end
  if o.prefix4 then r.prefix4 = number_opt("rate_limit: prefix4", o.prefix4, 0, 32, 2) end
  if o.prefix6 then r.prefix6 = number_opt("rate_limit: prefix6", o.prefix6, 0, 128, 2) end
  self.rate = r
  self:_write_config()
  return true
end

--- SYN cookies for TCP ports: a port, a list, or { ports = {...}, threshold = N }
-- (SYNs per second to the port before cookies start; 0: always, the default).
function Filter:protect(o)
  self:_check_open()
  local ports, threshold
  if type(o) == "table" and (o.ports or o.threshold) then
    check_opts("protect", o, { ports = true, threshold = true }, 2)
    ports, threshold = o.ports, o.threshold
  else
    ports = o
  end
  if type(ports) ~= "table" then ports = { ports } end
  local parsed = {}
  for i, p in ipairs(ports) do
    local ok, lo, hi = pcall(parse_ports, p, 1)
    if not ok or lo ~= hi then fail(2, "protect: port %s: must be one port 1-65535", tostring(p)) end
    if self.protected[lo] then fail(2, "protect: port %d is already protected", lo) end
    parsed[i] = lo
  end
  if threshold ~= nil then
    self.syn_threshold = number_opt("protect: threshold", threshold, 0, 2 ^ 32 - 1, 2)
    self:_write_config()
  end
  self:_syncookies(2)
  for _, port in ipairs(parsed) do
    local id = self:_new_id(2)
    local ok, err = self.m.syn_ports:update(port, { window = 0, syns = 0, prev = 0, id = id })
    if not ok then
      table.insert(self.free_ids, id)
      fail(2, "protect: port %d: %s", port, err)
    end
    self.protected[port] = { id = id, name = ("syn %d/tcp"):format(port) }
  end
  return true
end

-- The kernel takes a cookie ACK only from a listener that sent cookies
-- recently (tcp_synq_overflow), and bpf_tcp_gen_syncookie makes cookies for
-- a listener whose queue is not full only with net.ipv4.tcp_syncookies=2.
-- Set it (in the interface's namespace) while ports are protected; restore after.
local SYSCTL = "net.ipv4.tcp_syncookies"
local function sysctl_cmd(netns, args)
  local pre = netns and ("ip netns exec '%s' "):format(netns) or ""
  local p = io.popen(pre .. "sysctl " .. args .. " 2>&1")
  local out = p:read("*a")
  p:close()
  return out
end

function Filter:_syncookies(level)
  if self.old_syncookies then return end
  local cur = tonumber(sysctl_cmd(self.netns, "-n " .. SYSCTL):match("%d+"))
  if not cur then fail(level + 1, "protect: can't read %s: SYN cookies need it", SYSCTL) end
  if cur ~= 2 then
    sysctl_cmd(self.netns, ("-qw %s=2"):format(SYSCTL))
    bpf.log("info", ("filter '%s': set %s=2 (was %d) while ports are protected: the kernel "
      .. "then accepts the cookies XDP sends"):format(self.name, SYSCTL, cur))
  end
  self.old_syncookies = cur
end

function Filter:_restore_syncookies()
  if self.old_syncookies and self.old_syncookies ~= 2 then
    sysctl_cmd(self.netns, ("-qw %s=%d"):format(SYSCTL, self.old_syncookies))
  end
  self.old_syncookies = nil
end

--- Stop SYN cookies on a port.
function Filter:unprotect(port)
  self:_check_open()
  local p = self.protected[port]
  if not p then fail(2, "unprotect: port %s is not protected", tostring(port)) end
  self.m.syn_ports:delete(port)
  self.free_ids[#self.free_ids + 1] = p.id
  self.protected[port] = nil
  if next(self.protected) == nil then self:_restore_syncookies() end
  return true
end

--- Ban a source prefix for `seconds` (nil or 0: until unban). Banning again
-- moves the expiry. `why` goes into the ban event.
function Filter:ban(prefix, seconds, why, level)
  level = level or 2
  self:_check_open(level)
  local ok, net, plen, text = pcall(M.parse_prefix, prefix, 1)
  if not ok then fail(level, "ban: %s", net) end
  if seconds ~= nil then number_opt("ban: seconds", seconds, 0, nil, level) end
  for _, e in pairs(self.src.allow) do
    if contains(e.net, e.plen, net, plen) then
      fail(level, "ban %s: inside allow %s (rule '%s'): allow wins, so the ban would never match",
        text, e.text, e.name)
    end
  end
  local b = self.banned[text]
  if not b then
    b = { prefix = text, net = net, plen = plen, id = self:_new_id(level) }
  end
  b.expires = (seconds and seconds > 0) and math.floor(uv.hrtime() + seconds * 1e9) or nil
  b.why = why
  local ok2, err = self.m.bans:update({ prefixlen = plen, addr = net },
    { expires_ns = b.expires or 0, id = b.id })
  if not ok2 then
    if not self.banned[text] then table.insert(self.free_ids, b.id) end
    return nil, err
  end
  local fresh = not self.banned[text]
  self.banned[text] = b
  self:_emit({ type = "ban", src = text, seconds = seconds, reason = why or "manual", renewed = not fresh })
  return true
end

--- Lift a ban now.
function Filter:unban(prefix)
  self:_check_open()
  local ok, _, _, text = pcall(M.parse_prefix, prefix, 1)
  local b = ok and self.banned[text]
  if not b then fail(2, "unban: %s is not banned", tostring(prefix)) end
  self:_lift(b, "removed")
  return true
end

function Filter:_lift(b, why)
  self.m.bans:delete({ prefixlen = b.plen, addr = b.net })
  self.banned[b.prefix] = nil
  self.free_ids[#self.free_ids + 1] = b.id
  self:_emit({ type = "unban", src = b.prefix, reason = why })
end

--- The bans: { [prefix] = { seconds_left, reason, packets } }.
function Filter:bans()
  self:_check_open()
  local now, out = uv.hrtime(), {}
  for text, b in pairs(self.banned) do
    local c = self.m.rule_stats:lookup_sum(b.id)
    out[text] = { seconds_left = b.expires and math.max(0, (b.expires - now) / 1e9) or nil,
      reason = b.why, packets = tonumber(c.packets), bytes = tonumber(c.bytes) }
  end
  return out
end

--- Ban sources whose sampled rate is over a threshold, for a time:
-- { pps=, bytes_per_sec=, seconds = 60, prefix4 = 32, prefix6 = 128 }; false: off.
function Filter:auto_ban(o)
  self:_check_open()
  if o == false or o == nil then self.autoban = nil return true end
  check_opts("auto_ban", o, { pps = true, bytes_per_sec = true, seconds = true, prefix4 = true,
    prefix6 = true }, 2)
  if not o.pps and not o.bytes_per_sec then fail(2, "auto_ban: give pps, bytes_per_sec or both") end
  if self.sample == 0 then fail(2, "auto_ban: needs sampled packets, but sample = 0") end
  self.autoban = {
    pps = o.pps and number_opt("auto_ban: pps", o.pps, 0, nil, 2),
    bytes_per_sec = o.bytes_per_sec and number_opt("auto_ban: bytes_per_sec", o.bytes_per_sec, 0, nil, 2),
    seconds = number_opt("auto_ban: seconds", o.seconds or 60, 0, nil, 2),
    prefix4 = number_opt("auto_ban: prefix4", o.prefix4 or 32, 0, 32, 2),
    prefix6 = number_opt("auto_ban: prefix6", o.prefix6 or 128, 0, 128, 2),
  }
  return true
end

--- Change settings while running: { sample = N (report 1 in N packets; 0: none),
-- default = "pass"|"drop", syn_threshold = SYNs/s }.
function Filter:set(o)
  self:_check_open()
  check_opts("set", o, { sample = true, default = true, syn_threshold = true }, 2)
  if o.default ~= nil and o.default ~= "pass" and o.default ~= "drop" then
    fail(2, "set: default must be 'pass' or 'drop', got %s", tostring(o.default))
  end
  if o.sample ~= nil then
    number_opt("set: sample", o.sample, 0, 2 ^ 32 - 1, 2)
    if o.sample == 0 and self.autoban then fail(2, "set: auto_ban needs sampled packets: turn it off first") end
  end
  if o.syn_threshold ~= nil then number_opt("set: syn_threshold", o.syn_threshold, 0, 2 ^ 32 - 1, 2) end
  self.sample = math.floor(o.sample or self.sample)
  self.default = o.default or self.default
  self.syn_threshold = math.floor(o.syn_threshold or self.syn_threshold)
  self:_write_config()
  return true
end

--- Pass what the filter lets through on to `prog` (a program userdata of type
-- XDP, e.g. the load balancer's svc.prog) by tail call; nil: to the stack.
function Filter:chain(prog)
  self:_check_open()
  if prog == nil then
    self.m.next:delete(0)
    self.chained = nil
    return true
  end
  if type(prog) ~= "userdata" or not prog.type then fail(2, "chain: expects a program, got %s", type(prog)) end
  if prog:type() ~= "xdp" then fail(2, "chain: program '%s' is %s, not xdp", prog:name(), prog:type()) end
  local ok, err, errno = self.m.next:update(0, prog)
  if not ok then return nil, ("chain: can't chain to '%s': %s"):format(prog:name(), err), errno end
  self.chained = prog
  return true
end

function Filter:_emit(ev)
  if self.on_event then
    self.on_event(ev)
  elseif ev.type == "ban" or ev.type == "unban" then
    bpf.log("info", ("filter '%s': %s %s (%s)"):format(self.name, ev.type, ev.src, ev.reason or ""))
  end
end

local bswap16 = function(x) return bit.bor(bit.rshift(x, 8), bit.band(bit.lshift(x, 8), 0xff00)) end

-- A sampled packet from the ring (a cdata pointer, valid during the call).
function Filter:_sample(ev)
  local reason = M.REASONS[ev.reason + 1]
  local src = ffi.string(ev.src, 16)
  if self.on_sample then
    self.on_sample({ reason = reason, proto = PROTO_NAMES[ev.proto] or ev.proto, len = ev.len,
      src = M._ntop(src), dst = M._ntop(ffi.string(ev.dst, 16)), sport = bswap16(ev.sport),
      dport = bswap16(ev.dport), dropped = M.DROPS[reason] or false })
  end
  -- Allowed sources are never banned; banned ones already are.
  if reason == "allow" or reason == "banned" then return end
  local ab = self.autoban
  local v4 = src:sub(1, 12) == V4_PREFIX
  local plen = ab and (v4 and 96 + ab.prefix4 or ab.prefix6) or 128
  if plen < 128 then src = mask(src, plen) end
  local s = self.seen[src]
  if not s then
    s = { packets = 0, bytes = 0, drops = 0, plen = plen }
    self.seen[src] = s
  end
  s.packets = s.packets + 1
  s.bytes = s.bytes + ev.len
  if M.DROPS[reason] then s.drops = s.drops + 1 end
end

-- Every 100 ms: bans that expired go; at the end of each window, the top
-- talkers are estimated from the samples and auto-ban runs.
function Filter:_tick()
  local now = uv.hrtime()
  for _, b in pairs(self.banned) do
    if b.expires and b.expires <= now then self:_lift(b, "expired") end
  end
  if now < self.next_window then return end
  local dt = self.window + (now - self.next_window) / 1e9
  self.next_window = now + self.window * 1e9
  local list, n = {}, self.sample
  for src, s in pairs(self.seen) do
    local v4 = src:sub(1, 12) == V4_PREFIX
    local text = s.plen < 128 and ("%s/%d"):format(M._ntop(src), v4 and s.plen - 96 or s.plen)
      or M._ntop(src)
    list[#list + 1] = { src = text, pps = s.packets * n / dt, bytes_per_sec = s.bytes * n / dt,
      dropped_pps = s.drops * n / dt, samples = s.packets }
  end
  self.seen = {}
  table.sort(list, function(a, b) return a.pps > b.pps end)
  self.top_list = list
  local ab = self.autoban
  if not ab then return end
  for _, t in ipairs(list) do
    if (ab.pps and t.pps > ab.pps) or (ab.bytes_per_sec and t.bytes_per_sec > ab.bytes_per_sec) then
      local why = ("auto: %.0f pkt/s, %.0f bytes/s"):format(t.pps, t.bytes_per_sec)
      local ok, err = pcall(self.ban, self, t.src, ab.seconds, why, 1)
      if not ok then bpf.log("warn", ("filter '%s': can't ban %s: %s"):format(self.name, t.src, err)) end
    end
  end
end

--- The top talkers of the last window, estimated from the samples:
-- { {src, pps, bytes_per_sec, dropped_pps, samples}, ... }, busiest first.
function Filter:top(n)
  self:_check_open()
  local out = {}
  for i = 1, math.min(n or 10, #self.top_list) do out[i] = self.top_list[i] end
  return out
end

--- Counters per reason and per rule, protected port and ban.
function Filter:stats()
  self:_check_open()
  local out = { reasons = {}, rules = {}, bans = {}, protected = {}, dropped = 0, passed = 0,
    lost_samples = self.events and self.events:lost() or 0 }
  for i, r in ipairs(M.REASONS) do
    local c = self.m.reasons:lookup_sum(i - 1)
    local e = { packets = tonumber(c.packets), bytes = tonumber(c.bytes) }
    out.reasons[r] = e
    if M.DROPS[r] then out.dropped = out.dropped + e.packets
    elseif r ~= "syn_cookie" then out.passed = out.passed + e.packets end
  end
  for _, r in ipairs(self:rules()) do out.rules[r.name] = r end
  out.bans = self:bans()
  for port, p in pairs(self.protected) do
    local c = self.m.rule_stats:lookup_sum(p.id)
    out.protected[port] = { packets = tonumber(c.packets), bytes = tonumber(c.bytes) }
  end
  return out
end

--- Detach and free everything (bans and rules go with the maps).
function Filter:close()
  if not self.obj then return end
  if self.tick then self.tick:close() self.tick = nil end
  if self.events then self.events:close() self.events = nil end
  if self.link then self.link:detach() self.link = nil end
  self:_restore_syncookies()
  self.obj:close()
  self.obj = nil
end

M.Filter = Filter
return M
