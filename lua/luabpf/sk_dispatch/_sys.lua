-- SPDX-License-Identifier: MIT
-- What every part of luabpf.sk_dispatch shares: the numbers of
-- bpf/sk_dispatch/sk_dispatch.h and of the kernel, the libc calls (FFI), and
-- the ways to fail (luv's triple, a refusal, a misuse raised). Private to
-- lua/luabpf/sk_dispatch/.
local ffi = require("ffi")
local util = require("luabpf._util")

-- Must match bpf/sk_dispatch/sk_dispatch.h.
local KEY_BITS, KEY_ADDR_BIT = 160, 32
local F_FALLTHROUGH = 1
local MAX_LABELS = 1024

local PROTO = { tcp = 6, udp = 17 }
local PROTO_NAME = { [6] = "tcp", [17] = "udp" }
local AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10
local MAPS = { "skd_trie", "skd_sockets", "skd_stats", "skd_bindings", "skd_labels", "skd_dests" }

local C = util.cdef({
  "long syscall(long number, ...);",
  "int getsockopt(int fd, int level, int name, void *val, unsigned int *len);",
  "int getsockname(int fd, void *sa, unsigned int *len);",
  "int getpeername(int fd, void *sa, unsigned int *len);",
  "int ioctl(int fd, unsigned long req, ...);",
  "close", "open", "flock", "strerror",
  "const char *lbpf_errno_name(int err);",
})

local SYS_pidfd_open, SYS_pidfd_getfd = 434, 438 -- the same on every architecture
local SOL_SOCKET, SO_ACCEPTCONN, SO_PROTOCOL, SO_DOMAIN, SO_COOKIE = 1, 30, 38, 39, 57
local IPPROTO_IPV6, IPV6_V6ONLY = 41, 26
local SIOCGSKNS = 0x894C
local O_RDONLY, O_DIRECTORY, O_CLOEXEC = 0, 0x10000, 0x80000
local LOCK_EX, LOCK_UN = 2, 8

local function errname(e)
  local ok, n = pcall(function() return ffi.string(C.lbpf_errno_name(e)) end)
  return ok and n or ("E" .. e)
end

-- luv's failure triple for errno e, with what the failure was about.
local function fail_errno(e, fmt, ...)
  local msg = ("%s: %s"):format(errname(e), ffi.string(C.strerror(e)))
  if fmt then msg = fmt:format(...) .. ": " .. msg end
  return nil, msg, errname(e)
end

-- A refusal: not a kernel failure, but the kernel's state says no.
local function refuse(code, fmt, ...)
  return nil, fmt:format(...), code
end

local function raise(level, fmt, ...)
  error(fmt:format(...), level + 1)
end

local function check_options(what, o, known)
  if o == nil then return {} end
  if type(o) ~= "table" then raise(3, "%s: options must be a table, got %s", what, type(o)) end
  util.check_keys(what, o, known, 3)
  return o
end


local ntop_buf = ffi.new("char[64]")

return {
  KEY_BITS = KEY_BITS, KEY_ADDR_BIT = KEY_ADDR_BIT, F_FALLTHROUGH = F_FALLTHROUGH, MAX_LABELS = MAX_LABELS,
  PROTO = PROTO, PROTO_NAME = PROTO_NAME, AF_UNIX = AF_UNIX, AF_INET = AF_INET, AF_INET6 = AF_INET6,
  MAPS = MAPS, C = C,
  SYS_pidfd_open = SYS_pidfd_open, SYS_pidfd_getfd = SYS_pidfd_getfd,
  SOL_SOCKET = SOL_SOCKET, SO_ACCEPTCONN = SO_ACCEPTCONN, SO_PROTOCOL = SO_PROTOCOL, SO_DOMAIN = SO_DOMAIN,
  SO_COOKIE = SO_COOKIE, IPPROTO_IPV6 = IPPROTO_IPV6, IPV6_V6ONLY = IPV6_V6ONLY, SIOCGSKNS = SIOCGSKNS,
  O_RDONLY = O_RDONLY, O_DIRECTORY = O_DIRECTORY, O_CLOEXEC = O_CLOEXEC, LOCK_EX = LOCK_EX, LOCK_UN = LOCK_UN,
  ntop_buf = ntop_buf,
  errname = errname, fail_errno = fail_errno, refuse = refuse, raise = raise, check_options = check_options,
}
