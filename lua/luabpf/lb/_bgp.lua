-- SPDX-License-Identifier: MIT
-- Scale-out: this node announces its VIPs by BGP through BIRD 2, which stays
-- an external daemon. The config names a BIRD protocol (a `static` one that
-- holds the VIP routes, exported to the BGP sessions, declared `disabled`):
-- `enable PROTO` announces, `disable PROTO` withdraws. Commands go over
-- BIRD's control socket (what birdc speaks), from the loop, never blocking
-- it; BIRD's failures are logged, never fatal to the data plane.
--
--   bgp = { socket = "/run/bird/bird.ctl", protocol = "vip_web" }
--   bgp = { protocol = { http = "vip_http", dns = "vip_dns" } }  -- one per VIP
--
-- A protocol is announced while the node can serve every VIP it covers: the
-- program attached (XDP, or tc for conntrack), the VIP in the pool with
-- quorum and some weight, and the node not drained by the operator
-- (`luabpf lb drain-node`, kept across restarts). It is withdrawn when one of those goes, and
-- before --destroy (synchronously, then `withdraw_wait` seconds pass before
-- the program is detached, for the routers to move the flows). A stop that
-- leaves the program pinned keeps announcing: it still serves. The desired
-- state is re-sent every `interval` seconds, so a restarted BIRD (its
-- protocol `disabled` again) is brought back in step. docs/scale-out.md.
-- Private to lua/luabpf/lb/: init.lua starts it when lb.new gets `bgp`.
local uv = require("luv")
local ffi = require("ffi")

local M = {}

M.DEFAULTS = { socket = "/run/bird/bird.ctl", interval = 5, timeout = 2, withdraw_wait = 1 }
local KEYS = { socket = true, protocol = true, interval = true, timeout = true, withdraw_wait = true,
  drained = true }
local TICK_MS = 100 -- how often the conditions are read (Lua table reads, no syscall)

--- Check a `bgp` config table: the normalized copy, or nil and a message
-- that names the field and how to fix it (what `luabpf check` reports).
function M.check(o)
  if type(o) ~= "table" then
    return nil, ("bgp must be a table such as { protocol = \"vip_web\" }, got %s"):format(type(o))
  end
  for k in pairs(o) do
    if not KEYS[k] then
      return nil, ("bgp: unknown setting '%s' (settings: socket, protocol, interval, timeout, withdraw_wait, drained)")
        :format(tostring(k))
    end
  end
  local n = {}
  for k, v in pairs(M.DEFAULTS) do n[k] = v end
  if o.socket ~= nil then
    if type(o.socket) ~= "string" or o.socket == "" or #o.socket > 107 then
      return nil, ("bgp: socket must be the path of BIRD's control socket (bird -s PATH, at most 107 bytes), got %s")
        :format(tostring(o.socket))
    end
    n.socket = o.socket
  end
  local function pname(p)
    return type(p) == "string" and p:match("^[%a_][%w_]*$") ~= nil
  end
  if pname(o.protocol) then
    n.protocol = o.protocol
  elseif type(o.protocol) == "table" and next(o.protocol) ~= nil then
    n.protocol = {}
    for vip, p in pairs(o.protocol) do
      if type(vip) ~= "string" or not pname(p) then
        return nil, ("bgp: protocol['%s'] must be a BIRD protocol name (letters, digits, '_'), got %s")
          :format(tostring(vip), tostring(p))
      end
      n.protocol[vip] = p
    end
  else
    return nil, ("bgp: protocol must name the BIRD protocol that holds the VIP routes (e.g. \"vip_web\"), "
      .. "or map VIP names to protocols, got %s"):format(tostring(o.protocol))
  end
  for _, k in ipairs({ "interval", "timeout", "withdraw_wait" }) do
    local v = o[k]
    if v ~= nil then
      if type(v) ~= "number" or v ~= v or v < 0 or v > 3600 or (k ~= "withdraw_wait" and v < 0.1) then
        return nil, ("bgp: %s must be a number of seconds (%s to 3600), got %s"):format(k,
          k == "withdraw_wait" and "0" or "0.1", tostring(v))
      end
      n[k] = v
    end
  end
  if o.drained ~= nil and type(o.drained) ~= "boolean" then
    return nil, ("bgp: drained must be true or false, got %s"):format(tostring(o.drained))
  end
  n.drained = o.drained == true
  return n
end

