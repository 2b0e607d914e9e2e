-- SPDX-License-Identifier: MIT
-- Validation of declarations, separate from change: a VIP or backend
-- declaration with an error anywhere raises (at the caller's level) before
-- anything is written. Part of luabpf.lb (init.lua).
local addr = require("luabpf._addr")
local health = require("luabpf.health")
local C = require("luabpf.lb._common")

local Service = C.Service
local MODES, PROTOS = C.MODES, C.PROTOS
local check_opts = C.check_opts

local V = {}

local function sh(cmd)
  local p = io.popen(cmd .. " 2>/dev/null")
  local out = p:read("*a")
  p:close()
  return out
end

-- The first address of the interface in the family of addr_text.
local function iface_addr(iface, v6)
  local out = sh(("ip -o -%d addr show dev %s scope global"):format(v6 and 6 or 4, iface))
  return out:match(v6 and "inet6 ([%x:]+)/" or "inet ([%d%.]+)/")
end

local function parse_port(what, p, level)
  if type(p) ~= "number" or p < 1 or p > 65535 or p % 1 ~= 0 then
    error(("%s: port must be 1-65535, got %s"):format(what, tostring(p)), level + 1)
  end
  return p
end

-- Validation is separate from change: a declaration with an error anywhere
-- changes nothing. These return normalized records or raise at `level`.
local function norm_backend(v, o, level)
  check_opts("backend", o, { name = true, addr = true, port = true, weight = true, check = true, sorry = true })
  local a = addr.check("backend addr", o.addr, level + 1)
  if v.mode >= MODES.ipip and v.snat then
    -- A tunnel's outer header is in the backends' family (its source's, snat):
    -- one family a VIP.
    local v4 = addr.is_v4(v.snat)
    if addr.is_v4(a) ~= v4 then
      error(("VIP '%s' (mode %s) sends its tunnels over %s: backend %s must be %s too%s"):format(v.name,
        C.MODE_NAMES[v.mode], v4 and "IPv4" or "IPv6", a, v4 and "IPv4" or "IPv6",
        addr.is_v4(v.addr) and "" or " (IPv6 inside IPv4 is not offered)"), level + 1)
    end
  elseif addr.is_v4(a) ~= addr.is_v4(v.addr) then
    error(("backend %s and VIP %s must be the same address family"):format(a, v.addr), level + 1)
  end
  local port = o.port and parse_port("backend " .. a, o.port, level + 1) or v.port
  local weight = o.weight or 1
  if type(weight) ~= "number" or weight < 0 then
    error(("backend %s: weight must be a number >= 0, got %s"):format(a, tostring(weight)), level + 1)
  end
  local name = o.name or ("%s:%d"):format(a, port)
  if v.mode ~= MODES.nat and port ~= v.port then
    error(("vip '%s': backend '%s': port %d is not the VIP's port %d, and %s can't change it (%s): leave the "
      .. "port out, or use mode = 'nat'"):format(v.name, name, port, v.port, C.MODE_NAMES[v.mode]:upper(),
      v.mode == MODES.dsr and "it rewrites only MACs" or "the client's packet goes in the tunnel unchanged"),
      level + 1)
  end
  -- The VIP's check, with the backend's own settings over it; the target
  -- defaults to the backend's address and port. check = false: never checked.
  local chk
  if o.check ~= false and (v.check or o.check) then
    if o.check ~= nil and type(o.check) ~= "table" then
      error(("backend '%s': check must be a table or false, got %s"):format(name, type(o.check)), level + 1)
    end
    chk = {}
    for k, x in pairs(v.check or {}) do chk[k] = x end
    for k, x in pairs(o.check or {}) do chk[k] = x end
    if chk.addr == nil then chk.addr = a end
    if chk.port == nil then chk.port = port end
    health.normalize(chk, ("VIP '%s' backend '%s': check"):format(v.name, name), level + 1)
  end
  return { name = name, addr = a, port = port, weight = weight, check = chk, sorry = o.sorry }
end

function Service:_norm_vip(o, level)
  check_opts("vip", o, { name = true, addr = true, port = true, proto = true, mode = true,
    snat = true, encap_src = true, gue_port = true, backends = true, check = true, down_flows = true, quorum = true, hysteresis = true,
    no_quorum = true, sorry = true })
  local a = addr.check("vip addr", o.addr, level + 1)
  local port = parse_port("vip " .. a, o.port, level + 1)
  local proto = PROTOS[o.proto or "tcp"]
  if not proto then error(("vip %s: proto must be tcp or udp, got %s"):format(a, tostring(o.proto)), level + 1) end
  local mode = MODES[o.mode or "nat"]
  if not mode then
    error(("vip %s: mode must be nat, dsr, ipip or gue, got %s"):format(a, tostring(o.mode)), level + 1)
  end
  if mode ~= MODES.nat and self.ct then
    error(("vip %s: mode '%s' needs flow_table = 'lru' (conntrack translates addresses; %s)")
      :format(a, o.mode, mode == MODES.dsr and "DSR rewrites only MACs" or "a tunnel leaves the packet as it is"),
      level + 1)
  end
  local n = { name = o.name or ("%s:%d/%s"):format(a, port, o.proto or "tcp"), addr = a, port = port,
    proto = proto, mode = mode, backends = {} }
  local function bad(fmt, ...) error(("vip '%s': " .. fmt):format(n.name, ...), level + 1) end
  if mode >= MODES.ipip then
    -- The outer source: encap_src, or the interface's address in the
    -- backends' family (the first backend's, else the VIP's).
    local v4 = addr.is_v4(a)
    if o.encap_src then
      n.snat = addr.check("vip encap_src", o.encap_src, level + 1)
      v4 = addr.is_v4(n.snat)
    else
      local first = type(o.backends) == "table" and type(o.backends[1]) == "table" and o.backends[1].addr
      local ok, fa = pcall(addr.check, "backend addr", first, 1)
      if ok and fa then v4 = addr.is_v4(fa) end
    end
    if v4 and not addr.is_v4(a) then
      bad("mode %s: an IPv6 VIP's tunnels go over IPv6 (IPv6 inside IPv4 is not offered), not %s", o.mode,
        tostring(n.snat or o.backends[1].addr))
    end
    if not n.snat then
      local src = self.interface and iface_addr(self.interface, not v4)
      if not src then
        bad("mode %s: '%s' has no %s address for the tunnels' source: give encap_src = ADDRESS", o.mode,
          tostring(self.interface), v4 and "IPv4" or "IPv6")
      end
      n.snat = addr.check("vip encap_src", src, level + 1)
    end
    if mode == MODES.gue then
      n.gue_port = o.gue_port and parse_port(("vip '%s' gue_port"):format(n.name), o.gue_port, level + 1)
        or C.GUE_PORT
    elseif o.gue_port then
      bad("gue_port is for mode 'gue', not '%s'", o.mode)
    end
  elseif o.encap_src or o.gue_port then
    bad("%s is for modes 'ipip' and 'gue', not '%s'", o.encap_src and "encap_src" or "gue_port", o.mode or "nat")
  end
  if o.check ~= nil and type(o.check) ~= "table" then bad("check must be a table, got %s", type(o.check)) end
  n.check = o.check
  if o.check then
    -- Checked on its own too: a VIP with no backends yet still gets a valid check.
    local probe = { addr = a, port = port }
    for k, x in pairs(o.check) do probe[k] = x end
    health.normalize(probe, ("vip '%s': check"):format(n.name), level + 1)
  end
  n.down_flows = o.down_flows or "keep"
  if n.down_flows ~= "keep" and n.down_flows ~= "flush" then
    bad("down_flows must be keep or flush, got %s", tostring(o.down_flows))
  end
  n.quorum, n.hysteresis = o.quorum or 1, o.hysteresis or 0
  if type(n.quorum) ~= "number" or n.quorum < 0 then bad("quorum must be a weight >= 0, got %s", tostring(o.quorum)) end
  if type(n.hysteresis) ~= "number" or n.hysteresis < 0 then
    bad("hysteresis must be a weight >= 0, got %s", tostring(o.hysteresis))
  end
  n.no_quorum = o.no_quorum or (o.sorry and "sorry" or "keep")
  if n.no_quorum ~= "keep" and n.no_quorum ~= "drop" and n.no_quorum ~= "sorry" then
    bad("no_quorum must be keep, drop or sorry, got %s", tostring(o.no_quorum))
  end
  if n.no_quorum == "sorry" and type(o.sorry) ~= "table" then
    bad("no_quorum = 'sorry' needs sorry = { addr = ..., port = ... }")
  end
  if mode == MODES.nat then
    local snat = o.snat or (self.interface and iface_addr(self.interface, not addr.is_v4(a)))
    if not snat then
      error(("vip '%s' is in NAT mode and '%s' has no %s address: give snat = ADDRESS")
        :format(n.name, tostring(self.interface), addr.is_v4(a) and "IPv4" or "IPv6"), level + 1)
    end
    n.snat = addr.check("vip snat", snat, level + 1)
    if addr.is_v4(n.snat) ~= addr.is_v4(a) then
      error(("vip '%s': snat %s and VIP %s must be the same address family"):format(n.name, n.snat, a), level + 1)
    end
  end
  local seen = {}
  for _, bo in ipairs(o.backends or {}) do
    local b = norm_backend(n, bo, level + 1)
    local where = b.addr .. ":" .. b.port
    if seen[b.name] or seen[where] then
      error(("vip '%s': backend '%s' (%s) is declared twice"):format(n.name, b.name, where), level + 1)
    end
    seen[b.name], seen[where] = true, true
    n.backends[#n.backends + 1] = b
  end
  if o.sorry then
    -- keepalived's sorry_server: in the table only while quorum is lost.
    local so = {}
    for k, x in pairs(o.sorry) do so[k] = x end
    so.name, so.check = so.name or "sorry", false
    local b = norm_backend(n, so, level + 1)
    local where = b.addr .. ":" .. b.port
    if seen[b.name] or seen[where] then
      error(("vip '%s': the sorry backend '%s' (%s) is also a backend"):format(n.name, b.name, where), level + 1)
    end
    b.sorry = true
    n.backends[#n.backends + 1] = b
  end
  return n
end

V.norm_backend = norm_backend
return V
