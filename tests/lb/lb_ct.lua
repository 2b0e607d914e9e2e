-- SPDX-License-Identifier: MIT
-- A conntrack-mode LB service in the lab's balancer, driven by commands on
-- stdin (tests/lb/test_lb_ct.sh, bench/lb_ct.sh), one answer line each
-- ("@@ ok ..." or "@@ err ..."). The loop keeps running between commands.
--   lb_ct.lua SERVICE [lru|conntrack|fast]   (fast: conntrack with ct_fastpath)
--   add NAME ADDR PORT | weight NAME W | remove NAME [flush]   (VIP "web")
--   flows [VIP]      -> ok N backend:count ...
--   stats            -> ok reason:count ... (non-zero only)
local uv = require("luv")
local lb = require("luabpf.lb")
-- lb_cmd.lua beside this file, found when tests/scale_out/ct_driver.lua runs it too.
package.path = (debug.getinfo(1, "S").source:match("^@(.*)/") or ".") .. "/?.lua;" .. package.path
local answer = require("lb_cmd")
local name = assert(arg[1], "usage: lb_ct.lua SERVICE [lru|conntrack]")
local mode = arg[2] or "conntrack"

local svc = assert(lb.new({ name = name, interface = "eth0", pin = false,
  flow_table = mode == "fast" and "conntrack" or mode, ct_fastpath = mode == "fast" or nil }))
local function backends(port)
  local out = {}
  for i = 1, 3 do out[i] = { name = "b" .. i, addr = "10.10.0.1" .. i, port = port } end
  return out
end
local function backends6(port)
  local out = {}
  for i = 1, 3 do out[i] = { name = "b" .. i, addr = "fd10::1" .. i, port = port } end
  return out
end
svc:add_vip({ name = "web", addr = "10.10.100.1", port = 80, backends = backends(8080) })
svc:add_vip({ name = "dns", addr = "10.10.100.1", port = 53, proto = "udp", backends = backends(5353) })
svc:add_vip({ name = "web6", addr = "fd10:100::1", port = 80, backends = backends6(8080) })

local cmds = {}
function cmds.add(n, a, port)
  svc:add_backend("web", { name = n, addr = a, port = tonumber(port) })
  return ""
end
function cmds.weight(n, w)
  svc:set_weight("web", n, tonumber(w))
  return ""
end
function cmds.remove(n, flush)
  svc:remove_backend("web", n, { flush = flush == "flush" })
  return ""
end
function cmds.flows(vip)
  local per, n = {}, 0
  for _, f in ipairs(svc:flows(vip)) do
    per[f.backend or "?"] = (per[f.backend or "?"] or 0) + 1
    n = n + 1
  end
  local out = { tostring(n) }
  for b, c in pairs(per) do out[#out + 1] = b .. ":" .. c end
  table.sort(out)
  return table.concat(out, " ")
end
function cmds.stats()
  local out = {}
  for r, c in pairs(svc:stats().reasons) do
    if c > 0 then out[#out + 1] = r .. ":" .. c end
  end
  table.sort(out)
  return table.concat(out, " ")
end

local stdin = uv.new_pipe(false)
stdin:open(0)
local buf = ""
stdin:read_start(function(err, data)
  if err or not data then
    stdin:close()
    return
  end
  buf = buf .. data
  while true do
    local line, rest = buf:match("^([^\n]*)\n(.*)$")
    if not line then break end
    buf = rest
    io.stdout:write((answer(cmds, line)), "\n")
    io.stdout:flush()
  end
end)
print(("ready %s%s"):format(svc.flow_table, svc.xdp_link and " fast" or ""))
io.stdout:flush()
