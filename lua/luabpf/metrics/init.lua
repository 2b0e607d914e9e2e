-- SPDX-License-Identifier: MIT
-- Prometheus metrics from the same script that runs the service: counters,
-- gauges and histograms whose values are read from BPF maps at scrape time
-- (per-CPU values summed, keys decoded by BTF into labels) or kept in Lua,
-- served as text exposition over HTTP on the host's loop.
--
--   local metrics = require("luabpf.metrics")
--   local reg = metrics.registry()
--   reg:counter{ name = "xdp_packets_total", help = "Packets by protocol",
--                map = obj:map("counters"), value = "packets", labels = { "proto" },
--                relabel = { proto = { [0] = "ipv4", [1] = "ipv6" } } }
--   assert(metrics.serve(reg, { port = 9435 }))
--
-- docs/metrics.md has the whole API and every metric luabpf itself exports.
-- Split (README.md): this file is the registry, its metrics and the HTTP
-- endpoint; a scrape is _render.lua, the format _text.lua, the ready-made
-- families _exporters.lua.
local uv = require("luv")
local http = require("luabpf._http")

local M = {}

M.DEFAULT_PORT = 9435
M.RUN_DIR = "/run/luabpf/metrics"
M.CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

local K = require("luabpf.metrics._common")
local T = require("luabpf.metrics._text")
require("luabpf.metrics._render")
require("luabpf.metrics._exporters")
require("luabpf.metrics._filter")

local fail, check_opts, set_of = K.fail, K.check_opts, K.set_of
local Metric, Registry, check_name, check_label = K.Metric, K.Registry, K.check_name, K.check_label
local fmt_value, label_text = T.format_value, T.label_text
M.format_value = fmt_value
M.parse = T.parse

---------------------------------------------------------------------------
-- Buckets

