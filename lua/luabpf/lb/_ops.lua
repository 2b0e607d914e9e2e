-- SPDX-License-Identifier: MIT
-- The service side of `luabpf lb` (lua/luabpf/cmd/lb.lua): what the command
-- runs inside a balancer over its control socket, one short chunk a command
-- (`return require("luabpf.lb._ops").run(lb_service, "show", {...})`). Every
-- change is logged with who asked (SO_PEERCRED's uid and pid).
--
-- Runtime changes and SIGHUP (HAProxy's server-state rule): a change made
-- here stays across a reload as long as the config says the same as it did
-- for that backend; where the reloaded config changed that backend (its
-- weight, address, or its presence), the config wins and the runtime change
-- is dropped, logged. They last as long as the process: a restart applies
-- the config alone. `show` marks every value that differs from the config.
local uv = require("luv")
local addr = require("luabpf._addr")
local F = require("luabpf.lb._ops_fmt")

local M = {}

-- Per service: runtime overrides and the rate sampler. Weak keys: a closed
-- and dropped service takes its state with it.
local state = setmetatable({}, { __mode = "k" })

local function st_of(svc)
  local st = state[svc]
  if not st then
    st = { over = {}, samples = {} }
    state[svc] = st
  end
  return st
end

-- "uid 0 (root), pid 4242", or "the service itself" outside a command.
local function who()
  local c = require("luabpf._service").caller
  if not c then return "the service itself" end
  local user
  local f = io.open("/etc/passwd")
  if f then
    for line in f:lines() do
      local n, u = line:match("^([^:]*):[^:]*:(%d+):")
      if tonumber(u) == c.uid then user = n break end
    end
    f:close()
  end
  return ("uid %d%s, pid %d"):format(c.uid, user and (" (" .. user .. ")") or "", c.pid)
end
M.who = who

local function log(svc, fmt, ...)
  bpf.log("info", ("service '%s': " .. fmt):format(svc.name, ...))
end

local function fail(fmt, ...)
  error(fmt:format(...), 0)
end

-- The VIP and backend records, with the service's own messages for a wrong name.
local function find(svc, vip, name)
  local ok, v = pcall(svc._vip, svc, vip)
  if not ok then fail("%s", (tostring(v):gsub("^[^:]*:%d+: ", ""))) end
  if name == nil then return v end
  local ok2, b = pcall(svc._backend, svc, v, name)
  if not ok2 then fail("%s", (tostring(b):gsub("^[^:]*:%d+: ", ""))) end
  return v, b
end

-- Call a service method; its error comes back without a file position.
local function call(svc, method, ...)
  local ok, err = pcall(svc[method], svc, ...)
  if not ok then fail("%s", (tostring(err):gsub("^[^:]*:%d+: ", ""))) end
  return err
end

local function over_of(st, vip)
  st.over[vip] = st.over[vip] or {}
  return st.over[vip]
end

-- Drop a VIP's override table once it is empty.
local function tidy(st, vip)
  if st.over[vip] and next(st.over[vip]) == nil then st.over[vip] = nil end
end

-- Reloads (SIGHUP calls svc:apply(list)) see the overrides: the list the
-- config gives is merged with them first, so the data plane is published
-- once, with the result (never the config's values for a moment).
local merge -- defined below

local function hook_reload(svc)
  if rawget(svc, "apply") then return end
  local orig = getmetatable(svc).apply
  svc.apply = function(self, list)
    local st = state[self]
    if type(list) ~= "table" or not st or next(st.over) == nil then return orig(self, list) end
    local ok, norm = pcall(function()
      local out = {}
      for i, o in ipairs(list) do out[i] = self:_norm_vip(o, 1) end
      return out
    end)
    if not ok then return orig(self, list) end -- it raises the same error, nothing changes
    local merged, kept, lines = merge(st, list, norm)
    local applied, err = pcall(orig, self, merged)
    if not applied then error(err, 0) end
    st.over = kept
    for _, l in ipairs(lines) do log(self, "%s", l) end
  end
end

local copy = require("luabpf._util").copy

local function desc(o)
  if o.kind == "weight" then return ("weight %g"):format(o.weight) end
  if o.kind == "added" then return ("added as %s:%d weight %g"):format(o.addr, o.port, o.weight) end
  return "removed"
end

-- The reload's list with the overrides the config left alone; the
-- overrides kept; a log line for each override (kept or dropped).
function merge(st, list, norm)
  local out, kept, lines = {}, {}, {}
  for i, o in ipairs(list) do
    out[i] = copy(o)
    out[i].backends = {}
    for j, b in ipairs(o.backends or {}) do out[i].backends[j] = b end
  end
  local gone = {} -- [i][j] = true: a backend removed at runtime stays out
  local sorted = require("luabpf._util").sorted_keys
  for _, vip in ipairs(sorted(st.over)) do
    local items = st.over[vip]
    local i
    for k, n in ipairs(norm) do if n.name == vip then i = k end end
    for _, bname in ipairs(sorted(items)) do
      local o = items[bname]
      local what = ("VIP '%s' backend '%s'"):format(vip, bname)
      local j, same
      if i then
        for k, b in ipairs(norm[i].backends) do
          if not b.sorry and (b.name == bname or (o.kind == "added" and addr.mapped(b.addr) == addr.mapped(o.addr)
            and b.port == o.port)) then j = k end
        end
      end
      if j and o.kind ~= "added" then
        local b = norm[i].backends[j]
        same = b.name == bname and addr.mapped(b.addr) == addr.mapped(o.config.addr) and b.port == o.config.port
          and b.weight == o.config.weight
      end
      local keep
      if not i then
        lines[#lines + 1] = ("reload: VIP '%s' left the config: the runtime change to %s (%s) goes with it")
          :format(vip, what, desc(o))
      elseif o.kind == "added" then
        keep = not j
        lines[#lines + 1] = keep and ("reload keeps the runtime change to %s (%s): the config does not declare it")
          :format(what, desc(o))
          or ("reload: the config now declares %s: its runtime addition is dropped"):format(what)
      elseif not j then
        lines[#lines + 1] = ("reload: %s left the config: its runtime change (%s) is dropped"):format(what, desc(o))
      elseif not same then
        lines[#lines + 1] = ("reload: the config changed %s: its runtime change (%s) is dropped, the config's value applies")
          :format(what, desc(o))
      else
        keep = true
        lines[#lines + 1] = ("reload keeps the runtime change to %s (%s): the config's weight %g is unchanged")
          :format(what, desc(o), o.config.weight)
      end
      if keep then
        kept[vip] = kept[vip] or {}
        kept[vip][bname] = o
        if o.kind == "added" then
          local bl = out[i].backends
          bl[#bl + 1] = { name = bname, addr = o.addr, port = o.port, weight = o.weight }
        elseif o.kind == "weight" then
          local b = copy(list[i].backends[j])
          b.weight = o.weight
          out[i].backends[j] = b
        else
          gone[i] = gone[i] or {}
          gone[i][j] = true
        end
      end
    end
  end
  for i, g in pairs(gone) do
    local bl = {}
    for j, b in ipairs(out[i].backends) do if not g[j] then bl[#bl + 1] = b end end
    out[i].backends = bl
  end
  return out, kept, lines
end

-- Rates over the last second, HAProxy's way: a sampler reads the counters
-- once a second from the first `luabpf lb` command on (stats() keeps its own
-- "since the last call" rates for the service's report: untouched).
local function sample(svc, st)
  if not svc.obj then return end
  local now = uv.hrtime()
  local cur = { t = now, c = {} }
  for _, v in pairs(svc.vips) do
    local s = svc.m.vip_stats:lookup_sum(v.id)
    cur.c["v" .. v.id] = { tonumber(s.packets), tonumber(s.bytes), tonumber(s.new_flows) }
    for _, b in ipairs(v.order) do
      local x = svc.m.backend_stats:lookup_sum(b.id)
      cur.c["b" .. b.id] = { tonumber(x.packets), tonumber(x.bytes), tonumber(x.new_flows) }
    end
  end
  st.samples[1], st.samples[2] = st.samples[2], cur
end

local function sampler(svc)
  local st = st_of(svc)
  if st.timer then return st end
  sample(svc, st)
  st.timer = uv.new_timer()
  st.timer:unref()
  st.timer:start(1000, 1000, function()
    if not svc.obj then
      st.timer:stop()
      st.timer:close()
      return
    end
    sample(svc, st)
  end)
  return st
end

-- { pps, bps, flows_per_s } of key over the last sample interval, or nil.
local function rates(st, key)
  local a, b = st.samples[1], st.samples[2]
  if not a or not b or b.t <= a.t or not a.c[key] or not b.c[key] then return nil end
  local dt = (b.t - a.t) / 1e9
  local x, y = a.c[key], b.c[key]
  return { pps = math.max(y[1] - x[1], 0) / dt, bps = math.max(y[2] - x[2], 0) * 8 / dt,
    flows_per_s = math.max(y[3] - x[3], 0) / dt }
end

--- Seconds until show has rates (the sampler needs two samples): 0 when it has.
function M.prime(svc)
  local st = sampler(svc)
  if st.samples[1] then return 0 end
  return 1.1
end

--- The service as one record (what `show` and `show --json` print).
function M.record(svc)
  local st = sampler(svc)
  local s = svc:stats()
  local r = { service = svc.name, pid = uv.os_getpid(), interface = svc.interface, netns = svc.netns,
    xdp_mode = svc.xdp_mode, flow_table = svc.flow_table, state_dir = svc.dir, pinned = svc.pinned,
    vips = {}, reasons = s.reasons, bgp = F.null }
  if s.bgp then -- lb/_bgp.lua: one record per BIRD protocol, by name
    r.bgp = {}
    local pn = {}
    for n in pairs(s.bgp) do pn[#pn + 1] = n end
    table.sort(pn)
    for _, n in ipairs(pn) do
      local b = s.bgp[n]
      r.bgp[#r.bgp + 1] = { protocol = n, state = b.state, vips = setmetatable(b.vips, F.array_mt),
        drained = b.drained, why = b.why, error = b.error, socket = b.socket }
    end
  end
  local names = {}
  for n in pairs(svc.vips) do names[#names + 1] = n end
  table.sort(names)
  for _, n in ipairs(names) do
    local v, sv = svc.vips[n], s.vips[n]
    local rv = rates(st, "v" .. v.id) or {}
    local over = st.over[n] or {}
    local q = sv.quorum
    local rec = { name = n, addr = v.addr, port = v.port, proto = sv.proto, mode = sv.mode,
      packets = sv.packets, bytes = sv.bytes, flows = sv.new_flows,
      pps = rv.pps, bps = rv.bps, flows_per_s = rv.flows_per_s,
      quorum = { ok = q.ok, live = q.live, total = q.total, need = q.need, policy = q.policy },
      table = { size = svc.ring, digest = sv.digest }, backends = {} }
    for _, b in ipairs(v.order) do
      local x = sv.backends[b.name]
      local rb = rates(st, "b" .. b.id) or {}
      local o = over[b.name]
      local chk = x.check
      rec.backends[#rec.backends + 1] = { name = b.name, addr = x.addr, port = x.port, weight = x.weight,
        config_weight = o and (o.kind == "added" and F.null or o.config.weight) or x.weight,
        effective_weight = x.effective_weight, state = x.state, health = x.health,
        reason = chk and chk.state == "down" and chk.reason or nil, detail = chk and chk.state == "down"
          and chk.detail or nil, slots = x.slots,
        packets = x.packets, bytes = x.bytes, flows = x.new_flows,
        pps = rb.pps, bps = rb.bps, flows_per_s = rb.flows_per_s,
        runtime = o and o.kind or nil, sorry = x.sorry }
    end
    -- Config backends removed at runtime: shown, so the difference is visible.
    local gone = {}
    for bname, o in pairs(over) do if o.kind == "removed" then gone[#gone + 1] = bname end end
    table.sort(gone)
    for _, bname in ipairs(gone) do
      local o = over[bname]
      rec.backends[#rec.backends + 1] = { name = bname, addr = o.config.addr, port = o.config.port, weight = 0,
        config_weight = o.config.weight, state = "removed", runtime = "removed" }
    end
    r.vips[#r.vips + 1] = rec
  end
  return r
end

--- `luabpf lb show`: the text table, or JSON ({json = true}).
function M.show(svc, o)
  local r = M.record(svc)
  if o and o.json then return F.json(r, "service") .. "\n" end
  return F.show(r)
end

--- One line of `luabpf lb list`.
function M.summary(svc)
  local nb, pk = 0, 0
  local nv = 0
  for _, v in pairs(svc.vips) do
    nv = nv + 1
    nb = nb + #v.order
    pk = pk + tonumber(svc.m.vip_stats:lookup_sum(v.id).packets)
  end
  local changes = 0
  for _, items in pairs(st_of(svc).over) do for _ in pairs(items) do changes = changes + 1 end end
  return F.json({ service = svc.name, pid = uv.os_getpid(), interface = svc.interface, vips = nv,
    backends = nb, packets = pk, runtime_changes = changes }, "summary")
end

-- Record a weight change on the override list; the config's weight is the
-- backend's weight before its first runtime change.
local function note_weight(st, v, b, w, old)
  local over = over_of(st, v.name)
  local o = over[b.name]
  if not o then
    o = { kind = "weight", config = { addr = b.addr, port = b.port, weight = old } }
    over[b.name] = o
  end
  o.weight = w
  if o.kind == "weight" and w == o.config.weight then over[b.name] = nil end
  tidy(st, v.name)
end

function M.set_weight(svc, vip, name, w, why)
  if type(w) ~= "number" or w < 0 or w ~= w or w == math.huge then
    fail("weight must be a number >= 0, got %s", tostring(w))
  end
  local st = st_of(svc)
  hook_reload(svc)
  local v, b = find(svc, vip, name)
  local old = b.weight
  if old == w then return ("VIP '%s' backend '%s': weight is %g already (no change)\n"):format(vip, name, w) end
  call(svc, "set_weight", vip, name, w)
  note_weight(st, v, b, w, old)
  log(svc, "VIP '%s' backend '%s': weight %g -> %g (%s; runtime change by %s)", vip, name, old, w,
    why or "weight", who())
  return ("VIP '%s' backend '%s': weight %g -> %g\n"):format(vip, name, old, w)
end

--- Drain: weight 0 (no new flows; its flows go on), remembering the weight.
function M.drain(svc, vip, name)
  local st = st_of(svc)
  local v, b = find(svc, vip, name)
  if b.weight == 0 then return ("VIP '%s' backend '%s' is drained already (weight 0)\n"):format(vip, name) end
  st.before_drain = st.before_drain or {}
  st.before_drain[v.name .. "\0" .. b.name] = b.weight
  return M.set_weight(svc, vip, name, 0, "drain")
end

--- Enable: back to the weight it had before its drain (else the config's, else 1).
function M.enable(svc, vip, name)
  local st = st_of(svc)
  local v, b = find(svc, vip, name)
  if b.weight > 0 then return ("VIP '%s' backend '%s' is enabled already (weight %g)\n"):format(vip, name, b.weight) end
  local key = v.name .. "\0" .. b.name
  local o = st.over[v.name] and st.over[v.name][b.name]
  local w = st.before_drain and st.before_drain[key]
  if not w and o and o.config and o.config.weight > 0 then w = o.config.weight end
  if st.before_drain then st.before_drain[key] = nil end
  return M.set_weight(svc, vip, name, w or 1, "enable")
end

--- Add a backend at runtime: ADDR[:PORT] ("[v6]:port" for IPv6), weight.
function M.add(svc, vip, name, where, w)
  local st = st_of(svc)
  hook_reload(svc)
  local v = find(svc, vip)
  local a, p = where:match("^%[(.+)%]:(%d+)$")
  if not a then a, p = where:match("^([^:]+):(%d+)$") end
  if not a then a = where:match("^%[(.+)%]$") or where end
  local port = p and tonumber(p) or v.port
  call(svc, "add_backend", vip, { name = name, addr = a, port = port, weight = w })
  local b = v.backends[name]
  local over = over_of(st, vip)
  local o = over[name]
  if o and o.kind == "removed" and addr.mapped(o.config.addr) == addr.mapped(b.addr) and o.config.port == b.port then
    -- Back as the config has it: only its weight may differ.
    over[name] = { kind = "weight", config = o.config, weight = b.weight }
    if b.weight == o.config.weight then over[name] = nil end
  else
    over[name] = { kind = "added", addr = b.addr, port = b.port, weight = b.weight }
  end
  tidy(st, vip)
  log(svc, "VIP '%s' backend '%s': added as %s:%d weight %g (runtime change by %s)", vip, name, b.addr, b.port,
    b.weight, who())
  return ("VIP '%s' backend '%s': added as %s:%d weight %g\n"):format(vip, name, b.addr, b.port, b.weight)
end

--- Remove a backend at runtime: it leaves the table, its flows move.
function M.remove(svc, vip, name)
  local st = st_of(svc)
  hook_reload(svc)
  local v, b = find(svc, vip, name)
  local over = over_of(st, vip)
  local o = over[name]
  local cfg = o and o.config or { addr = b.addr, port = b.port, weight = b.weight }
  call(svc, "remove_backend", vip, name)
  over[name] = (not o or o.kind ~= "added") and { kind = "removed", config = cfg } or nil
  tidy(st, v.name)
  log(svc, "VIP '%s' backend '%s' (%s:%d): removed (runtime change by %s)", vip, name, b.addr, b.port, who())
  return ("VIP '%s' backend '%s' (%s:%d): removed\n"):format(vip, name, b.addr, b.port)
end

--- Stop: detach and remove the pinned state (as --destroy), then exit 0.
--- The service's own shutdown hooks run first (its last stats report).
function M.stop(svc)
  local Service = getmetatable(svc)
  svc.close = function(self, o)
    o = o and copy(o) or {}
    o.destroy = true
    return Service.close(self, o)
  end
  log(svc, "stop requested by %s: detaching from %s and removing %s", who(), tostring(svc.interface), svc.dir)
  -- After this command's answer is written: the loop's next turn.
  local t = uv.new_timer()
  t:start(0, 0, function()
    t:close()
    bpf.stop(0)
  end)
  return F.json({ service = svc.name, pid = uv.os_getpid(), interface = svc.interface, netns = svc.netns,
    state_dir = svc.dir }, "stopped")
end

--- The node's BGP announcements (lb/_bgp.lua): drain-node withdraws them
--- (the program keeps serving what still arrives), enable-node announces again.
function M.drain_node(svc, on)
  if not svc.bgp then
    fail("service '%s' announces nothing: its config has no `bgp` section (docs/scale-out.md)", svc.name)
  end
  local changed = svc.bgp:drain(on)
  local what = on and "drained: its VIPs are withdrawn from BGP, the program keeps serving what still arrives"
    or "enabled: its VIPs are announced again when they can be served"
  if changed then log(svc, "node %s (by %s)", what, who()) end
  return ("service '%s': node %s%s\n"):format(svc.name, changed and "" or "already ", on and "drained" or "enabled")
end

--- What the client sends: run(lb_service, COMMAND, {ARGS...}). Raises
--- "not a load balancer" when the service has no lb_service.
function M.run(svc, cmd, a)
  if type(svc) ~= "table" or not svc.vips then
    fail("this service is not a load balancer (it has no lb_service: start it with scripts/examples/lb.lua)")
  end
  if not svc.obj then fail("service '%s' is closed", svc.name) end
  a = a or {}
  if cmd == "show" then return M.show(svc, a) end
  if cmd == "summary" then return M.summary(svc) end
  if cmd == "prime" then return tostring(M.prime(svc)) end
  if cmd == "weight" then return M.set_weight(svc, a[1], a[2], a[3]) end
  if cmd == "drain" then return M.drain(svc, a[1], a[2]) end
  if cmd == "enable" then return M.enable(svc, a[1], a[2]) end
  if cmd == "add" then return M.add(svc, a[1], a[2], a[3], a[4]) end
  if cmd == "remove" then return M.remove(svc, a[1], a[2]) end
  if cmd == "stop" then return M.stop(svc) end
  if cmd == "drain-node" then return M.drain_node(svc, true) end
  if cmd == "enable-node" then return M.drain_node(svc, false) end
  fail("unknown command '%s'", tostring(cmd))
end

return M
