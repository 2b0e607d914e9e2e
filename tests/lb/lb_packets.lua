-- SPDX-License-Identifier: MIT
-- The load balancer's XDP data plane (LRU flow table), driven over a pipe by
-- tests/lb/lb_packets.py; the command protocol is tests/lb/lb_packets_driver.lua's.
local ffi = require("ffi")

-- struct xdp_md as test_run takes it: data = 0, data_end = the frame's length.
local function xdp_ctx(pkt, ifindex)
  local md = ffi.new("uint32_t[6]", 0, #pkt, 0, ifindex, 0, 0)
  return ffi.string(md, 24)
end

require("lb_packets_driver"){ ctx = xdp_ctx }
