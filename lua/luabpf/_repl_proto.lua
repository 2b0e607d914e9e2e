-- SPDX-License-Identifier: MIT
-- What `luabpf attach` and a service's control socket share: where sockets
-- live, the framing, and a blocking unix-socket client (FFI) for the attach
-- side and for telling a live socket from a stale one.
--
-- Framing: "TYPE LEN\n" then LEN bytes. TYPE is lowercase letters.
--   client -> service: hello (client info), eval (a chunk), complete (the
--                      line up to the cursor)
--   service -> client: hello ("luabpf VERSION name=N pid=P"), refused (why),
--                      start (the command's interrupt token), out (what it
--                      printed), value (its results, printed), error (message
--                      and traceback), more (unfinished input), matches
--                      (completions, one a line), bye (the service stops)
local ffi = require("ffi")
local sys = bpf._sys

ffi.cdef [[
struct lbpf_sockaddr_un { unsigned short sun_family; char sun_path[108]; };
int socket(int domain, int type, int protocol);
int connect(int fd, const void *addr, unsigned int len);
long read(int fd, void *buf, size_t n);
long write(int fd, const void *buf, size_t n);
int close(int fd);
unsigned int umask(unsigned int mask);
char *strerror(int err);
struct lbpf_timeval { long sec; long usec; };
]]
-- Declared by lb/_bgp.lua too: on its own, once.
pcall(ffi.cdef, "int setsockopt(int fd, int level, int name, const void *val, unsigned int len);")

local P = {}

P.MAX_FRAME = 16 * 1024 * 1024
P.ECONNREFUSED, P.ENOENT, P.EACCES, P.EINTR, P.EAGAIN = 111, 2, 13, 4, 11
local AF_UNIX, SOCK_STREAM, SOCK_CLOEXEC = 1, 1, 0x80000

--- The directory of control sockets: $LUABPF_RUN_DIR, /run/luabpf for root,
--- else $XDG_RUNTIME_DIR/luabpf or /tmp/luabpf-UID.
function P.run_dir()
  local d = os.getenv("LUABPF_RUN_DIR")
  if d and d ~= "" then return d end
  local _, _, euid = sys.ids()
  if euid == 0 then return "/run/luabpf" end
  local x = os.getenv("XDG_RUNTIME_DIR")
  if x and x ~= "" then return x .. "/luabpf" end
  return "/tmp/luabpf-" .. euid
end

--- The socket of service NAME (a path with a '/' is taken as it is).
function P.socket_path(name)
  if name:find("/", 1, true) then return name end
  return P.run_dir() .. "/" .. name .. ".sock"
end

