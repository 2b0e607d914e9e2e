-- SPDX-License-Identifier: MIT
-- The sk_lookup socket dispatcher (docs/sk_lookup.md): bind labels to
-- (protocol, prefix, port or range), give each label a socket (our own, or a
-- running process's taken with pidfd_getfd), and the kernel hands every
-- matching connection or datagram to that socket. The program, its link and
-- its maps are pinned per network namespace, so dispatch outlives luabpf and
-- the next run picks it up; destroy() removes it.
--
-- Split where a reader looks (README.md): this file is the dispatcher of a
-- namespace and its bindings; _socket.lua the sockets, _text.lua the text
-- forms, _sys.lua the numbers, FFI calls and failure helpers.
local bit = require("bit")
local uv = require("luv")
local addr = require("luabpf._addr")
local util = require("luabpf._util")
local K = require("luabpf.sk_dispatch._sys")
local text = require("luabpf.sk_dispatch._text")
local sock = require("luabpf.sk_dispatch._socket")

local M = {}
M.PIN_ROOT = "/sys/fs/bpf/luabpf/sk_dispatch"

local C, MAPS, PROTO, PROTO_NAME = K.C, K.MAPS, K.PROTO, K.PROTO_NAME
local KEY_ADDR_BIT, F_FALLTHROUGH, MAX_LABELS = K.KEY_ADDR_BIT, K.F_FALLTHROUGH, K.MAX_LABELS
local O_RDONLY, O_DIRECTORY, O_CLOEXEC, LOCK_EX, LOCK_UN = K.O_RDONLY, K.O_DIRECTORY, K.O_CLOEXEC, K.LOCK_EX,
  K.LOCK_UN
local refuse, raise, check_options = K.refuse, K.raise, K.check_options
local btext, parse_prefix, prefix_text = text.btext, text.parse_prefix, text.prefix_text
local parse_ports, ports_text, check_label = text.parse_ports, text.ports_text, text.check_label

M.inspect, M.describe, M.find_socket = sock.inspect, sock.describe, sock.find_socket

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
    util.mkdir_p(dir)
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
--- Every binding: {id, label, proto, prefix, ports, port_lo, port_hi,
-- fallthrough, created, stats = {lookups, hits, misses, errors}}, by label then id.
function D:bindings()
  self:_check()
  self:_recover()
  local out = {}
  for _, rec in pairs(self.recs) do out[#out + 1] = binding_view(self, rec) end
  return require("luabpf._util").sort_by(out, "label", "id")
end


--- Register a socket for label (_socket.lua).
D.register, D.unregister, D.sockets = sock.register, sock.unregister, sock.sockets


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
