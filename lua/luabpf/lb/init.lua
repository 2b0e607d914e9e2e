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
--
-- The service is split where a reader looks (README.md): this file is its
-- lifecycle and pins; _pool.lua, _publish.lua, _health.lua, _validate.lua and
-- _stats.lua add the rest of Service's methods.
local uv = require("luv")
local maglev = require("luabpf.lb.maglev")
local addr = require("luabpf._addr")
local util = require("luabpf._util")
local C = require("luabpf.lb._common")
local stats = require("luabpf.lb._stats")
local life = require("luabpf.lb._life")
require("luabpf.lb._validate")
require("luabpf.lb._publish")
require("luabpf.lb._health")
require("luabpf.lb._pool")

local M = {}

local Service = C.Service
local PROTO_NAMES, DRAINING, REMOVED = C.PROTO_NAMES, C.DRAINING, C.REMOVED
local fail, check_opts = C.fail, C.check_opts

M.REASONS = C.REASONS

M.PIN_ROOT = "/sys/fs/bpf/luabpf/lb"

--- The data plane's flow hash (flow_hash in bpf/lb/lb.bpf.c), for "which backend?".
M.flow_hash = stats.flow_hash

local function rmdir_pins(dir)
  for _, f in ipairs({ "link" }) do os.remove(dir .. "/" .. f) end
  local p = io.popen("ls -A " .. dir .. " 2>/dev/null")
  for f in p:lines() do os.remove(dir .. "/" .. f) end
  p:close()
  os.remove(dir)
end

