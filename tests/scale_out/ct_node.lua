-- SPDX-License-Identifier: MIT
-- One balancer node of tests/scale_out/test_ct_sync.sh: VIP 10.9.0.1:80 in
-- NAT mode to the lab's two backends, with this node's own SNAT address.
--   ct_node.lua SERVICE MODE SNAT [PORT] [pin]   (the backends' port, default 8080;
--   pin: state pinned, left serving at exit for the next instance to take over)
-- MODE: sync (flow_table conntrack, ct_sync: entries conntrackd can sync),
-- alloc (flow_table conntrack, entries by bpf_ct_alloc), lru (the XDP table).
-- Prints "ready" once attached; runs until SIGINT/SIGTERM (then removes all,
-- unless pinned).
local lb = require("luabpf.lb")
local name, mode, snat, port = arg[1], arg[2], arg[3], tonumber(arg[4] or 8080)
assert(name and mode and snat, "usage: ct_node.lua SERVICE sync|alloc|lru SNAT")

local svc = assert(lb.new({ name = name, interface = "eth0", pin = arg[5] == "pin",
  flow_table = mode == "lru" and "lru" or "conntrack", ct_sync = mode == "sync" or nil }))
svc:add_vip({ name = "web", addr = "10.9.0.1", port = 80, mode = "nat", snat = snat, backends = {
  { name = "b1", addr = "10.2.0.21", port = port },
  { name = "b2", addr = "10.2.0.22", port = port },
} })
print("ready")
io.stdout:flush()
