-- SPDX-License-Identifier: MIT
-- The XDP load balancer's service API: turns declared VIPs and backends into
-- the maps of bpf/lb/lb.bpf.c, and keeps them in step with every change.
--
--   local lb = require("luabpf.lb")
--   local svc = lb.new{ name = "web", interface = "eth0" }
--   svc:add_vip{ name = "http", addr = "10.0.0.100", port = 80, proto = "tcp",
--                mode = "nat", backends = { { name = "b1", addr = "10.0.0.11" } } }
--   svc:set_weight("http", "b1", 0)    -- drain
--
-- docs/lb.md has the whole API, the modes and the topology each needs.
local ffi = require("ffi")
local bit = require("bit")
local uv = require("luv")
local maglev = require("luabpf.lb.maglev")
local addr = require("luabpf._addr")
local health = require("luabpf.health")

local M = {}

local MODES = { nat = 0, dsr = 1 }
local MODE_NAMES = { [0] = "nat", [1] = "dsr" }
local PROTOS = { tcp = 6, udp = 17 }
local PROTO_NAMES = { [6] = "tcp", [17] = "udp" }
local ACTIVE, DRAINING, REMOVED = 0, 1, 2
local STATE_NAMES = { [0] = "active", [1] = "draining", [2] = "removed" }
local NO_BACKEND = 0xffffffff
local VIP_ADDR, SNAT_ADDR = 1, 2

-- enum lb_reason, in order (bpf/lb/lb.h).
M.REASONS = {
  "forwarded", "reply", "pass_not_vip", "pass_other_port", "pass_non_l4", "pass_runt",
  "drop_bad_ip", "drop_ip_options", "drop_fragment", "drop_bad_l4", "drop_no_backend",
  "drop_no_neigh", "drop_fib", "drop_fwd_disabled", "drop_nat_ports",
  -- flow_table = "conntrack" only:
  "drop_ct_error", "drop_ct_full", "drop_ct_nat", "drop_ct_insert", "ct_race", "pass_ct_foreign",
  -- flow_table = "conntrack", ct_fastpath = true: established packets sent from XDP
  "ct_fast", "ct_fast_reply",
}

M.PIN_ROOT = "/sys/fs/bpf/luabpf/lb"

ffi.cdef [[
struct luabpf_lb_flow_key {
  uint8_t src[16]; uint8_t dst[16]; uint16_t sport; uint16_t dport; uint8_t proto; uint8_t pad[3];
};
]]
local flow_key_t = ffi.typeof("struct luabpf_lb_flow_key")
local u32p = ffi.typeof("const uint32_t *")

local band, bxor, rshift, lshift, rol, tobit = bit.band, bit.bxor, bit.rshift, bit.lshift, bit.rol,
  bit.tobit
local mul32 = maglev.mul32

--- The data plane's flow hash (flow_hash in bpf/lb/lb.bpf.c), for "which backend?".
function M.flow_hash(src, sport, dst, dport, proto)
  local k = flow_key_t()
  ffi.copy(k.src, addr.bytes(src), 16)
  ffi.copy(k.dst, addr.bytes(dst), 16)
  k.sport = bit.bswap(lshift(sport, 16))
  k.dport = bit.bswap(lshift(dport, 16))
  k.proto = proto
  local w = ffi.cast(u32p, k)
  local h = 0x4c554142
  for i = 0, 9 do
    local x = mul32(tobit(w[i]), 0xcc9e2d51)
    x = mul32(rol(x, 15), 0x1b873593)
    h = tobit(mul32(rol(bxor(h, x), 13), 5) + 0xe6546b64)
  end
  h = bxor(h, 40)
  h = bxor(h, rshift(h, 16)); h = mul32(h, 0x85ebca6b)
  h = bxor(h, rshift(h, 13)); h = mul32(h, 0xc2b2ae35)
  h = bxor(h, rshift(h, 16))
  return h < 0 and h + 4294967296 or h
end

local Service = {}
Service.__index = Service

local function vip_key(v)
  return { addr = addr.mapped(v.addr), port = v.port, proto = v.proto }
end

local function fail(fmt, ...)
  error(fmt:format(...), 3)
end

