-- SPDX-License-Identifier: MIT
-- What every part of luabpf.metrics shares: the Metric and Registry classes
-- (methods in init.lua, _render.lua, _exporters.lua) and the name checks.
-- Private to lua/luabpf/metrics/.
local util = require("luabpf._util")

local function fail(fmt, ...)
  error(fmt:format(...), 3)
end

local check_opts, set_of = util.check_opts, util.set_of

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

--- A function giving fetch()'s result, fetched once a scrape (a ready-made
-- exporter's stats: every family of one scrape reads the same).
function Registry:_per_scrape(fetch)
  local gen, v = -1, nil
  return function()
    if gen ~= self.generation then gen, v = self.generation, fetch() end
    return v
  end
end

--- The checks a ready-made exporter (reg:lb, reg:filter) starts with, raised
-- at its caller: o has no option but prefix; x is a table with each method
-- named, else "WHAT: expects DESC, got TYPE". Returns o.prefix or prefix.
local function exporter_prefix(what, x, o, desc, prefix, methods)
  o = o or {}
  check_opts(what, o, { prefix = true }, 3)
  for _, m in ipairs(methods) do
    if type(x) ~= "table" or type(x[m]) ~= "function" then
      error(("%s: expects %s, got %s"):format(what, desc, type(x)), 3)
    end
  end
  return o.prefix or prefix
end

return { fail = fail, check_opts = util.check_opts, exporter_prefix = exporter_prefix, set_of = util.set_of, Metric = Metric, Registry = Registry,
  TYPES = TYPES, check_name = check_name, check_label = check_label }
