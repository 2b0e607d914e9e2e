-- SPDX-License-Identifier: MIT
-- The text forms of the filter's entries: prefixes ("10.0.0.0/8"), protocols,
-- ports and whole rules ("22/tcp", { src = }, ...), each parsed into what the
-- maps hold, raising at the caller's level with what is wrong. Part of
-- luabpf.filter.
local ffi = require("ffi")
local bit = require("bit")
local addr = require("luabpf._addr")
local K = require("luabpf.filter._common")

local PROTOS, PROTO_NAMES, V4_PREFIX, fail, check_opts = K.PROTOS, K.PROTO_NAMES, K.V4_PREFIX, K.fail, K.check_opts

local M = {}

-- Bytes of a 16-byte address with everything past `plen` bits cleared.
local function mask(bytes, plen)
  local out = {}
  for i = 1, 16 do
    local b = bytes:byte(i)
    local keep = plen - (i - 1) * 8
    if keep <= 0 then b = 0 elseif keep < 8 then b = bit.band(b, bit.lshift(0xff, 8 - keep)) end
    out[i] = string.char(b)
  end
  return table.concat(out)
end
M._mask = mask

ffi.cdef [[ const char *inet_ntop(int af, const void *src, char *dst, unsigned int size); ]]
local ntop_buf = ffi.new("char[64]")
function M._ntop(b)
  if b:sub(1, 12) == V4_PREFIX then
    return ffi.string(ffi.C.inet_ntop(2, b:sub(13), ntop_buf, 64))
  end
  return ffi.string(ffi.C.inet_ntop(10, b, ntop_buf, 64))
end

--- Parse "10.0.0.0/8", "10.0.0.1", "fd00::/8": returns 16 mapped bytes, the
-- 128-bit prefix length and the canonical text; raises naming what is wrong.
function M.parse_prefix(s, level)
  level = (level or 1) + 1
  if type(s) ~= "string" then fail(level, "expects a prefix such as '10.0.0.0/8', got %s", type(s)) end
  local a, len = s:match("^([^/]+)/(%d+)$")
  if not a then
    if s:find("/", 1, true) then fail(level, "'%s' is not an IPv4 or IPv6 prefix", s) end
    a = s
  end
  local ok, bytes = pcall(addr.bytes, a)
  if not ok then fail(level, "'%s' is not an IPv4 or IPv6 prefix", s) end
  local v4 = bytes:sub(1, 12) == V4_PREFIX
  local max = v4 and 32 or 128
  local n = len and tonumber(len) or max
  if n > max then
    fail(level, "'%s': prefix length must be 0-%d for %s", s, max, v4 and "IPv4" or "IPv6")
  end
  local plen = v4 and 96 + n or n
  local net = mask(bytes, plen)
  if net ~= bytes then
    fail(level, "'%s' has bits set past /%d (the network is %s/%d)", s, n, M._ntop(net), n)
  end
  return net, plen, ("%s/%d"):format(M._ntop(net), n)
end

-- a/alen contains b/blen
local function contains(a, alen, b, blen)
  return alen <= blen and mask(b, alen) == a
end

local function parse_proto(p, level)
  if type(p) == "number" and p >= 0 and p <= 255 and p % 1 == 0 then return p end
  if type(p) == "string" then
    local n = PROTOS[p:lower()] or tonumber(p:match("^%d+$") or "")
    if n and n <= 255 then return n end
  end
  fail(level + 1, "unknown protocol '%s' (a name: tcp, udp, icmp, icmpv6, gre, ...; or 0-255)", tostring(p))
end

local function parse_ports(p, level)
  local lo, hi
  if type(p) == "number" then
    lo, hi = p, p
  elseif type(p) == "string" then
    local a, b = p:match("^(%d+)%-(%d+)$")
    if a then lo, hi = tonumber(a), tonumber(b) else lo = tonumber(p:match("^%d+$") or ""); hi = lo end
  end
  if not lo or lo % 1 ~= 0 or hi % 1 ~= 0 or lo < 1 or hi > 65535 or lo > hi then
    fail(level + 1, "port must be 1-65535 or a range 'LO-HI', got %s", tostring(p))
  end
  return lo, hi
end

-- A rule as a table: { kind = "src"|"port"|"proto", ... }, from the forms
-- "10.0.0.0/8", "22/tcp", "53" (tcp and udp), "6000-6100/udp", "icmp",
-- { src = }, { port =, proto = }, { proto = }, each with an optional name.
local function parse_rule(what, r, level)
  level = level + 1
  if type(r) == "string" then
    local port, proto = r:match("^([%d%-]+)/(%a+)$")
    if port then
      r = { port = port, proto = proto }
    elseif r:match("^[%d%-]+$") and not r:find("%.") then
      r = { port = r }
    elseif PROTOS[r:lower()] then
      r = { proto = r }
    else
      r = { src = r }
    end
  end
  if type(r) ~= "table" then
    fail(level, "%s: expects a prefix, '22/tcp', a protocol name or a table, got %s", what, type(r))
  end
  check_opts(what, r, { src = true, port = true, proto = true, name = true }, level)
  if r.name ~= nil and type(r.name) ~= "string" then fail(level, "%s: name must be a string", what) end
  local out = { name = r.name }
  if r.src then
    if r.port or r.proto then
      fail(level, "%s: give a source prefix, or a port (with a protocol), or a protocol: one per rule", what)
    end
    local ok, net, plen, text = pcall(M.parse_prefix, r.src, 1)
    if not ok then fail(level, "%s: %s", what, net) end
    out.kind, out.net, out.plen, out.text = "src", net, plen, text
  elseif r.port then
    local ok, lo, hi = pcall(parse_ports, r.port, 1)
    if not ok then fail(level, "%s: %s", what, lo) end
    local protos
    if r.proto == nil then
      protos = { 6, 17 }
    else
      local ok2, p = pcall(parse_proto, r.proto, 1)
      if not ok2 then fail(level, "%s: %s", what, p) end
      if p ~= 6 and p ~= 17 then fail(level, "%s: ports are for tcp or udp, not %s", what, tostring(r.proto)) end
      protos = { p }
    end
    if (hi - lo + 1) * #protos > 4096 then
      fail(level, "%s: %d-%d is more ports than the list holds (4096)", what, lo, hi)
    end
    out.kind, out.lo, out.hi, out.protos = "port", lo, hi, protos
    out.text = (lo == hi and tostring(lo) or lo .. "-" .. hi) .. "/" ..
      (#protos == 2 and "tcp+udp" or PROTO_NAMES[protos[1]])
  elseif r.proto then
    local ok, p = pcall(parse_proto, r.proto, 1)
    if not ok then fail(level, "%s: %s", what, p) end
    out.kind, out.proto, out.text = "proto", p, "proto " .. (PROTO_NAMES[p] or tostring(p))
  else
    fail(level, "%s: a rule needs src, port or proto", what)
  end
  out.name = out.name or out.text
  return out
end
M.parse_rule = function(r) return parse_rule("rule", r, 1) end
M.contains, M.parse_proto, M.parse_ports, M.parse_rule_at = contains, parse_proto, parse_ports, parse_rule
return M