local function check_opts(what, t, known)
  if type(t) ~= "table" then fail("%s: expects a table of options, got %s", what, type(t)) end
  for k in pairs(t) do
    if not known[k] then
      local names = {}
      for n in pairs(known) do names[#names + 1] = n end
      table.sort(names)
      fail("%s: unknown option '%s' (valid: %s)", what, tostring(k), table.concat(names, ", "))
    end
  end
end

local function sh(cmd)
  local p = io.popen(cmd .. " 2>/dev/null")
  local out = p:read("*a")
  p:close()
  return out
end

-- The first address of the interface in the family of addr_text.
local function iface_addr(iface, v6)
  local out = sh(("ip -o -%d addr show dev %s scope global"):format(v6 and 6 or 4, iface))
  return out:match(v6 and "inet6 ([%x:]+)/" or "inet ([%d%.]+)/")
end

local function rmdir_pins(dir)
  for _, f in ipairs({ "link" }) do os.remove(dir .. "/" .. f) end
  local p = io.popen("ls -A " .. dir .. " 2>/dev/null")
  for f in p:lines() do os.remove(dir .. "/" .. f) end
  p:close()
  os.remove(dir)
end

local function mkdir_p(path)
  local cur = ""
  for part in path:gmatch("[^/]+") do
    cur = cur .. "/" .. part
    uv.fs_mkdir(cur, 448) -- 0700; EEXIST is fine
  end
end

--- Start (or take over) the service: load the data plane, reuse pinned state,
-- attach XDP to the interface. See docs/lb.md for the options.
function M.new(o)
  check_opts("lb.new", o, {
    name = true, interface = true, netns = true, xdp_mode = true, pin = true, pin_root = true,
    ring_size = true, max_vips = true, max_backends = true, flows = true, flow_sample = true,
    drop_sample = true, on_event = true, prime_neighbours = true, attach = true, on_health = true,
    flow_table = true, ct_mark = true, ct_fastpath = true,
  })
  -- bpffs refuses names with a dot in them.
  if type(o.name) ~= "string" or not o.name:match("^[%w_-]+$") then
    fail("lb.new: name must be a word of letters, digits, '_' and '-' (it names the pin directory), got %s",
      tostring(o.name))
  end
  if o.attach ~= false and type(o.interface) ~= "string" then
    fail("lb.new: interface is required (the interface XDP attaches to)")
  end
  -- The conntrack flow table (bpf/lb/lb_ct.bpf.c, lua/luabpf/lb/_conntrack.lua): a tc program instead of XDP.
  local ct
  if o.flow_table == "conntrack" then
    local lb_ct = require("luabpf.lb._conntrack")
    if o.ct_fastpath ~= nil and type(o.ct_fastpath) ~= "boolean" then
      fail("lb.new: ct_fastpath expects a boolean, got %s", type(o.ct_fastpath))
    end
    ct = lb_ct.new({ name = o.name, interface = o.interface, netns = o.netns, mark = o.ct_mark,
      fastpath = o.ct_fastpath == true })
    local ok, cerr = lb_ct.check()
    if not ok then return nil, ("service '%s': %s"):format(o.name, cerr) end
  elseif o.flow_table ~= nil and o.flow_table ~= "lru" then
    fail("lb.new: flow_table must be 'lru' or 'conntrack', got %s", tostring(o.flow_table))
  elseif o.ct_fastpath then
    fail("lb.new: ct_fastpath needs flow_table = 'conntrack' (the LRU table is XDP throughout)")
  end
  local self = setmetatable({
    name = o.name, interface = o.interface, netns = o.netns,
    xdp_mode = o.xdp_mode or "auto",
    ring = o.ring_size or maglev.DEFAULT_SIZE,
    max_vips = o.max_vips or 16, max_backends = o.max_backends or 1024,
    vips = {}, vip_by_id = {}, backend_by_id = {},
    pinned = o.pin ~= false,
    on_health = o.on_health, dirty = {},
    prime = o.prime_neighbours ~= false,
    last = {},
    ct = ct, flow_table = ct and "conntrack" or "lru",
  }, Service)
  if not maglev.is_prime(self.ring) then fail("lb.new: ring_size %d is not prime (65537 is)", self.ring) end
  local root = o.pin_root or M.PIN_ROOT
  self.dir = self.pinned and (root .. "/" .. o.name) or
    ("%s/tmp-%d-%s"):format(root, uv.os_getpid(), o.name)
  local fresh = not uv.fs_stat(self.dir .. "/vips")
  mkdir_p(self.dir)

  local obj, err = bpf.load(ct and "lb_ct" or "lb", {
    pin_root_path = self.dir,
    globals = { ring_size = self.ring },
    max_entries = {
      vips = self.max_vips, vip_stats = self.max_vips, maglev = self.max_vips * 2 * self.ring,
      backends = self.max_backends, backend_stats = self.max_backends,
      flows = not ct and (o.flows or 65536) or nil, nat = not ct and (o.flows or 65536) or nil,
    },
  })
  if not obj then
    if tostring(err):find("parameter mismatch", 1, true) then
      err = ("service '%s': the state pinned at %s was made with other map sizes or an older "
        .. "data plane, and luabpf will not silently replace it (that would drop every flow). "
        .. "Start with the sizes it was made with, or remove it: rm -r %s\n%s"):format(
          o.name, self.dir, self.dir, err)
    end
    if not self.pinned then rmdir_pins(self.dir) end
    return nil, err
  end
  self.obj = obj
  local ok, res, res2 = pcall(self._start, self, o)
  if not ok or not res then
    -- Nothing half-made stays behind: state we just created goes again.
    if self.link and (fresh or not self.pinned) then self.link:detach() end
    if self.xdp_link and (fresh or not self.pinned) then self.xdp_link:detach() end
    if self.xobj then self.xobj:close() end
    if fresh or not self.pinned then self:_unpin_all() end
    obj:close()
    if not ok then error(res, 2) end
    return nil, res2
  end
  return self
end

function Service:_start(o)
  local obj = self.obj
  -- self.m: the maps by name; self.vips: our records of the VIPs.
  self.m = {}
  for _, n in ipairs(obj:maps()) do self.m[n] = obj:map(n) end
  obj:set("flow_sample", o.flow_sample or 0)
  obj:set("drop_sample", o.drop_sample or 1)
  if self.ct then
    obj:set("ct_mark", self.ct.mark)
    if o.attach ~= false then
      local ok, cerr = self.ct:setup()
      if not ok then return nil, cerr end
    end
  end
  self:_recover()

  -- A pinned link means a running (or stopped) earlier instance: replace its
  -- program in place, so traffic never sees a moment without one.
  local prog = obj:program(self.ct and "tc_lb" or "xdp_lb")
  self.prog = prog
  local link_path = self.dir .. "/link"
  local link = self.pinned and uv.fs_stat(link_path) and bpf.link_from_pin(link_path)
  if o.attach == false then
    -- Not attached: for tests and benchmarks that drive it with prog:test_run.
  elseif link then
    local ok, uerr = link:update(prog)
    if not ok then return nil, ("service '%s': can't replace the running program: %s"):format(o.name, uerr) end
    self.took_over = true
    bpf.log("info", ("service '%s': took over the pinned XDP link %s"):format(o.name, link_path))
  else
    local aerr
    if self.ct then
      link, aerr = prog:attach_tc(o.interface, { netns = o.netns })
    else
      link, aerr = prog:attach_xdp(o.interface, { mode = self.xdp_mode, netns = o.netns })
    end
    if not link then
      return nil, ("service '%s': couldn't attach to '%s': %s"):format(o.name, o.interface, aerr)
    end
    if self.pinned then assert(link:pin(link_path)) end
  end
  self.link = link
  if self.ct then
    local ok, xerr = self:_fastpath(o)
    if not ok then return nil, xerr end
  end

  self.events = bpf.ringbuf(obj:map("events"), function(ev) self:_event(ev) end,
    { decode = "struct lb_event" })
  self.on_event = o.on_event
  bpf.on_shutdown(function() self:close() end)
  return true
end

-- The conntrack table's XDP fast path (bpf/lb/lb_ct_xdp.bpf.c): loaded beside
-- the tc object, sharing its pinned maps, attached (or taken over) at
-- DIR/link_xdp. Without ct_fastpath, a fast path an earlier instance left goes.
function Service:_fastpath(o)
  local link_path = self.dir .. "/link_xdp"
  local pinned = self.pinned and uv.fs_stat(link_path) and bpf.link_from_pin(link_path)
  if not self.ct.fastpath then
    if pinned and o.attach ~= false then
      pinned:detach()
      os.remove(link_path)
      bpf.log("info", ("service '%s': removed the XDP fast path an earlier instance left (ct_fastpath is off)")
        :format(self.name))
    end
    return true
  end
  local xobj, err = bpf.load("lb_ct_xdp", {
    pin_root_path = self.dir,
    max_entries = { vips = self.max_vips, vip_stats = self.max_vips, backend_stats = self.max_backends },
  })
  if not xobj then return nil, ("service '%s': couldn't load the XDP fast path: %s"):format(self.name, err) end
  self.xobj = xobj
  xobj:set("ct_mark", self.ct.mark)
  local tcp_ms, udp_stream_ms, udp_ms = self.ct:timeouts()
  xobj:set("tcp_timeout_ms", tcp_ms)
  xobj:set("udp_stream_timeout_ms", udp_stream_ms)
  xobj:set("udp_timeout_ms", udp_ms)
  self.xprog = xobj:program("xdp_ct_fast")
  if o.attach == false then return true end
  if pinned then
    local ok, uerr = pinned:update(self.xprog)
    if not ok then return nil, ("service '%s': can't replace the running XDP fast path: %s"):format(self.name, uerr) end
    self.xdp_link = pinned
    return true
  end
  local link, aerr = self.xprog:attach_xdp(o.interface, { mode = self.xdp_mode, netns = o.netns })
  if not link then
    return nil, ("service '%s': couldn't attach the XDP fast path to '%s': %s"):format(self.name, o.interface, aerr)
  end
  if self.pinned then assert(link:pin(link_path)) end
  self.xdp_link = link
  return true
end

-- Rebuild our view of ids from pinned maps, so flows keep their backends.
function Service:_recover()
  self.free_vips, self.free_backends = {}, {}
  local used_v, used_b = {}, {}
  for k, v in self.m.vips:pairs() do
    local rec = {
      id = v.id, addr = addr.text(k.addr), port = k.port, proto = k.proto, mode = v.mode,
      table = v.table, snat = addr.text(v.snat), backends = {}, order = {}, recovered = true,
      name = ("%s:%d/%s"):format(addr.text(k.addr), k.port, PROTO_NAMES[k.proto] or k.proto),
    }
    self.vip_by_id[v.id] = rec
    used_v[v.id] = true
  end
  for id = 0, self.max_backends - 1 do
    local b = self.m.backends:lookup(id)
    if b and b.state ~= REMOVED and not addr.is_zero(b.addr) and self.vip_by_id[b.vip] then
      local v = self.vip_by_id[b.vip]
      local rec = { id = id, addr = addr.text(b.addr), port = b.port, state = b.state, vip = v,
        weight = b.state == DRAINING and 0 or 1 }
      rec.name = ("%s:%d"):format(rec.addr, rec.port)
      v.backends[rec.name] = rec
      v.order[#v.order + 1] = rec
      self.backend_by_id[id] = rec
      used_b[id] = true
    end
  end
  for id = self.max_vips - 1, 0, -1 do if not used_v[id] then self.free_vips[#self.free_vips + 1] = id end end
  for id = self.max_backends - 1, 0, -1 do if not used_b[id] then self.free_backends[#self.free_backends + 1] = id end end
end

--- After declaring every VIP: remove what an earlier instance left pinned
-- that the declaration no longer has. Returns how many VIPs went.
function Service:prune()
  self:_check_open()
  local n = 0
  for id, v in pairs(self.vip_by_id) do
    if v.recovered then
      for _, b in ipairs(v.order) do b.state = REMOVED end
      self:_compact(v)
      self.m.vips:delete(vip_key(v))
      self.vip_by_id[id] = nil
      self.free_vips[#self.free_vips + 1] = id
      n = n + 1
    end
  end
  self:_addr_flags()
  return n
end

function Service:_check_open()
  if not self.obj then error(("service '%s' is closed"):format(self.name), 3) end
end

function Service:_vip(name)
  local v = self.vips[name]
  if not v then
    local names = {}
    for n in pairs(self.vips) do names[#names + 1] = n end
    table.sort(names)
    error(("service '%s' has no VIP '%s' (VIPs: %s)"):format(self.name, tostring(name),
      #names > 0 and table.concat(names, ", ") or "none"), 3)
  end
  return v
end

function Service:_backend(v, name)
  local b = v.backends[name]
  if not b then
    local names = {}
    for _, x in ipairs(v.order) do names[#names + 1] = x.name end
    error(("VIP '%s' has no backend '%s' (backends: %s)"):format(v.name, tostring(name),
      #names > 0 and table.concat(names, ", ") or "none"), 3)
  end
  return b
end

-- Refcounted flags per address: a VIP address, a NAT source address, or both.
function Service:_addr_flags()
  local want = {}
  for _, v in pairs(self.vips) do
    local a = addr.mapped(v.addr)
    want[a] = bit.bor(want[a] or 0, VIP_ADDR)
    if v.mode == MODES.nat then
      local s = addr.mapped(v.snat)
      want[s] = bit.bor(want[s] or 0, SNAT_ADDR)
    end
  end
  for k in self.m.vip_addrs:pairs() do
    if not want[addr.mapped(k)] then self.m.vip_addrs:delete(k) end
  end
  for a, f in pairs(want) do assert(self.m.vip_addrs:update(a, f)) end
end

-- Write the VIP's new Maglev table into its idle half, then flip to it: a
-- packet sees either the old table or the new one, never a mix. entries:
-- { {id=, name=, weight=}, ... }, the weights the table is built from.
function Service:_publish(v, entries)
  local tab = maglev.build(entries, self.ring)
  local half = 1 - (v.table or 0)
  local base = v.id * 2 * self.ring + half * self.ring
  -- What each half holds, as last written, so a change writes only the slots
  -- that differ (about 1/N of them) instead of all 65,537 (20-45 ms of loop).
  v.halves = v.halves or {}
  local have, want = v.halves[half], ffi.new("uint32_t[?]", self.ring)
  local keys, vals, n = {}, {}, 0
  for s = 0, self.ring - 1 do
    local e = tab[s]
    local id = e == 0 and NO_BACKEND or entries[e].id
    want[s] = id
    if not have or have[s] ~= id then
      n = n + 1
      keys[n], vals[n] = base + s, id
    end
  end
  if n > 0 then assert(self.m.maglev:update_batch(keys, vals)) end
  v.halves[half] = want
  v.table = half
  assert(self.m.vips:update(vip_key(v), { id = v.id, mode = v.mode, table = half, flags = 0,
    snat = addr.mapped(v.snat or "::") }))
  v.slots = {}
  for i, c in pairs(maglev.shares(tab, self.ring)) do
    if i > 0 then v.slots[entries[i].id] = c end
  end
  v.slots_written = n
end

-- A backend's weight as health sees it: 0 while down, the exec check's
-- weight when it gives one, ramped up during slow start.
local function health_weight(b, now)
  if b.sorry or b.health == "down" then return 0 end
  local w = b.hweight or b.weight
  if b.ramp_start and w > 0 then
    local f = (now - b.ramp_start) / b.ramp_len
    if f >= 1 then
      b.ramp_start = nil
    else
      w = w * math.max(f, 0.05)
    end
  end
  return w
end

-- Quorum (keepalived's, with its hysteresis): the weight of healthy
-- backends against v.quorum. Only health takes it away: a VIP whose
-- backends are all drained (weight 0) but healthy is not "down".
function Service:_quorum(v)
  local live, total, down = 0, 0, false
  for _, b in ipairs(v.order) do
    if not b.sorry and b.weight > 0 then
      total = total + b.weight
      if b.health == "down" then down = true else live = live + b.weight end
    end
  end
  local ok = v.quorum_ok
  if not down then
    ok = true
  elseif ok == nil then
    ok = live >= v.quorum
  elseif ok and live < v.quorum - v.hysteresis then
    ok = false
  elseif not ok and live >= v.quorum + v.hysteresis then
    ok = true
  end
  v.live_weight, v.total_weight = live, total
  return ok
end

local POLICY_TEXT = {
  keep = "keeping the last set that had it", drop = "dropping new flows", sorry = "serving the sorry backend",
}

-- Recompute what the data plane should hold for v after a change of pool,
-- weight or health: each backend's state, the Maglev table (rebuilt only
-- when a weight changed), then flows of backends marked for a flush.
function Service:_refresh(v, force)
  local now = uv.now()
  local ok = self:_quorum(v)
  if ok ~= v.quorum_ok and v.quorum_ok ~= nil then
    local msg = ok and ("VIP '%s' has quorum again (%g of %g healthy weight, quorum %g)")
      :format(v.name, v.live_weight, v.total_weight, v.quorum)
      or ("VIP '%s' lost quorum (%g of %g healthy weight, quorum %g): %s"):format(v.name, v.live_weight,
        v.total_weight, v.quorum, POLICY_TEXT[v.no_quorum])
    bpf.log(ok and "info" or "warn", ("service '%s': %s"):format(self.name, msg))
    if self.on_health then
      self.on_health({ type = "quorum", vip = v.name, state = ok and "ok" or "lost", live = v.live_weight,
        total = v.total_weight, quorum = v.quorum, policy = v.no_quorum })
    end
  end
  v.quorum_ok = ok
  local entries, want = {}, {}
  for _, b in ipairs(v.order) do
    if b.state ~= REMOVED then
      local w
      if ok then
        w = health_weight(b, now)
      elseif v.no_quorum == "keep" then
        w = v.last_good and v.last_good[b] or 0
      elseif v.no_quorum == "sorry" then
        w = b.sorry and 1 or 0
      else
        w = 0
      end
      want[b] = w
      entries[#entries + 1] = { id = b.id, name = b.name, weight = w }
    end
  end
  if ok then v.last_good = want end
  local changed = force
  for _, b in ipairs(v.order) do
    if b.state ~= REMOVED then
      local st = want[b] > 0 and ACTIVE or DRAINING
      if st ~= b.state or force then
        b.state = st
        self:_write_backend(b)
      end
      if b.eff ~= want[b] then changed = true end
      b.eff = want[b]
    end
  end
  if changed then self:_publish(v, entries) end
  for _, b in ipairs(v.order) do
    if b.flush then
      b.flush = nil
      if b.state == DRAINING and b.health == "down" then self:_flush(v, b) end
    end
  end
end

-- Delete a backend's flows and NAT entries: its clients' next packets choose
-- again (and are reset by the new backend), so they reconnect elsewhere.
function Service:_flush(v, b)
  if self.ct then
    local n = self.ct:flush_backend(b.id)
    bpf.log("info", ("service '%s': VIP '%s' backend '%s': flushed %d conntrack entr%s"):format(self.name,
      v.name, b.name, n, n == 1 and "y" or "ies"))
    return n
  end
  local fk, nk = {}, {}
  for k, f in self.m.flows:pairs() do
    if f.backend == b.id then fk[#fk + 1] = k end
  end
  for k, n in self.m.nat:pairs() do
    if n.backend == b.id then nk[#nk + 1] = k end
  end
  for _, k in ipairs(fk) do self.m.flows:delete(k) end
  for _, k in ipairs(nk) do self.m.nat:delete(k) end
  bpf.log("info", ("service '%s': VIP '%s' backend '%s': flushed %d flow(s)"):format(self.name, v.name,
    b.name, #fk))
end

-- Changes from health checks arrive one by one; the tables are rebuilt once
-- per loop iteration (a uv check handle runs after the I/O callbacks).
function Service:_mark(v)
  self.dirty[v] = true
  if not self.flusher then
    self.flusher = uv.new_check()
  end
  if not self.flusher:is_active() then
    self.flusher:start(function()
      self.flusher:stop()
      local d, after = self.dirty, self.after_refresh
      self.dirty, self.after_refresh = {}, {}
      if not self.obj then return end
      for x in pairs(d) do
        if self.vips[x.name] == x then self:_refresh(x) end
      end
      -- Log lines and events say "down" once the data plane already agrees.
      for _, fn in ipairs(after or {}) do fn() end
    end)
  end
end

-- Slow start: a backend back up gets its weight over `slowstart` seconds, in
-- steps of a quarter second.
function Service:_ramp()
  if self.ramp_timer then return end
  self.ramp_timer = uv.new_timer()
  self.ramp_timer:start(250, 250, function()
    local any = false
    for _, v in pairs(self.vips) do
      for _, b in ipairs(v.order) do
        if b.ramp_start then
          any = true
          self:_mark(v)
        end
      end
    end
    if not any then
      self.ramp_timer:close()
      self.ramp_timer = nil
    end
  end)
end

function Service:_on_health(ev)
  local b = self.checked and self.checked[ev.name]
  if not b or b.state == REMOVED then return end
  local v = b.vip
  if ev.reason == "weight" then
    b.hweight = ev.weight
    return self:_mark(v)
  end
  b.health = ev.state
  b.hweight = ev.weight
  local extra
  if ev.state == "down" then
    b.ramp_start = nil
    if v.down_flows == "flush" then b.flush = true end
    extra = v.down_flows == "flush" and "it leaves the Maglev table; its flows are flushed"
      or "it leaves the Maglev table; its flows are kept"
  else
    if ev.slowstart then
      b.ramp_start, b.ramp_len = uv.now(), ev.slowstart * 1000
      self:_ramp()
    end
    extra = "it rejoins the Maglev table"
  end
  ev.name = ("VIP '%s' backend '%s'"):format(v.name, b.name)
  self.after_refresh = self.after_refresh or {}
  table.insert(self.after_refresh, function()
    bpf.log(ev.state == "down" and "warn" or "info", ("service '%s': %s; %s"):format(self.name,
      health.describe(ev), extra))
    if self.on_health then
      self.on_health({ type = "health", vip = v.name, backend = b.name, state = ev.state, from = ev.from,
        reason = ev.reason, detail = ev.detail, after = ev.after, weight = ev.weight })
    end
  end)
  self:_mark(v)
end

-- A stable text for a check declaration, to tell a changed one on reload.
local function spec_key(x)
  if type(x) ~= "table" then return tostring(x) end
  local keys = {}
  for k in pairs(x) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do
    local val = x[k]
    if val == nil then val = x[tonumber(k)] end
    out[#out + 1] = k .. "=" .. spec_key(val)
  end
  return "{" .. table.concat(out, ",") .. "}"
end

-- Start, restart (declaration changed: the state is kept) or stop b's check.
function Service:_sync_check(v, b, spec)
  local name = spec and (v.name .. "/" .. b.name)
  local key = spec and (name .. spec_key(spec))
  if key == b.check_key then return end
  if b.check_name then
    self.hc:remove(b.check_name)
    self.checked[b.check_name] = nil
  end
  b.check_name, b.check_key, b.check_spec = nil, nil, spec
  if not spec then
    b.health = "up"
    return
  end
  if not self.hc then
    self.hc = health.new({ name = ("service '%s'"):format(self.name), log = false,
      on_change = function(ev) self:_on_health(ev) end })
    self.checked = {}
  end
  local s = {}
  for k, x in pairs(spec) do s[k] = x end
  if b.health then s.initial = b.health == "up" and "fully-up" or "fully-down" end
  self.hc:add(name, s)
  b.health = self.hc:get(name).state
  b.check_name, b.check_key = name, key
  self.checked[name] = b
end

function Service:_write_backend(b)
  assert(self.m.backends:update(b.id, { addr = addr.mapped(b.addr), port = b.port or 0,
    state = b.state, vip = b.vip.id }))
end

local function parse_port(what, p, level)
  if type(p) ~= "number" or p < 1 or p > 65535 or p % 1 ~= 0 then
    error(("%s: port must be 1-65535, got %s"):format(what, tostring(p)), level + 1)
  end
  return p
end

local function prime_neighbour(a)
  -- Ask the kernel to resolve the next hop now, so the first packet finds its MAC.
  local h = uv.spawn("ping", { args = { addr.is_v4(a) and "-4" or "-6", "-c", "1", "-W", "1", a },
    stdio = { nil, nil, nil } }, function() end)
  if h then h:close() end
end

-- Validation is separate from change: a declaration with an error anywhere
-- changes nothing. These return normalized records or raise at `level`.
local function norm_backend(v, o, level)
  check_opts("backend", o, { name = true, addr = true, port = true, weight = true, check = true, sorry = true })
  local a = addr.check("backend addr", o.addr, level + 1)
  if addr.is_v4(a) ~= addr.is_v4(v.addr) then
    error(("backend %s and VIP %s must be the same address family"):format(a, v.addr), level + 1)
  end
  local port = o.port and parse_port("backend " .. a, o.port, level + 1) or v.port
  local weight = o.weight or 1
  if type(weight) ~= "number" or weight < 0 then
    error(("backend %s: weight must be a number >= 0, got %s"):format(a, tostring(weight)), level + 1)
  end
  local name = o.name or ("%s:%d"):format(a, port)
  -- The VIP's check, with the backend's own settings over it; the target
  -- defaults to the backend's address and port. check = false: never checked.
  local chk
  if o.check ~= false and (v.check or o.check) then
    if o.check ~= nil and type(o.check) ~= "table" then
      error(("backend '%s': check must be a table or false, got %s"):format(name, type(o.check)), level + 1)
    end
    chk = {}
    for k, x in pairs(v.check or {}) do chk[k] = x end
    for k, x in pairs(o.check or {}) do chk[k] = x end
    if chk.addr == nil then chk.addr = a end
    if chk.port == nil then chk.port = port end
    health.normalize(chk, ("VIP '%s' backend '%s': check"):format(v.name, name), level + 1)
  end
  return { name = name, addr = a, port = port, weight = weight, check = chk, sorry = o.sorry }
end

function Service:_norm_vip(o, level)
  check_opts("vip", o, { name = true, addr = true, port = true, proto = true, mode = true,
    snat = true, backends = true, check = true, down_flows = true, quorum = true, hysteresis = true,
    no_quorum = true, sorry = true })
  local a = addr.check("vip addr", o.addr, level + 1)
  local port = parse_port("vip " .. a, o.port, level + 1)
  local proto = PROTOS[o.proto or "tcp"]
  if not proto then error(("vip %s: proto must be tcp or udp, got %s"):format(a, tostring(o.proto)), level + 1) end
  local mode = MODES[o.mode or "nat"]
  if not mode then error(("vip %s: mode must be nat or dsr, got %s"):format(a, tostring(o.mode)), level + 1) end
  if mode == MODES.dsr and self.ct then
    error(("vip %s: mode 'dsr' needs flow_table = 'lru' (conntrack translates addresses; DSR rewrites only MACs)")
      :format(a), level + 1)
  end
  local n = { name = o.name or ("%s:%d/%s"):format(a, port, o.proto or "tcp"), addr = a, port = port,
    proto = proto, mode = mode, backends = {} }
  local function bad(fmt, ...) error(("vip '%s': " .. fmt):format(n.name, ...), level + 1) end
  if o.check ~= nil and type(o.check) ~= "table" then bad("check must be a table, got %s", type(o.check)) end
  n.check = o.check
  if o.check then
    -- Checked on its own too: a VIP with no backends yet still gets a valid check.
    local probe = { addr = a, port = port }
    for k, x in pairs(o.check) do probe[k] = x end
    health.normalize(probe, ("vip '%s': check"):format(n.name), level + 1)
  end
  n.down_flows = o.down_flows or "keep"
  if n.down_flows ~= "keep" and n.down_flows ~= "flush" then
    bad("down_flows must be keep or flush, got %s", tostring(o.down_flows))
  end
  n.quorum, n.hysteresis = o.quorum or 1, o.hysteresis or 0
  if type(n.quorum) ~= "number" or n.quorum < 0 then bad("quorum must be a weight >= 0, got %s", tostring(o.quorum)) end
  if type(n.hysteresis) ~= "number" or n.hysteresis < 0 then
    bad("hysteresis must be a weight >= 0, got %s", tostring(o.hysteresis))
  end
  n.no_quorum = o.no_quorum or (o.sorry and "sorry" or "keep")
  if n.no_quorum ~= "keep" and n.no_quorum ~= "drop" and n.no_quorum ~= "sorry" then
    bad("no_quorum must be keep, drop or sorry, got %s", tostring(o.no_quorum))
  end
  if n.no_quorum == "sorry" and type(o.sorry) ~= "table" then
    bad("no_quorum = 'sorry' needs sorry = { addr = ..., port = ... }")
  end
  if mode == MODES.nat then
    local snat = o.snat or (self.interface and iface_addr(self.interface, not addr.is_v4(a)))
    if not snat then
      error(("vip '%s' is in NAT mode and '%s' has no %s address: give snat = ADDRESS")
        :format(n.name, tostring(self.interface), addr.is_v4(a) and "IPv4" or "IPv6"), level + 1)
    end
    n.snat = addr.check("vip snat", snat, level + 1)
    if addr.is_v4(n.snat) ~= addr.is_v4(a) then
      error(("vip '%s': snat %s and VIP %s must be the same address family"):format(n.name, n.snat, a), level + 1)
    end
  end
  local seen = {}
  for _, bo in ipairs(o.backends or {}) do
    local b = norm_backend(n, bo, level + 1)
    local where = b.addr .. ":" .. b.port
    if seen[b.name] or seen[where] then
      error(("vip '%s': backend '%s' (%s) is declared twice"):format(n.name, b.name, where), level + 1)
    end
    seen[b.name], seen[where] = true, true
    n.backends[#n.backends + 1] = b
  end
  if o.sorry then
    -- keepalived's sorry_server: in the table only while quorum is lost.
    local so = {}
    for k, x in pairs(o.sorry) do so[k] = x end
    so.name, so.check = so.name or "sorry", false
    local b = norm_backend(n, so, level + 1)
    local where = b.addr .. ":" .. b.port
    if seen[b.name] or seen[where] then
      error(("vip '%s': the sorry backend '%s' (%s) is also a backend"):format(n.name, b.name, where), level + 1)
    end
    b.sorry = true
    n.backends[#n.backends + 1] = b
  end
  return n
end

local function same_service(a, b)
  return addr.mapped(a.addr) == addr.mapped(b.addr) and a.port == b.port and a.proto == b.proto
end

-- Create or take over (from pinned state) the VIP record for n.
function Service:_vip_record(n)
  for id, r in pairs(self.vip_by_id) do
    if r.recovered and same_service(r, n) then
      r.recovered = nil
      return r
    end
  end
  local id = table.remove(self.free_vips)
  if not id then error(("service '%s' has all %d VIP slots in use (max_vips)"):format(self.name, self.max_vips), 3) end
  local v = { id = id, backends = {}, order = {}, table = 1 }
  self.vip_by_id[id] = v
  return v
end

-- Make v's backends exactly `declared` (normalized): keep ids of those that
-- stay (their flows stay), add new ones, remove the rest. Then publish.
function Service:_sync_backends(v, declared)
  local want = {}
  for _, b in ipairs(declared) do want[addr.mapped(b.addr) .. "|" .. b.port] = b end
  for _, b in ipairs(v.order) do
    if not want[addr.mapped(b.addr) .. "|" .. b.port] then b.state = REMOVED end
  end
  self:_compact(v)
  local have = {}
  for _, b in ipairs(v.order) do have[addr.mapped(b.addr) .. "|" .. b.port] = b end
  v.backends = {}
  for _, d in ipairs(declared) do
    local b = have[addr.mapped(d.addr) .. "|" .. d.port]
    if not b then
      local id = table.remove(self.free_backends)
      if not id then error(("all %d backend slots are in use (max_backends)"):format(self.max_backends), 3) end
      b = { id = id, vip = v }
      v.order[#v.order + 1] = b
      self.backend_by_id[id] = b
      if self.prime then prime_neighbour(d.addr) end
    end
    if b.check_name and b.name ~= d.name then self:_sync_check(v, b, nil) end
    b.name, b.addr, b.port, b.weight, b.sorry = d.name, d.addr, d.port, d.weight, d.sorry
    v.backends[b.name] = b
    self:_sync_check(v, b, d.check)
  end
  self:_refresh(v, true)
end

function Service:_install_vip(n)
  local v = self:_vip_record(n)
  v.name, v.addr, v.port, v.proto, v.mode, v.snat = n.name, n.addr, n.port, n.proto, n.mode, n.snat
  self:_vip_health(v, n)
  self.vips[n.name] = v
  self:_sync_backends(v, n.backends)
  self:_addr_flags()
  return v.name
end

--- Add a VIP: { name=, addr=, port=, proto="tcp"|"udp", mode="nat"|"dsr",
-- snat= (nat: the balancer's address toward backends; default: the interface's),
-- backends = { {name=, addr=, port=, weight=}, ... } }.
function Service:add_vip(o)
  self:_check_open()
  local n = self:_norm_vip(o, 2)
  if self.vips[n.name] then error(("add_vip: service '%s' already has a VIP named '%s'"):format(self.name, n.name), 2) end
  for _, v in pairs(self.vips) do
    if same_service(v, n) then
      error(("add_vip: %s:%d/%s is already VIP '%s'"):format(n.addr, n.port, PROTO_NAMES[n.proto], v.name), 2)
    end
  end
  return self:_install_vip(n)
end

--- Make the service exactly this list of VIPs (a whole configuration): VIPs
-- and backends that stay keep their flows, new ones are added, the rest go.
-- A list with an error anywhere raises and changes nothing.
function Service:apply(list)
  self:_check_open()
  if type(list) ~= "table" then error("apply: expects a list of VIPs", 2) end
  local norm, names = {}, {}
  for i, o in ipairs(list) do
    local n = self:_norm_vip(o, 2)
    if names[n.name] then error(("apply: VIP '%s' is declared twice"):format(n.name), 2) end
    for _, m in ipairs(norm) do
      if same_service(m, n) then
        error(("apply: VIPs '%s' and '%s' are both %s:%d/%s"):format(m.name, n.name, n.addr, n.port,
          PROTO_NAMES[n.proto]), 2)
      end
    end
    names[n.name] = true
    norm[i] = n
  end
  if #norm > self.max_vips then
    error(("apply: %d VIPs, but service '%s' has %d VIP slots (max_vips)"):format(#norm, self.name, self.max_vips), 2)
  end
  -- VIPs whose name or service changed go first, freeing their slots.
  for name, v in pairs(self.vips) do
    local keep = false
    for _, n in ipairs(norm) do
      if n.name == name and same_service(v, n) and n.mode == v.mode and n.snat == v.snat then keep = true end
    end
    if not keep then self:remove_vip(name) end
  end
  for _, n in ipairs(norm) do
    local v = self.vips[n.name]
    if v then
      self:_vip_health(v, n)
      self:_sync_backends(v, n.backends)
    else
      self:_install_vip(n)
    end
  end
  self:_addr_flags()
end

function Service:_vip_health(v, n)
  v.check, v.down_flows, v.quorum, v.hysteresis, v.no_quorum = n.check, n.down_flows, n.quorum,
    n.hysteresis, n.no_quorum
end

function Service:_compact(v)
  local keep = {}
  for _, b in ipairs(v.order) do
    if b.state == REMOVED then
      self:_sync_check(v, b, nil)
      self:_write_backend(b)
      self.backend_by_id[b.id] = nil
      self.free_backends[#self.free_backends + 1] = b.id
      v.backends[b.name] = nil
    else
      keep[#keep + 1] = b
    end
  end
  v.order = keep
end

-- The VIP's backends as declarations, for changing one and syncing them all.
local function declared(v)
  local out = {}
  for _, b in ipairs(v.order) do
    out[#out + 1] = { name = b.name, addr = b.addr, port = b.port, weight = b.weight, check = b.check_spec,
      sorry = b.sorry }
  end
  return out
end

--- Add a backend to a VIP: { name=, addr=, port=, weight= }.
function Service:add_backend(vip, o)
  self:_check_open()
  local v = self:_vip(vip)
  local b = norm_backend(v, o, 2)
  for _, x in ipairs(v.order) do
    if x.name == b.name or (addr.mapped(x.addr) == addr.mapped(b.addr) and x.port == b.port) then
      error(("add_backend: VIP '%s' already has backend '%s' (%s:%d)"):format(v.name, x.name, x.addr, x.port), 2)
    end
  end
  local list = declared(v)
  list[#list + 1] = b
  self:_sync_backends(v, list)
  return b.name
end

--- Change a backend's weight; 0 drains it: no new flows, existing ones go on.
function Service:set_weight(vip, name, weight)
  self:_check_open()
  local v = self:_vip(vip)
  local b = self:_backend(v, name)
  if type(weight) ~= "number" or weight < 0 then
    error(("set_weight: weight must be a number >= 0, got %s"):format(tostring(weight)), 2)
  end
  b.weight = weight
  self:_refresh(v)
end

--- Remove a backend: it leaves the table and its flows move to others.
-- {flush = true}: also delete its flows now (conntrack mode: its entries,
-- whose NAT otherwise keeps its connections on it until they end).
function Service:remove_backend(vip, name, o)
  self:_check_open()
  if o ~= nil then check_opts("remove_backend", o, { flush = true }) end
  local v = self:_vip(vip)
  local b = self:_backend(v, name)
  local list = {}
  for _, d in ipairs(declared(v)) do
    if d.name ~= b.name then list[#list + 1] = d end
  end
  self:_sync_backends(v, list)
  if o and o.flush then self:_flush(v, b) end
end

--- Remove a VIP and its backends.
function Service:remove_vip(name)
  self:_check_open()
  local v = self:_vip(name)
  for _, b in ipairs(v.order) do b.state = REMOVED end
  self:_compact(v)
  self.m.vips:delete(vip_key(v))
  self.vips[name] = nil
  self.vip_by_id[v.id] = nil
  self.free_vips[#self.free_vips + 1] = v.id
  self:_addr_flags()
end

--- Which backend gets this flow: { src=, sport=, dst=, dport=, proto= }.
-- Returns the backend's name and whether the flow table already holds it.
function Service:which(f)
  self:_check_open()
  local proto = PROTOS[f.proto or "tcp"] or f.proto
  local key = { src = addr.mapped(f.src), dst = addr.mapped(f.dst), sport = f.sport,
    dport = f.dport, proto = proto }
  local hit
  if self.ct then
    local e = self.ct:get(f.src, f.sport, f.dst, f.dport, PROTO_NAMES[proto])
    hit = e and { backend = e.backend_id }
  else
    hit = self.m.flows:lookup(key)
  end
  if hit and self.backend_by_id[hit.backend] then
    return self.backend_by_id[hit.backend].name, true
  end
  local vk = self.m.vips:lookup({ addr = key.dst, port = f.dport, proto = proto })
  if not vk then return nil, "no VIP for " .. tostring(f.dst) .. ":" .. tostring(f.dport) end
  local h = M.flow_hash(f.src, f.sport, f.dst, f.dport, proto)
  local slot = vk.id * 2 * self.ring + vk.table * self.ring + h % self.ring
  local id = self.m.maglev:lookup(slot)
  local b = id and self.backend_by_id[id]
  if not b then return nil, "no backend" end
  return b.name, false
end

--- Flows in the flow table: a list of {src, sport, dst, dport, proto, vip, backend}.
function Service:flows(vip)
  self:_check_open()
  if self.ct then
    -- The kernel's entries with our mark: what `conntrack -L -m MARK/0xffff0000` shows.
    local out = {}
    for _, e in ipairs(self.ct:entries()) do
      local b = self.backend_by_id[e.backend_id]
      local vv = b and b.vip
      if not vip or (vv and vv.name == vip) then
        e.vip, e.backend = vv and vv.name, b and b.name
        out[#out + 1] = e
      end
    end
    return out
  end
  local out = {}
  for k, v in self.m.flows:pairs() do
    local b = self.backend_by_id[v.backend]
    local vv = self.vip_by_id[v.vip]
    if not vip or (vv and vv.name == vip) then
      out[#out + 1] = { src = addr.text(k.src), sport = k.sport, dst = addr.text(k.dst),
        dport = k.dport, proto = PROTO_NAMES[k.proto] or k.proto,
        vip = vv and vv.name, backend = b and b.name }
    end
  end
  return out
end

local function counters(map, id)
  local c = map:lookup_sum(id)
  return { packets = tonumber(c.packets), bytes = tonumber(c.bytes), new_flows = tonumber(c.new_flows) }
end

-- Rates since the previous stats() call for the same thing.
function Service:_rate(key, c, now)
  local prev = self.last[key]
  self.last[key] = { t = now, c = c }
  if not prev or now <= prev.t then return end
  local dt = (now - prev.t) / 1e9
  c.pps = (c.packets - prev.c.packets) / dt
  c.bps = (c.bytes - prev.c.bytes) * 8 / dt
  c.flows_per_s = (c.new_flows - prev.c.new_flows) / dt
end

--- Counters per VIP and backend (with rates since the last call) and per reason.
function Service:stats()
  self:_check_open()
  local now = uv.hrtime()
  local out = { vips = {}, reasons = {} }
  for name, v in pairs(self.vips) do
    local s = counters(self.m.vip_stats, v.id)
    self:_rate("v" .. v.id, s, now)
    s.addr, s.port, s.proto, s.mode = v.addr, v.port, PROTO_NAMES[v.proto], MODE_NAMES[v.mode]
    s.backends = {}
    local healthy, checked = 0, 0
    for _, b in ipairs(v.order) do
      local bs = counters(self.m.backend_stats, b.id)
      self:_rate("b" .. b.id, bs, now)
      bs.addr, bs.port, bs.weight, bs.state = b.addr, b.port, b.weight, STATE_NAMES[b.state]
      bs.slots = v.slots and v.slots[b.id] or 0
      bs.effective_weight = b.eff
      bs.sorry = b.sorry or nil
      if b.sorry then
        bs.health = "sorry"
      elseif b.check_name then
        bs.health = b.health
        bs.check = self.hc:get(b.check_name):info()
        checked = checked + 1
        if b.health == "up" then healthy = healthy + 1 end
      else
        bs.health = "unchecked"
      end
      s.backends[b.name] = bs
    end
    s.checked, s.healthy = checked, healthy
    s.quorum = { ok = v.quorum_ok ~= false, live = v.live_weight, total = v.total_weight, need = v.quorum,
      hysteresis = v.hysteresis, policy = v.no_quorum }
    out.vips[name] = s
  end
  for i, r in ipairs(M.REASONS) do
    out.reasons[r] = tonumber(self.m.reasons:lookup_sum(i - 1).packets)
  end
  return out
end

function Service:_event(ev)
  local v = self.vip_by_id[ev.vip]
  local b = self.backend_by_id[ev.backend]
  local e = {
    type = ev.type == 1 and "new_flow" or "drop",
    reason = ev.type == 2 and M.REASONS[ev.reason + 1] or nil,
    proto = PROTO_NAMES[ev.proto] or ev.proto,
    src = addr.text(ev.src), sport = ev.sport, dst = addr.text(ev.dst), dport = ev.dport,
    vip = v and v.name, backend = b and b.name,
  }
  if self.on_event then
    self.on_event(e)
  elseif e.type == "drop" then
    bpf.log("info", ("service '%s': %s %s:%d -> %s:%d/%s"):format(self.name, e.reason, e.src,
      e.sport, e.dst, e.dport, e.proto))
  end
end

function Service:_unpin_all()
  for _, m in pairs(self.m or {}) do pcall(m.unpin, m) end
  rmdir_pins(self.dir)
  -- Parents go too when nothing else lives there (rmdir fails otherwise).
  local parent = self.dir:match("^(.*)/[^/]+$")
  while parent and parent ~= "/sys/fs/bpf" and parent ~= "" and os.remove(parent) do
    parent = parent:match("^(.*)/[^/]+$")
  end
end

--- Stop: a pinned service leaves its program attached and its state pinned
-- for the next instance; {destroy=true} (or pin=false) detaches and removes it.
function Service:close(o)
  if not self.obj then return end
  o = o or {}
  if self.events then self.events:close() end
  if self.hc then self.hc:close() end
  if self.flusher then self.flusher:close() end
  if self.ramp_timer then self.ramp_timer:close() end
  self.flusher, self.ramp_timer = nil, nil
  if self.pinned and not o.destroy then
    -- Leave the link attached and pinned: the next instance takes it over.
    self.link, self.xdp_link = nil, nil
  else
    if self.link then self.link:detach() end
    if self.xdp_link then self.xdp_link:detach() end
    if self.ct then self.ct:teardown() end
    if self.pinned then os.remove(self.dir .. "/link"); os.remove(self.dir .. "/link_xdp") end
    self:_unpin_all()
  end
  if self.xobj then self.xobj:close() end
  self.obj, self.xobj = nil, nil
end

M.Service = Service
return M
