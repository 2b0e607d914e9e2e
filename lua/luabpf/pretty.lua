-- SPDX-License-Identifier: MIT
-- The REPL's printer: Lua values as readable, mostly re-readable text.
--
--   local pretty = require("luabpf.pretty")
--   print(pretty.format({ addr = "10.0.0.1", port = 443, bytes = 2^60 }))
--   --> { addr = "10.0.0.1", bytes = 1152921504606846976, port = 443 }
--
-- Tables sort their keys (the sequence part first, in order) and break over
-- lines when they don't fit `width`; 64-bit cdata print as plain digits (as
-- bpftool does); strings with bytes that are not text print with \xNN
-- escapes; a map prints its description and its first entries, decoded by BTF.
local ffi = require("ffi")

local M = {}

local int64_t, uint64_t = ffi.typeof("int64_t"), ffi.typeof("uint64_t")
local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or
  repeat return then true until while]]):gmatch("%a+") do KEYWORDS[w] = true end
M.keywords = KEYWORDS

local function is_ident(k)
  return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil and not KEYWORDS[k]
end
M.is_ident = is_ident

local ESC = { ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r", ["\\"] = "\\\\", ['"'] = '\\"' }

local function quote(s)
  return '"' .. s:gsub('[%c\\"\128-\255]', function(c)
    return ESC[c] or ("\\x%02X"):format(c:byte())
  end) .. '"'
end
M.quote = quote

local function number(n)
  if n ~= n then return "0/0" end
  if n == math.huge then return "math.huge" end
  if n == -math.huge then return "-math.huge" end
  if n == math.floor(n) and math.abs(n) < 2 ^ 53 then return ("%d"):format(n) end
  return ("%.17g"):format(n)
end

local registry = debug.getregistry()

-- Is v a map userdata (lookups through the map's codec)?
local function is_map(v)
  return type(v) == "userdata" and getmetatable(v) ~= nil and getmetatable(v) == registry["luabpf.map"]
end
M.is_map = is_map

local function scalar(v)
  local tv = type(v)
  if tv == "string" then return quote(v) end
  if tv == "number" then return number(v) end
  if tv == "cdata" then
    if ffi.istype(int64_t, v) or ffi.istype(uint64_t, v) then
      return (tostring(v):gsub("U?LL$", ""))
    end
    return tostring(v)
  end
  if tv == "function" then
    local i = debug.getinfo(v, "S")
    if i.what == "C" then return "function: builtin" end
    return ("function: %s:%d"):format(i.short_src, i.linedefined)
  end
  return tostring(v)
end

local TYPE_ORDER = { number = 1, cdata = 2, string = 3, boolean = 4 }

local function key_less(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return (TYPE_ORDER[ta] or 9) < (TYPE_ORDER[tb] or 9) end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end

local function key_text(k)
  if is_ident(k) then return k end
  return "[" .. scalar(k) .. "]"
end

-- Text of v starting at column col of a line that is indented by indent.
local function fmt(v, indent, col, depth, seen, opt)
  if type(v) ~= "table" then return scalar(v) end
  if seen[v] then return "<cycle>" end
  if depth > opt.depth then return "{...}" end
  seen[v] = true
  local n, inner = #v, indent .. "  "
  local parts, keys = {}, {}
  for i = 1, n do parts[#parts + 1] = fmt(v[i], inner, #inner, depth + 1, seen, opt) end
  for k in pairs(v) do
    if not (type(k) == "number" and k >= 1 and k <= n and k == math.floor(k)) then keys[#keys + 1] = k end
  end
  table.sort(keys, key_less)
  for _, k in ipairs(keys) do
    local kt = key_text(k)
    parts[#parts + 1] = kt .. " = " .. fmt(v[k], inner, #inner + #kt + 3, depth + 1, seen, opt)
    if #parts >= opt.items then
      parts[#parts + 1] = ("... (%d more)"):format(#keys + n - #parts)
      break
    end
  end
  seen[v] = nil
  if #parts == 0 then return "{}" end
  local one = "{ " .. table.concat(parts, ", ") .. " }"
  if col + #one <= opt.width and not one:find("\n", 1, true) then return one end
  return "{\n" .. inner .. table.concat(parts, ",\n" .. inner) .. "\n" .. indent .. "}"
end

local function options(opts)
  opts = opts or {}
  return { depth = opts.depth or 8, items = opts.items or 200, width = opts.width or 100 }
end

--- Text of any value. opts: width (default 100), depth (8), items (200 per
-- table); a map prints its description and entries, as M.map (opts.limit).
function M.format(v, opts)
  if is_map(v) then return M.map(v, opts) end
  return fmt(v, "", 0, 1, {}, options(opts))
end

--- A map's description and its first `limit` entries (default 20), each
--- "key => value" decoded by the map's BTF.
function M.map(m, opts)
  local limit = opts and opts.limit or 20
  local opt = options(opts)
  local out = { tostring(m) }
  local ok, err = pcall(function()
    local n = 0
    for k, v in m:pairs() do
      n = n + 1
      if n > limit then
        local total = 0
        for _ in m:keys() do total = total + 1 end
        out[#out + 1] = ("  ... %d entries in all (m:dump() returns every one)"):format(total)
        return
      end
      local kt = fmt(k, "  ", 2, 1, {}, opt)
      local col = #(kt:match("[^\n]*$")) + 4
      out[#out + 1] = "  " .. kt .. " => " .. fmt(v, "  ", col, 1, {}, opt)
    end
    if n == 0 then out[#out + 1] = "  (empty)" end
  end)
  if not ok then out[#out + 1] = "  (" .. tostring(err):gsub("^[^:]+:%d+: ", "") .. ")" end
  return table.concat(out, "\n")
end

--- How the REPL shows one result: maps with their entries, the rest by format().
function M.result(v, opts)
  if is_map(v) then return M.map(v, opts) end
  return M.format(v, opts)
end

return M
