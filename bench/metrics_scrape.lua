-- SPDX-License-Identifier: MIT
-- What a Prometheus scrape of the load balancer's exporter costs with 1,000
-- backends (10 VIPs x 100), against baselines measured in the same run:
--   stats:  svc:stats() alone (the map reads the exporter has to do)
--   render: reg:render() (stats + the exposition text)
--   http:   a full GET /metrics over loopback (render + HTTP), vs a GET of an
--           empty registry (HTTP alone)
-- Medians of several runs. The data plane is loaded but not attached
-- (lb.new{attach = false}): a scrape reads counters, whatever their values.
--   luabpf run bench/metrics_scrape.lua
local uv = require("luv")
local lb = require("luabpf.lb")
local metrics = require("luabpf.metrics")
local http = require("luabpf._http")

local VIPS, PER_VIP, RUNS, N = 10, 100, 5, 10

local name = ("bench-metrics-%d"):format(uv.os_getpid())
local svc = assert(lb.new({ name = name, attach = false, pin = false, max_vips = VIPS,
  max_backends = VIPS * PER_VIP + 8, ring_size = 1031 }))
bpf.on_shutdown(function() svc:close({ destroy = true }) end)
for v = 1, VIPS do
  local backends = {}
  for b = 1, PER_VIP do
    backends[b] = { name = ("v%d-b%d"):format(v, b), addr = ("10.%d.%d.%d"):format(v, math.floor(b / 250) + 1, b % 250 + 1) }
  end
  svc:add_vip({ name = "vip" .. v, addr = ("10.255.0.%d"):format(v), port = 80, proto = "tcp", mode = "dsr",
    backends = backends })
end

local reg = metrics.registry()
reg:lb(svc)
local empty = metrics.registry()
local srv = assert(metrics.serve(reg, { port = 0 }))
local srv0 = assert(metrics.serve(empty, { port = 0 }))

local function median(t)
  table.sort(t)
  return t[math.floor((#t + 1) / 2)]
end

-- Mean seconds per call of fn over N calls, median of RUNS runs.
local function sync(fn)
  local r = {}
  for i = 1, RUNS do
    local t0 = uv.hrtime()
    for _ = 1, N do fn() end
    r[i] = (uv.hrtime() - t0) / 1e9 / N
  end
  return median(r)
end

local body = reg:render()
local lines = select(2, body:gsub("\n[^#]", ""))
local t_stats = sync(function() svc:stats() end)
local t_render = sync(function() reg:render() end)

-- HTTP: sequential GETs (each on a new connection, as curl does).
local function http_runs(url, done)
  local r, i = {}, 0
  local function run()
    i = i + 1
    if i > RUNS then return done(median(r)) end
    local left, t0 = N, uv.hrtime()
    local function one()
      http.get(url, function(res, err)
        assert(res and res.status == 200, err)
        left = left - 1
        if left == 0 then
          r[i] = (uv.hrtime() - t0) / 1e9 / N
          return run()
        end
        one()
      end)
    end
    one()
  end
  run()
end

http_runs(srv0.url, function(t_http0)
  http_runs(srv.url, function(t_http)
    print(("metrics_scrape: LB exporter, %d VIPs x %d backends = %d backends; %d samples, %d bytes a scrape")
      :format(VIPS, PER_VIP, VIPS * PER_VIP, lines, #body))
    print(("  %-34s %9.2f ms"):format("svc:stats() (baseline)", t_stats * 1e3))
    print(("  %-34s %9.2f ms  %5.2fx stats"):format("reg:render()", t_render * 1e3, t_render / t_stats))
    print(("  %-34s %9.2f ms"):format("GET of an empty registry (baseline)", t_http0 * 1e3))
    print(("  %-34s %9.2f ms  %5.2fx stats, +%.2f ms over the empty GET"):format("GET /metrics (whole scrape)",
      t_http * 1e3, t_http / t_stats, (t_http - t_http0) * 1e3))
    print(("  per backend: %.1f us a scrape"):format(t_http / (VIPS * PER_VIP) * 1e6))
    srv.close()
    srv0.close()
    bpf.stop(0)
  end)
end)
