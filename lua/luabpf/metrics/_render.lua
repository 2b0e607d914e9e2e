-- SPDX-License-Identifier: MIT
-- A scrape: every metric's values read (from its BPF map, per-CPU values
-- summed, keys decoded into labels; from its collect function; or from Lua)
-- and written as exposition text. Part of luabpf.metrics.
local uv = require("luv")
local K = require("luabpf.metrics._common")
local T = require("luabpf.metrics._text")

local Metric, Registry, check_label = K.Metric, K.Registry, K.check_label
local fmt_value, escape_help, label_text, label_set = T.format_value, T.escape_help, T.label_text, T.label_set

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

return true
