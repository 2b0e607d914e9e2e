-- SPDX-License-Identifier: MIT
-- JSON for `luabpf ls -j` and `luabpf dump -j`: arrays that stay arrays when
-- empty, records with their keys in a given order, integers printed exactly
-- (int64 cdata in full). ordered_keys also orders the pretty and inline
-- printers of _inspect.lua. Private to lua/luabpf/_inspect.lua.
local ffi = require("ffi")

local M = {}

-- A table that encodes as a JSON array even when empty.
local array_mt = { __json = "array" }
function M.array(t) return setmetatable(t or {}, array_mt) end

-- A table that encodes as an object with its keys in this order (others after, sorted).
function M.ordered(t, order) return setmetatable(t, { __json = "object", __order = order }) end

local function valid_utf8(s)
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local len = c < 0x80 and 1 or c >= 0xf0 and c < 0xf5 and 4 or c >= 0xe0 and 3 or c >= 0xc2 and c < 0xe0 and 2 or 0
    if len == 0 or i + len - 1 > n then return false end
    for j = i + 1, i + len - 1 do
      local d = s:byte(j)
      if d < 0x80 or d > 0xbf then return false end
    end
    i = i + len
  end
  return true
end

local escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
local function json_string(s)
  local pat = valid_utf8(s) and '[%c"\\]' or '[%c"\\\128-\255]'
  return '"' .. s:gsub(pat, function(c)
    return escapes[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

-- Integers print exactly: doubles below 2^53 as integers, int64/uint64 cdata in full.
local function json_number(v)
  if type(v) == "cdata" then
    local s = tostring(v):gsub("U?LL$", "")
    if s:match("^%-?%d+$") then return s end
    return json_string(tostring(v))
  end
  if v ~= v or v == math.huge or v == -math.huge then return "null" end
  if v == math.floor(v) and math.abs(v) < 2 ^ 63 then return string.format("%d", v) end
  return string.format("%.17g", v)
end

local function is_int64(v)
  return type(v) == "cdata" and (ffi.istype("int64_t", v) or ffi.istype("uint64_t", v))
end

local function sorted_keys(t, skip)
  local keys = {}
  for k in pairs(t) do if not (skip and skip[k]) then keys[#keys + 1] = k end end
  table.sort(keys, function(a, b)
    if type(a) == type(b) and type(a) ~= "table" then return a < b end
    return tostring(a) < tostring(b)
  end)
  return keys
end

-- A record's keys: those its metatable's __order names first, in that
-- order, then the rest sorted.
local function ordered_keys(v, mt)
  local keys, seen = {}, {}
  for _, k in ipairs(mt.__order or {}) do
    if v[k] ~= nil then keys[#keys + 1] = k seen[k] = true end
  end
  for _, k in ipairs(sorted_keys(v, seen)) do keys[#keys + 1] = k end
  return keys
end

local function is_sequence(t)
  local n = #t
  if n == 0 then return false end
  local c = 0
  for _ in pairs(t) do c = c + 1 end
  return c == n
end

-- Encode v. indent: nil for one line, else the current indentation string.
local function encode(v, indent, out)
  local tv = type(v)
  if v == nil then out[#out + 1] = "null"
  elseif tv == "boolean" then out[#out + 1] = tostring(v)
  elseif tv == "number" or is_int64(v) then out[#out + 1] = json_number(v)
  elseif tv == "string" then out[#out + 1] = json_string(v)
  elseif tv == "table" then
    local mt = getmetatable(v) or {}
    local nl = indent and "\n" .. indent .. "  " or ""
    local sep = indent and ": " or ":"
    if mt.__json == "array" or (mt.__json == nil and is_sequence(v)) then
      if #v == 0 then out[#out + 1] = "[]" return end
      out[#out + 1] = "["
      for i = 1, #v do
        out[#out + 1] = (i > 1 and "," or "") .. nl
        encode(v[i], indent and indent .. "  ", out)
      end
      out[#out + 1] = (indent and "\n" .. indent or "") .. "]"
    else
      local keys = ordered_keys(v, mt)
      if #keys == 0 then out[#out + 1] = "{}" return end
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        out[#out + 1] = (i > 1 and "," or "") .. nl .. json_string(tostring(k)) .. sep
        encode(v[k], indent and indent .. "  ", out)
      end
      out[#out + 1] = (indent and "\n" .. indent or "") .. "}"
    end
  else
    out[#out + 1] = json_string(tostring(v))
  end
end

--- JSON text for v; pretty = true indents it.
function M.json(v, pretty)
  local out = {}
  encode(v, pretty and "" or nil, out)
  return table.concat(out)
end

M.valid_utf8, M.json_number, M.is_int64, M.ordered_keys = valid_utf8, json_number, is_int64, ordered_keys
return M
