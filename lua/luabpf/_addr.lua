-- SPDX-License-Identifier: MIT
-- IP address text for the load balancer: one 16-byte form for both families
-- (IPv4 as ::ffff:a.b.c.d, as bpf/lb/lb.h stores them), canonical text, checks.
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

return M
