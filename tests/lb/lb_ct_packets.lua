-- SPDX-License-Identifier: MIT
-- The conntrack-mode data plane (bpf/lb/lb_ct.bpf.c) for tests/lb/lb_ct_packets.py:
-- the protocol of tests/lb/lb_packets_driver.lua with a tc context for test_run.
local ffi = require("ffi")

-- struct __sk_buff as test_run takes it: ingress_ifindex and ifindex set,
-- so the FIB lookup and conntrack use the namespace's interface.
local function skb_ctx(_, ifindex)
  local md = ffi.new("uint32_t[48]")
  md[9], md[10] = ifindex, ifindex
  return ffi.string(md, 4 * 48)
end

require("lb_packets_driver"){ ctx = skb_ctx, options = { flow_table = "conntrack" } }