--- Upper bounds 2^i * multiplier, i = 0 .. count-1 (bpftrace's hist(), ebpf_exporter's exp2).
function M.exp2_buckets(count, multiplier)
  local b = {}
  for i = 0, count - 1 do b[#b + 1] = 2 ^ i * (multiplier or 1) end
  return b
end

--- Upper bounds start + i*width, i = 0 .. count-1.
function M.linear_buckets(start, width, count)
  local b = {}
  for i = 0, count - 1 do b[#b + 1] = start + i * width end
  return b
end

-- A buckets option: a list of upper bounds, or {type = "exp2"|"linear", ...}.
local function buckets_of(what, spec)
  if type(spec) ~= "table" then fail("%s: buckets expects a list of upper bounds or {type = ...}", what) end
  if spec.type then
    check_opts(what .. ": buckets", spec, { type = true, count = true, multiplier = true, start = true, width = true })
    if type(spec.count) ~= "number" or spec.count < 1 then fail("%s: buckets.count expects a positive integer", what) end
    if spec.type == "exp2" then return M.exp2_buckets(spec.count, spec.multiplier) end
    if spec.type == "linear" then
      if type(spec.width) ~= "number" then fail("%s: linear buckets need width", what) end
      return M.linear_buckets(spec.start or 0, spec.width, spec.count)
    end
    fail("%s: buckets.type must be 'exp2' or 'linear', got '%s'", what, tostring(spec.type))
  end
  if #spec == 0 then fail("%s: buckets is empty", what) end
  for i, b in ipairs(spec) do
    if type(b) ~= "number" then fail("%s: bucket %d is not a number", what, i) end
    if i > 1 and b <= spec[i - 1] then fail("%s: buckets must increase (%g after %g)", what, b, spec[i - 1]) end
  end
  return spec
end


--- A new, empty registry.
function M.registry()
  return setmetatable({ metrics = {}, by_name = {}, generation = 0, errors = {}, last_scrape = 0,
    scrapes = 0 }, Registry)
end

local OPTS = {
  counter = set_of { "name", "help", "labels", "map", "value", "relabel", "key", "collect", "filter" },
  gauge = set_of { "name", "help", "labels", "map", "value", "relabel", "key", "collect", "filter" },
  histogram = set_of { "name", "help", "labels", "map", "value", "relabel", "key", "collect", "buckets",
    "bucket", "sum" },
}

function Registry:_add(kind, o)
  local what = ("metrics: %s"):format(kind)
  check_opts(what, o, OPTS[kind])
  check_name(what, o.name)
  what = ("metrics: %s '%s'"):format(kind, o.name)
  if self.by_name[o.name] then fail("%s: already registered", what) end
  if kind == "counter" and not o.name:match("_total$") then
    fail("%s: a counter's name ends in _total (Prometheus' convention; promtool flags it)", what)
  end
  if o.help ~= nil and type(o.help) ~= "string" then fail("%s: help expects a string", what) end
  if o.map ~= nil and o.collect ~= nil then fail("%s: give map or collect, not both", what) end
  local labels = o.labels
  if labels ~= nil then
    if type(labels) ~= "table" then fail("%s: labels expects a list of names", what) end
    for _, n in ipairs(labels) do check_label(what, n) end
    if kind == "histogram" then
      for _, n in ipairs(labels) do if n == "le" then fail("%s: 'le' is the bucket label", what) end end
    end
  end
  for _, opt in ipairs({ "key", "collect", "filter", "sum" }) do
    if o[opt] ~= nil and type(o[opt]) ~= "function" then fail("%s: %s expects a function", what, opt) end
  end
  if o.value ~= nil and type(o.value) ~= "string" and type(o.value) ~= "function" then
    fail("%s: value expects a field name or a function(value, key)", what)
  end
  if o.relabel ~= nil then
    if type(o.relabel) ~= "table" then fail("%s: relabel expects a table {label = table or function}", what) end
    for n, r in pairs(o.relabel) do
      if type(r) ~= "table" and type(r) ~= "function" then
        fail("%s: relabel.%s expects a table or a function(value, key)", what, tostring(n))
      end
    end
  end
  if o.map ~= nil then
    if type(o.map) ~= "userdata" or not pcall(o.map.info, o.map) then
      fail("%s: map expects a loaded map (obj:map(name))", what)
    end
  end
  local m = setmetatable({
    kind = kind, name = o.name, help = o.help or o.name, labels = labels, map = o.map,
    vfield = o.value, relabel = o.relabel, key = o.key, collect = o.collect, filter = o.filter,
    bucket = o.bucket, sum = o.sum, series = {}, order = {}, registry = self,
  }, Metric)
  if kind == "histogram" then
    m.buckets = buckets_of(what, o.buckets or M.exp2_buckets(16))
  elseif o.buckets then
    fail("%s: buckets are for histograms", what)
  end
  self.by_name[o.name] = m
  self.metrics[#self.metrics + 1] = m
  return m
end

--- reg:counter{name, help, labels, map | collect, value, relabel, key, filter}
function Registry:counter(o) return self:_add("counter", o) end
--- reg:gauge{...}: as a counter.
function Registry:gauge(o) return self:_add("gauge", o) end
--- reg:histogram{..., buckets, bucket}
function Registry:histogram(o) return self:_add("histogram", o) end

--- Take a metric out of the registry.
function Registry:unregister(name)
  local m = self.by_name[name]
  if not m then return false end
  self.by_name[name] = nil
  for i, x in ipairs(self.metrics) do
    if x == m then table.remove(self.metrics, i) break end
  end
  return true
end

--- The metric of that name, or nil.
function Registry:get(name) return self.by_name[name] end

-- Label values of a Lua-side series, as a list in the metric's label order.
function Metric:_values(lv)
  local names = self.labels or {}
  if lv == nil then
    if #names > 0 then fail("metric '%s': expects label values for %s", self.name, table.concat(names, ", ")) end
    return {}, ""
  end
  if type(lv) ~= "table" then fail("metric '%s': label values expect a table, got %s", self.name, type(lv)) end
  local out = {}
  for i, n in ipairs(names) do
    local v = lv[i]
    if v == nil then v = lv[n] end
    if v == nil then fail("metric '%s': missing label '%s'", self.name, n) end
    out[i] = label_text(v)
  end
  for k in pairs(lv) do
    if type(k) == "string" then
      local known = false
      for _, n in ipairs(names) do if n == k then known = true end end
      if not known then
        fail("metric '%s': unknown label '%s' (labels: %s)", self.name, k, table.concat(names, ", "))
      end
    elseif type(k) == "number" and k > #names then
      fail("metric '%s': %d label values for %d labels", self.name, k, #names)
    end
  end
  return out, table.concat(out, "\0")
end

function Metric:_series(lv)
  if self.map or self.collect then
    fail("metric '%s' reads its values from a %s: it can't be set from Lua", self.name, self.map and "map" or "collect function")
  end
  local values, id = self:_values(lv)
  local s = self.series[id]
  if not s then
    s = { labels = values, value = 0 }
    if self.kind == "histogram" then
      s.counts, s.sum, s.count = {}, 0, 0
      for i = 1, #self.buckets do s.counts[i] = 0 end
    end
    self.series[id] = s
    self.order[#self.order + 1] = id
  end
  return s
end

local function check_num(self, n, verb)
  if type(n) ~= "number" then fail("metric '%s': %s expects a number, got %s", self.name, verb, type(n)) end
end

--- counter:inc([n = 1], [labels]); gauge too. Counters only go up.
function Metric:inc(n, lv)
  if type(n) == "table" then n, lv = 1, n end
  n = n or 1
  check_num(self, n, "inc")
  if self.kind == "histogram" then fail("metric '%s' is a histogram: use observe()", self.name) end
  if self.kind == "counter" and n < 0 then fail("metric '%s': a counter can't go down (inc(%g))", self.name, n) end
  local s = self:_series(lv)
  s.value = s.value + n
end

--- gauge:dec([n = 1], [labels])
function Metric:dec(n, lv)
  if type(n) == "table" then n, lv = 1, n end
  if self.kind ~= "gauge" then fail("metric '%s' is a %s: only gauges go down", self.name, self.kind) end
  self:inc(-(n or 1), lv)
end

--- gauge:set(n, [labels])
function Metric:set(n, lv)
  if self.kind ~= "gauge" then fail("metric '%s' is a %s: only gauges are set", self.name, self.kind) end
  check_num(self, n, "set")
  self:_series(lv).value = n
end

--- histogram:observe(n, [labels])
function Metric:observe(n, lv)
  if self.kind ~= "histogram" then fail("metric '%s' is a %s: observe() is for histograms", self.name, self.kind) end
  check_num(self, n, "observe")
  local s = self:_series(lv)
  local b = self.buckets
  for i = 1, #b do
    if n <= b[i] then s.counts[i] = s.counts[i] + 1 break end
  end
  s.sum, s.count = s.sum + n, s.count + 1
end

--- The Lua-side value of one series (counters, gauges), or nil.
function Metric:value(lv)
  local _, id = self:_values(lv)
  local s = self.series[id]
  return s and s.value
end

--- The Lua-side series: a list of {labels = {values...}, value = n} in creation order.
function Metric:samples()
  local out = {}
  for _, id in ipairs(self.order) do
    local s = self.series[id]
    out[#out + 1] = { labels = s.labels, value = s.value, count = s.count, sum = s.sum }
  end
  return out
end

--- Forget one series (a backend that went away), or every series.
function Metric:remove(lv)
  if lv == nil and #(self.labels or {}) > 0 then
    self.series, self.order = {}, {}
    return
  end
  local _, id = self:_values(lv)
  if self.series[id] then
    self.series[id] = nil
    for i, x in ipairs(self.order) do if x == id then table.remove(self.order, i) break end end
  end
end
Metric.reset = Metric.remove

--- Module-level forms: metrics.programs(reg, x), metrics.lb(svc, reg, opts).
function M.programs(reg, x) return reg:programs(x) end
function M.lb(svc, reg, o) return reg:lb(svc, o) end
function M.filter(f, reg, o) return reg:filter(f, o) end

---------------------------------------------------------------------------
-- The HTTP endpoint

local INDEX = [[<html><head><title>luabpf metrics</title></head><body><h1>luabpf</h1>
<p><a href="/metrics">/metrics</a></p></body></html>
]]

-- The endpoints this process serves, by URL: what `luabpf top NAME` asks a
-- service for over its control socket (metrics.urls()).
local served = {}

--- The URLs of the metrics endpoints this process serves, sorted.
function M.urls()
  local out = {}
  for url in pairs(served) do out[#out + 1] = url end
  table.sort(out)
  return out
end

--- A service's `metrics` setting as an address and a port: 9435, "9435",
-- "127.0.0.1:9435", "[::1]:9435", "0.0.0.0:9435". Returns address, port, or
-- nil and a message naming what is wrong.
function M.listen(spec)
  local what = ("metrics = %s"):format(type(spec) == "string" and ("%q"):format(spec) or tostring(spec))
  local host, port
  if type(spec) == "number" then
    host, port = "127.0.0.1", spec
  elseif type(spec) == "string" then
    if spec:match("^%d+$") then
      host, port = "127.0.0.1", spec
    else
      host, port = spec:match("^%[([%x:.]+)%]:(%d+)$")
      if not host then host, port = spec:match("^([%w.%-]+):(%d+)$") end
    end
    if not host then
      return nil, ("%s: expects \"ADDRESS:PORT\" (\"127.0.0.1:9435\", \"[::1]:9435\") or a port"):format(what)
    end
    port = tonumber(port)
  else
    return nil, ("%s: expects \"ADDRESS:PORT\" or a port number"):format(what)
  end
  if port % 1 ~= 0 or port < 1 or port > 65535 then
    return nil, ("%s: the port must be 1-65535"):format(what)
  end
  return host, port
end

--- Serve reg on http://address:port/metrics (default 127.0.0.1:9435).
-- opts: address, port (0: any free port), path, name (registers the URL in
-- /run/luabpf/metrics/NAME for `luabpf top NAME`). Returns a server
-- {url, address, port, close()} or nil, err, errno. The server closes when
-- the service stops.
function M.serve(reg, o)
  o = o or {}
  check_opts("metrics.serve", o, { address = true, port = true, path = true, name = true })
  if getmetatable(reg) ~= Registry then fail("metrics.serve: expects a registry (metrics.registry())") end
  local address, port, path = o.address or "127.0.0.1", o.port or M.DEFAULT_PORT, o.path or "/metrics"
  if type(port) ~= "number" or port < 0 or port > 65535 or port % 1 ~= 0 then
    fail("metrics.serve: port expects 0..65535, got %s", tostring(port))
  end
  if o.name ~= nil and (type(o.name) ~= "string" or not o.name:match("^[%w_.-]+$")) then
    fail("metrics.serve: name must be a word of letters, digits, '_', '-', '.', got %s", tostring(o.name))
  end
  local srv, err, code = http.serve(address, port, function(req)
    if req.path == path then
      return 200, { ["Content-Type"] = M.CONTENT_TYPE }, reg:render()
    elseif req.path == "/" then
      return 200, { ["Content-Type"] = "text/html" }, INDEX
    end
    return 404, { ["Content-Type"] = "text/plain" }, "not found: try " .. path .. "\n"
  end)
  if not srv then return nil, err, code end
  srv.url = srv.url .. path
  local file
  if o.name then
    uv.fs_mkdir("/run/luabpf", 493)
    uv.fs_mkdir(M.RUN_DIR, 493)
    file = M.RUN_DIR .. "/" .. o.name
    local f = io.open(file, "w")
    if f then f:write(srv.url, "\n") f:close() else file = nil end
  end
  local close = srv.close
  local closed = false
  served[srv.url] = true
  function srv.close()
    if closed then return end
    closed = true
    served[srv.url] = nil
    close()
    if file then os.remove(file) end
  end
  bpf.on_shutdown(srv.close)
  return srv
end

--- A service's endpoint, from its config's `metrics` setting (lb.lua,
-- ddos_filter.lua): ep = metrics.endpoint(reg, NAME); ep:set(cfg.metrics)
-- serves reg there (registered as NAME for `luabpf top NAME`), a later
-- ep:set(other) moves it (a SIGHUP reload), ep:set(false or nil) stops it.
-- set returns true, or nil, message, hint, and then the previous endpoint
-- (if any) still serves.
function M.endpoint(reg, name)
  local ep = { reg = reg, name = name }
  function ep:set(spec)
    if spec == false then spec = nil end
    if spec == self.spec then return true end
    local host, port
    if spec ~= nil then
      host, port = M.listen(spec)
      if not host then return nil, port end
    end
    -- The old one goes first: the new one may want its port.
    if self.srv then self.srv.close() self.srv = nil end
    if spec ~= nil then
      local srv, err, code = M.serve(reg, { address = host, port = port, name = name })
      if not srv then
        local msg = "metrics: " .. tostring(err)
        local hint = code == "EADDRINUSE" and ("another process listens there: give this service another port "
          .. "(metrics = \"%s:%d\"), or metrics = false"):format(host, port + 1)
          or code == "EADDRNOTAVAIL" and "the address is not one of this host's (127.0.0.1 serves this host only)"
          or nil
        if self.spec ~= nil then
          local h, pt = M.listen(self.spec)
          self.srv = M.serve(reg, { address = h, port = pt, name = name }) -- the previous one, back
        end
        return nil, msg, hint
      end
      self.srv = srv
      bpf.log("info", ("metrics on %s (luabpf top %s)"):format(srv.url, name))
    end
    self.spec = spec
    return true
  end
  function ep:close()
    if self.srv then self.srv.close() self.srv = nil end
    self.spec = nil
  end
  return ep
end

--- Where `luabpf top NAME` finds a service's endpoint: the URL it registered, or nil.
function M.lookup(name)
  local f = io.open(M.RUN_DIR .. "/" .. name)
  if not f then return nil end
  local url = f:read("*l")
  f:close()
  return url
end

---------------------------------------------------------------------------
return M
