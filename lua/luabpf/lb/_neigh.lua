-- SPDX-License-Identifier: MIT
-- Next hops follow the kernel at once. The data plane keeps each next hop's
-- MACs in a per-CPU cache (bpf/lb/lb.h, struct lb_nexthop) that it trusts
-- for nexthop_ttl_ms (1 s) unless the global nexthop_gen moves. This watches
-- the service's namespace with `ip -o monitor neigh route` and bumps
-- nexthop_gen on each change that can move a next hop: a neighbour's MAC
-- changing, a neighbour failing or going away, any route added or removed.
-- A neighbour's state moving (REACHABLE, STALE, DELAY, PROBE) with the same
-- MAC is not one. Bumps are rate-limited: the first at once, then at most
-- one per GAP_MS (a change in between is bumped at the gap's end, never lost).
-- Private to lua/luabpf/lb/: init.lua starts it for the LRU data plane.
local uv = require("luv")
local spawn = require("luabpf._spawn")

local M = {}

local GAP_MS = 20      -- at most one bump per GAP_MS
local RESTART_MS = 1000 -- an `ip monitor` that died is started again after this

local Watch = {}
Watch.__index = Watch

-- The argv that runs `ip -o monitor neigh route` in the service's namespace:
-- the process's own (luabpf --netns), a named one (ip -n) or a path (nsenter).
local function argv(netns)
  local mon = { "-o", "monitor", "neigh", "route" }
  if not netns then return "ip", mon end
  if not netns:find("/", 1, true) then
    return "ip", { "-n", netns, "-o", "monitor", "neigh", "route" }
  end
  local a = { "--net=" .. netns, "ip" }
  for _, x in ipairs(mon) do a[#a + 1] = x end
  return "nsenter", a
end

-- Whether one line of `ip -o monitor neigh route` can move a next hop;
-- macs remembers each neighbour's last MAC ("dev|addr" -> lladdr). A
-- neighbour line is "[Deleted ]ADDR dev IF [lladdr MAC] [router] STATE";
-- anything else is a route (or a line we don't read), and counts.
local function relevant(line, macs)
  local deleted = line:sub(1, 8) == "Deleted "
  local l = deleted and line:sub(9) or line
  local dst, dev = l:match("^(%S+) dev (%S+)")
  local mac = l:match(" lladdr (%S+)")
  local state = l:match(" (%u+)%s*$")
  for _, w in ipairs({ " via ", " proto ", " scope ", " table ", " metric " }) do
    if l:find(w, 1, true) then dst = nil end
  end
  if not dst or not (mac or state) then return true end
  local k = dev .. "|" .. dst
  if deleted or not mac then -- gone, FAILED, INCOMPLETE: its MAC is no more
    local had = macs[k] ~= nil
    macs[k] = nil
    return had or deleted
  end
  if macs[k] == mac then return false end -- a state change, same MAC
  -- New or changed (a first sight counts: the cache may hold what it had
  -- before this watch began).
  macs[k] = mac
  return true
end
M._relevant = relevant -- for tests

--- Watch svc's namespace and bump svc.obj's nexthop_gen on each change.
-- Returns the watch (:close() stops it); never raises: without `ip`, it logs
-- once and the data plane keeps its 1 s expiry.
function M.watch(svc)
  local self = setmetatable({ svc = svc, gen = 0, macs = {}, last = 0, pending = false }, Watch)
  self.timer = uv.new_timer()
  uv.unref(self.timer)
  self:_spawn()
  return self
end

function Watch:_bump()
  local svc = self.svc
  if not svc.obj then return self:close() end
  local now = uv.now()
  if now - self.last < GAP_MS then
    if not self.pending then
      self.pending = true
      self.timer:start(GAP_MS - (now - self.last), 0, function()
        self.pending = false
        self:_bump()
      end)
    end
    return
  end
  self.last = now
  self.gen = (self.gen + 1) % 0x100000000
  svc.obj:set("nexthop_gen", self.gen)
  self.bumps = (self.bumps or 0) + 1
end

function Watch:_spawn()
  if self.closed then return end
  local cmd, args = argv(self.svc.netns)
  local out = uv.new_pipe(false)
  local buf = ""
  local proc, pid, tied
  -- Tied: the monitor ends with luabpf, even on SIGKILL.
  proc, pid, tied = spawn.tied(cmd, { args = args, stdio = { nil, out, nil } }, function(code, sig)
    if self.proc then self.proc:close() end
    self.proc = nil
    if self.closed then return end
    if tied and code == 127 then return self:_cant_run("not found") end
    if not self.warned_exit then
      self.warned_exit = true
      bpf.log("warn", ("service '%s': '%s monitor' stopped (exit %d, signal %d): started again in %d s; "
        .. "meanwhile next hops follow neighbour and route changes within 1 s"):format(self.svc.name, cmd,
        code, sig, RESTART_MS / 1000))
    end
    self.timer:start(RESTART_MS, 0, function() self:_spawn() end)
  end)
  if not proc then
    out:close()
    return self:_cant_run(tostring(pid))
  end
  uv.unref(proc)
  uv.unref(out)
  self.proc, self.out = proc, out
  -- The namespace may have changed while no one watched: forget every next hop.
  self:_bump()
  out:read_start(function(err, data)
    if err or not data then
      if not out:is_closing() then out:close() end
      if self.out == out then self.out = nil end
      return
    end
    buf = buf .. data
    local changed = false
    for line in buf:gmatch("([^\n]*)\n") do
      if relevant(line, self.macs) then changed = true end
    end
    buf = buf:match("([^\n]*)$")
    if changed then self:_bump() end
  end)
end

function Watch:_cant_run(why)
  if self.warned_spawn then return end
  self.warned_spawn = true
  bpf.log("warn", ("service '%s': can't run '%s' to watch neighbours and routes (%s): next hops "
    .. "follow their changes within 1 s (the cache's expiry), not at once. HINT: install iproute2")
    :format(self.svc.name, (argv(self.svc.netns)), why))
end

--- Stop watching (idempotent): the `ip` process is killed, handles closed.
function Watch:close()
  if require("luabpf._util").close_proc(self) and not self.timer:is_closing() then self.timer:close() end
end

return M
