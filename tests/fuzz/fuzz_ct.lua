-- SPDX-License-Identifier: MIT
-- The conntrack table's data plane for tests/fuzz/fuzz.py: the tc program
-- (bpf/lb/lb_ct.bpf.c, "prog") and its XDP fast path (lb_ct_xdp.bpf.c,
-- "xprog", ct_fastpath = true) of one service, under test_run, through the
-- protocol of tests/lb/lb_packets_driver.lua.
local here = debug.getinfo(1, "S").source:match("^@(.*)/") or "."
package.path = here .. "/../lb/?.lua;" .. package.path
local ffi = require("ffi")

-- struct __sk_buff: ingress_ifindex and ifindex, for the FIB and conntrack.
local function skb_ctx(_, ifindex)
  local md = ffi.new("uint32_t[48]")
  md[9], md[10] = ifindex, ifindex
  return ffi.string(md, 4 * 48)
end

-- struct xdp_md: data = 0, data_end = the frame's length, ingress_ifindex.
local function xdp_ctx(pkt, ifindex)
  return ffi.string(ffi.new("uint32_t[6]", 0, #pkt, 0, ifindex, 0, 0), 24)
end

require("lb_packets_driver"){ ctx = skb_ctx, xctx = xdp_ctx,
  options = { flow_table = "conntrack", ct_fastpath = true } }