-- One BIRD reply: "CODE-text" lines go on, "CODE text" ends it; lines that
-- start with a space continue the last. Returns the code and text of the end,
-- and the first continuation's text (what enable/disable say), or nil.
local function final(buf)
  local first
  for line in buf:gmatch("([^\n]*)\n") do
    local code, sep, text = line:match("^(%d%d%d%d)([ -])(.*)$")
    if code and code ~= "0001" then
      if sep == " " then return tonumber(code), text, first end
      first = first or text
    end
  end
end
M._final = final -- for tests

-- What a reply means: "ok" (done or already so), or "error" and its text.
-- 0008 already disabled, 0009 disabled, 0010 already enabled, 0011 enabled,
-- 8xxx runtime errors, 9xxx syntax (an unknown protocol is a syntax error).
local function meaning(code, text, first)
  if code and code < 8000 then return "ok", first or text end
  return "error", ("%s%s"):format(code and (code .. " ") or "", first or text or "no reply")
end

local Bgp = {}
Bgp.__index = Bgp

--- Announce/withdraw svc's VIPs as o (M.check's result) says. Never raises
-- on BIRD's account: it logs.
function M.new(svc, o)
  local self = setmetatable({ svc = svc, o = o, drained = o.drained, want = {}, sent = {}, said = {},
    busy = false, queue = {} }, Bgp)
  -- An operator's drain outlives a restart (an upgrade must not re-announce
  -- a node taken out for maintenance): a file in the run directory, which a
  -- reboot empties.
  self.mark = require("luabpf._repl_proto").run_dir() .. "/" .. svc.name .. ".drained"
  if uv.fs_stat(self.mark) then
    self.drained = true
    bpf.log("warn", ("service '%s': BGP: starts drained (%s exists: luabpf lb enable-node %s announces it)")
      :format(svc.name, self.mark, svc.name))
  end
  if not svc.pinned then
    -- A crash detaches an unpinned program, and nothing withdraws the VIP.
    bpf.log("warn", ("service '%s': BGP with pin = false: if this process dies, its program goes and BIRD "
      .. "keeps announcing the VIP to a node that drops it. HINT: keep pin (the default)"):format(svc.name))
  end
  self.timer = uv.new_timer()
  uv.unref(self.timer)
  self.next_assert = 0
  self.timer:start(0, TICK_MS, function() self:tick() end)
  return self
end

