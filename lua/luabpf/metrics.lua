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
local ffi = require("ffi")
local uv = require("luv")
local http = require("luabpf._http")
local util = require("luabpf._util")

local M = {}

M.DEFAULT_PORT = 9435
M.RUN_DIR = "/run/luabpf/metrics"
M.CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

local function fail(fmt, ...)
  error(fmt:format(...), 3)
end

local check_opts, set_of = util.check_opts, util.set_of

---------------------------------------------------------------------------
-- Text exposition

local u64_t = ffi.typeof("uint64_t")
local i64_t = ffi.typeof("int64_t")

--- A sample value as exposition text: integers exact (64-bit cdata too).
local function fmt_value(v)
  local t = type(v)
  if t == "number" then
    if v ~= v then return "NaN" end
    if v == math.huge then return "+Inf" end
    if v == -math.huge then return "-Inf" end
    if v == math.floor(v) and v > -1e15 and v < 1e15 then return ("%d"):format(v) end
    return ("%.17g"):format(v)
  elseif t == "cdata" and (ffi.istype(u64_t, v) or ffi.istype(i64_t, v)) then
    return (tostring(v):gsub("U?LL$", ""))
  elseif t == "boolean" then
    return v and "1" or "0"
  end
  return nil
end
M.format_value = fmt_value

local function escape_label(s)
  if not s:find('[\\"\n]') then return s end
  return (s:gsub("[\\\"\n]", { ["\\"] = "\\\\", ["\""] = "\\\"", ["\n"] = "\\n" }))
end

local function escape_help(s)
  return (s:gsub("[\\\n]", { ["\\"] = "\\\\", ["\n"] = "\\n" }))
end

local function label_text(v)
  if type(v) == "cdata" then v = fmt_value(v) or tostring(v) end
  if type(v) == "boolean" then return v and "true" or "false" end
  if type(v) == "number" then return fmt_value(v) end
  return tostring(v)
end

