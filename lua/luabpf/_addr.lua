-- SPDX-License-Identifier: MIT
-- IP address text for the load balancer: one 16-byte form for both families
-- (IPv4 as ::ffff:a.b.c.d, as bpf/lb/lb.h stores them), canonical text, checks.
-- And bpf.addr(): the text of an ipv4_t/ipv6_t field however it was read.
local ffi = require("ffi")

ffi.cdef [[
int inet_pton(int af, const char *src, void *dst);
const char *inet_ntop(int af, const void *src, char *dst, unsigned int size);
]]

local AF_INET, AF_INET6 = 2, 10
local buf16 = ffi.new("uint8_t[16]")
local out = ffi.new("char[64]")
local V4_PREFIX = string.rep("\0", 10) .. "\255\255"

local M = {}

-- 16 bytes for text, or nil.
local function pton(s)
  if type(s) ~= "string" then return nil end
  if ffi.C.inet_pton(AF_INET, s, buf16) == 1 then
    return V4_PREFIX .. ffi.string(buf16, 4)
  end
  if ffi.C.inet_pton(AF_INET6, s, buf16) == 1 then
    return ffi.string(buf16, 16)
  end
  return nil
end

local function ntop(b)
  if b:sub(1, 12) == V4_PREFIX then
    return ffi.string(ffi.C.inet_ntop(AF_INET, b:sub(13), out, 64))
  end
  return ffi.string(ffi.C.inet_ntop(AF_INET6, b, out, 64))
end

--- Canonical text of an address ("10.0.0.1", "fd00::1"); raises naming what.
function M.check(what, s, level)
  local b = pton(s)
  if not b then
    error(("%s: '%s' is not an IPv4 or IPv6 address"):format(what, tostring(s)), (level or 1) + 1)
  end
  return ntop(b)
end

--- The 16 raw bytes of an address (IPv4 mapped into IPv6).
function M.bytes(s)
  return pton(s) or error(("'%s' is not an IPv4 or IPv6 address"):format(tostring(s)), 2)
end

--- The address as the data plane stores it, as text: "::ffff:10.0.0.1" or "fd00::1".
function M.mapped(s)
  local b = M.bytes(s)
  return ffi.string(ffi.C.inet_ntop(AF_INET6, b, out, 64))
end

--- Canonical text, IPv4 without its ::ffff: prefix.
function M.text(s)
  return ntop(M.bytes(s))
end

function M.is_v4(s)
  return M.bytes(s):sub(1, 12) == V4_PREFIX
end

function M.is_zero(s)
  return M.bytes(s) == string.rep("\0", 16)
end

local u32 = ffi.new("uint32_t[1]")
local bytes_t = ffi.typeof("const uint8_t *")

--- bpf.addr(field): the text of an address field as luabpf's BPF headers
-- declare them (ipv4_t, ipv6_t: network order in memory), however it
-- reached Lua: a number read from a cdata ipv4_t field (its bytes in network
-- order, unlike bpf.ntoa's host-order numbers), a cdata ipv6_t / in6_addr /
-- uint8_t[4|16] (or a pointer to one), a 4- or 16-byte string, or the text
-- table mode already gave (returned canonical).
function M.addr(v)
  local tv = type(v)
  if tv == "number" then
    if v < 0 or v > 4294967295 or v ~= math.floor(v) then
      error(("bpf.addr: %s is not an ipv4_t field's value (a 32-bit integer)"):format(tostring(v)), 2)
    end
    u32[0] = v
    return ffi.string(ffi.C.inet_ntop(AF_INET, u32, out, 64))
  end
  if tv == "string" then
    local b = pton(v) -- text first: "::12" is 4 bytes too
    if b then return ntop(b) end
    if #v == 4 or #v == 16 then
      return ffi.string(ffi.C.inet_ntop(#v == 4 and AF_INET or AF_INET6, v, out, 64))
    end
    error(("bpf.addr: '%s' is neither an address nor 4 or 16 bytes"):format(v), 2)
  end
  if tv == "cdata" then
    local t = tostring(ffi.typeof(v)):match("^ctype<(.*)>$")
    if tonumber(v) then -- an integer box: a uint32_t is an ipv4_t's value
      if ffi.sizeof(v) == 4 then return M.addr(tonumber(v)) end
      error(("bpf.addr: %s is %d bytes, not an ipv4_t (4) or ipv6_t (16)"):format(t, ffi.sizeof(v)), 2)
    end
    local n = ffi.sizeof(v)
    if t:find("*", 1, true) and not t:find("&", 1, true) then -- a pointer: what it points to
      local ok, m = pcall(function() return ffi.sizeof(v[0]) end)
      n = ok and m or nil
    end
    if n == 4 or n == 16 then
      return ffi.string(ffi.C.inet_ntop(n == 4 and AF_INET or AF_INET6, ffi.cast(bytes_t, v), out, 64))
    end
    error(("bpf.addr: %s is not an address field (4 or 16 bytes)"):format(t), 2)
  end
  error(("bpf.addr expects an ipv4_t/ipv6_t field (number, cdata or string), got %s"):format(tv), 2)
end

return M
