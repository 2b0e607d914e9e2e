-- SPDX-License-Identifier: MIT
-- The sk_lookup socket dispatcher (docs/sk_lookup.md): bind labels to
-- (protocol, prefix, port or range), give each label a socket (our own, or a
-- running process's taken with pidfd_getfd), and the kernel hands every
-- matching connection or datagram to that socket. The program, its link and
-- its maps are pinned per network namespace, so dispatch outlives luabpf and
-- the next run picks it up; destroy() removes it.
local ffi = require("ffi")
local bit = require("bit")
local uv = require("luv")
local addr = require("luabpf._addr")
local util = require("luabpf._util")

local M = {}
M.PIN_ROOT = "/sys/fs/bpf/luabpf/sk_dispatch"

-- Must match bpf/sk_dispatch/sk_dispatch.h.
local KEY_BITS, KEY_ADDR_BIT = 160, 32
local F_FALLTHROUGH = 1
local MAX_LABELS = 1024

local PROTO = { tcp = 6, udp = 17 }
local PROTO_NAME = { [6] = "tcp", [17] = "udp" }
local AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10
local MAPS = { "skd_trie", "skd_sockets", "skd_stats", "skd_bindings", "skd_labels", "skd_dests" }

for _, decl in ipairs({
  "long syscall(long number, ...);",
  "int getsockopt(int fd, int level, int name, void *val, unsigned int *len);",
  "int getsockname(int fd, void *sa, unsigned int *len);",
  "int getpeername(int fd, void *sa, unsigned int *len);",
  "int ioctl(int fd, unsigned long req, ...);",
  "int close(int fd);",
  "int open(const char *path, int flags, ...);",
  "int flock(int fd, int op);",
  "char *strerror(int err);",
  "const char *lbpf_errno_name(int err);",
}) do pcall(ffi.cdef, decl) end
local C = ffi.C

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

---------------------------------------------------------------------------
-- Sockets: what an fd is, and another process's fds.

local sa_buf = ffi.new("uint8_t[128]")
local sa_len = ffi.new("unsigned int[1]")
local int_buf = ffi.new("int[1]")
local u64_buf = ffi.new("uint64_t[1]")
local ntop_buf = ffi.new("char[64]")

local function sockopt_int(fd, level, name)
  sa_len[0] = 4
  if C.getsockopt(fd, level, name, int_buf, sa_len) ~= 0 then return nil, ffi.errno() end
  return int_buf[0]
end

-- "10.0.0.1", 8080 from the sockaddr in sa_buf (nil for other families).
local function sockaddr_text()
  local fam = ffi.cast("uint16_t *", sa_buf)[0]
  local port = sa_buf[2] * 256 + sa_buf[3]
  if fam == AF_INET then
    return ffi.string(C.inet_ntop(AF_INET, sa_buf + 4, ntop_buf, 64)), port
  elseif fam == AF_INET6 then
    return ffi.string(C.inet_ntop(AF_INET6, sa_buf + 8, ntop_buf, 64)), port
  end
end

local function endpoint(a, port)
  return a:find(":", 1, true) and ("[%s]:%d"):format(a, port) or ("%s:%d"):format(a, port)
end

-- The inode of the network namespace a socket lives in.
local function socket_netns(fd)
  local nsfd = C.ioctl(fd, SIOCGSKNS)
  if nsfd < 0 then return nil, ffi.errno() end
  local st = uv.fs_fstat(nsfd)
  C.close(nsfd)
  return st and st.ino
end

--- What the socket fd is: {family = "inet"|"inet6"|"unix"|n, proto = "tcp"|"udp"|n,
-- listening, connected, addr, port, peer, v6only, netns, cookie}; nil, err, code
-- when fd is not a socket.
function M.inspect(fd)
  local dom, e = sockopt_int(fd, SOL_SOCKET, SO_DOMAIN)
  if not dom then return fail_errno(e, "fd %d", fd) end
  local s = { fd = fd, domain = dom }
  s.family = ({ [AF_UNIX] = "unix", [AF_INET] = "inet", [AF_INET6] = "inet6" })[dom] or dom
  if dom ~= AF_INET and dom ~= AF_INET6 then return s end
  local proto = sockopt_int(fd, SOL_SOCKET, SO_PROTOCOL)
  s.protocol = proto
  s.proto = PROTO_NAME[proto] or proto
  s.listening = sockopt_int(fd, SOL_SOCKET, SO_ACCEPTCONN) == 1
  if dom == AF_INET6 then s.v6only = sockopt_int(fd, IPPROTO_IPV6, IPV6_V6ONLY) == 1 end
  sa_len[0] = 128
  if C.getsockname(fd, sa_buf, sa_len) == 0 then s.addr, s.port = sockaddr_text() end
  sa_len[0] = 128
  if C.getpeername(fd, sa_buf, sa_len) == 0 then
    s.connected = true
    s.peer = endpoint(sockaddr_text())
  end
  sa_len[0] = 8
  if C.getsockopt(fd, SOL_SOCKET, SO_COOKIE, u64_buf, sa_len) == 0 then s.cookie = u64_buf[0] end
  s.netns = socket_netns(fd)
  return s
end

-- One line about a socket, for messages and lists.
local function describe(s)
  if s.family == "unix" then return "a unix socket" end
  if s.family ~= "inet" and s.family ~= "inet6" then return "a socket of family " .. tostring(s.family) end
  local where = s.addr and endpoint(s.addr, s.port) or "?"
  local state = s.listening and "listening on " or (s.connected and "connected " or "bound to ")
  local v = s.family == "inet6" and (s.v6only and " (IPv6 only)" or " (dual-stack)") or ""
  return ("%s %s%s%s%s"):format(tostring(s.proto):upper(), state, where,
    s.connected and (" -> " .. s.peer) or "", v)
end
M.describe = describe

local function pidfd_open(pid)
  local fd = tonumber(C.syscall(SYS_pidfd_open, ffi.cast("long", pid), ffi.cast("long", 0)))
  if fd < 0 then return fail_errno(ffi.errno(), "pid %d", pid) end
  return fd
end

-- A copy of fd `fd` of the process behind pidfd (pidfd_getfd: the same open
-- file, so the target's socket and its flags are shared, never changed).
local function getfd(pidfd, pid, fd)
  local r = tonumber(C.syscall(SYS_pidfd_getfd, ffi.cast("long", pidfd), ffi.cast("long", fd),
    ffi.cast("long", 0)))
  if r < 0 then
    local e = ffi.errno()
    if e == 9 then return refuse("EBADF", "pid %d has no fd %d", pid, fd) end
    return fail_errno(e, "pid %d fd %d: pidfd_getfd", pid, fd)
  end
  return r
end

local function read_file(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function comm_of(pid)
  return (read_file("/proc/" .. pid .. "/comm") or "?"):gsub("%s+$", "")
end

-- Is socket s fit for a label: inet TCP listener or unconnected UDP, in netns?
-- Returns true, or nil, why, code.
local function fit(s, what, o)
  if s.family == "unix" then
    return refuse("EAFNOSUPPORT", "%s is a unix socket: sk_lookup steers only TCP and UDP (IPv4, IPv6)", what)
  end
  if s.family ~= "inet" and s.family ~= "inet6" then
    return refuse("EAFNOSUPPORT", "%s is %s: sk_lookup steers only TCP and UDP sockets", what, describe(s))
  end
  if s.proto ~= "tcp" and s.proto ~= "udp" then
    return refuse("EPROTONOSUPPORT", "%s is not TCP or UDP (protocol %s)", what, tostring(s.proto))
  end
  if o.proto and s.proto ~= o.proto then
    return refuse("EPROTOTYPE", "%s is %s, not %s", what, describe(s), o.proto:upper())
  end
  if s.connected then
    return refuse("EISCONN", "%s is %s: a connected socket can't take new connections", what, describe(s))
  end
  if s.proto == "tcp" and not s.listening then
    return refuse("EINVAL", "%s is %s but not listening (call listen() first)", what, describe(s))
  end
  if o.netns and s.netns and s.netns ~= o.netns then
    return refuse("EXDEV", "%s lives in another network namespace (net:[%d]) than the dispatcher "
      .. "(net:[%d]): run in the socket's namespace (luabpf --netns NS ...)", what, s.netns, o.netns)
  end
  if o.v4 and s.family == "inet6" and s.v6only then
    return refuse("EAFNOSUPPORT", "%s can't take IPv4 (IPV6_V6ONLY), and IPv4 prefixes are bound", what)
  end
  if o.v6 and s.family == "inet" then
    return refuse("EAFNOSUPPORT", "%s can't take IPv6, and IPv6 prefixes are bound", what)
  end
  return true
end

--- Find the socket of process pid to register: o.fd picks one; otherwise the
-- only fd that fits (o.proto, o.netns, o.v4/o.v6). Returns the socket (from
-- M.inspect, plus pid, comm, and dupfd: our copy, which the caller closes),
-- or nil, err, code.
function M.find_socket(pid, o)
  o = o or {}
  if math.floor(pid) ~= pid or pid <= 0 then return refuse("EINVAL", "pid must be a positive integer, got %s", pid) end
  if pid == uv.os_getpid() then
    return refuse("EINVAL", "pid %d is this luabpf process: register its socket itself (d:register(label, sock))", pid)
  end
  local pidfd, err, code = pidfd_open(pid)
  if not pidfd then return nil, err, code end
  local comm = comm_of(pid)
  local who = ("pid %d (%s)"):format(pid, comm)
  local function take(fd)
    local dup, gerr, gcode = getfd(pidfd, pid, fd)
    if not dup then return nil, gerr, gcode end
    local s, ierr, icode = M.inspect(dup)
    if not s then
      C.close(dup)
      if icode == "ENOTSOCK" then
        local target = uv.fs_readlink(("/proc/%d/fd/%d"):format(pid, fd)) or "?"
        return refuse("ENOTSOCK", "%s fd %d is not a socket (%s)", who, fd, target)
      end
      return nil, ierr, icode
    end
    s.dupfd, s.pid, s.comm, s.fd = dup, pid, comm, fd
    return s
  end

  local res, rerr, rcode
  if o.fd then
    local s
    s, rerr, rcode = take(o.fd)
    if s then
      local ok
      ok, rerr, rcode = fit(s, ("%s fd %d"):format(who, o.fd), o)
      if ok then res = s else C.close(s.dupfd) end
    end
  else
    -- Walk the target's fds: only sockets, and of those only what fits.
    local fds = {}
    local dir = uv.fs_scandir("/proc/" .. pid .. "/fd")
    while dir do
      local name = uv.fs_scandir_next(dir)
      if not name then break end
      local n = tonumber(name)
      local link = uv.fs_readlink(("/proc/%d/fd/%s"):format(pid, name))
      if n and link and link:match("^socket:") then fds[#fds + 1] = n end
    end
    table.sort(fds)
    local found, seen = {}, {}
    for _, fd in ipairs(fds) do
      local s = take(fd)
      if s then
        local ok, why = fit(s, "fd " .. fd, o)
        if ok then
          found[#found + 1] = s
        else
          C.close(s.dupfd)
          seen[#seen + 1] = ("fd %d: %s"):format(fd,
            why:match("lives in another network namespace") and describe(s) .. " in another netns" or describe(s))
        end
      end
    end
    local kind = (o.proto and o.proto:upper() or "TCP or UDP") .. " socket"
    if #found == 1 then
      res = found[1]
    elseif #found == 0 then
      rerr, rcode = ("%s has no listening %s here to register%s"):format(who, kind,
        #seen > 0 and (" (its sockets: " .. table.concat(seen, "; ") .. ")") or " (it has no sockets)"), "ENOENT"
    else
      local list = {}
      for _, s in ipairs(found) do
        list[#list + 1] = ("fd %d (%s)"):format(s.fd, describe(s))
        C.close(s.dupfd)
      end
      rerr, rcode = ("%s has %d sockets that fit: %s; choose one with fd= (--fd)"):format(
        who, #found, table.concat(list, ", ")), "ENOTUNIQ"
    end
  end
  C.close(pidfd)
  if not res then return nil, rerr, rcode end
  return res
end

---------------------------------------------------------------------------
-- Bindings: text forms.

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

---------------------------------------------------------------------------
-- The dispatcher of one network namespace.

local D = {}
D.__index = D

local function netns_ino(netns)
  local path = "/proc/self/ns/net"
  if netns and netns ~= "" then path = netns:find("/", 1, true) and netns or ("/run/netns/" .. netns) end
  local st, err = uv.fs_stat(path)
  if not st then return nil, ("netns '%s': %s"):format(netns or "", err), "ENOENT" end
  return st.ino
end
M.netns_ino = netns_ino

local function mkdir_p(path)
  local cur = ""
  for part in path:gmatch("[^/]+") do
    cur = cur .. "/" .. part
    uv.fs_mkdir(cur, 448) -- 0700; EEXIST is fine
  end
end

local function rm_pins(dir)
  os.remove(dir .. "/link")
  os.remove(dir .. "/prog")
  for _, n in ipairs(MAPS) do os.remove(dir .. "/" .. n) end
  os.remove(dir)
end

local function where(netns)
  return (netns and netns ~= "") and ("netns '" .. netns .. "'") or "this netns"
end

--- Open (and by default create or take over) the dispatcher of a network
-- namespace. Options: netns (name or path; default: ours), create (false:
-- open what is pinned, unchanged; nil, err, "ENOENT" when nothing is),
-- pin_root. Returns the dispatcher, or nil, err, code.
function M.open(o)
  o = check_options("sk_dispatch.open", o, { netns = true, create = true, pin_root = true })
  local ino, nerr, ncode = netns_ino(o.netns)
  if not ino then return nil, nerr, ncode end
  local dir = (o.pin_root or M.PIN_ROOT) .. "/" .. ino
  local self = setmetatable({ netns = o.netns, netns_ino = ino, dir = dir, m = {} }, D)

  -- A pinned link whose namespace is gone (its inode reused) is stale state.
  local link = uv.fs_stat(dir .. "/link") and bpf.link_from_pin(dir .. "/link")
  if link and link:info().netns_ino ~= ino then
    bpf.log("info", ("sk_dispatch: removing stale state at %s (its namespace is gone)"):format(dir))
    link:close()
    link = nil
    rm_pins(dir)
  end

  if o.create == false then
    if not link then
      return nil, ("no sk_lookup dispatcher in %s (nothing pinned at %s)"):format(where(o.netns), dir), "ENOENT"
    end
    for _, n in ipairs(MAPS) do
      local m, err, code = bpf.map_from_pin(dir .. "/" .. n)
      if not m then return nil, ("sk_dispatch: pinned map %s: %s"):format(n, err), code end
      self.m[n] = m
    end
    self.link = link
  else
    local fresh = not link
    mkdir_p(dir)
    local obj, err, code = bpf.load("sk_dispatch", { pin_root_path = dir })
    if not obj then
      if tostring(err):find("parameter mismatch", 1, true) then
        err = ("the dispatcher pinned at %s was made by another version of luabpf; remove it "
          .. "(sk_dispatch.lua remove, or rm -r %s) and bind again\n%s"):format(dir, dir, err)
      end
      return nil, err, code
    end
    self.obj = obj
    for _, n in ipairs(MAPS) do self.m[n] = obj:map(n) end
    local prog = obj:program("sk_dispatch")
    if link then
      -- An earlier run's link: swap in this program, no moment without one.
      local ok, uerr, ucode = link:update(prog)
      if not ok then
        obj:close()
        return nil, "sk_dispatch: can't replace the pinned program: " .. uerr, ucode
      end
    else
      local aerr, acode
      link, aerr, acode = prog:attach_sk_lookup({ netns = o.netns })
      if not link then
        if fresh then rm_pins(dir) end
        obj:close()
        return nil, "sk_dispatch: " .. aerr, acode
      end
      assert(link:pin(dir .. "/link"))
      os.remove(dir .. "/prog")
      prog:pin(dir .. "/prog")
    end
    self.link = link
  end
  self:_recover()
  return self
end

function D:_check()
  if not self.m then error("closed sk_dispatch", 3) end
end

-- Our view of bindings and labels, rebuilt from the pinned maps.
function D:_recover()
  self.recs, self.lnames, self.label_ids, self.groups = {}, {}, {}, {}
  for id, l in self.m.skd_labels:pairs() do
    self.lnames[id] = l.name
    self.label_ids[l.name] = id
  end
  for id, b in self.m.skd_bindings:pairs() do
    local rec = {
      id = id, label_id = b.label, flags = b.flags, protocol = b.protocol, plen = b.prefixlen,
      lo = b.port_lo, hi = b.port_hi, created = b.created,
      bytes = addr.bytes(b.addr), v4 = addr.is_v4(b.addr),
    }
    self:_add_rec(rec)
  end
end

local function group_key(protocol, bytes, plen)
  return protocol .. "|" .. bytes .. "|" .. plen
end

function D:_add_rec(rec)
  self.recs[rec.id] = rec
  local gk = group_key(rec.protocol, rec.bytes, rec.plen)
  rec.group = gk
  self.groups[gk] = self.groups[gk] or {}
  table.insert(self.groups[gk], rec)
end

-- The binding that owns port p of a group: the narrowest range, then the oldest.
local function owner(group, p)
  local best
  for _, b in ipairs(group) do
    local covers = (p == 0 and b.lo == 0) or (p ~= 0 and b.lo ~= 0 and b.lo <= p and p <= b.hi)
    if covers and (not best or (b.hi - b.lo) < (best.hi - best.lo) or
        ((b.hi - b.lo) == (best.hi - best.lo) and b.id < best.id)) then
      best = b
    end
  end
  return best
end

local function trie_key(rec, port)
  local bits = (rec.v4 and 96 or 0) + rec.plen
  return { prefixlen = KEY_ADDR_BIT + bits, protocol = rec.protocol, port = port,
    addr = addr.mapped(btext(rec.bytes)) }
end

-- Write (or delete) the trie entries for ports lo..hi of rec's group.
function D:_sync_ports(group, rec)
  local trie = self.m.skd_trie
  local first, last = rec.lo, rec.hi
  for p = first, last do
    local best = owner(group, p)
    local key = trie_key(rec, p)
    if best then
      local ok, err, code = trie:update(key, { binding = best.id, label = best.label_id,
        prefixlen = (best.v4 and 96 or 0) + best.plen, flags = best.flags })
      if not ok then return nil, err, code end
    else
      trie:delete(key)
    end
  end
  return true
end

-- Serialise changes between processes: flock on the pin directory, and a
-- fresh view of the maps once we hold it.
function D:_locked(fn, ...)
  self:_check()
  local fd = C.open(self.dir, bit.bor(O_RDONLY, O_DIRECTORY, O_CLOEXEC))
  if fd >= 0 then C.flock(fd, LOCK_EX) end
  local ok, r1, r2, r3 = pcall(function(...)
    self:_recover()
    return fn(...)
  end, ...)
  if fd >= 0 then
    C.flock(fd, LOCK_UN)
    C.close(fd)
  end
  if not ok then error(r1, 0) end
  return r1, r2, r3
end

function D:_label_id(name, create)
  local id = self.label_ids[name]
  if id or not create then return id end
  for i = 0, MAX_LABELS - 1 do
    if not self.lnames[i] then
      local ok, err, code = self.m.skd_labels:update(i, { name = name })
      if not ok then return nil, err, code end
      self.lnames[i], self.label_ids[name] = name, i
      return i
    end
  end
  return refuse("ENOSPC", "sk_dispatch: no room for label '%s' (%d labels at most)", name, MAX_LABELS)
end

-- Forget a label that has neither bindings nor sockets.
function D:_gc_label(id)
  for _, b in pairs(self.recs) do if b.label_id == id then return end end
  for s = id * 4, id * 4 + 3 do if self.m.skd_dests:lookup(s) then return end end
  self.m.skd_labels:delete(id)
  self.label_ids[self.lnames[id]] = nil
  self.lnames[id] = nil
end

local function binding_view(self, rec)
  local s = self.m.skd_stats:lookup_sum(rec.id) or {}
  return {
    id = rec.id, label = self.lnames[rec.label_id] or ("#" .. rec.label_id),
    proto = PROTO_NAME[rec.protocol] or rec.protocol,
    prefix = prefix_text(rec.bytes, rec.plen),
    ports = ports_text(rec.lo, rec.hi), port_lo = rec.lo ~= 0 and rec.lo or 1,
    port_hi = rec.lo ~= 0 and rec.hi or 65535,
    fallthrough = bit.band(rec.flags, F_FALLTHROUGH) ~= 0,
    created = tonumber(rec.created),
    stats = { lookups = tonumber(s.lookups or 0), hits = tonumber(s.hits or 0),
      misses = tonumber(s.misses or 0), errors = tonumber(s.errors or 0) },
  }
end

--- Bind label to (proto, prefix, ports): spec = {proto = "tcp"|"udp" (default
-- tcp), prefix = "10.0.0.0/24" | "fd00::/64" | "10.0.0.5" (required),
-- ports = 80 | "8000-8999" | "*" (default: every port), fallthrough = bool}.
-- Returns the binding (as in d:bindings()), or nil, err, code.
function D:bind(label, spec)
  self:_check()
  check_label("sk_dispatch:bind", label, 2)
  spec = check_options("sk_dispatch:bind", spec, { proto = true, prefix = true, ports = true, fallthrough = true })
  local proto = spec.proto or "tcp"
  if not PROTO[proto] then raise(2, "sk_dispatch:bind: proto expects 'tcp' or 'udp', got %s", tostring(proto)) end
  local bytes, plen, v4 = parse_prefix("sk_dispatch:bind", spec.prefix, 2)
  local lo, hi = parse_ports("sk_dispatch:bind", spec.ports, 2)
  local flags = spec.fallthrough and F_FALLTHROUGH or 0
  return self:_locked(function()
    local gk = group_key(PROTO[proto], bytes, plen)
    for _, b in ipairs(self.groups[gk] or {}) do
      if b.lo == lo and b.hi == hi then
        local other = self.lnames[b.label_id]
        if other ~= label then
          return refuse("EEXIST", "%s %s ports %s is already bound to label '%s' (unbind it first)",
            proto, prefix_text(bytes, plen), ports_text(lo, hi), tostring(other))
        end
        if b.flags ~= flags then
          -- Same binding, new fall-through choice: rewrite its record and entries.
          b.flags = flags
          local r = self.m.skd_bindings:lookup(b.id)
          r.flags = flags
          self.m.skd_bindings:update(b.id, r)
          local ok, err, code = self:_sync_ports(self.groups[gk], b)
          if not ok then return nil, err, code end
        end
        return binding_view(self, b)
      end
    end
    local lid, lerr, lcode = self:_label_id(label, true)
    if not lid then return nil, lerr, lcode end
    local id
    local max = self.m.skd_stats:info().max_entries
    for i = 0, max - 1 do
      if not self.recs[i] then id = i break end
    end
    if not id then
      self:_gc_label(lid)
      return refuse("ENOSPC", "sk_dispatch: no room for another binding (%d at most)", max)
    end
    local rec = { id = id, label_id = lid, flags = flags, protocol = PROTO[proto], plen = plen,
      lo = lo, hi = hi, bytes = bytes, v4 = v4, created = os.time() }
    self.m.skd_stats:update(id, { lookups = 0, hits = 0, misses = 0, errors = 0 })
    local ok, err, code = self.m.skd_bindings:update(id, {
      label = lid, flags = flags, protocol = rec.protocol, prefixlen = plen, port_lo = lo,
      port_hi = hi, addr = addr.mapped(btext(bytes)), created = rec.created,
    })
    if not ok then return nil, err, code end
    self:_add_rec(rec)
    ok, err, code = self:_sync_ports(self.groups[rec.group], rec)
    if not ok then
      -- Undo: the trie may be full. Nothing half-made stays.
      self:_remove_rec(rec)
      self:_gc_label(lid)
      if code == "E2BIG" or code == "ENOSPC" or code == "ENOMEM" then
        err = ("sk_dispatch: the port table is full (%d entries: one per bound port): %s"):format(
          self.m.skd_trie:info().max_entries, err)
      end
      return nil, err, code
    end
    return binding_view(self, rec)
  end)
end

function D:_remove_rec(rec)
  local group = self.groups[rec.group]
  for i, b in ipairs(group) do
    if b == rec then table.remove(group, i) break end
  end
  self.recs[rec.id] = nil
  self.m.skd_bindings:delete(rec.id)
  self:_sync_ports(group, rec)
  if #group == 0 then self.groups[rec.group] = nil end
end

--- Remove label's bindings: all of them, or the one matching spec (proto,
-- prefix, ports as given to bind). Returns how many went.
function D:unbind(label, spec)
  self:_check()
  check_label("sk_dispatch:unbind", label, 2)
  local want
  if spec ~= nil then
    spec = check_options("sk_dispatch:unbind", spec, { proto = true, prefix = true, ports = true })
    want = {}
    if spec.proto then
      want.protocol = PROTO[spec.proto] or raise(2, "sk_dispatch:unbind: proto expects 'tcp' or 'udp', got %s", tostring(spec.proto))
    end
    if spec.prefix then want.bytes, want.plen = parse_prefix("sk_dispatch:unbind", spec.prefix, 2) end
    if spec.ports then want.lo, want.hi = parse_ports("sk_dispatch:unbind", spec.ports, 2) end
  end
  return self:_locked(function()
    local lid = self.label_ids[label]
    if not lid then return 0 end
    local gone = {}
    for _, b in pairs(self.recs) do
      if b.label_id == lid and (not want or ((not want.protocol or want.protocol == b.protocol) and
          (not want.bytes or (want.bytes == b.bytes and want.plen == b.plen)) and
          (not want.lo or (want.lo == b.lo and want.hi == b.hi)))) then
        gone[#gone + 1] = b
      end
    end
    for _, b in ipairs(gone) do self:_remove_rec(b) end
    self:_gc_label(lid)
    return #gone
  end)
end

--- Register a socket for label: an fd, anything with :fileno() (a luv
-- handle), or {pid = PID [, fd = FD]} for another process's (found by
-- walking its fds when fd is not given). It replaces the label's socket for
-- that family and protocol (a dual-stack IPv6 socket: for IPv4 too).
-- Returns the socket's description table, or nil, err, code.
function D:register(label, sock, o)
  self:_check()
  check_label("sk_dispatch:register", label, 2)
  o = check_options("sk_dispatch:register", o, { proto = true })
  if o.proto and not PROTO[o.proto] then
    raise(2, "sk_dispatch:register: proto expects 'tcp' or 'udp', got %s", tostring(o.proto))
  end
  local s, err, code
  local lid = self.label_ids[label]
  -- Which families the label's bindings need, to pick a socket that takes them.
  local need = { netns = self.netns_ino, proto = o.proto }
  for _, b in pairs(self.recs) do
    if b.label_id == lid then
      if b.v4 then need.v4 = true else need.v6 = true end
      need.proto = need.proto or PROTO_NAME[b.protocol]
    end
  end
  if type(sock) == "table" and not getmetatable(sock) then
    check_options("sk_dispatch:register", sock, { pid = true, fd = true })
    if type(sock.pid) ~= "number" then raise(2, "sk_dispatch:register: pid expects a number, got %s", type(sock.pid)) end
    if sock.fd ~= nil and type(sock.fd) ~= "number" then raise(2, "sk_dispatch:register: fd expects a number, got %s", type(sock.fd)) end
    need.fd = sock.fd
    s, err, code = M.find_socket(sock.pid, need)
    if not s then return nil, err, code end
  else
    local fd = sock
    if type(sock) ~= "number" then
      local ok, f = pcall(function() return sock:fileno() end)
      if not ok or type(f) ~= "number" then
        raise(2, "sk_dispatch:register: socket expects an fd, a handle with :fileno() or {pid=, fd=}, got %s", type(sock))
      end
      fd = f
    end
    s, err, code = M.inspect(fd)
    if not s then return nil, err, code end
    s.pid, s.comm = uv.os_getpid(), comm_of(uv.os_getpid())
    local ok
    ok, err, code = fit(s, "fd " .. fd, need)
    if not ok then return nil, err, code end
  end

  local res, rerr, rcode = self:_locked(function()
    local id, lerr, lcode = self:_label_id(label, true)
    if not id then return nil, lerr, lcode end
    local udp = s.proto == "udp"
    local v6 = s.family == "inet6"
    local slot = id * 4 + (v6 and 2 or 0) + (udp and 1 or 0)
    local ok, uerr, ucode = self.m.skd_sockets:update(slot, s.dupfd or s.fd)
    if not ok then return nil, ("sk_dispatch: label '%s': %s"):format(label, uerr), ucode end
    self.m.skd_dests:update(slot, {
      cookie = s.cookie or 0, pid = s.pid or 0, fd = s.fd, family = s.domain, protocol = s.protocol,
      port = s.port or 0, addr = addr.mapped(s.addr or "::"), comm = (s.comm or ""):sub(1, 15),
      registered = os.time(),
    })
    if v6 and not s.v6only then
      -- A dual-stack socket serves IPv4 too: an older IPv4 socket must not shadow it.
      local v4slot = id * 4 + (udp and 1 or 0)
      self.m.skd_sockets:delete(v4slot)
      self.m.skd_dests:delete(v4slot)
    end
    return true
  end)
  if s.dupfd then C.close(s.dupfd) end -- the sockmap holds the socket; the target owns it
  s.dupfd = nil
  if not res then return nil, rerr, rcode end
  s.label = label
  s.description = describe(s)
  return s
end

--- Remove label's sockets (its bindings stay and fail closed). Returns how many.
function D:unregister(label)
  self:_check()
  check_label("sk_dispatch:unregister", label, 2)
  return self:_locked(function()
    local id = self.label_ids[label]
    if not id then return 0 end
    local n = 0
    for slot = id * 4, id * 4 + 3 do
      if self.m.skd_dests:lookup(slot) then n = n + 1 end
      self.m.skd_sockets:delete(slot)
      self.m.skd_dests:delete(slot)
    end
    self:_gc_label(id)
    return n
  end)
end

--- Every binding: {id, label, proto, prefix, ports, port_lo, port_hi,
-- fallthrough, created, stats = {lookups, hits, misses, errors}}, by label then id.
function D:bindings()
  self:_check()
  self:_recover()
  local out = {}
  for _, rec in pairs(self.recs) do out[#out + 1] = binding_view(self, rec) end
  table.sort(out, function(a, b)
    if a.label ~= b.label then return a.label < b.label end
    return a.id < b.id
  end)
  return out
end

--- Every label's sockets: {label, proto, family, state = "ok"|"gone",
-- pid, fd, comm, addr, port, cookie, registered}, by label.
function D:sockets()
  self:_check()
  self:_recover()
  local out = {}
  for slot, d in self.m.skd_dests:pairs() do
    local label = self.lnames[math.floor(slot / 4)] or ("#" .. math.floor(slot / 4))
    local cookie = self.m.skd_sockets:lookup(slot)
    local alive = cookie ~= nil and (d.cookie == 0 or cookie == d.cookie)
    out[#out + 1] = {
      label = label, slot = slot, proto = PROTO_NAME[d.protocol] or d.protocol,
      family = d.family == AF_INET6 and "inet6" or "inet", state = alive and "ok" or "gone",
      pid = d.pid ~= 0 and d.pid or nil, fd = d.fd, comm = d.comm ~= "" and d.comm or nil,
      addr = addr.text(d.addr), port = d.port, cookie = d.cookie, registered = tonumber(d.registered),
    }
  end
  table.sort(out, function(a, b)
    if a.label ~= b.label then return a.label < b.label end
    return a.slot < b.slot
  end)
  return out
end

--- The labels by name: {id, bindings = n, sockets = n}.
function D:labels()
  self:_check()
  self:_recover()
  local out = {}
  for id, name in pairs(self.lnames) do out[name] = { id = id, bindings = 0, sockets = 0 } end
  for _, b in pairs(self.recs) do
    local l = out[self.lnames[b.label_id]]
    if l then l.bindings = l.bindings + 1 end
  end
  for _, s in ipairs(self:sockets()) do
    if out[s.label] then out[s.label].sockets = out[s.label].sockets + 1 end
  end
  return out
end

--- Where the dispatcher is pinned, and its link.
function D:info()
  self:_check()
  local li = self.link:info()
  return { dir = self.dir, netns = self.netns, netns_ino = self.netns_ino, link_id = li.id,
    prog_id = li.prog_id }
end

--- Drop this handle; dispatch stays (pinned) for the next run.
function D:close()
  if not self.m then return end
  for _, m in pairs(self.m) do pcall(m.close, m) end
  if self.link then self.link:close() end
  if self.obj then self.obj:close() end
  self.m, self.link, self.obj = nil, nil, nil
end

--- Detach the program and remove every pin: the namespace's lookups go back
-- to the kernel's own. The handle is closed.
function D:destroy()
  self:_check()
  local ok, err, code = self.link:detach()
  if not ok then return nil, err, code end
  self:close()
  rm_pins(self.dir)
  local parent = self.dir:match("^(.*)/[^/]+$")
  while parent and parent ~= "/sys/fs/bpf" and os.remove(parent) do
    parent = parent:match("^(.*)/[^/]+$")
  end
  return true
end

function D:__tostring()
  if not self.m then return "luabpf.sk_dispatch (closed)" end
  local n = 0
  for _ in pairs(self.recs) do n = n + 1 end
  return ("luabpf.sk_dispatch net:[%d] (%d bindings, pinned at %s)"):format(self.netns_ino, n, self.dir)
end

--- Remove the state of namespaces that are gone (their inode no longer has
-- a live link). Returns the directories removed.
function M.prune(o)
  o = check_options("sk_dispatch.prune", o, { pin_root = true })
  local root = o.pin_root or M.PIN_ROOT
  local gone = {}
  local dir = uv.fs_scandir(root)
  while dir do
    local name = uv.fs_scandir_next(dir)
    if not name then break end
    local d = root .. "/" .. name
    local link = uv.fs_stat(d .. "/link") and bpf.link_from_pin(d .. "/link")
    local live = link and link:info().netns_ino == tonumber(name)
    if link then link:close() end
    if not live then
      rm_pins(d)
      gone[#gone + 1] = d
    end
  end
  return gone
end

M.Dispatcher = D
M.parse_prefix = function(s) return parse_prefix("sk_dispatch", s, 2) end
M.parse_ports = function(p) return parse_ports("sk_dispatch", p, 2) end
return M