-- {l1="a",l2="b"} (names in `names` order) -> '{l1="a",l2="b"}'
local function label_set(names, values, extra_name, extra_value)
  local parts = {}
  for i, n in ipairs(names) do
    local v = values[i]
    if v == nil then v = values[n] end
    parts[#parts + 1] = n .. '="' .. escape_label(label_text(v == nil and "" or v)) .. '"'
  end
  if extra_name then parts[#parts + 1] = extra_name .. '="' .. extra_value .. '"' end
  if #parts == 0 then return "" end
  return "{" .. table.concat(parts, ",") .. "}"
end

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

---------------------------------------------------------------------------
-- Reading maps

local PERCPU = { percpu_hash = true, percpu_array = true, lru_percpu_hash = true, percpu_cgroup_storage = true }

-- Every entry of a map as two lists, per-CPU values summed. One batch syscall
-- per 1024 entries where the kernel has batches, else iteration.
local function read_map(m)
  local info = m:info()
  local keys, values = m:lookup_batch()
  if not keys then error(("map '%s': %s"):format(m:name(), tostring(values)), 0) end
  if PERCPU[info.type] then
    for i = 1, #values do values[i] = bpf.sum(values[i]) end
  end
  return keys, values
end

-- Flatten a decoded key into label values: nested struct fields by dotted path.
local function field(k, path)
  if type(k) ~= "table" then return k end
  local v = k
  for part in path:gmatch("[^%.]+") do
    if type(v) ~= "table" then return nil end
    v = v[tonumber(part) or part]
  end
  return v
end

local function default_labels(k)
  if type(k) ~= "table" then return { "key" } end
  local names = {}
  for n, v in pairs(k) do
    if type(n) == "string" and not n:match("^_") and not n:match("^pad%d*$") and type(v) ~= "table" then
      names[#names + 1] = n
    end
  end
  table.sort(names)
  return names
end

---------------------------------------------------------------------------
-- Metrics

local Metric = {}
Metric.__index = Metric

local TYPES = { counter = true, gauge = true, histogram = true }

local function check_name(what, n)
  if type(n) ~= "string" or not n:match("^[a-zA-Z_:][a-zA-Z0-9_:]*$") then
    fail("%s: name must match [a-zA-Z_:][a-zA-Z0-9_:]*, got %s", what, tostring(n))
  end
end

local function check_label(what, n)
  if type(n) ~= "string" or not n:match("^[a-zA-Z_][a-zA-Z0-9_]*$") or n:match("^__") then
    fail("%s: label name must match [a-zA-Z_][a-zA-Z0-9_]* (not starting with __), got %s", what, tostring(n))
  end
end

local Registry = {}
Registry.__index = Registry

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

-- Label values for a decoded map key.
function Metric:_key_labels(k)
  if self.key then
    local lv = self.key(k)
    if lv == nil then return nil end
    if type(lv) ~= "table" then error(("key function returned %s, want a table of labels"):format(type(lv)), 0) end
    if not self.labels then
      local names = {}
      for n in pairs(lv) do names[#names + 1] = n end
      table.sort(names)
      for _, n in ipairs(names) do check_label(("metric '%s'"):format(self.name), n) end
      self.labels = names
    end
    return lv
  end
  if not self.labels then
    local names = default_labels(k)
    if self.kind == "histogram" then
      local b = self.bucket or "slot"
      for i, n in ipairs(names) do if n == b then table.remove(names, i) break end end
      if type(k) ~= "table" then names = {} end
    end
    for i, n in ipairs(names) do names[i] = n:gsub("%.", "_") end
    self.labels = names
  end
  local out = {}
  for i, n in ipairs(self.labels) do
    local v
    if type(k) ~= "table" then v = k else v = field(k, n) end
    local r = self.relabel and self.relabel[n]
    if type(r) == "table" then
      v = r[v] ~= nil and r[v] or v
    elseif r then
      v = r(v, k)
    end
    out[i] = v
  end
  return out
end

function Metric:_value_of(v, k)
  local f = self.vfield
  if f == nil then
    if type(v) == "table" then
      error(("the map's values are structs: say which field with value = 'name' (fields: %s)"):format(
        table.concat(default_labels(v), ", ")), 0)
    end
    return v
  end
  if type(f) == "function" then return f(v, k) end
  local x = field(v, f)
  if x == nil then error(("map value has no field '%s'"):format(f), 0) end
  return x
end

-- Append the exposition lines of one metric to out.
function Metric:_render(out)
  local name = self.name
  out[#out + 1] = "# HELP " .. name .. " " .. escape_help(self.help)
  out[#out + 1] = "# TYPE " .. name .. " " .. self.kind
  local names = self.labels or {}
  if self.kind ~= "histogram" then
    local function emit(v, lv)
      local s = fmt_value(v)
      if not s then error(("value %s is not a number"):format(tostring(v)), 0) end
      -- lv: label values, or label text already rendered (exporters reuse it across families).
      out[#out + 1] = name .. (type(lv) == "string" and lv or label_set(self.labels or {}, lv or {})) .. " " .. s
    end
    if self.map then
      local keys, values = read_map(self.map)
      for i = 1, #keys do
        local k, v = keys[i], values[i]
        if not self.filter or self.filter(k, v) then
          local lv = self:_key_labels(k)
          if lv then emit(self:_value_of(v, k), lv) end
        end
      end
    elseif self.collect then
      self.collect(emit)
    else
      for _, id in ipairs(self.order) do
        local s = self.series[id]
        out[#out + 1] = name .. label_set(names, s.labels) .. " " .. fmt_value(s.value)
      end
    end
    return
  end
  -- Histograms: per label set, counts per bucket (not cumulative yet), sum, count.
  local function emit_hist(lv, counts, sum, count)
    local ls = self.labels or {}
    local acc = 0
    for i, le in ipairs(self.buckets) do
      acc = acc + (counts[i] or 0)
      out[#out + 1] = name .. "_bucket" .. label_set(ls, lv, "le", fmt_value(le)) .. " " .. fmt_value(acc)
    end
    out[#out + 1] = name .. "_bucket" .. label_set(ls, lv, "le", "+Inf") .. " " .. fmt_value(count)
    out[#out + 1] = name .. "_sum" .. label_set(ls, lv) .. " " .. fmt_value(sum)
    out[#out + 1] = name .. "_count" .. label_set(ls, lv) .. " " .. fmt_value(count)
  end
  if self.map then
    local keys, values = read_map(self.map)
    local groups, gorder = {}, {}
    local nb = #self.buckets
    for i = 1, #keys do
      local k, v = keys[i], values[i]
      local slot = type(k) == "table" and field(k, self.bucket or "slot") or k
      if type(slot) ~= "number" then
        error(("key has no integer bucket field '%s' (say which with bucket = 'field')"):format(self.bucket or "slot"), 0)
      end
      local lv = type(k) == "table" and self:_key_labels(k) or {}
      if type(k) ~= "table" then self.labels = self.labels or {} end
      if lv then
        local n = tonumber(self:_value_of(v, k))
        local id = table.concat((function()
          local t = {}
          for j, x in ipairs(lv) do t[j] = label_text(x) end
          return t
        end)(), "\0")
        local g = groups[id]
        if not g then
          g = { lv = lv, counts = {}, sum = 0, count = 0 }
          groups[id] = g
          gorder[#gorder + 1] = id
        end
        if slot < nb then
          g.counts[slot + 1] = (g.counts[slot + 1] or 0) + n
          -- The map holds counts only: the sum is estimated from upper bounds.
          g.sum = g.sum + n * self.buckets[slot + 1]
        else
          g.sum = g.sum + n * self.buckets[nb]
        end
        g.count = g.count + n
      end
    end
    for _, id in ipairs(gorder) do
      local g = groups[id]
      local sum = self.sum and self.sum(g.lv) or g.sum
      emit_hist(g.lv, g.counts, sum, g.count)
    end
  elseif self.collect then
    self.collect(function(lv, counts, sum, count) emit_hist(lv or {}, counts, sum, count) end)
  else
    for _, id in ipairs(self.order) do
      local s = self.series[id]
      emit_hist(s.labels, s.counts, s.sum, s.count)
    end
  end
end

--- The exposition text of every metric. A metric whose collection fails is
-- left out of this scrape (and counted in luabpf_metrics_errors_total).
function Registry:render()
  local t0 = uv.hrtime()
  self.generation = self.generation + 1
  local out = {}
  for _, m in ipairs(self.metrics) do
    local mark = #out
    local ok, err = pcall(m._render, m, out)
    if not ok then
      for i = #out, mark + 1, -1 do out[i] = nil end
      self.errors[m.name] = (self.errors[m.name] or 0) + 1
      if self.errors[m.name] == 1 or self.errors[m.name] % 100 == 0 then
        bpf.log("warn", ("metrics: '%s' left out of the scrape: %s"):format(m.name, tostring(err)))
      end
    end
  end
  local names = {}
  for n in pairs(self.errors) do names[#names + 1] = n end
  if #names > 0 then
    table.sort(names)
    out[#out + 1] = "# HELP luabpf_metrics_errors_total Scrapes that left this metric out because reading it failed"
    out[#out + 1] = "# TYPE luabpf_metrics_errors_total counter"
    for _, n in ipairs(names) do
      out[#out + 1] = ('luabpf_metrics_errors_total{metric="%s"} %d'):format(n, self.errors[n])
    end
  end
  out[#out + 1] = "# HELP luabpf_metrics_scrape_duration_seconds Time the previous scrape took to collect and format"
  out[#out + 1] = "# TYPE luabpf_metrics_scrape_duration_seconds gauge"
  out[#out + 1] = "luabpf_metrics_scrape_duration_seconds " .. fmt_value(self.last_scrape)
  out[#out + 1] = ""
  self.last_scrape = (uv.hrtime() - t0) / 1e9
  self.scrapes = self.scrapes + 1
  return table.concat(out, "\n")
end

---------------------------------------------------------------------------
-- Program run counts and run time (BPF stats)

local function programs_of(x, out)
  out = out or {}
  if type(x) == "table" then
    for _, p in ipairs(x) do programs_of(p, out) end
  elseif type(x) == "userdata" and tostring(x):match("^luabpf%.object") then
    for _, n in ipairs(x:programs()) do
      local p = x:program(n)
      if p:autoload() then out[#out + 1] = p end
    end
  elseif type(x) == "userdata" and tostring(x):match("^luabpf%.program") then
    out[#out + 1] = x
  else
    fail("metrics.programs: expects an object, a program or a list of them, got %s", tostring(x))
  end
  return out
end

--- Run counts and run time of programs from the kernel's BPF stats:
-- luabpf_prog_runs_total, luabpf_prog_run_seconds_total,
-- luabpf_prog_recursion_misses_total{prog, id}. Turns the stats on.
function Registry:programs(x)
  local progs = programs_of(x)
  local ok, err, code = bpf.enable_stats()
  if not ok then return nil, err, code end
  local cache = { gen = -1 }
  local function infos()
    if cache.gen ~= self.generation then
      cache.gen, cache.list = self.generation, {}
      for _, p in ipairs(progs) do
        local i = p:info()
        -- The object's name: the kernel's is cut at 15 characters.
        if i then i.name = p:name() cache.list[#cache.list + 1] = i end
      end
    end
    return cache.list
  end
  local function one(name, help, f)
    local m = self.by_name[name]
    if m then
      -- Another call adds its programs to the same families.
      local prev = m.collect
      m.collect = function(emit) prev(emit) for _, i in ipairs(infos()) do emit(f(i), { i.name, i.id }) end end
      return
    end
    self:counter { name = name, help = help, labels = { "prog", "id" },
      collect = function(emit) for _, i in ipairs(infos()) do emit(f(i), { i.name, i.id }) end end }
  end
  one("luabpf_prog_runs_total", "Times the BPF program ran (kernel BPF stats)", function(i) return i.run_cnt end)
  one("luabpf_prog_run_seconds_total", "Time spent running the BPF program (kernel BPF stats)",
    function(i) return tonumber(i.run_time_ns) / 1e9 end)
  one("luabpf_prog_recursion_misses_total", "Runs the kernel skipped because the program was already running on that CPU",
    function(i) return i.recursion_misses or 0 end)
  return true
end

---------------------------------------------------------------------------
-- The load balancer's service (lua/luabpf/lb.lua)

local LB_STATES = { "active", "draining", "removed" }

--- Export an LB service's svc:stats(): per VIP and backend packets, bytes,
-- new flows, weight, Maglev slots, state (and health when the service has
-- it), packets per verdict. One svc:stats() per scrape.
function Registry:lb(svc, o)
  o = o or {}
  check_opts("metrics.lb", o, { prefix = true })
  if type(svc) ~= "table" or type(svc.stats) ~= "function" then
    fail("metrics.lb: expects an LB service (lb.new()), got %s", type(svc))
  end
  local p = o.prefix or "luabpf_lb"
  local service = svc.name or "lb"
  local cache = { gen = -1 }
  local function stats()
    if cache.gen ~= self.generation then cache.gen, cache.s, cache.bl, cache.sorted = self.generation, svc:stats(), {}, {} end
    return cache.s
  end
  -- A backend's label text, rendered once a scrape and shared by every family;
  -- with_label adds one more label (a state set's).
  local BL_NAMES = { "service", "vip", "backend", "addr" }
  local function blabels(vn, bn, b)
    local k = vn .. "\0" .. bn
    local t = cache.bl[k]
    if not t then
      t = label_set(BL_NAMES, { service, vn, bn, b.addr })
      cache.bl[k] = t
    end
    return t
  end
  local function with_label(text, n, v)
    return text:sub(1, -2) .. "," .. n .. '="' .. escape_label(v) .. '"}'
  end
  -- Names in order, sorted once a scrape (every family walks the same tables).
  local function sorted(t)
    stats()
    local k = cache.sorted[t]
    if k then return k end
    k = {}
    for n in pairs(t) do k[#k + 1] = n end
    table.sort(k)
    cache.sorted[t] = k
    return k
  end
  local function vips(f)
    return function(emit)
      local s = stats()
      for _, vn in ipairs(sorted(s.vips)) do f(emit, vn, s.vips[vn]) end
    end
  end
  local function backends(f)
    return vips(function(emit, vn, v)
      for _, bn in ipairs(sorted(v.backends)) do f(emit, vn, bn, v.backends[bn]) end
    end)
  end
  local VL = { "service", "vip", "addr", "port", "proto", "mode" }
  local BL = { "service", "vip", "backend", "addr" }
  local function vip_counter(what, help)
    self:counter { name = p .. "_vip_" .. what .. "_total", help = help, labels = VL,
      collect = vips(function(emit, vn, v) emit(v[what], { service, vn, v.addr, v.port, v.proto, v.mode }) end) }
  end
  local function backend_metric(kind, what, field, help)
    self[kind](self, { name = p .. "_backend_" .. what, help = help, labels = BL,
      collect = backends(function(emit, vn, bn, b) emit(b[field] or 0, blabels(vn, bn, b)) end) })
  end
  vip_counter("packets", "Packets to the VIP that the balancer forwarded")
  vip_counter("bytes", "Bytes to the VIP that the balancer forwarded")
  vip_counter("new_flows", "New flows to the VIP (first packet of a connection without a flow table entry)")
  backend_metric("counter", "packets_total", "packets", "Packets the balancer sent to the backend")
  backend_metric("counter", "bytes_total", "bytes", "Bytes the balancer sent to the backend")
  backend_metric("counter", "new_flows_total", "new_flows", "New flows the balancer gave to the backend")
  backend_metric("gauge", "weight", "weight", "The backend's configured weight (0: drained)")
  backend_metric("gauge", "slots", "slots", "The backend's share of the VIP's Maglev table, in slots")
  self:gauge { name = p .. "_backend_state", help = "1 for the backend's state (active, draining, removed), 0 for the others",
    labels = { "service", "vip", "backend", "addr", "state" },
    collect = backends(function(emit, vn, bn, b)
      local bl = blabels(vn, bn, b)
      for _, st in ipairs(LB_STATES) do emit(b.state == st and 1 or 0, with_label(bl, "state", st)) end
    end) }
  -- Health comes from the service's health checks (docs/lb.md): "up",
  -- "down", "sorry" (its sorry server), "unchecked"; older services have none.
  local HEALTH = { "up", "down", "sorry" }
  local function health_of(b)
    local h = b.health
    if type(h) == "table" then h = h.state end
    if type(h) == "boolean" then h = h and "up" or "down" end
    return h
  end
  self:gauge { name = p .. "_backend_health", help = "1 for the backend's health (up, down, sorry), 0 for the others; none for backends without a check",
    labels = { "service", "vip", "backend", "addr", "health" },
    collect = backends(function(emit, vn, bn, b)
      local h = health_of(b)
      -- Unchecked backends have no health to speak of: no series.
      if h == nil or h == "unchecked" then return end
      local bl = blabels(vn, bn, b)
      local known = false
      for _, st in ipairs(HEALTH) do
        emit(h == st and 1 or 0, with_label(bl, "health", st))
        known = known or h == st
      end
      if not known then emit(1, with_label(bl, "health", tostring(h))) end
    end) }
  self:gauge { name = p .. "_backend_healthy", help = "1 when the backend passes its health checks, 0 when not (backends with a check only)",
    labels = BL,
    collect = backends(function(emit, vn, bn, b)
      local h = health_of(b)
      if h == nil or h == "unchecked" then return end
      emit(h == "up" and 1 or 0, blabels(vn, bn, b))
    end) }
  self:gauge { name = p .. "_backend_effective_weight", help = "The weight the Maglev table uses now (0 while down, ramping during slow start)",
    labels = BL,
    collect = backends(function(emit, vn, bn, b)
      if b.effective_weight then emit(b.effective_weight, blabels(vn, bn, b)) end
    end) }
  self:gauge { name = p .. "_vip_healthy_backends", help = "Backends of the VIP whose checks pass",
    labels = { "service", "vip" },
    collect = vips(function(emit, vn, v) if v.healthy then emit(v.healthy, { service, vn }) end end) }
  self:gauge { name = p .. "_vip_quorum_up", help = "1 while the VIP's healthy weight meets its quorum, 0 when it lost it",
    labels = { "service", "vip" },
    collect = vips(function(emit, vn, v) if v.quorum then emit(v.quorum.ok and 1 or 0, { service, vn }) end end) }
  self:counter { name = p .. "_verdict_packets_total", help = "Packets by the balancer's verdict: forwarded, reply, pass_* (to the kernel), drop_* (dropped, by reason)",
    labels = { "service", "verdict" },
    collect = function(emit)
      local r = stats().reasons
      for _, n in ipairs(sorted(r)) do emit(r[n], { service, n }) end
    end }
  return self
end

--- Module-level forms: metrics.programs(reg, x), metrics.lb(svc, reg, opts).
function M.programs(reg, x) return reg:programs(x) end
function M.lb(svc, reg, o) return reg:lb(svc, o) end

---------------------------------------------------------------------------
-- The HTTP endpoint

local INDEX = [[<html><head><title>luabpf metrics</title></head><body><h1>luabpf</h1>
<p><a href="/metrics">/metrics</a></p></body></html>
]]

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
  function srv.close()
    if closed then return end
    closed = true
    close()
    if file then os.remove(file) end
  end
  bpf.on_shutdown(srv.close)
  return srv
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
-- Reading exposition text (for `luabpf top` and tests)

local function unescape(s)
  return (s:gsub("\\(.)", { n = "\n", ["\\"] = "\\", ['"'] = '"' }))
end

--- Parse exposition text into {name = {type=, help=, samples = {{labels=, value=, name=}}}},
-- samples filed under their family (a histogram's _bucket/_sum/_count too).
function M.parse(text)
  local fams, types = {}, {}
  local function fam(n)
    local f = fams[n]
    if not f then f = { samples = {} } fams[n] = f end
    return f
  end
  for line in text:gmatch("[^\n]+") do
    local kw, n, rest = line:match("^#%s+(%u+)%s+(%S+)%s*(.*)$")
    if kw == "TYPE" then
      fam(n).type = rest
      types[n] = rest
    elseif kw == "HELP" then
      fam(n).help = unescape(rest)
    elseif not line:match("^#") then
      local name, lbl, val = line:match("^([%w_:]+)(%b{})%s+(%S+)")
      if not name then name, val = line:match("^([%w_:]+)%s+(%S+)") end
      if name then
        local labels = {}
        if lbl then
          -- name="value" pairs; a value may hold \" and \\ escapes.
          local i, body = 1, lbl:sub(2, -2)
          while true do
            local k, e = body:match("^%s*,?%s*([%w_]+)%s*=%s*\"()", i)
            if not k then break end
            local j, buf = e, {}
            while j <= #body do
              local c = body:sub(j, j)
              if c == "\\" then buf[#buf + 1] = body:sub(j, j + 1) j = j + 2
              elseif c == '"' then break
              else buf[#buf + 1] = c j = j + 1 end
            end
            labels[k] = unescape(table.concat(buf))
            i = j + 1
          end
        end
        local base = name
        local stem = name:match("^(.*)_bucket$") or name:match("^(.*)_sum$") or name:match("^(.*)_count$")
        if stem and types[stem] == "histogram" then base = stem end
        local v = val == "+Inf" and math.huge or val == "-Inf" and -math.huge or tonumber(val)
        local f = fam(base)
        f.samples[#f.samples + 1] = { name = name, labels = labels, value = v }
      end
    end
  end
  return fams
end

return M
