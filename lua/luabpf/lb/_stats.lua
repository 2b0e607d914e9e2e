-- SPDX-License-Identifier: MIT
-- What a service tells about itself: stats() (counters and rates per VIP and
-- backend, packets per reason), report() (the same as text for people),
-- flows(), which() with the data plane's flow hash, and the events from its
-- ring buffer. Part of luabpf.lb (init.lua).
local ffi = require("ffi")
local bit = require("bit")
local uv = require("luv")
local maglev = require("luabpf.lb.maglev")
local addr = require("luabpf._addr")
local C = require("luabpf.lb._common")
local fmt = require("luabpf.fmt")

local Service = C.Service
local PROTOS, PROTO_NAMES, MODE_NAMES, STATE_NAMES = C.PROTOS, C.PROTO_NAMES, C.MODE_NAMES, C.STATE_NAMES
local REASONS = C.REASONS

local S = {}

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
function S.flow_hash(src, sport, dst, dport, proto)
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

-- How the data plane sends to backend b: { mode = "nat"|"dsr"|"ipip"|"gue" },
-- and for the tunnels, tunnel = "OUTER_SRC > BACKEND" (+ " udp/PORT" for GUE).
local function how(b)
  local v = b.vip
  local out = { mode = v and MODE_NAMES[v.mode] }
  if v and v.mode >= C.MODES.ipip then
    out.tunnel = ("%s > %s"):format(v.snat, b.addr)
    if v.mode == C.MODES.gue then out.tunnel = ("%s udp/%d"):format(out.tunnel, v.gue_port or C.GUE_PORT) end
  end
  return out
end

--- Which backend gets this flow: { src=, sport=, dst=, dport=, proto= }.
-- Returns the backend's name, whether the flow table already holds it, and
-- how the packet goes there ({ mode =, tunnel = } as how() above).
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
    local b = self.backend_by_id[hit.backend]
    return b.name, true, how(b)
  end
  local vk = self.m.vips:lookup({ addr = key.dst, port = f.dport, proto = proto })
  if not vk then return nil, "no VIP for " .. tostring(f.dst) .. ":" .. tostring(f.dport) end
  local h = S.flow_hash(f.src, f.sport, f.dst, f.dport, proto)
  local slot = vk.id * 2 * self.ring + vk.table * self.ring + h % self.ring
  local id = self.m.maglev:lookup(slot)
  local b = id and self.backend_by_id[id]
  if not b then return nil, "no backend" end
  return b.name, false, how(b)
end

-- FNV-1a of a string, from h (32 bits).
local function fnv(h, str)
  for i = 1, #str do h = mul32(bxor(h, str:byte(i)), 0x01000193) end
  return h
end

--- A digest of VIP v's live Maglev table by what each slot means: FNV-1a
-- over the slots' backend address and port (8 hex digits). Backend ids are
-- each node's own allocation, so two nodes that built the same table from
-- different histories have the same digest: docs/scale-out.md.
function Service:_digest(v)
  local tab = v.halves and v.halves[v.table]
  if not tab then return nil end
  -- Each publish makes a new array (and a backend's address changes only
  -- through one): a digest per array, not one pass over 65,537 slots per scrape.
  if v.digest_of == tab then return v.digest end
  local per = { [C.NO_BACKEND] = fnv(0x811c9dc5, "-") }
  for id, b in pairs(self.backend_by_id) do per[id] = fnv(0x811c9dc5, addr.mapped(b.addr) .. "|" .. b.port) end
  local h = 0x811c9dc5
  for s = 0, self.ring - 1 do
    h = mul32(bxor(h, per[tab[s]] or 0), 0x01000193)
  end
  v.digest_of, v.digest = tab, bit.tohex(h)
  return v.digest
end