-- The protocols and the VIP names each covers.
function Bgp:protocols()
  local p, out = self.o.protocol, {}
  if type(p) == "string" then
    local all = {}
    for name in pairs(self.svc.vips) do all[#all + 1] = name end
    table.sort(all)
    out[p] = all
  else
    for vip, proto in pairs(p) do
      out[proto] = out[proto] or {}
      table.insert(out[proto], vip)
    end
    for _, l in pairs(out) do table.sort(l) end
  end
  return out
end

-- Whether the node can serve this protocol's VIPs, and why not.
function Bgp:serving(vips)
  local svc = self.svc
  if not svc.obj then return false, "the service is closed" end
  if self.destroying then return false, "the service is being destroyed" end
  if not svc.link then return false, "the program is not attached" end
  if self.drained then
    return false, ("the node is drained (luabpf lb enable-node %s announces it again)"):format(svc.name)
  end
  if #vips == 0 then return false, "no VIP of the config is covered" end
  for _, name in ipairs(vips) do
    local v = svc.vips[name]
    if not v then return false, ("VIP '%s' is not in the pool"):format(name) end
    if v.quorum_ok == false then return false, ("VIP '%s' lost quorum"):format(name) end
    if (v.live_weight or 0) <= 0 then return false, ("VIP '%s' has no backend with weight"):format(name) end
  end
  return true
end

function Bgp:tick()
  if self.closed then return end
  local now = uv.now()
  local reassert = now >= self.next_assert
  if reassert then self.next_assert = now + self.o.interval * 1000 end
  for proto, vips in pairs(self:protocols()) do
    local ok, why = self:serving(vips)
    local cmd = ok and "enable" or "disable"
    if self.want[proto] ~= cmd then
      self.want[proto] = cmd
      self.why = self.why or {}
      self.why[proto] = why
      self.changed_at = self.changed_at or {}
      self.changed_at[proto] = now
      bpf.log(ok and "info" or "warn", ("service '%s': BGP: %s BIRD protocol '%s' (VIPs %s)%s"):format(self.svc.name,
        ok and "announcing" or "withdrawing", proto, table.concat(vips, ", "), ok and "" or ": " .. why))
      self:send(proto, cmd, true)
    elseif reassert then
      self:send(proto, cmd, false)
    end
  end
end

-- Queue one command (a newer one for the same protocol replaces it).
function Bgp:send(proto, cmd, fresh)
  for _, q in ipairs(self.queue) do
    if q.proto == proto then
      q.cmd, q.fresh = cmd, q.fresh or fresh
      return
    end
  end
  self.queue[#self.queue + 1] = { proto = proto, cmd = cmd, fresh = fresh }
  self:pump()
end

function Bgp:pump()
  if self.busy or self.closed or #self.queue == 0 then return end
  local q = table.remove(self.queue, 1)
  self.busy = true
  self:request(q.cmd .. " " .. q.proto, function(code, text, first)
    self.busy = false
    self:result(q, code, text, first)
    self:pump()
  end)
end

-- Log a result once per change of what BIRD says (not every re-assertion).
function Bgp:result(q, code, text, first)
  local proto, cmd = q.proto, q.cmd
  local kind, msg = meaning(code, text, first)
  local key = kind .. "|" .. (kind == "ok" and cmd or msg)
  if kind == "ok" then
    self.sent[proto] = { cmd = cmd, at = uv.now(), reply = msg }
    if not q.fresh and self.said[proto] == key and not msg:find("already", 1, true) then
      -- A re-assertion that changed something: BIRD restarted, or a hand changed it.
      bpf.log("warn", ("service '%s': BGP: BIRD protocol '%s' was out of step: %s again (%s)")
        :format(self.svc.name, proto, cmd == "enable" and "announced" or "withdrawn", msg))
    end
  else
    self.sent[proto] = nil
    if self.said[proto] ~= key then
      local hint = msg:find("syntax error", 1, true) and
        ("HINT: declare `protocol static %s { disabled; ... }` in BIRD's config, or fix bgp.protocol"):format(proto)
        or ("HINT: is BIRD running with `-s %s`? (the data plane goes on serving)"):format(self.o.socket)
      bpf.log("error", ("service '%s': BGP: can't %s BIRD protocol '%s' over %s: %s\n%s"):format(self.svc.name,
        cmd, proto, self.o.socket, msg, hint))
    end
  end
  if kind == "ok" and self.said[proto] and self.said[proto]:sub(1, 6) == "error|" then
    bpf.log("info", ("service '%s': BGP: BIRD answers again: protocol '%s' %s"):format(self.svc.name, proto, msg))
  end
  self.said[proto] = key
end

-- One command over a fresh connection to the control socket; cb(code, text,
-- first) or cb(nil, error message). Bounded by o.timeout.
function Bgp:request(line, cb)
  local pipe = uv.new_pipe(false)
  local timer = uv.new_timer()
  local buf, done, greeted = "", false, false
  local function finish(code, text, first)
    if done then return end
    done = true
    if not timer:is_closing() then timer:close() end
    if not pipe:is_closing() then pipe:close() end
    cb(code, text, first)
  end
  timer:start(math.floor(self.o.timeout * 1000), 0, function()
    finish(nil, ("no answer within %g s"):format(self.o.timeout))
  end)
  pipe:connect(self.o.socket, function(err)
    if err then return finish(nil, "connect: " .. err) end
    pipe:read_start(function(rerr, data)
      if rerr then return finish(nil, "read: " .. rerr) end
      if not data then return finish(nil, "BIRD closed the connection") end
      buf = buf .. data
      if not greeted then
        if not buf:find("\n", 1, true) then return end
        greeted = true
        pipe:write(line .. "\n")
      end
      local code, text, first = final(buf)
      if code then finish(code, text, first) end
    end)
  end)
end

-- The blocking form, for shutdown (the loop won't run again): a plain
-- socket with a receive/send timeout. Returns code, text, first or nil, err.
for _, decl in ipairs({ -- declared elsewhere too (_repl_proto.lua): each on its own, once
  "int socket(int domain, int type, int protocol);",
  "int connect(int fd, const void *addr, unsigned int len);",
  "int setsockopt(int fd, int level, int name, const void *val, unsigned int len);",
  "long read(int fd, void *buf, size_t n);",
  "long write(int fd, const void *buf, size_t n);",
  "int close(int fd);",
  "struct luabpf_bgp_sun { unsigned short family; char path[108]; };",
  "struct luabpf_bgp_tv { long sec; long usec; };",
}) do pcall(ffi.cdef, decl) end
local function request_sync(path, line, timeout)
  local fd = ffi.C.socket(1, 1, 0) -- AF_UNIX, SOCK_STREAM
  if fd < 0 then return nil, "socket: " .. ffi.errno() end
  local tv = ffi.new("struct luabpf_bgp_tv", math.floor(timeout), math.floor((timeout % 1) * 1e6))
  ffi.C.setsockopt(fd, 1, 20, tv, ffi.sizeof(tv)) -- SOL_SOCKET, SO_RCVTIMEO
  ffi.C.setsockopt(fd, 1, 21, tv, ffi.sizeof(tv)) -- SO_SNDTIMEO
  local sa = ffi.new("struct luabpf_bgp_sun")
  sa.family = 1
  ffi.copy(sa.path, path)
  if ffi.C.connect(fd, sa, ffi.sizeof(sa)) ~= 0 then
    local e = ffi.errno()
    ffi.C.close(fd)
    return nil, ("connect: errno %d"):format(e)
  end
  local buf, chunk, sent = "", ffi.new("char[4096]"), false
  local deadline = uv.hrtime() + timeout * 1e9
  while uv.hrtime() < deadline do
    local n = ffi.C.read(fd, chunk, 4096)
    if n <= 0 then break end
    buf = buf .. ffi.string(chunk, n)
    if not sent and buf:find("\n", 1, true) then
      sent = true
      ffi.C.write(fd, line .. "\n", #line + 1)
    end
    local code, text, first = final(buf)
    if code then
      ffi.C.close(fd)
      return code, text, first
    end
  end
  ffi.C.close(fd)
  return nil, ("no answer within %g s"):format(timeout)
end

--- Withdraw every protocol now, blocking (before --destroy detaches the
-- program), then wait withdraw_wait seconds for the routers to move flows.
function Bgp:withdraw_now(why)
  self.destroying = true
  local any = false
  for proto in pairs(self:protocols()) do
    local code, text, first = request_sync(self.o.socket, "disable " .. proto, self.o.timeout)
    local kind, msg = meaning(code, text, first)
    if kind == "ok" then
      any = any or not msg:find("already", 1, true)
      bpf.log("info", ("service '%s': BGP: withdrew BIRD protocol '%s' (%s)"):format(self.svc.name, proto, why))
    else
      bpf.log("error", ("service '%s': BGP: can't withdraw BIRD protocol '%s' over %s: %s"):format(self.svc.name,
        proto, self.o.socket, msg))
    end
  end
  if any and self.o.withdraw_wait > 0 then uv.sleep(math.floor(self.o.withdraw_wait * 1000)) end
end

--- The operator's drain: withdraw (the program keeps serving what still
-- arrives) until enable-node, across restarts. Returns whether it changed.
function Bgp:drain(on)
  if self.drained == on then return false end
  self.drained = on
  if on then
    local f, err = io.open(self.mark, "w")
    if f then
      f:write(("drained by luabpf lb drain-node at %s\n"):format(os.date("!%Y-%m-%dT%H:%M:%SZ")))
      f:close()
    else
      bpf.log("warn", ("service '%s': BGP: can't keep the drain across a restart: %s"):format(self.svc.name, err))
    end
  else
    os.remove(self.mark)
  end
  self:tick()
  return true
end

--- For show/stats: { protocol = { state = "announced"|"withdrawn"|"unknown",
-- want = "enable"|"disable", why = ..., reply = ..., since_ms = ... } }.
function Bgp:status()
  local out = {}
  for proto, vips in pairs(self:protocols()) do
    local s, want = self.sent[proto], self.want[proto]
    local state = "unknown"
    if s and s.cmd == want then state = want == "enable" and "announced" or "withdrawn" end
    out[proto] = { vips = vips, state = state, want = want, why = self.why and self.why[proto],
      error = not s and self.said[proto] and self.said[proto]:match("^error|(.*)") or nil,
      socket = self.o.socket, drained = self.drained }
  end
  return out
end

--- Stop driving BIRD. withdraw: withdraw first, and forget a drain (--destroy,
-- an unpinned close).
function Bgp:close(withdraw, why)
  if self.closed then return end
  if withdraw then
    self:withdraw_now(why or "the service stops and detaches")
    os.remove(self.mark) -- its state goes: a fresh start is not drained
  end
  self.closed = true
  if not self.timer:is_closing() then self.timer:close() end
end

return M