--- Names of the services with a control socket in the run directory, sorted.
function P.services()
  local uv = require("luv")
  local names = {}
  local dir = uv.fs_scandir(P.run_dir())
  while dir do
    local n, kind = uv.fs_scandir_next(dir)
    if not n then break end
    if kind == "socket" and n:match("%.sock$") then names[#names + 1] = n:sub(1, -6) end
  end
  table.sort(names)
  return names
end

function P.frame(kind, payload)
  payload = payload or ""
  return kind .. " " .. #payload .. "\n" .. payload
end

--- A decoder: feed(data) returns a list of {kind, payload}, or nil and
--- why the stream is not the protocol (the connection should then close).
--- Linear in the bytes fed: a large payload is kept as the chunks it came in
--- and joined once, when it is complete (joining on every read made a 10 MB
--- frame cost seconds of the service's loop).
function P.decoder()
  local buf = ""               -- undecoded bytes while no payload is pending
  local kind, len, parts, have -- a frame whose payload is still arriving
  return function(data)
    local frames = {}
    if kind then
      parts[#parts + 1] = data
      have = have + #data
      if have < len then return frames end
      local all = table.concat(parts)
      frames[1] = { kind, all:sub(1, len) }
      buf, kind, parts = all:sub(len + 1), nil, nil
    else
      buf = buf .. data -- small: a partial header, or what one read brought
    end
    local pos = 1
    while true do
      local nl = buf:find("\n", pos, true)
      if not nl then
        if #buf - pos + 1 > 64 then return nil, "a frame header longer than 64 bytes" end
        buf = buf:sub(pos)
        return frames
      end
      local k, n = buf:sub(pos, nl - 1):match("^(%l+) (%d+)$")
      n = tonumber(n)
      if not k or #k > 16 then
        return nil, "not a frame header: " .. ("%q"):format(buf:sub(pos, math.min(nl - 1, pos + 39)))
      end
      if n > P.MAX_FRAME then return nil, ("a frame of %d bytes (at most %d)"):format(n, P.MAX_FRAME) end
      if #buf - nl < n then -- the payload goes on in later reads
        kind, len, parts = k, n, { buf:sub(nl + 1) }
        have, buf = #parts[1], ""
        return frames
      end
      frames[#frames + 1] = { k, buf:sub(nl + 1, nl + n) }
      pos = nl + n + 1
    end
  end
end

local function strerror(e)
  return ffi.string(ffi.C.strerror(e))
end
P.strerror = strerror

--- Connect to a unix socket, blocking. Returns a connection, or nil, message, errno.
function P.connect(path)
  if #path >= 108 then return nil, "socket path too long: " .. path, 36 end
  local fd = ffi.C.socket(AF_UNIX, SOCK_STREAM + SOCK_CLOEXEC, 0)
  if fd < 0 then local e = ffi.errno() return nil, strerror(e), e end
  local sa = ffi.new("struct lbpf_sockaddr_un")
  sa.sun_family = AF_UNIX
  ffi.copy(sa.sun_path, path)
  if ffi.C.connect(fd, sa, ffi.sizeof(sa)) < 0 then
    local e = ffi.errno()
    ffi.C.close(fd)
    return nil, strerror(e), e
  end
  local c = { fd = fd, decode = P.decoder(), queue = {} }
  return setmetatable(c, { __index = P.conn })
end

P.conn = {}

--- Give up a read (recv) or a write (send) after SECONDS without progress:
--- recv then returns nil, "no answer in N s". Without it they wait forever.
function P.conn:timeout(seconds)
  local tv = ffi.new("struct lbpf_timeval", math.floor(seconds), math.floor((seconds % 1) * 1e6))
  ffi.C.setsockopt(self.fd, 1, 20, tv, ffi.sizeof(tv)) -- SOL_SOCKET, SO_RCVTIMEO
  ffi.C.setsockopt(self.fd, 1, 21, tv, ffi.sizeof(tv)) -- SO_SNDTIMEO
  self.limit = seconds
end

function P.conn:send(kind, payload)
  local data = P.frame(kind, payload)
  local off = 0
  while off < #data do
    local n = ffi.C.write(self.fd, ffi.cast("const char *", data) + off, #data - off)
    if n < 0 then
      local e = ffi.errno()
      if e ~= P.EINTR then return nil, strerror(e), e end
    else
      off = off + n
    end
  end
  return true
end

--- The next frame: kind, payload; nil, message at the end of the stream.
--- on_eintr() is called when a signal (Ctrl-C) interrupts the wait.
function P.conn:recv(on_eintr)
  local buf = ffi.new("char[65536]")
  while #self.queue == 0 do
    local n = ffi.C.read(self.fd, buf, 65536)
    if n < 0 then
      local e = ffi.errno()
      if e == P.EINTR then
        if on_eintr then
          local stop = on_eintr()
          if stop then return nil, stop end
        end
      elseif e == P.EAGAIN and self.limit then
        return nil, ("no answer in %g s"):format(self.limit)
      else
        return nil, strerror(e)
      end
    elseif n == 0 then
      return nil, "the service closed the connection"
    else
      local frames, err = self.decode(ffi.string(buf, n))
      if not frames then return nil, "protocol error: " .. err end
      for _, f in ipairs(frames) do self.queue[#self.queue + 1] = f end
    end
  end
  local f = table.remove(self.queue, 1)
  return f[1], f[2]
end

function P.conn:close()
  if self.fd >= 0 then ffi.C.close(self.fd) end
  self.fd = -1
end

--- umask(mask); returns the old one.
function P.umask(mask)
  return ffi.C.umask(mask)
end

return P
