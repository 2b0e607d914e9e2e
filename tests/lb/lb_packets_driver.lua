-- SPDX-License-Identifier: MIT
-- The command loop shared by tests/lb/lb_packets.lua (XDP, LRU flow table)
-- and tests/lb/lb_ct_packets.lua (tc, conntrack): Python crafts every packet
-- and checks every answer; this side only builds the service
-- (lb.new{attach=false}) and runs packets through prog:test_run, so that a
-- reply can be made from what the data plane actually wrote.
--
-- One command per line on stdin, one answer per line on stdout ("@@ ok ..." or
-- "@@ err MESSAGE"); anything else on stdout is not an answer.
--   new NAME                            the service (pin=false, not attached)
--   vip NAME ADDR PORT PROTO MODE SNAT  SNAT "-" for none (DSR)
--   backend VIP NAME ADDR PORT
--   weight VIP NAME WEIGHT | remove VIP NAME
--   which SRC SPORT DST DPORT PROTO     -> ok BACKEND|- hit|miss
--   run IFINDEX HEX                     -> ok VERDICT RETVAL MOVED HEXOUT
--                                          MOVED: reason:delta,... or "-"
--   stats                               -> ok VIP:packets:new_flows ...
--   batch PROG IFINDEX N                then N lines of HEX; answers N lines
--                                          "VERDICT HEXOUT" ("ERR:CODE -" when
--                                          test_run refuses the frame), then ok.
--                                          PROG: prog (svc.prog, ctx) or xprog
--                                          (svc.xprog, xctx). No counters per
--                                          packet: read them with "reasons".
--   reasons                             -> ok REASON:packets ... (every reason)
--   close
--
-- require("lb_packets_driver"){ ctx = function(pkt, ifindex) ... end, options = {...} }
-- runs the loop until "close" or end of input: ctx builds test_run's context
-- for a frame, options are added to lb.new's. Optional (tests/fuzz): xctx,
-- the context for svc.xprog; service = function(name, options) -> a service
-- with .prog, :stats().reasons and :close() instead of lb.new; reasons = the
-- reason names in order (default lb.REASONS); commands = { name = function(svc,
-- ...) -> answer } added to the protocol.
local lb = require("luabpf.lb")

local function hex(s)
  return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

local function unhex(h)
  return (h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end))
end

return function(opts)
  local svc

  local REASONS = opts.reasons or lb.REASONS

  -- name -> packets; a reason's counter may be a number or { packets, bytes }.
  local function reasons()
    local out = {}
    for name, v in pairs(svc:stats().reasons) do
      out[name] = type(v) == "table" and v.packets or v
    end
    return out
  end

  local cmds = {}

  function cmds.new(name)
    local o = { name = name, attach = false, pin = false, prime_neighbours = false,
      drop_sample = 0, max_vips = 32, max_backends = 64 }
    for k, v in pairs(opts.options or {}) do o[k] = v end
    local err
    svc, err = (opts.service or lb.new)(o)
    if not svc then error(err) end
    return ""
  end

  function cmds.vip(name, a, port, proto, mode, snat)
    svc:add_vip{ name = name, addr = a, port = tonumber(port), proto = proto, mode = mode,
      snat = snat ~= "-" and snat or nil }
    return ""
  end

  function cmds.backend(vip, name, a, port)
    svc:add_backend(vip, { name = name, addr = a, port = tonumber(port) })
    return ""
  end

  function cmds.weight(vip, name, w)
    svc:set_weight(vip, name, tonumber(w))
    return ""
  end

  function cmds.remove(vip, name)
    svc:remove_backend(vip, name)
    return ""
  end

  function cmds.which(src, sport, dst, dport, proto)
    local b, hit = svc:which{ src = src, sport = tonumber(sport), dst = dst,
      dport = tonumber(dport), proto = proto }
    return ("%s %s"):format(b or "-", hit and "hit" or "miss")
  end

  function cmds.run(ifindex, h)
    local pkt = unhex(h)
    local before = reasons()
    local r, err = svc.prog:test_run(pkt, { ctx = opts.ctx(pkt, tonumber(ifindex)) })
    if not r then error("test_run: " .. tostring(err)) end
    local after = reasons()
    local moved = {}
    for _, name in ipairs(REASONS) do
      local d = after[name] - before[name]
      if d ~= 0 then moved[#moved + 1] = ("%s:%d"):format(name, d) end
    end
    return ("%s %d %s %s"):format(r.verdict or "?", r.retval,
      #moved > 0 and table.concat(moved, ",") or "-", #r.data > 0 and hex(r.data) or "-")
  end

  function cmds.batch(which, ifindex, n)
    local prog = which == "xprog" and svc.xprog or svc.prog
    local ctx = which == "xprog" and opts.xctx or opts.ctx
    if not prog then error("no program '" .. tostring(which) .. "' in this service") end
    ifindex = tonumber(ifindex)
    local out = {}
    for i = 1, tonumber(n) do
      local pkt = unhex(io.stdin:read("*l") or error("batch: input ended after " .. (i - 1) .. " frames"))
      local r, err, code = prog:test_run(pkt, { ctx = ctx(pkt, ifindex) })
      if r then
        out[i] = ("%s %s"):format(r.verdict or "?", #r.data > 0 and hex(r.data) or "-")
      else
        out[i] = ("ERR:%s -"):format(code or tostring(err):match("^%u+") or "?")
      end
    end
    out[#out + 1] = ""
    io.stdout:write(table.concat(out, "\n"))
    return ""
  end

  -- The reply mapping of the flows on NAT port lport is lost (as the LRU
  -- evicts it) and their keepalive is due: their next packet makes it again.
  function cmds.nat_forget(lport)
    lport = tonumber(lport)
    local nat, flows, n = svc.obj:map("nat"), svc.obj:map("flows"), 0
    for k in nat:keys() do
      if k.lport == lport then assert(nat:delete(k)); n = n + 1 end
    end
    for k, v in flows:pairs() do
      if v.nat_port == lport then v.nat_seen = 0; assert(flows:update(k, v)) end
    end
    return tostring(n)
  end

  function cmds.reasons()
    local r, out = reasons(), {}
    for _, name in ipairs(REASONS) do out[#out + 1] = ("%s:%d"):format(name, r[name] or 0) end
    return table.concat(out, " ")
  end

  for name, fn in pairs(opts.commands or {}) do
    cmds[name] = function(...) return fn(svc, ...) end
  end

  function cmds.stats()
    local out = {}
    for name, v in pairs(svc:stats().vips) do
      out[#out + 1] = ("%s:%d:%d"):format(name, v.packets, v.new_flows)
    end
    table.sort(out)
    return table.concat(out, " ")
  end

  function cmds.close()
    svc:close()
    svc = nil
    return ""
  end

  local answer = require("lb_cmd")
  for line in io.stdin:lines() do
    local ans, name = answer(cmds, line)
    io.stdout:write(ans, "\n")
    io.stdout:flush()
    if name == "close" then break end
  end
  if svc then svc:close() end
end
