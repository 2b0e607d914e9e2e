-- SPDX-License-Identifier: MIT
-- An example configuration for scripts/examples/lb.lua (the demo's).
service = "demo"          -- names the pin directory /sys/fs/bpf/luabpf/lb/demo
interface = "eth0"        -- XDP attaches here
xdp_mode = "auto"         -- native, falling back to generic

vips = {
  {
    name = "web", addr = "10.10.100.1", port = 80, proto = "tcp",
    mode = "nat",           -- full NAT; snat defaults to eth0's address
    backends = {
      { name = "b1", addr = "10.10.0.11", port = 8080, weight = 1 },
      { name = "b2", addr = "10.10.0.12", port = 8080, weight = 1 },
      { name = "b3", addr = "10.10.0.13", port = 8080, weight = 1 },
    },
  },
}
