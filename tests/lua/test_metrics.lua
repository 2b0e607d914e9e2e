-- SPDX-License-Identifier: MIT
-- luabpf.metrics: Lua-side counters, gauges and histograms render as exact
-- exposition text; map-backed ones sum per-CPU values and turn BTF-decoded
-- keys into labels; program run counts come from BPF stats; the HTTP
-- endpoint serves it and promtool accepts every output; misuse raises.
local t = require("t")
local uv = require("luv")
local metrics = require("luabpf.metrics")
local http = require("luabpf._http")

local function promtool(text, what)
  local f = os.tmpname()
  local h = assert(io.open(f, "w"))
  h:write(text)
  h:close()
  local out, ok = t.sh("promtool check metrics < " .. f)
  os.remove(f)
  t.ok(ok, (what or "promtool check metrics") .. ": " .. out)
end

-- Without the trailing luabpf_metrics_* self-metrics.
local function body(text)
  return (text:gsub("# HELP luabpf_metrics_scrape_duration_seconds.*$", ""))
end

-- Lua-side metrics: exact text.
local reg = metrics.registry()
local req = reg:counter { name = "app_requests_total", help = "Requests handled", labels = { "code", "path" } }
req:inc({ "200", "/a" })
req:inc(2, { code = 200, path = "/a" })
req:inc(1, { code = "404", path = 'q"\\\n' })
local temp = reg:gauge { name = "app_temperature_celsius", help = "Temperature\nin C" }
temp:set(21.5)
temp:dec(0.5)
local lat = reg:histogram { name = "app_latency_seconds", help = "Latency", buckets = { 0.1, 0.5, 1 } }
for _, v in ipairs({ 0.05, 0.1, 0.3, 0.7, 2 }) do lat:observe(v) end
local lin = reg:histogram { name = "app_size_bytes", help = "Sizes", labels = { "kind" },
  buckets = { type = "linear", start = 100, width = 100, count = 3 } }
lin:observe(150, { "x" })
t.eq(req:value({ "200", "/a" }), 3, "counter value")

local want = table.concat({
  "# HELP app_requests_total Requests handled",
  "# TYPE app_requests_total counter",
  'app_requests_total{code="200",path="/a"} 3',
  'app_requests_total{code="404",path="q\\"\\\\\\n"} 1',
  "# HELP app_temperature_celsius Temperature\\nin C",
  "# TYPE app_temperature_celsius gauge",
  "app_temperature_celsius 21",
  "# HELP app_latency_seconds Latency",
  "# TYPE app_latency_seconds histogram",
  'app_latency_seconds_bucket{le="0.10000000000000001"} 2',
  'app_latency_seconds_bucket{le="0.5"} 3',
  'app_latency_seconds_bucket{le="1"} 4',
  'app_latency_seconds_bucket{le="+Inf"} 5',
  "app_latency_seconds_sum 3.1499999999999999",
  "app_latency_seconds_count 5",
  "# HELP app_size_bytes Sizes",
  "# TYPE app_size_bytes histogram",
  'app_size_bytes_bucket{kind="x",le="100"} 0',
  'app_size_bytes_bucket{kind="x",le="200"} 1',
  'app_size_bytes_bucket{kind="x",le="300"} 1',
  'app_size_bytes_bucket{kind="x",le="+Inf"} 1',
  'app_size_bytes_sum{kind="x"} 150',
  'app_size_bytes_count{kind="x"} 1',
  "",
}, "\n")
local text = reg:render()
t.eq(body(text), want, "exposition of Lua-side metrics")
promtool(text, "Lua-side metrics")

