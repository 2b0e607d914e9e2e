-- SPDX-License-Identifier: MIT
-- Health and quorum glue: each backend's check (luabpf.health), the weights
-- health, slow start and quorum give the pool, and _refresh, which turns them
-- into backend states and a new Maglev table (_publish.lua) once per loop
-- iteration. Part of luabpf.lb (init.lua).
local uv = require("luv")
local health = require("luabpf.health")
local C = require("luabpf.lb._common")

local Service = C.Service
local ACTIVE, DRAINING, REMOVED = C.ACTIVE, C.DRAINING, C.REMOVED

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
-- force: true rewrites every backend's record and the table; "table" only
-- the table (a backend removed: the others' records stand).
function Service:_refresh(v, force)
  local now = uv.now()
  local ok = self:_quorum(v)
  local said -- the quorum line, said once the data plane agrees (the end)
  if ok ~= v.quorum_ok and v.quorum_ok ~= nil then
    said = function()
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
  end
  v.quorum_ok = ok
  -- One pass: each backend's weight, its state (written when it changed, or
  -- every one when force is true), and its entry for the table (the
  -- backend's own entry table, reused: a change allocates none).
  local entries, ne, changed = v.entries or {}, 0, force
  for _, b in ipairs(v.order) do
    if b.state ~= REMOVED then
      local w
      if ok then
        w = health_weight(b, now)
        b.good = w -- the weight of the last set with quorum (no_quorum = "keep")
      elseif v.no_quorum == "keep" then
        w = b.good or 0
      elseif v.no_quorum == "sorry" then
        w = b.sorry and 1 or 0
      else
        w = 0
      end
      local st = w > 0 and ACTIVE or DRAINING
      if st ~= b.state or force == true then
        b.state = st
        self:_write_backend(b)
      end
      if b.eff ~= w then changed = true end
      b.eff = w
      local e = b.entry
      if not e then
        e = {}
        b.entry = e
      end
      e.id, e.name, e.weight = b.id, b.name, w
      ne = ne + 1
      entries[ne] = e
    end
  end
  for i = ne + 1, #entries do entries[i] = nil end
  v.entries = entries
  if changed then self:_publish(v, entries) end
  for _, b in ipairs(v.order) do
    if b.flush then
      b.flush = nil
      if b.state == DRAINING and b.health == "down" then self:_flush(v, b) end
    end
  end
  if said then said() end
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

function Service:_vip_health(v, n)
  v.check, v.down_flows, v.quorum, v.hysteresis, v.no_quorum = n.check, n.down_flows, n.quorum,
    n.hysteresis, n.no_quorum
end

return true
