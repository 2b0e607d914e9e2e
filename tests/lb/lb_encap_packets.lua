-- SPDX-License-Identifier: MIT
-- The XDP balancer's tunnel modes through test_run, driven by
-- tests/lb/lb_encap_packets.py with tests/lb/lb_packets_driver.lua's protocol
-- plus:
--   vipx NAME ADDR PORT PROTO MODE ENCAP_SRC GUE_PORT   (GUE_PORT "-": the default)
--   how SRC SPORT DST DPORT PROTO   -> ok MODE|TUNNEL (which()'s third answer)
--   mode VIP                        -> ok MODE (stats)
local ffi = require("ffi")

local function xdp_ctx(pkt, ifindex)
  local md = ffi.new("uint32_t[6]", 0, #pkt, 0, ifindex, 0, 0)
  return ffi.string(md, 24)
end

require("lb_packets_driver"){ ctx = xdp_ctx, commands = {
  vipx = function(svc, name, a, port, proto, mode, src, gport)
    svc:add_vip{ name = name, addr = a, port = tonumber(port), proto = proto, mode = mode,
      encap_src = src, gue_port = gport ~= "-" and tonumber(gport) or nil }
    return ""
  end,
  how = function(svc, src, sport, dst, dport, proto)
    local _, _, h = svc:which{ src = src, sport = tonumber(sport), dst = dst, dport = tonumber(dport), proto = proto }
    return ("%s|%s"):format(h.mode, h.tunnel or "-")
  end,
  mode = function(svc, name)
    return svc:stats().vips[name].mode
  end,
} }
