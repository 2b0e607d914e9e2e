-- SPDX-License-Identifier: MIT
-- A pool change's time from the call to the data plane: one VIP with 10,
-- 100 and 1,000 backends (a service not attached: the real maps, no
-- network), then remove one backend, add it back, add a backend never seen
-- (removed again after, untimed), and change one backend's weight (2, then
-- back to 1). The clock runs from the call until the maps read back show the
-- change: the VIP record points at the other half of its Maglev table
-- (written before the flip) and a slot that had to change holds the new
-- owner there. Median and max over ROUNDS of each change. Adding a backend
-- back finds its table in the idle half (the table before the removal) and
-- only flips; a new backend, a removal and a weight change build a table.
-- Then where the time of a 1,000-backend change that builds goes: the
-- Maglev fill (C), the rest of the build (hashes, canonical order), the rest
-- of the publish (slot diff into the mapped table, or one update_batch; the
-- VIP record) and the rest (state, the refresh's pass over the backends, the
-- bench's read-back), medians per change.
-- Each change starts from an idle process (IDLE ms asleep before it).
-- usage: [ROUNDS=15] [IDLE=20] luabpf run bench/lb_pool_change.lua [ROUNDS]
local uv = require("luv")
local lb = require("luabpf.lb")
local maglev = require("luabpf.lb.maglev")
local Service = require("luabpf.lb._common").Service
local median = require("_bench").median

-- Phase clocks: each wrapped function adds its own wall time to phase[name].
local phase = {}
local function timed(t, key, name)
  local f = t[key]
  t[key] = function(...)
    local t0 = uv.hrtime()
    local a, b, c = f(...)
    phase[name] = (phase[name] or 0) + (uv.hrtime() - t0) / 1e6
    return a, b, c
  end
end
timed(maglev.fills, maglev.fill, "fill")
timed(maglev, "build", "build")
timed(Service, "_publish", "publish")

local ROUNDS = tonumber(arg[1]) or tonumber(os.getenv("ROUNDS")) or 15
local VIP = { addr = "10.98.0.1", port = 80, proto = 6 }

local function backend(i, w)
  return { name = ("b%04d"):format(i), addr = ("10.99.%d.%d"):format(math.floor(i / 250), i % 250 + 1),
    weight = w or 1 } -- DSR: the VIP's port
end

local function now_ms() return uv.hrtime() / 1e6 end

-- Before each timed change: a full GC (the bench's own read-backs are
-- garbage: not charged to the change), then IDLE ms asleep, so that the
-- change starts from an idle process as a balancer's changes do (a control
-- socket's command, a health check's result). A process that ran the whole
-- time (this bench's read-backs: up to 65,537 lookups) is sliced with the
-- machine's other work by the scheduler, and a loaded machine's other work
-- would then be in the figure. IDLE=0: back to back.
local IDLE = tonumber(os.getenv("IDLE")) or 20
local function settle()
  collectgarbage()
  if IDLE > 0 then uv.sleep(IDLE) end
end

-- The half the VIP's record points at, and the id slot s holds there (read
-- from the map's memory when it is mapped: the memory the data plane reads).
local function read_slot(svc, s)
  local r = svc.m.vips:lookup({ addr = svc.vips.web.addr_key, port = VIP.port, proto = VIP.proto })
  local slot = r.id * 2 * svc.ring + r.table * svc.ring + s
  if svc.mg_mem then return r.table, tonumber(svc.mg_mem[slot]) end
  return r.table, svc.m.maglev:lookup(slot)
end

-- Wait (spinning on the maps, no sleep) until the VIP's half flipped and slot
-- s holds something that `ok(id)` accepts; the time since t0 in ms.
local function until_published(svc, t0, old_half, s, ok)
  local deadline = t0 + 1000
  while true do
    local half, id = read_slot(svc, s)
    if half ~= old_half and ok(id) then return now_ms() - t0 end
    if now_ms() > deadline then error("the data plane did not show the change within 1 s") end
  end
end

-- A slot held by backend id in the live half (the first one found from start).
local function slot_of(svc, id)
  local r = svc.m.vips:lookup({ addr = svc.vips.web.addr_key, port = VIP.port, proto = VIP.proto })
  local base = r.id * 2 * svc.ring + r.table * svc.ring
  local mem = svc.mg_mem
  for s = 0, svc.ring - 1 do
    local x = mem and tonumber(mem[base + s]) or (not mem and svc.m.maglev:lookup(base + s))
    if x == id then return s, r.table end
  end
  error("backend id " .. id .. " holds no slot")
end

local last_parts, written
print(("lb_pool_change: call to data plane, ms (median / max of %d)"):format(ROUNDS))
print(("  %-9s %16s %16s %16s %16s"):format("backends", "remove one", "add it back", "add a new one",
  "weight change"))
-- First 5 untimed rounds at 10 backends: the JIT compiles the paths (each
-- trace made costs mprotect calls), which the first measured pool paid.
for _, spec in ipairs({ "warm-up", 10, 100, 1000 }) do
  local warm = spec == "warm-up"
  local n = warm and 10 or spec
  local svc = assert(lb.new({ name = "pc" .. spec .. "-" .. uv.os_getpid(), attach = false, pin = false,
    prime_neighbours = false, max_backends = 2048 }))
  local list = {}
  for i = 1, n do list[i] = backend(i) end
  svc:add_vip({ name = "web", addr = VIP.addr, port = VIP.port, mode = "dsr", backends = list })
  svc.vips.web.addr_key = require("luabpf._addr").mapped(VIP.addr)
  local rm, add, new, wt = {}, {}, {}, {}
  local parts = { fill = {}, build = {}, publish = {}, rest = {} }
  -- The phases of the change just timed (total ms): build and publish
  -- without what they contain.
  local function split(total)
    local f, b, pb = phase.fill or 0, phase.build or 0, phase.publish or 0
    if f == 0 then return end -- no table built (the idle half's)
    table.insert(parts.fill, f)
    table.insert(parts.build, b - f)
    table.insert(parts.publish, pb - b)
    table.insert(parts.rest, total - pb)
  end
  for r = 1, warm and 5 or ROUNDS do
    local victim = list[(r * 7) % n + 1]
    -- remove: a slot the victim held must now hold another backend
    local id = svc.vips.web.backends[victim.name].id
    local s, half = slot_of(svc, id)
    settle()
    phase = {}
    local t0 = now_ms()
    svc:remove_backend("web", victim.name)
    rm[r] = until_published(svc, t0, half, s, function(x) return x ~= id end)
    split(rm[r])
    -- add it back: its first slot of the table before the removal is its again
    -- (Maglev gives a backend back the slots it had, the others keep theirs)
    local _, h2 = read_slot(svc, 0)
    settle()
    phase = {}
    t0 = now_ms()
    svc:add_backend("web", victim)
    add[r] = until_published(svc, t0, h2, s, function(x) return x == svc.vips.web.backends[victim.name].id end)
    split(add[r])
    -- a backend never seen: it holds slots after (its first slot found then)
    local fresh = backend(n + r)
    local _, h4 = read_slot(svc, 0)
    settle()
    phase = {}
    t0 = now_ms()
    svc:add_backend("web", fresh)
    new[r] = until_published(svc, t0, h4, 0, function(x) return x ~= nil end)
    split(new[r])
    local fid = svc.vips.web.backends[fresh.name].id
    assert(slot_of(svc, fid), "the new backend holds slots")
    svc:remove_backend("web", fresh.name)
    -- weight 2: the flip is the change (the slots it gains are checked after
    -- the clock stops, in the counts the control plane reads back), then 1
    local other = list[(r * 13) % n + 1]
    if other.name == victim.name then other = list[(r * 13 + 1) % n + 1] end
    local before = svc:stats().vips.web.backends[other.name].slots
    local _, h3 = read_slot(svc, 0)
    settle()
    phase = {}
    t0 = now_ms()
    svc:set_weight("web", other.name, 2)
    wt[r] = until_published(svc, t0, h3, s, function(x) return x ~= nil end)
    split(wt[r])
    local gained = svc:stats().vips.web.backends[other.name].slots
    assert(gained > 1.8 * before, ("weight 2: %d slots, had %d"):format(gained, before))
    svc:set_weight("web", other.name, 1)
  end
  local function f(t)
    local hi = 0
    for _, x in ipairs(t) do if x > hi then hi = x end end
    return ("%7.2f / %6.2f"):format(median(t), hi)
  end
  if not warm then print(("  %-9d %16s %16s %16s %16s"):format(n, f(rm), f(add), f(new), f(wt))) end
  if n == 1000 then
    last_parts = parts
  end
  written = svc.mg_mem and "stores into the memory-mapped map" or "one update_batch (the map is not mmapable)"
  svc:close()
end
print(("  1,000 backends, the changes that built a table (%d), median ms: fill %.2f, rest of the build %.2f, "
  .. "rest of the publish %.2f, the rest %.2f"):format(#last_parts.fill, median(last_parts.fill),
  median(last_parts.build), median(last_parts.publish), median(last_parts.rest)))
print("  slots written by " .. written)

-- Many VIPs: 250 DSR VIPs on as many addresses, one backend each; remove
-- one and add it back (untimed), ROUNDS times. A VIP's removal rewrites
-- every address's records (vip_addrs, vip_ports, vip_hint): the clock runs
-- from the call until vip_ports no longer has the VIP's address.
do
  local N = 250
  local svc = assert(lb.new({ name = "pcv-" .. uv.os_getpid(), attach = false, pin = false,
    prime_neighbours = false, max_vips = N + 2, ring_size = 13 }))
  local function vip(i)
    return { name = "v" .. i, addr = ("10.97.%d.%d"):format(math.floor(i / 250), i % 250 + 1), port = 80,
      mode = "dsr", backends = { { name = "b1", addr = "10.99.0.1" } } }
  end
  local t0 = now_ms()
  for i = 0, N - 1 do svc:add_vip(vip(i)) end
  local add_all = now_ms() - t0
  local rm = {}
  for r = 1, ROUNDS do
    local i = (r * 7) % N
    local key = require("luabpf._addr").mapped(vip(i).addr)
    settle()
    t0 = now_ms()
    svc:remove_vip("v" .. i)
    assert(svc.m.vip_ports:lookup(key) == nil, "the removed VIP's address is still in vip_ports")
    rm[r] = now_ms() - t0
    svc:add_vip(vip(i))
  end
  svc:close()
  print(("  %d VIPs on as many addresses: added one by one in %.0f ms; remove one: %.2f ms (median of %d)")
    :format(N, add_all, median(rm), ROUNDS))
end