--- VIP vip's live table as the data plane reads it (its maglev map, not our
-- copy): a list of "ADDR:PORT" (or "-" for an empty slot), slot 0 first.
function Service:table(vip)
  self:_check_open()
  local v = self.vips[vip]
  if not v then error(("service '%s' has no VIP '%s'"):format(self.name, tostring(vip)), 2) end
  local vk = self.m.vips:lookup({ addr = addr.mapped(v.addr), port = v.port, proto = v.proto })
  local base = vk.id * 2 * self.ring + vk.table * self.ring
  local out, mem = {}, self:_maglev_mem() -- mapped: no syscall per slot
  for s = 0, self.ring - 1 do
    local id = mem and tonumber(mem[base + s] % 0x100000000) or self.m.maglev:lookup(base + s)
    local b = id and self.backend_by_id[id]
    out[s + 1] = b and ("%s:%d"):format(b.addr, b.port) or "-"
  end
  return out
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
        vip = vv and vv.name, backend = b and b.name, mode = vv and MODE_NAMES[vv.mode] }
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
      -- Down by its health check is not drained by an operator, though the
      -- data plane treats both alike (no new flows): one word each.
      if bs.state == "draining" and b.check_name and b.health == "down" then bs.state = "down" end
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
    s.digest = self:_digest(v)
    s.quorum = { ok = v.quorum_ok ~= false, live = v.live_weight, total = v.total_weight, need = v.quorum,
      hysteresis = v.hysteresis, policy = v.no_quorum }
    out.vips[name] = s
  end
  for i, r in ipairs(REASONS) do
    out.reasons[r] = tonumber(self.m.reasons:lookup_sum(i - 1).packets)
  end
  out.bgp = self.bgp and self.bgp:status() -- lb/_bgp.lua: per BIRD protocol
  return out
end

local sorted_keys = require("luabpf._util").sorted_keys

--- The stats as text for people (what lb.lua prints every --interval and at
-- SIGUSR1): per VIP and backend, counts with separators and rates to 3
-- significant digits (luabpf.fmt). s: a svc:stats() table (default: a new one).
-- The table itself keeps the raw numbers.
function Service:report(s)
  s = s or self:stats()
  local out = {}
  for _, n in ipairs(sorted_keys(s.vips)) do
    local v = s.vips[n]
    local q = v.quorum
    out[#out + 1] = ("%s %s:%d/%s (%s)  %s pkts  %s  %s  %s flows%s"):format(n,
      v.addr:find(":", 1, true) and ("[" .. v.addr .. "]") or v.addr, v.port, v.proto, v.mode,
      fmt.count(v.packets), fmt.pps(v.pps), fmt.rate(v.bps, "bit/s"), fmt.count(v.new_flows),
      v.checked > 0 and ("  %d/%d healthy%s"):format(v.healthy, v.checked,
        q.ok and "" or ", QUORUM LOST: " .. q.policy) or "")
    for _, b in ipairs(sorted_keys(v.backends)) do
      local x = v.backends[b]
      local h = x.health == "down" and ("  DOWN (%s)"):format(x.check and x.check.reason or "?")
        or (x.health == "unchecked" or x.health == nil) and "" or "  " .. x.health
      local w = x.weight == math.floor(x.weight) and tostring(x.weight) or ("%.3g"):format(x.weight)
      out[#out + 1] = ("  %-12s %-22s w=%-3s %-9s %10s pkts %11s %8s flows%s"):format(b,
        (x.addr:find(":", 1, true) and ("[%s]:%d") or "%s:%d"):format(x.addr, x.port), w, x.state,
        fmt.count(x.packets), fmt.pps(x.pps), fmt.count(x.new_flows), h)
    end
  end
  return table.concat(out, "\n")
end

function Service:_event(ev)
  local v = self.vip_by_id[ev.vip]
  local b = self.backend_by_id[ev.backend]
  local e = {
    type = ev.type == 1 and "new_flow" or "drop",
    reason = ev.type == 2 and REASONS[ev.reason + 1] or nil,
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

return S
