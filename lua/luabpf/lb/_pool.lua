-- SPDX-License-Identifier: MIT
-- The pool: VIPs and their backends, declared one by one (add_vip,
-- add_backend, set_weight, remove_*) or as a whole (apply, prune). Ids are
-- kept for what stays, so its flows stay. Part of luabpf.lb (init.lua).
local uv = require("luv")
local addr = require("luabpf._addr")
local C = require("luabpf.lb._common")
local norm_backend = require("luabpf.lb._validate").norm_backend

local Service = C.Service
local PROTO_NAMES, REMOVED = C.PROTO_NAMES, C.REMOVED
local vip_key, check_opts, same_service = C.vip_key, C.check_opts, C.same_service

--- After declaring every VIP: remove what an earlier instance left pinned
-- that the declaration no longer has. Returns how many VIPs went.
function Service:prune()
  self:_check_open()
  local n = 0
  for id, v in pairs(self.vip_by_id) do
    if v.recovered then
      for _, b in ipairs(v.order) do b.state = REMOVED end
      self:_clear_vip_id(id)
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

local function prime_neighbour(a)
  -- Ask the kernel to resolve the next hop now, so the first packet finds its MAC.
  local h = uv.spawn("ping", { args = { addr.is_v4(a) and "-4" or "-6", "-c", "1", "-W", "1", a },
    stdio = { nil, nil, nil } }, function() end)
  if h then h:close() end
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
  for _, b in ipairs(declared) do want[self:_mapped(b.addr) .. "|" .. b.port] = b end
  for _, b in ipairs(v.order) do
    if not want[self:_mapped(b.addr) .. "|" .. b.port] then b.state = REMOVED end
  end
  self:_compact(v)
  local have = {}
  for _, b in ipairs(v.order) do have[self:_mapped(b.addr) .. "|" .. b.port] = b end
  v.backends = {}
  for _, d in ipairs(declared) do
    local b = have[self:_mapped(d.addr) .. "|" .. d.port] or self:_new_backend(v, d, 4)
    if b.check_name and b.name ~= d.name then self:_sync_check(v, b, nil) end
    b.name, b.addr, b.port, b.weight, b.sorry = d.name, d.addr, d.port, d.weight, d.sorry
    v.backends[b.name] = b
    self:_sync_check(v, b, d.check)
  end
  self:_refresh(v, true)
end

-- A new backend record in v for declaration d: an id from the free list,
-- its neighbour primed. Raises at `level` when every id is taken.
function Service:_new_backend(v, d, level)
  local id = table.remove(self.free_backends)
  if not id then error(("all %d backend slots are in use (max_backends)"):format(self.max_backends), level) end
  local b = { id = id, vip = v }
  v.order[#v.order + 1] = b
  self.backend_by_id[id] = b
  if self.prime then prime_neighbour(d.addr) end
  return b
end

function Service:_install_vip(n)
  local v = self:_vip_record(n)
  v.name, v.addr, v.port, v.proto, v.mode, v.snat = n.name, n.addr, n.port, n.proto, n.mode, n.snat
  v.gue_port = n.gue_port
  self:_vip_health(v, n)
  self.vips[n.name] = v
  self:_sync_backends(v, n.backends)
  self:_addr_flags()
  return v.name
end

--- Add a VIP: { name=, addr=, port=, proto="tcp"|"udp", mode="nat"|"dsr"|"ipip"|"gue",
-- snat= (nat: the balancer's address toward backends; default: the interface's),
-- encap_src=, gue_port= (ipip, gue: the tunnels' outer source and GUE port),
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
      v.gue_port = n.gue_port -- a new GUE port goes out with the next publish
      self:_vip_health(v, n)
      self:_sync_backends(v, n.backends)
    else
      self:_install_vip(n)
    end
  end
  self:_addr_flags()
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

--- Add a backend to a VIP: { name=, addr=, port=, weight= }.
function Service:add_backend(vip, o)
  self:_check_open()
  local v = self:_vip(vip)
  local d = norm_backend(v, o, 2)
  local a = self:_mapped(d.addr)
  for _, x in ipairs(v.order) do
    if x.name == d.name or (self:_mapped(x.addr) == a and x.port == d.port) then
      error(("add_backend: VIP '%s' already has backend '%s' (%s:%d)"):format(v.name, x.name, x.addr, x.port), 2)
    end
  end
  -- What _sync_backends does for a list with one more, for that one only:
  -- a pool change costs the table's build, not a pass over every backend.
  local b = self:_new_backend(v, d, 3)
  b.name, b.addr, b.port, b.weight, b.sorry = d.name, d.addr, d.port, d.weight, d.sorry
  v.backends[b.name] = b
  self:_sync_check(v, b, d.check)
  self:_refresh(v) -- its record is written (a new state), the table rebuilt (a new weight)
  return d.name
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
  -- _sync_backends without b, for b only (as add_backend).
  b.state = REMOVED
  self:_compact(v)
  self:_refresh(v, "table")
  if o and o.flush then self:_flush(v, b) end
end

--- Remove a VIP and its backends.
function Service:remove_vip(name)
  self:_check_open()
  local v = self:_vip(name)
  for _, b in ipairs(v.order) do b.state = REMOVED end
  self:_clear_vip_id(v.id) -- its flows' packets leave the fast path first
  self:_compact(v)
  self.m.vips:delete(vip_key(v))
  self.vips[name] = nil
  self.vip_by_id[v.id] = nil
  self.free_vips[#self.free_vips + 1] = v.id
  self:_addr_flags()
end

return true