--- Start (or take over) the service: load the data plane, reuse pinned state,
-- attach XDP to the interface. See docs/lb.md for the options.
function M.new(o)
  check_opts("lb.new", o, {
    name = true, interface = true, netns = true, xdp_mode = true, pin = true, pin_root = true,
    ring_size = true, max_vips = true, max_backends = true, flows = true, flow_sample = true,
    drop_sample = true, on_event = true, prime_neighbours = true, attach = true, on_health = true,
    flow_table = true, ct_mark = true, ct_fastpath = true, bgp = true,
    ct_sync = true,
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
    if o.ct_sync ~= nil and type(o.ct_sync) ~= "boolean" then
      fail("lb.new: ct_sync expects a boolean, got %s", type(o.ct_sync))
    end
    ct = lb_ct.new({ name = o.name, interface = o.interface, netns = o.netns, mark = o.ct_mark,
      fastpath = o.ct_fastpath == true, sync = o.ct_sync == true })
    local ok, cerr = lb_ct.check()
    if not ok then return nil, ("service '%s': %s"):format(o.name, cerr) end
  elseif o.flow_table ~= nil and o.flow_table ~= "lru" then
    fail("lb.new: flow_table must be 'lru' or 'conntrack', got %s", tostring(o.flow_table))
  elseif o.ct_fastpath then
    fail("lb.new: ct_fastpath needs flow_table = 'conntrack' (the LRU table is XDP throughout)")
  elseif o.ct_sync then
    fail("lb.new: ct_sync needs flow_table = 'conntrack' (the LRU table's flows live in one node's maps)")
  end
  local bgp_o
  if o.bgp ~= nil then -- BGP announcements through BIRD (lb/_bgp.lua, docs/scale-out.md)
    local berr
    bgp_o, berr = require("luabpf.lb._bgp").check(o.bgp)
    if not bgp_o then fail("lb.new: %s", berr) end
  end
  local self = setmetatable({
    bgp_o = bgp_o,
    name = o.name, interface = o.interface, netns = o.netns,
    xdp_mode = o.xdp_mode or "auto",
    ring = o.ring_size or maglev.DEFAULT_SIZE,
    max_vips = o.max_vips or 16, max_backends = o.max_backends or 1024,
    vips = {}, vip_by_id = {}, backend_by_id = {}, vid = {},
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
  -- A temporary directory a dead process left (SIGKILL, watchdog) goes;
  -- then one process per service: the second start changes nothing.
  life.clean_stale(root)
  local fresh = not uv.fs_stat(self.dir .. "/vips")
  util.mkdir_p(self.dir)
  -- A directory that can't be opened (no bpffs: ip netns exec) is left
  -- to bpf.load, whose error says why and what to do.
  local lock, lerr, held = life.lock(self.dir, o.name)
  if held then
    return nil, lerr, ("stop it first ('luabpf lb stop %s', systemctl stop luabpf@%s), or give this config another service name")
      :format(o.name, o.name)
  end
  self.lock, self.fresh = lock, fresh

  local obj, err = bpf.load(ct and "lb_ct" or "lb", {
    pin_root_path = self.dir,
    map_flags = not fresh and self:_pinned_maglev_flags() or nil,
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
    life.unlock(lock)
    return nil, err
  end
  self.obj = obj
  local ok, res, res2, res3 = pcall(self._start, self, o)
  if not ok or not res then
    -- Nothing half-made stays behind: state we just created goes again.
    if self.link and (fresh or not self.pinned) then self.link:detach() end
    if self.xdp_link and (fresh or not self.pinned) then self.xdp_link:detach() end
    if self.xobj then self.xobj:close() end
    if (fresh or not self.pinned) and self.refused then
      -- A pinned link we refused to take over is not ours: only our maps go.
      for _, m in pairs(self.m or {}) do pcall(m.unpin, m) end
    elseif fresh or not self.pinned then
      self:_unpin_all()
    end
    obj:close()
    life.unlock(lock)
    if not ok then error(res, 2) end
    return nil, res2, res3
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
  -- ct_sync: new flows' NAT targets in nftables, kept in step (lb/_conntrack.lua).
  if self.ct and self.ct.sync then
    obj:set("ct_sync", 1)
    if o.attach ~= false then
      local ok, serr = self.ct:bind(self)
      if not ok then return nil, serr end
    end
  end

  -- A pinned link means a running (or stopped) earlier instance: replace its
  -- program in place, so traffic never sees a moment without one.
  local prog = obj:program(self.ct and "tc_lb" or "xdp_lb")
  self.prog = prog
  local link_path = self.dir .. "/link"
  -- Taken over only if on this interface and this program (_life.lua); a
  -- link severed by its interface going away is replaced.
  local link, lkerr, lkhint = false, nil, nil
  if self.pinned and o.attach ~= false then
    link, lkerr, lkhint = life.adopt(self, link_path, self.ct and "tc_lb" or "xdp_lb", self.ct and "tc" or "XDP")
    if link == nil then self.refused = true return nil, lkerr, lkhint end
  end
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
    -- Recovered state on a new attachment (its interface was recreated):
    -- the kernel has forgotten the backends' neighbours.
    if not self.fresh and self.prime then life.prime(self) end
  end
  self.link = link
  if self.ct then
    local ok, xerr = self:_fastpath(o)
    if not ok then return nil, xerr end
  end

  -- Neighbour and route changes reach the next-hop cache at once (lb/_neigh.lua).
  if not self.ct and o.attach ~= false then self.neigh = require("luabpf.lb._neigh").watch(self) end
  if o.attach ~= false then self.linkwatch = life.watch_link(self) end
  self.events = bpf.ringbuf(obj:map("events"), function(ev) self:_event(ev) end,
    { decode = "struct lb_event" })
  self.on_event = o.on_event
  if self.bgp_o then self.bgp = require("luabpf.lb._bgp").new(self, self.bgp_o) end
  bpf.on_shutdown(function() self:close() end)
  return true
end

-- The conntrack table's XDP fast path (bpf/lb/lb_ct_xdp.bpf.c): loaded beside
-- the tc object, sharing its pinned maps, attached (or taken over) at
-- DIR/link_xdp. Without ct_fastpath, a fast path an earlier instance left goes.
function Service:_fastpath(o)
  local link_path = self.dir .. "/link_xdp"
  local pinned, perr, phint = false, nil, nil
  if self.pinned and o.attach ~= false then
    pinned, perr, phint = life.adopt(self, link_path, "xdp_ct_fast", "XDP fast path")
    if pinned == nil then self.refused = true return nil, perr, phint end
  end
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
      gue_port = v.encap_port ~= 0 and v.encap_port or nil,
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

function Service:_check_open()
  if not self.obj then error(("service '%s' is closed"):format(self.name), 3) end
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
  if self.neigh then self.neigh:close() end
  if self.linkwatch then self.linkwatch.close() end
  if self.hc then self.hc:close() end
  if self.flusher then self.flusher:close() end
  if self.ramp_timer then self.ramp_timer:close() end
  self.flusher, self.ramp_timer = nil, nil
  self:_maglev_unmap()
  -- A program left pinned still serves: it stays announced. Else withdrawn before it goes.
  if self.bgp then self.bgp:close(not self.pinned or o.destroy) end
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
  life.unlock(self.lock)
  self.lock = nil
end

M.Service = Service
return M
