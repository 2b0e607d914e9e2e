-- SPDX-License-Identifier: MIT
-- The Prometheus text exposition format: values and label sets written
-- (render), and exposition text read back (metrics.parse, for `luabpf top`
-- and tests). Part of luabpf.metrics.
local ffi = require("ffi")

local T = {}

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
T.format_value = fmt_value

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

-- Reading exposition text (for `luabpf top` and tests)

local function unescape(s)
  return (s:gsub("\\(.)", { n = "\n", ["\\"] = "\\", ['"'] = '"' }))
end

--- Parse exposition text into {name = {type=, help=, samples = {{labels=, value=, name=}}}},
-- samples filed under their family (a histogram's _bucket/_sum/_count too).
function T.parse(text)
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


T.escape_label, T.escape_help, T.label_text, T.label_set = escape_label, escape_help, label_text, label_set
return T
