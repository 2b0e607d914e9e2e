-- SPDX-License-Identifier: MIT
-- Ready-made families: the kernel's run counts and run time of programs
-- (reg:programs) and a load balancer service's stats (reg:lb). Part of
-- luabpf.metrics.
local K = require("luabpf.metrics._common")
local T = require("luabpf.metrics._text")

local Registry, fail = K.Registry, K.fail
local escape_label, label_set = T.escape_label, T.label_set

-- Program run counts and run time (BPF stats)

local function programs_of(x, out)
  out = out or {}
  if type(x) == "table" then
    for _, p in ipairs(x) do programs_of(p, out) end
  elseif type(x) == "userdata" and tostring(x):match("^luabpf%.object") then
    for _, n in ipairs(x:programs()) do
      local p = x:program(n)
      if p:autoload() then out[#out + 1] = p end
    end
  elseif type(x) == "userdata" and tostring(x):match("^luabpf%.program") then
    out[#out + 1] = x
  else
    fail("metrics.programs: expects an object, a program or a list of them, got %s", tostring(x))
  end
  return out
end

--- Run counts and run time of programs from the kernel's BPF stats:
-- luabpf_prog_runs_total, luabpf_prog_run_seconds_total,
-- luabpf_prog_recursion_misses_total{prog, id}. Turns the stats on.
function Registry:programs(x)
  local progs = programs_of(x)
  local ok, err, code = bpf.enable_stats()
  if not ok then return nil, err, code end
  local infos = self:_per_scrape(function()
    local list = {}
    for _, p in ipairs(progs) do
      local i = p:info()
      -- The object's name: the kernel's is cut at 15 characters.
      if i then i.name = p:name() list[#list + 1] = i end
    end
    return list
  end)
  local function one(name, help, f)
    local m = self.by_name[name]
    if m then
      -- Another call adds its programs to the same families.
      local prev = m.collect
      m.collect = function(emit) prev(emit) for _, i in ipairs(infos()) do emit(f(i), { i.name, i.id }) end end
      return
    end
    self:counter { name = name, help = help, labels = { "prog", "id" },
      collect = function(emit) for _, i in ipairs(infos()) do emit(f(i), { i.name, i.id }) end end }
  end
  one("luabpf_prog_runs_total", "Times the BPF program ran (kernel BPF stats)", function(i) return i.run_cnt end)
  one("luabpf_prog_run_seconds_total", "Time spent running the BPF program (kernel BPF stats)",
    function(i) return tonumber(i.run_time_ns) / 1e9 end)
  one("luabpf_prog_recursion_misses_total", "Runs the kernel skipped because the program was already running on that CPU",
    function(i) return i.recursion_misses or 0 end)
  return true
end

-- The load balancer's service (lua/luabpf/lb/)

local LB_STATES = { "active", "draining", "down", "removed" }

--- Export an LB service's svc:stats(): per VIP and backend packets, bytes,
-- new flows, weight, Maglev slots, state (and health when the service has
-- it), packets per verdict. One svc:stats() per scrape.
function Registry:lb(svc, o)
  local p = K.exporter_prefix("metrics.lb", svc, o, "an LB service (lb.new())", "luabpf_lb", { "stats" })
  local service = svc.name or "lb"
  -- The stats, and the labels and sorted names made from them, once a scrape.
  local scrape = self:_per_scrape(function() return { s = svc:stats(), bl = {}, sorted = {} } end)
  local function stats() return scrape().s end
  -- A backend's label text, rendered once a scrape and shared by every family;
  -- with_label adds one more label (a state set's).
  local BL_NAMES = { "service", "vip", "backend", "addr" }
  local function blabels(vn, bn, b)
    local k = vn .. "\0" .. bn
    local bl = scrape().bl
    local t = bl[k]
    if not t then
      t = label_set(BL_NAMES, { service, vn, bn, b.addr })
      bl[k] = t
    end
    return t
  end
  local function with_label(text, n, v)
    return text:sub(1, -2) .. "," .. n .. '="' .. escape_label(v) .. '"}'
  end
  -- Names in order, sorted once a scrape (every family walks the same tables).
  local function sorted(t)
    local cached = scrape().sorted
    local k = cached[t]
    if k then return k end
    k = {}
    for n in pairs(t) do k[#k + 1] = n end
    table.sort(k)
    cached[t] = k
    return k
  end
  local function vips(f)
    return function(emit)
      local s = stats()
      for _, vn in ipairs(sorted(s.vips)) do f(emit, vn, s.vips[vn]) end
    end
  end
  local function backends(f)
    return vips(function(emit, vn, v)
      for _, bn in ipairs(sorted(v.backends)) do f(emit, vn, bn, v.backends[bn]) end
    end)
  end
  local VL = { "service", "vip", "addr", "port", "proto", "mode" }
  local BL = { "service", "vip", "backend", "addr" }
  local function vip_counter(what, help)
    self:counter { name = p .. "_vip_" .. what .. "_total", help = help, labels = VL,
      collect = vips(function(emit, vn, v) emit(v[what], { service, vn, v.addr, v.port, v.proto, v.mode }) end) }
  end
  local function backend_metric(kind, what, field, help)
    self[kind](self, { name = p .. "_backend_" .. what, help = help, labels = BL,
      collect = backends(function(emit, vn, bn, b) emit(b[field] or 0, blabels(vn, bn, b)) end) })
  end
  vip_counter("packets", "Packets to the VIP that the balancer forwarded")
  vip_counter("bytes", "Bytes to the VIP that the balancer forwarded")
  vip_counter("new_flows", "New flows to the VIP (first packet of a connection without a flow table entry)")
  backend_metric("counter", "packets_total", "packets", "Packets the balancer sent to the backend")
  backend_metric("counter", "bytes_total", "bytes", "Bytes the balancer sent to the backend")
  backend_metric("counter", "new_flows_total", "new_flows", "New flows the balancer gave to the backend")
  backend_metric("gauge", "weight", "weight", "The backend's configured weight (0: drained)")
  backend_metric("gauge", "slots", "slots", "The backend's share of the VIP's Maglev table, in slots")
  self:gauge { name = p .. "_backend_state", help = "1 for the backend's state (active, draining: weight 0 by an operator, down: by its health check, removed), 0 for the others",
    labels = { "service", "vip", "backend", "addr", "state" },
    collect = backends(function(emit, vn, bn, b)
      local bl = blabels(vn, bn, b)
      for _, st in ipairs(LB_STATES) do emit(b.state == st and 1 or 0, with_label(bl, "state", st)) end
    end) }
  -- Health comes from the service's health checks (docs/lb.md): "up",
  -- "down", "sorry" (its sorry server), "unchecked"; older services have none.
  local HEALTH = { "up", "down", "sorry" }
  local function health_of(b)
    local h = b.health
    if type(h) == "table" then h = h.state end
    if type(h) == "boolean" then h = h and "up" or "down" end
    return h
  end
  self:gauge { name = p .. "_backend_health", help = "1 for the backend's health (up, down, sorry), 0 for the others; none for backends without a check",
    labels = { "service", "vip", "backend", "addr", "health" },
    collect = backends(function(emit, vn, bn, b)
      local h = health_of(b)
      -- Unchecked backends have no health to speak of: no series.
      if h == nil or h == "unchecked" then return end
      local bl = blabels(vn, bn, b)
      local known = false
      for _, st in ipairs(HEALTH) do
        emit(h == st and 1 or 0, with_label(bl, "health", st))
        known = known or h == st
      end
      if not known then emit(1, with_label(bl, "health", tostring(h))) end
    end) }
  self:gauge { name = p .. "_backend_healthy", help = "1 when the backend passes its health checks, 0 when not (backends with a check only)",
    labels = BL,
    collect = backends(function(emit, vn, bn, b)
      local h = health_of(b)
      if h == nil or h == "unchecked" then return end
      emit(h == "up" and 1 or 0, blabels(vn, bn, b))
    end) }
  self:gauge { name = p .. "_backend_effective_weight", help = "The weight the Maglev table uses now (0 while down, ramping during slow start)",
    labels = BL,
    collect = backends(function(emit, vn, bn, b)
      if b.effective_weight then emit(b.effective_weight, blabels(vn, bn, b)) end
    end) }
  self:gauge { name = p .. "_vip_healthy_backends", help = "Backends of the VIP whose checks pass",
    labels = { "service", "vip" },
    collect = vips(function(emit, vn, v) if v.healthy then emit(v.healthy, { service, vn }) end end) }
  self:gauge { name = p .. "_vip_quorum_up", help = "1 while the VIP's healthy weight meets its quorum, 0 when it lost it",
    labels = { "service", "vip" },
    collect = vips(function(emit, vn, v) if v.quorum then emit(v.quorum.ok and 1 or 0, { service, vn }) end end) }
  self:gauge { name = p .. "_vip_table_info", help = "1, labelled with the digest of the VIP's Maglev table by what its slots mean (nodes with one digest pick the same backends)",
    labels = { "service", "vip", "digest" },
    collect = vips(function(emit, vn, v) if v.digest then emit(1, { service, vn, v.digest }) end end) }
  self:gauge { name = p .. "_bgp_announced", help = "1 while BIRD has the protocol holding the VIP routes enabled on this node's request, 0 while withdrawn or not confirmed",
    labels = { "service", "protocol" },
    collect = function(emit)
      local b = stats().bgp
      for _, n in ipairs(sorted(b or {})) do emit(b[n].state == "announced" and 1 or 0, { service, n }) end
    end }
  self:counter { name = p .. "_verdict_packets_total", help = "Packets by the balancer's verdict: forwarded, reply, pass_* (to the kernel), drop_* (dropped, by reason)",
    labels = { "service", "verdict" },
    collect = function(emit)
      local r = stats().reasons
      for _, n in ipairs(sorted(r)) do emit(r[n], { service, n }) end
    end }
  return self
end

return true
