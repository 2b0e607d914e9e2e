-- SPDX-License-Identifier: MIT
-- How `luabpf lb` prints (lua/luabpf/lb/_ops.lua gathers): numbers for
-- people (luabpf.fmt: counts with thousands separators, rates to 3
-- significant digits with SI prefixes), aligned tables, and a JSON whose records always carry
-- the same keys in the same order (null where a value is absent). The field
-- names are documented in docs/cli.md; changing one is a breaking change.
local REASONS = require("luabpf.lb._common").REASONS
local fmt = require("luabpf.fmt")

local F = {}

-- Encodes as JSON null where nil would drop the key.
F.null = setmetatable({}, { __tostring = function() return "null" end })

-- The numbers themselves: luabpf.fmt, the one formatter every text a
-- person reads goes through (lb show, top, the examples' reports).
--- 1234567 -> "1,234,567"; "-" for nil or null.
function F.count(n)
  if n == F.null then return "-" end
  return fmt.count(n)
end

--- A rate to 3 significant digits with an SI prefix: 0, 0.5, 12.3k, 4.56M.
function F.si(x)
  if x == F.null then return "-" end
  return (fmt.si(x))
end

--- A rate with its unit: "12.3 kpps".
function F.rate(x, unit)
  if x == F.null then x = nil end
  return fmt.rate(x, unit)
end

-- Rows of cells as aligned columns; right: the set of columns aligned right.
function F.columns(head, rows, right, indent)
  local width = {}
  for i, h in ipairs(head) do width[i] = #h end
  for _, r in ipairs(rows) do
    for i = 1, #head do width[i] = math.max(width[i], #tostring(r[i] or "")) end
  end
  local out = {}
  local function line(r)
    local cells = {}
    for i = 1, #head do
      local c = tostring(r[i] or "")
      if i == #head and not right[i] then
        cells[i] = c
      elseif right[i] then
        cells[i] = (" "):rep(width[i] - #c) .. c
      else
        cells[i] = c .. (" "):rep(width[i] - #c)
      end
    end
    out[#out + 1] = (indent or "") .. table.concat(cells, "  "):gsub("%s+$", "")
  end
  line(head)
  for _, r in ipairs(rows) do line(r) end
  return table.concat(out, "\n")
end

-- JSON ------------------------------------------------------------------

-- The keys of each record, in order: every one is always there.
F.ORDER = {
  service = { "service", "pid", "interface", "netns", "xdp_mode", "flow_table", "state_dir", "pinned", "vips",
    "reasons", "bgp" },
  bgp = { "protocol", "state", "vips", "drained", "why", "error", "socket" },
  vip = { "name", "addr", "port", "proto", "mode", "packets", "bytes", "flows", "pps", "bps", "flows_per_s",
    "quorum", "table", "backends" },
  backend = { "name", "addr", "port", "weight", "config_weight", "effective_weight", "state", "health", "reason",
    "detail", "slots", "packets", "bytes", "flows", "pps", "bps", "flows_per_s", "runtime", "sorry" },
  quorum = { "ok", "live", "total", "need", "policy" },
  table = { "size", "digest" },
  summary = { "service", "pid", "interface", "vips", "backends", "packets", "runtime_changes" },
  stopped = { "service", "pid", "interface", "netns", "state_dir" },
}

local escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

-- Integers exactly; other numbers rounded to 3 decimals (rates), never
-- 1.9828521645771251.
local function number(x)
  if x ~= x or x == math.huge or x == -math.huge then return "null" end
  if x == math.floor(x) and math.abs(x) < 2 ^ 53 then return ("%d"):format(x) end
  return ("%.15g"):format(math.floor(x * 1000 + 0.5) / 1000)
end

local function encode(v, order, out)
  local t = type(v)
  if v == nil or v == F.null then out[#out + 1] = "null"
  elseif t == "boolean" then out[#out + 1] = tostring(v)
  elseif t == "number" then out[#out + 1] = number(v)
  elseif t == "string" then
    out[#out + 1] = '"' .. v:gsub('[%c"\\]', function(c) return escapes[c] or ("\\u%04x"):format(c:byte()) end) .. '"'
  elseif t == "table" and #v > 0 or (t == "table" and getmetatable(v) == F.array_mt) then
    out[#out + 1] = "["
    for i, x in ipairs(v) do
      if i > 1 then out[#out + 1] = "," end
      encode(x, order, out)
    end
    out[#out + 1] = "]"
  elseif t == "table" then
    local keys = F.ORDER[order]
    if not keys then
      keys = {}
      for k in pairs(v) do keys[#keys + 1] = k end
      table.sort(keys)
    end
    out[#out + 1] = "{"
    for i, k in ipairs(keys) do
      if i > 1 then out[#out + 1] = "," end
      out[#out + 1] = '"' .. k .. '":'
      local sub = (k == "vips" and order ~= "bgp" and "vip") or (k == "backends" and "backend") or F.ORDER[k] and k
        or "_"
      encode(v[k], sub, out)
    end
    out[#out + 1] = "}"
  else
    out[#out + 1] = "null"
  end
end

F.array_mt = {}

--- JSON of a record of kind (a key of F.ORDER; default: decided by its keys).
function F.json(v, kind)
  kind = kind or (v.vips and type(v.vips) == "table" and "service") or (v.runtime_changes and "summary")
    or "stopped"
  if v.vips and type(v.vips) == "table" then
    setmetatable(v.vips, F.array_mt)
    for _, x in ipairs(v.vips) do setmetatable(x.backends, F.array_mt) end
  end
  local out = {}
  encode(v, kind, out)
  return table.concat(out)
end

-- Text ------------------------------------------------------------------

local function health_text(b)
  if not b.health then return "-" end
  if b.health == "down" and b.reason then return "down (" .. b.reason .. ")" end
  return b.health
end

local function runtime_text(b)
  if b.runtime == "weight" then return ("weight (config %s)"):format(F.count(b.config_weight)) end
  if b.runtime == "added" then return "added (not in config)" end
  if b.runtime == "removed" then return ("removed (config weight %s)"):format(F.count(b.config_weight)) end
  return "-"
end

local function weight_text(w)
  if w == nil or w == F.null then return "-" end
  return w == math.floor(w) and F.count(w) or ("%.3g"):format(w)
end

--- `luabpf lb show`'s text for a service record (_ops.record).
function F.show(r)
  local out = {}
  out[#out + 1] = ("service '%s' (pid %d): %s on %s%s, mode %s, state in %s"):format(r.service, r.pid,
    r.flow_table == "conntrack" and "tc (conntrack)" or "XDP", tostring(r.interface),
    r.netns and (" (netns " .. r.netns .. ")") or "", r.xdp_mode, r.state_dir)
  for _, v in ipairs(r.vips) do
    local q = v.quorum
    out[#out + 1] = ""
    out[#out + 1] = ("VIP %s  %s:%d/%s  %s  quorum %s (%s of %s healthy weight, need %s%s)"):format(v.name,
      v.addr:find(":", 1, true) and ("[" .. v.addr .. "]") or v.addr, v.port, v.proto, v.mode,
      q.ok and "ok" or "LOST", weight_text(q.live), weight_text(q.total), weight_text(q.need),
      q.ok and "" or (", policy " .. q.policy))
    out[#out + 1] = ("  %s packets, %s flows; last second: %s, %s, %s"):format(F.count(v.packets),
      F.count(v.flows), F.rate(v.pps, "pps"), F.rate(v.bps, "bit/s"), F.rate(v.flows_per_s, "flows/s"))
    out[#out + 1] = ("  Maglev table: %s slots, digest %s"):format(F.count(v.table.size), v.table.digest or "-")
    local rows = {}
    for _, b in ipairs(v.backends) do
      local where = b.addr:find(":", 1, true) and ("[%s]:%d"):format(b.addr, b.port) or ("%s:%d"):format(b.addr, b.port)
      rows[#rows + 1] = { b.name, where, weight_text(b.weight), b.state, health_text(b), F.count(b.slots),
        F.count(b.packets), F.count(b.flows), F.si(b.pps), F.si(b.bps), F.si(b.flows_per_s), runtime_text(b) }
    end
    out[#out + 1] = F.columns({ "BACKEND", "ADDRESS", "WEIGHT", "STATE", "HEALTH", "SLOTS", "PACKETS", "FLOWS",
      "PKT/S", "BIT/S", "FLOW/S", "RUNTIME" }, rows, { [3] = true, [6] = true, [7] = true, [8] = true, [9] = true,
      [10] = true, [11] = true }, "  ")
  end
  for _, b in ipairs(type(r.bgp) == "table" and r.bgp or {}) do
    out[#out + 1] = ""
    out[#out + 1] = ("BGP: BIRD protocol %s (VIPs %s) %s%s%s"):format(b.protocol, table.concat(b.vips, ", "),
      b.state == "announced" and "ANNOUNCED" or b.state == "withdrawn" and "WITHDRAWN" or "UNKNOWN (BIRD not reached)",
      b.why and b.state ~= "announced" and (": " .. b.why) or "", b.error and ("; last error: " .. b.error) or "")
  end
  local parts = {}
  for _, name in ipairs(REASONS) do
    local n = r.reasons[name]
    if n and n > 0 then parts[#parts + 1] = ("%s %s"):format(name, F.count(n)) end
  end
  out[#out + 1] = ""
  out[#out + 1] = "packets by reason: " .. (#parts > 0 and table.concat(parts, ", ") or "none yet")
  return table.concat(out, "\n") .. "\n"
end

return F
