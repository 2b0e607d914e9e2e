-- SPDX-License-Identifier: MIT
-- The tunnel decapsulator for backends behind a balancer in mode "ipip" or
-- "gue" (docs/lb.md): tc ingress on the backend's interface strips IPIP and
-- GUE sent to the configured outer addresses (bpf/decap/decap.bpf.c) and the
-- stack sees the client's packet as if it had come in bare. No ipip or fou
-- module needed.
--
--   local decap = require("luabpf.decap")
--   local d = assert(decap.new{ interface = "eth0", addrs = { "10.1.0.11" } })
--   print(d:stats().ipip.packets)
--   d:close()
local addr = require("luabpf._addr")

local M = {}

-- enum decap_reason, in order (bpf/decap/decap.h).
M.REASONS = { "ipip", "gue", "pass", "pass_other_addr", "pass_fragment", "pass_gue_other",
  "drop_truncated", "drop_bad_header", "drop_adjust" }
M.GUE_PORT = 6080 -- as the balancer's default gue_port

local D = {}
D.__index = D

local function check_opts(t, known, level)
  if type(t) ~= "table" then error(("decap.new: expects a table of options, got %s"):format(type(t)), level + 1) end
  for k in pairs(t) do
    if not known[k] then
      local names = {}
      for n in pairs(known) do names[#names + 1] = n end
      table.sort(names)
      error(("decap.new: unknown option '%s' (valid: %s)"):format(tostring(k), table.concat(names, ", ")), level + 1)
    end
  end
end

--- A decapsulator: { interface = NAME (required unless attach = false),
-- netns = NAME, addrs = { outer addresses whose tunnels are ours },
-- gue_port = 6080, attach = true }. Returns it, or nil, err, code (nothing
-- is left behind).
function M.new(o)
  check_opts(o, { interface = true, netns = true, addrs = true, gue_port = true, attach = true }, 2)
  if o.attach ~= false and type(o.interface) ~= "string" and type(o.interface) ~= "number" then
    error("decap.new: interface is required (the backend's interface the tunnels come in on)", 2)
  end
  if type(o.addrs) ~= "table" or #o.addrs == 0 then
    error("decap.new: addrs must list at least one outer address (the backend's own, as the balancer sends to)", 2)
  end
  local addrs = {}
  for i, a in ipairs(o.addrs) do addrs[i] = addr.check("decap addr", a, 2) end
  local port = o.gue_port or M.GUE_PORT
  if type(port) ~= "number" or port < 1 or port > 65535 or port % 1 ~= 0 then
    error(("decap.new: gue_port must be 1-65535, got %s"):format(tostring(port)), 2)
  end
  local obj, err, code = bpf.load("decap", { globals = { gue_port = port } })
  if not obj then return nil, ("decap: couldn't load the decapsulator: %s"):format(err), code end
  local self = setmetatable({ obj = obj, prog = obj:program("tc_decap"), addrs_map = obj:map("decap_addrs"),
    stats_map = obj:map("decap_stats"), interface = o.interface, netns = o.netns, gue_port = port,
    addrs = {} }, D)
  for _, a in ipairs(addrs) do self:add_addr(a) end
  if o.attach ~= false then
    local link, aerr, acode = self.prog:attach_tc(o.interface, { direction = "ingress", netns = o.netns })
    if not link then
      obj:close()
      return nil, ("decap: couldn't attach tc ingress on '%s': %s"):format(tostring(o.interface), aerr), acode
    end
    self.link = link
  end
  return self
end

local function check_open(self)
  if not self.obj then error("decap: closed decapsulator", 3) end
end

--- Strip tunnels sent to a (one more outer address).
function D:add_addr(a)
  check_open(self)
  a = addr.check("decap addr", a, 2)
  assert(self.addrs_map:update(addr.mapped(a), 1))
  self.addrs[a] = true
end

--- Stop stripping tunnels sent to a: they pass untouched (pass_other_addr).
function D:remove_addr(a)
  check_open(self)
  a = addr.check("decap addr", a, 2)
  self.addrs_map:delete(addr.mapped(a))
  self.addrs[a] = nil
end

--- { reason = { packets =, bytes = } } for every reason in M.REASONS.
function D:stats()
  check_open(self)
  local out = {}
  for i, name in ipairs(M.REASONS) do
    local v = self.stats_map:lookup_sum(i - 1)
    out[name] = { packets = v and tonumber(v.packets) or 0, bytes = v and tonumber(v.bytes) or 0 }
  end
  return out
end

--- Detach and unload; idempotent.
function D:close()
  if self.link then self.link:detach() end
  if self.obj then self.obj:close() end
  self.link, self.obj = nil, nil
end

return M
