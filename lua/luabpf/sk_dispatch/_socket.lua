-- SPDX-License-Identifier: MIT
-- Sockets: what an fd is, another process's fds (pidfd_getfd), which socket
-- fits a label; and the dispatcher's socket side (register, unregister,
-- sockets), which init.lua puts on the Dispatcher. Part of luabpf.sk_dispatch.
local ffi = require("ffi")
local uv = require("luv")
local addr = require("luabpf._addr")
local K = require("luabpf.sk_dispatch._sys")
local text = require("luabpf.sk_dispatch._text")

local C = K.C
local PROTO, PROTO_NAME, AF_UNIX, AF_INET, AF_INET6 = K.PROTO, K.PROTO_NAME, K.AF_UNIX, K.AF_INET, K.AF_INET6
local SYS_pidfd_open, SYS_pidfd_getfd = K.SYS_pidfd_open, K.SYS_pidfd_getfd
local SOL_SOCKET, SO_ACCEPTCONN, SO_PROTOCOL, SO_DOMAIN, SO_COOKIE = K.SOL_SOCKET, K.SO_ACCEPTCONN, K.SO_PROTOCOL,
  K.SO_DOMAIN, K.SO_COOKIE
local IPPROTO_IPV6, IPV6_V6ONLY, SIOCGSKNS = K.IPPROTO_IPV6, K.IPV6_V6ONLY, K.SIOCGSKNS
local O_RDONLY, O_DIRECTORY, O_CLOEXEC = K.O_RDONLY, K.O_DIRECTORY, K.O_CLOEXEC
local ntop_buf = K.ntop_buf
local fail_errno, refuse, raise, check_options = K.fail_errno, K.refuse, K.raise, K.check_options
local check_label = text.check_label

local S = {}


local sa_buf = ffi.new("uint8_t[128]")
local sa_len = ffi.new("unsigned int[1]")
local int_buf = ffi.new("int[1]")
local u64_buf = ffi.new("uint64_t[1]")

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
function S.inspect(fd)
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
S.describe = describe

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

local read_file = require("luabpf._util").read_file

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
function S.find_socket(pid, o)
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
    local s, ierr, icode = S.inspect(dup)
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



--- Register a socket for label: an fd, anything with :fileno() (a luv
-- handle), or {pid = PID [, fd = FD]} for another process's (found by
-- walking its fds when fd is not given). It replaces the label's socket for
-- that family and protocol (a dual-stack IPv6 socket: for IPv4 too).
-- Returns the socket's description table, or nil, err, code.
function S.register(self, label, sock, o)
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
    s, err, code = S.find_socket(sock.pid, need)
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
    s, err, code = S.inspect(fd)
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
function S.unregister(self, label)
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

--- Every label's sockets: {label, proto, family, state = "ok"|"gone",
-- pid, fd, comm, addr, port, cookie, registered}, by label.
function S.sockets(self)
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
  return require("luabpf._util").sort_by(out, "label", "slot")
end

return S