-- The parser reads back what we wrote, escapes included.
local fams = metrics.parse(text)
t.eq(fams.app_requests_total.type, "counter", "parsed type")
t.eq(fams.app_requests_total.samples[2].labels.path, 'q"\\\n', "parsed escaped label")
t.eq(#fams.app_latency_seconds.samples, 6, "histogram samples filed under the family")

-- Misuse raises, naming the metric.
t.raises(function() reg:counter { name = "app_requests" } end, "ends in _total")
t.raises(function() reg:counter { name = "app_requests_total" } end, "already registered")
t.raises(function() reg:gauge { name = "x", lables = {} } end, "unknown option 'lables'")
t.raises(function() reg:gauge { name = "bad-name" } end, "name must match")
t.raises(function() req:inc({ code = "200" }) end, "missing label 'path'")
t.raises(function() req:inc({ code = "1", path = "/", verb = "GET" }) end, "unknown label 'verb'")
t.raises(function() req:inc(-1, { "1", "/" }) end, "can't go down")
t.raises(function() req:set(1, { "1", "/" }) end, "only gauges are set")
t.raises(function() lat:inc() end, "use observe()")
t.raises(function() reg:histogram { name = "h", buckets = { 2, 1 } } end, "buckets must increase")
t.raises(function() reg:counter { name = "m_total", map = "counts" } end, "map expects a loaded map")

-- Map-backed metrics: per-CPU values summed, keys decoded into labels.
local obj = assert(bpf.load("tc_stats"))
local peers = obj:map("peer_stats")
local ncpu = peers:info().ncpus or #peers:lookup({ addr = "::1", direction = 0 }) -- raises if absent
local function percpu(p, b)
  local l = {}
  for i = 1, ncpu do l[i] = { packets = p, bytes = b } end
  return l
end
assert(peers:update({ addr = "::ffff:10.1.2.3", direction = 0 }, percpu(3, 300)))
assert(peers:update({ addr = "::ffff:10.1.2.3", direction = 1 }, percpu(1, 60)))
assert(peers:update({ addr = "fd00::7", direction = 0 }, percpu(2, 200)))
local mreg = metrics.registry()
local function peer(a) return (a:gsub("^::ffff:", "")) end
mreg:counter { name = "tc_peer_packets_total", help = "Packets per peer", map = peers, value = "packets",
  labels = { "direction", "addr" }, relabel = { direction = { [0] = "ingress", [1] = "egress" }, addr = peer } }
-- No labels given: every key field becomes one, in name order.
mreg:counter { name = "tc_peer_bytes_total", help = "Bytes per peer", map = peers, value = "bytes" }
local got = {}
for line in mreg:render():gmatch("[^\n]+") do
  if not line:match("^#") and not line:match("^luabpf_") then got[#got + 1] = line end
end
table.sort(got)
t.same(got, {
  ('tc_peer_bytes_total{addr="::ffff:10.1.2.3",direction="0"} %d'):format(300 * ncpu),
  ('tc_peer_bytes_total{addr="::ffff:10.1.2.3",direction="1"} %d'):format(60 * ncpu),
  ('tc_peer_bytes_total{addr="fd00::7",direction="0"} %d'):format(200 * ncpu),
  ('tc_peer_packets_total{direction="egress",addr="10.1.2.3"} %d'):format(ncpu),
  ('tc_peer_packets_total{direction="ingress",addr="10.1.2.3"} %d'):format(3 * ncpu),
  ('tc_peer_packets_total{direction="ingress",addr="fd00::7"} %d'):format(2 * ncpu),
}, "map-backed counters")
promtool(mreg:render(), "map-backed counters")

-- A struct value without value= is left out of the scrape, and said so.
mreg:gauge { name = "tc_peer_oops", map = peers }
local r = mreg:render()
t.ok(not r:find("\ntc_peer_oops{", 1, true), "the failing metric is left out")
t.ok(r:find('luabpf_metrics_errors_total{metric="tc_peer_oops"} 1', 1, true), "and counted: " .. r)
promtool(r, "with a failed metric")
mreg:unregister("tc_peer_oops")

-- An exp2 histogram from a map of slot -> count (bpftrace's hist() layout).
local mobj = assert(bpf.load(t.object("maps")))
local counts = mobj:map("counts")
for slot, n in pairs({ [0] = 4, [1] = 3, [3] = 2, [40] = 1 }) do assert(counts:update(slot, n)) end
mreg:histogram { name = "io_size_bytes", help = "Sizes", map = counts, buckets = { type = "exp2", count = 4 } }
got = {}
for line in mreg:render():gmatch("\n(io_size_bytes[^\n]+)") do got[#got + 1] = line end
t.same(got, {
  'io_size_bytes_bucket{le="1"} 4', 'io_size_bytes_bucket{le="2"} 7', 'io_size_bytes_bucket{le="4"} 7',
  'io_size_bytes_bucket{le="8"} 9', 'io_size_bytes_bucket{le="+Inf"} 10',
  "io_size_bytes_sum 34", "io_size_bytes_count 10",
}, "exp2 histogram from a map (slot 40 lands in +Inf; sum from upper bounds)")

-- Program run counts from BPF stats.
local pobj = assert(bpf.load(t.object("progs")))
assert(mreg:programs(pobj:program("xdp_pass")))
local pkt = string.rep("\0", 64)
assert(pobj:program("xdp_pass"):test_run(pkt, { ["repeat"] = 37 }))
local id = pobj:program("xdp_pass"):info().id
r = mreg:render()
t.ok(r:find(('luabpf_prog_runs_total{prog="xdp_pass",id="%d"} 37'):format(id), 1, true),
  "37 test runs counted: " .. r)
local secs = tonumber(r:match('luabpf_prog_run_seconds_total{prog="xdp_pass",id="%d+"} (%S+)'))
t.ok(secs and secs > 0 and secs < 1, "run time in seconds: " .. tostring(secs))
promtool(r, "program stats")

-- Served over HTTP on 127.0.0.1.
local srv = assert(metrics.serve(mreg, { port = 0 }))
t.eq(srv.address, "127.0.0.1", "bound to loopback by default")
t.ok(srv.url:match("^http://127%.0%.0%.1:%d+/metrics$"), "url " .. srv.url)
local taken, err, code = metrics.serve(mreg, { port = srv.port })
t.eq(taken, nil, "port in use")
t.eq(code, "EADDRINUSE", "port in use: " .. tostring(err))
t.raises(function() metrics.serve(mreg, { prot = 1 }) end, "unknown option 'prot'")

-- Errors in callbacks are only logged by the host: fail the test instead.
local function cb(fn)
  return function(...)
    local ok, e = pcall(fn, ...)
    if not ok then io.stderr:write("FAIL: ", tostring(e), "\n") os.exit(1) end
  end
end
local pending = 3
local function done() pending = pending - 1 end
http.get(srv.url, cb(function(res, gerr)
  t.ok(res, "GET /metrics: " .. tostring(gerr))
  t.eq(res.status, 200, "status")
  t.eq(res.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8", "content type")
  t.ok(res.body:find("io_size_bytes_count 10", 1, true), "body")
  promtool(res.body, "served body")
  done()
end))
http.get((srv.url:gsub("/metrics$", "/nope")), cb(function(res, gerr)
  t.ok(res, "GET /nope: " .. tostring(gerr))
  t.eq(res.status, 404, "unknown path")
  done()
end))
-- A raw keep-alive client: two scrapes answered on one connection.
local c = uv.new_tcp()
c:connect("127.0.0.1", srv.port, cb(function(cerr)
  assert(not cerr, cerr)
  local buf = ""
  c:read_start(cb(function(rerr, chunk)
    assert(not rerr, rerr)
    if chunk then buf = buf .. chunk end
    local _, n = buf:gsub("io_size_bytes_count 10\n", "")
    if n == 2 then
      local _, heads = buf:gsub("HTTP/1%.1 200 OK\r\n", "")
      t.eq(heads, 2, "two answers on one connection")
      t.ok(buf:find("Connection: keep%-alive"), "keep-alive")
      c:close()
      done()
    end
  end))
  c:write("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
end))
local started = uv.now()
local poll = uv.new_timer()
poll:start(50, 50, cb(function()
  if pending == 0 then
    poll:close()
    srv.close()
  elseif uv.now() - started > 10000 then
    error(("HTTP checks did not finish (%d left)"):format(pending))
  end
end))
