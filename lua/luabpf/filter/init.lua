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
--
-- Split (README.md): this file is the filter's set-up and its rules, ports,
-- limits and settings; _policy.lua the bans, samples and top talkers;
-- _parse.lua the text forms; _common.lua the numbers and the Filter class.
local uv = require("luv")
local addr = require("luabpf._addr")

local M = {}

local K = require("luabpf.filter._common")
local P = require("luabpf.filter._parse")
require("luabpf.filter._policy")

M.REASONS, M.DROPS = K.REASONS, K.DROPS
local PROTO_NAMES, FA_ALLOW, FA_DENY = K.PROTO_NAMES, K.FA_ALLOW, K.FA_DENY
local Filter, fail, check_opts, number_opt = K.Filter, K.fail, K.check_opts, K.number_opt
local contains, parse_ports = P.contains, P.parse_ports
M._mask, M._ntop, M.parse_prefix, M.parse_rule = P._mask, P._ntop, P.parse_prefix, P.parse_rule
local parse_rule = P.parse_rule_at


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
