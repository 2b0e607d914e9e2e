-- SPDX-License-Identifier: MIT
-- Bindings' text forms: prefixes ("10.0.0.0/24", host bits zero), port
-- ranges ("8000-8999", "*") and labels, parsed (raising at the caller's
-- level) and printed. Part of luabpf.sk_dispatch.
local ffi = require("ffi")
local bit = require("bit")
local addr = require("luabpf._addr")
local K = require("luabpf.sk_dispatch._sys")

local C, AF_INET, AF_INET6, ntop_buf, raise = K.C, K.AF_INET, K.AF_INET6, K.ntop_buf, K.raise

-- Text of 16 mapped bytes: "10.0.0.0" or "fd00::".
local function btext(b)
  if b:sub(1, 12) == string.rep("\0", 10) .. "\255\255" then
    return ffi.string(C.inet_ntop(AF_INET, b:sub(13), ntop_buf, 64))
  end
  return ffi.string(C.inet_ntop(AF_INET6, b, ntop_buf, 64))
end

-- "10.0.0.0/24" -> 16 mapped bytes (host bits must be zero), user prefixlen, v4.
local function parse_prefix(what, s, level)
  if type(s) ~= "string" then raise(level + 1, "%s: prefix expects a string like '10.0.0.0/24', got %s", what, type(s)) end
  local a, len = s:match("^([^/]+)/(%d+)$")
  a = a or s
  local ok, bytes = pcall(addr.bytes, a)
  if not ok then raise(level + 1, "%s: '%s' is not an IPv4 or IPv6 prefix", what, s) end
  local v4 = addr.is_v4(a)
  local max = v4 and 32 or 128
  len = tonumber(len) or max
  if len > max then raise(level + 1, "%s: prefix '%s' is longer than %d bits", what, s, max) end
  -- Host bits must be zero, as `ip route` wants: a typo should not widen or narrow a binding.
  local bits = (v4 and 96 or 0) + len
  local out = {}
  for i = 1, 16 do
    local b = bytes:byte(i)
    local keep = math.max(0, math.min(8, bits - (i - 1) * 8))
    local masked = bit.band(b, bit.lshift(0xff, 8 - keep) % 256)
    if keep == 0 then masked = 0 end
    out[i] = string.char(masked)
  end
  local masked = table.concat(out)
  if masked ~= bytes then
    local base = btext(masked)
    raise(level + 1, "%s: prefix '%s' has host bits set (did you mean %s/%d?)", what, s, base, len)
  end
  return masked, len, v4
end

local function prefix_text(bytes, len)
  return ("%s/%d"):format(btext(bytes), len)
end

-- ports: 8080, "8080", "8000-8999", {8000, 8999}, "*"/"all"/nil (every port).
-- Returns lo, hi; 0, 0 for every port.
local function parse_ports(what, p, level)
  local lo, hi
  if p == nil or p == "*" or p == "all" then return 0, 0 end
  if type(p) == "number" then
    lo, hi = p, p
  elseif type(p) == "string" then
    local a, b = p:match("^%s*(%d+)%s*%-%s*(%d+)%s*$")
    if a then lo, hi = tonumber(a), tonumber(b) else lo = tonumber(p:match("^%s*(%d+)%s*$")); hi = lo end
  elseif type(p) == "table" then
    lo, hi = p[1], p[2] or p[1]
  end
  if type(lo) ~= "number" or type(hi) ~= "number" or lo ~= math.floor(lo) or hi ~= math.floor(hi) then
    raise(level + 1, "%s: ports expects a port, 'LO-HI' or '*', got %s", what, tostring(p))
  end
  if lo < 1 or hi > 65535 or lo > hi then
    raise(level + 1, "%s: ports '%s' is not a range within 1-65535", what, tostring(p))
  end
  if lo == 1 and hi == 65535 then return 0, 0 end
  return lo, hi
end

local function ports_text(lo, hi)
  if lo == 0 then return "*" end
  if lo == hi then return tostring(lo) end
  return lo .. "-" .. hi
end

local function check_label(what, label, level)
  if type(label) ~= "string" or not label:match("^[%w_.:@%-]+$") or #label > 63 then
    raise(level + 1, "%s: label must be up to 63 letters, digits and _.:@- , got %s", what,
      type(label) == "string" and ("'" .. label .. "'") or type(label))
  end
end


return { btext = btext, parse_prefix = parse_prefix, prefix_text = prefix_text, parse_ports = parse_ports,
  ports_text = ports_text, check_label = check_label }
