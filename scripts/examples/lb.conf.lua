-- SPDX-License-Identifier: MIT
-- An example configuration for scripts/examples/lb.lua (the demo's).
service = "demo"          -- names the pin directory /sys/fs/bpf/luabpf/lb/demo
interface = "eth0"        -- XDP attaches here
xdp_mode = "auto"         -- native, falling back to generic
metrics = "127.0.0.1:9435" -- Prometheus metrics here; `luabpf top demo` watches them

vips = {
  {
    name = "web", addr = "10.10.100.1", port = 80, proto = "tcp",
    mode = "nat",           -- full NAT; snat defaults to eth0's address
    -- Health checks (docs/health.md): HAProxy's rise 2 / fall 3; a backend
    -- that fails leaves the Maglev table, its open connections finish.
    check = { type = "http", path = "/", interval = 2, timeout = 1 },
    down_flows = "keep",    -- or "flush": reset its connections so clients reconnect elsewhere
    no_quorum = "keep",     -- all down: keep the last healthy set; or "drop", or a sorry = { addr, port }
    backends = {
      { name = "b1", addr = "10.10.0.11", port = 8080, weight = 1 },
      { name = "b2", addr = "10.10.0.12", port = 8080, weight = 1 },
      { name = "b3", addr = "10.10.0.13", port = 8080, weight = 1 },
    },
  },
}
