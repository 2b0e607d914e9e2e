-- SPDX-License-Identifier: MIT
-- The publish step: what the data plane's maps hold for the pool. A VIP's
-- Maglev table (built by maglev.lua) written into its idle half and flipped
-- to, the backend records, the address flags, and flushing a backend's flows.
-- Part of luabpf.lb (init.lua).
local ffi = require("ffi")
local bit = require("bit")
local maglev = require("luabpf.lb.maglev")
local addr = require("luabpf._addr")
local C = require("luabpf.lb._common")
local util = require("luabpf._util")

local Service = C.Service
local MODES, NO_BACKEND, VIP_ADDR, SNAT_ADDR = C.MODES, C.NO_BACKEND, C.VIP_ADDR, C.SNAT_ADDR
local vip_key = C.vip_key

local ADDR_VIPS = 8 -- bpf/lb/lb.h, LB_ADDR_VIPS

-- What a VIP's record in the data plane holds (vips, and vip_ports).
local function vip_value(v)
  return { id = v.id, mode = v.mode, table = v.table, encap_port = v.gue_port or 0,
    snat = addr.mapped(v.snat or "::") }
end

-- Refcounted flags per address: a VIP address, a NAT source address, or both.
function Service:_flags_by_addr()
  local want = {}
  for _, v in pairs(self.vips) do
    local a = self:_mapped(v.addr)
    want[a] = bit.bor(want[a] or 0, VIP_ADDR)
    if v.mode == MODES.nat then
      local s = self:_mapped(v.snat)
      want[s] = bit.bor(want[s] or 0, SNAT_ADDR)
    end
  end
  return want
end

local function by_id(x, y) return x.id < y.id end

-- The published VIPs of each address, by id (the records of vip_ports).
function Service:_published_by_addr()
  local by = {}
  for _, v in pairs(self.vips) do
    if v.published then
      local a = self:_mapped(v.addr)
      by[a] = by[a] or {}
      table.insert(by[a], v)
    end
  end
  for _, list in pairs(by) do
    if #list > 1 then table.sort(list, by_id) end
  end
  return by
end

-- Address a's vip_ports record (bpf/lb/lb.h, struct lb_addr_vips): its flags,
-- and the records of its VIPs whose table is published (list, by id), and
-- their records in vip_ids; vip_hint is the caller's to write after. The
-- lb.bpf.c data plane finds a packet's VIP there in one lookup; other
-- objects (the conntrack data plane, an older lb.bpf.o) have no vip_ports.
function Service:_put_addr_vips(a, flags, list)
  local m = self.m.vip_ports
  if not flags then
    m:delete(a)
    return
  end
  local recs = {}
  for i = 1, math.min(#list, ADDR_VIPS) do
    local v = list[i]
    recs[i] = { port = v.port, proto = v.proto, pad = 0, vip = vip_value(v) }
  end
  assert(m:update(a, { flags = flags, n = #list, v = recs }))
  for _, v in ipairs(list) do self:_write_vip_id(v) end
end

-- The same for one address, and vip_hint after it.
function Service:_write_addr_vips(a)
  if not self.m.vip_ports then return end
  local want = self:_flags_by_addr()
  self:_put_addr_vips(a, want[a], self:_published_by_addr()[a] or {})
  self:_write_vip_hint(want)
end

-- struct lb_vip_hint's layout (bpf/lb/lb.h); an object whose map has
-- another size gets no hint.
local hint_t = ffi.typeof("struct { uint8_t id[2048]; uint32_t addr[256]; uint32_t ready; }")
local HINT_IDS, HINT_MANY = 254, 255
local rshift = bit.rshift
local words = ffi.new("uint32_t[4]")

-- An address's 32 bits for vip_hint (a number): an IPv4 address's as a
-- packet holds them, an IPv6 address's four words XORed (lb.bpf.c,
-- hint_addr); and the top n bits of x * 0x9E3779B1 mod 2^32: lb.h's
-- LB_VIP_HINT_SLOT and _ADDR.
local function addr_word(a)
  if addr.is_v4(a) then
    ffi.copy(words, addr.bytes(a):sub(13), 4)
    return words[0]
  end
  ffi.copy(words, addr.bytes(a), 16)
  return bit.bxor(words[0], words[1], words[2], words[3]) % 2 ^ 32
end
local function hash_top(x, n)
  return rshift(tonumber(ffi.cast("uint32_t", ffi.cast("uint32_t", x % 2 ^ 32) * 0x9E3779B1ULL)), 32 - n)
end

-- The fast path's records (bpf/lb/lb.h, struct lb_vip_id): a VIP's key and
-- record at its id, as last written (self.vid[id]). Where a packet could
-- read one half-written, one byte moves at a time: a table flip is one
-- byte; anything else first turns the old record's proto to 0 (no packet
-- matches it), writes the new record with proto 0, then sets its proto.
-- Objects without vip_ids (conntrack, an older lb.bpf.o) skip all this,
-- and a VIP whose id is past the map's end takes the general path.
local function vid_rec(self, v, proto)
  return { key = { addr = self:_mapped(v.addr), port = v.port, proto = proto, pad = 0 }, vip = vip_value(v) }
end

function Service:_clear_vip_id(id)
  local w = self.vid[id]
  if not w or w.proto == 0 then return end
  w.rec.key.proto, w.proto = 0, 0
  assert(self.m.vip_ids:update(id, w.rec))
end

-- LB_VIP_HINT_SLOT of what v's packets hold (the port in network order, as
-- _stats.lua's flow key).
local function hint_slot(v)
  local port = bit.bswap(bit.lshift(v.port, 16))
  return hash_top(bit.bxor(addr_word(v.addr), bit.bor(bit.lshift(port, 16), v.proto)), 11)
end

function Service:_write_vip_id(v)
  local m = self.m.vip_ids
  if not m then return end
  self.vid_cap = self.vid_cap or m:info().max_entries
  if v.id >= self.vid_cap then return end -- past vip_ids: the general path
  local w = self.vid[v.id]
  local sig = table.concat({ self:_mapped(v.addr), v.port, v.proto, v.mode, v.gue_port or 0,
    self:_mapped(v.snat or "::") }, " ")
  if w and w.sig == sig and w.proto ~= 0 then
    if w.table == v.table then return end
    w.rec.vip.table, w.table = v.table, v.table
    assert(m:update(v.id, w.rec))
    return
  end
  self:_clear_vip_id(v.id)
  local rec = vid_rec(self, v, 0)
  assert(m:update(v.id, rec))
  rec.key.proto = v.proto
  assert(m:update(v.id, rec))
  self.vid[v.id] = { sig = sig, table = v.table, proto = v.proto, rec = rec }
end

-- vip_hint (bpf/lb/lb.h, struct lb_vip_hint): the bit of each address the
-- service puts in vip_ports; for each slot of a published VIP with a live
-- fast-path record, its id + 1, or HINT_MANY where several share the slot,
-- the id does not fit or the VIP has no such record. Written when it
-- changes; the first time once with ready clear, then set, so no packet
-- sees it ready before the bits are in.
function Service:_write_vip_hint(want)
  local m = self.m.vip_hint
  if not m then return end
  self.hint_size = self.hint_size or m:info().value_size
  if self.hint_size ~= ffi.sizeof(hint_t) then return end -- an object of another layout: no fast path
  local h = hint_t()
  -- Every VIP in vip_ports has its byte: one without a live record in
  -- vip_ids (its id past the map) says "several", so its packets take the
  -- general path (a 0 would send them to the NAT replies' path, which
  -- passes them).
  for _, v in pairs(self.vips) do
    if v.published then
      local w, s = self.vid[v.id], hint_slot(v)
      local byte = (w and w.proto ~= 0 and v.id < HINT_IDS) and v.id + 1 or HINT_MANY
      h.id[s] = h.id[s] == 0 and byte or HINT_MANY
    end
  end
  for a in pairs(want or self:_flags_by_addr()) do
    local i = hash_top(addr_word(a), 13)
    h.addr[rshift(i, 5)] = bit.bor(h.addr[rshift(i, 5)], bit.lshift(1, bit.band(i, 31))) % 2 ^ 32
  end
  h.ready = 1
  local raw = ffi.string(h, ffi.sizeof(h))
  if raw == self.hint_raw then return end
  if not self.hint_raw then
    h.ready = 0
    assert(m:update(0, ffi.string(h, ffi.sizeof(h))))
  end
  assert(m:update(0, raw))
  self.hint_raw = raw
end

function Service:_addr_flags()
  local want = self:_flags_by_addr()
  for k in self.m.vip_addrs:keys() do
    if not want[addr.mapped(k)] then self.m.vip_addrs:delete(k) end
  end
  for a, f in pairs(want) do assert(self.m.vip_addrs:update(a, f)) end
  if self.m.vip_ports then
    for k in self.m.vip_ports:keys() do
      if not want[addr.mapped(k)] then self.m.vip_ports:delete(k) end
    end
    local by = self:_published_by_addr()
    for a, f in pairs(want) do self:_put_addr_vips(a, f, by[a] or {}) end
  end
  self:_write_vip_hint(want)
end

local u32a, i32a = ffi.typeof("uint32_t[?]"), ffi.typeof("int32_t[?]")
local u64p = ffi.typeof("uint64_t *")
local new_table = require("table.new")

-- addr.mapped, kept: a pool change compares every backend's address, and a
-- conversion through inet_pton and inet_ntop costs microseconds. Addresses
-- come validated; the memo forgets all past 65,536.
local mapped_memo, n_mapped = {}, 0
function Service:_mapped(a)
  local m = mapped_memo[a]
  if not m then
    m = addr.mapped(a)
    if n_mapped >= 65536 then mapped_memo, n_mapped = {}, 0 end
    mapped_memo[a], n_mapped = m, n_mapped + 1
  end
  return m
end

local libc = util.cdef({ "void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off);",
  "int munmap(void *addr, size_t len);", "strerror" })
local PROT_RW, MAP_SHARED, BPF_F_MMAPABLE = 3, 1, 1024

-- The Maglev map's memory (bpf/lb/lb_shared.h: BPF_F_MMAPABLE), mapped
-- once: a change's slots are stores into the idle half, no syscall and no
-- batch (an array's update_batch writes one element at a time: ~4 ms for
-- the 6,554 slots of one backend of 10). An array map's elements are 8
-- bytes apart (a u32 and padding): a uint64_t per slot. false: a map that
-- can't be mapped (an object built before the flag): one update_batch.
function Service:_maglev_mem()
  local mem = self.mg_mem
  if mem ~= nil then return mem end
  mem = false
  local m = self.m.maglev
  local info = m:info()
  if bit.band(info.flags, BPF_F_MMAPABLE) ~= 0 then
    local len = info.max_entries * 8
    local p = libc.mmap(nil, len, PROT_RW, MAP_SHARED, m:fd(), 0)
    if ffi.cast("intptr_t", p) ~= -1 then
      mem, self.mg_len = ffi.cast(u64p, p), len
    else
      bpf.log("warn", ("service '%s': the Maglev map can't be mapped (%s): tables are written by syscall")
        :format(self.name, ffi.string(libc.strerror(ffi.errno()))))
    end
  end
  self.mg_mem = mem
  return mem
end

-- A Maglev map pinned by a version before BPF_F_MMAPABLE
-- is kept with the flows its table steers, not refused as a changed map
-- definition: {maglev = its flags} for bpf.load, and its tables are written
-- in one batch (Service:_publish). nil: no such pin, or it has the flag.
function Service:_pinned_maglev_flags()
  local m = bpf.map_from_pin(self.dir .. "/maglev")
  if not m then return nil end
  local flags = m:info().flags
  m:close()
  if bit.band(flags, BPF_F_MMAPABLE) ~= 0 then return nil end
  bpf.log("info", ("service '%s': its pinned Maglev map predates BPF_F_MMAPABLE: kept with its flows, "
    .. "tables written by syscall ('luabpf lb stop %s' then a start makes a new one)"):format(self.name, self.name))
  return { maglev = flags }
end

--- Unmap the Maglev map (Service:close): a mapping keeps the map alive.
function Service:_maglev_unmap()
  if self.mg_mem then libc.munmap(self.mg_mem, self.mg_len) end
  self.mg_mem = nil
end

-- The pool a half's table was built from: its entries' names, ids and
-- weights, and a sum over ids and weights that tells most other pools at a
-- glance. A half that holds the table of the pool asked for (a backend back
-- after its removal or its health came back, a weight set back) is flipped
-- to as it is.
local function pool_sum(entries, n)
  local sum = 0
  for i = 1, n do
    local e = entries[i]
    sum = sum + (e.id + 1) * (e.weight + 1)
  end
  return sum
end

local function pool_of(entries)
  local n = #entries
  local names, ids, ws = new_table(n, 0), new_table(n, 0), new_table(n, 0)
  for i = 1, n do
    local e = entries[i]
    names[i], ids[i], ws[i] = e.name, e.id, e.weight
  end
  return { n = n, names = names, ids = ids, ws = ws, sum = pool_sum(entries, n) }
end

-- Whether pool p (pool_of) has the entries' backends, ids and weights, in
-- any order. (A sum that differs because a fractional weight was added in
-- another order only costs a build.)
local function same_pool(p, entries)
  local n = #entries
  if not p or p.n ~= n or pool_sum(entries, n) ~= p.sum then return false end
  local at = new_table(0, n)
  for i = 1, n do
    local nm = p.names[i]
    if at[nm] then return false end -- a name twice
    at[nm] = i
  end
  for i = 1, n do
    local e = entries[i]
    local j = at[e.name]
    if not j or p.ids[j] ~= e.id or p.ws[j] ~= e.weight then return false end
    at[e.name] = nil -- matched once
  end
  return true
end

-- Write the VIP's new Maglev table into its idle half, then flip to it: a
-- packet sees either the old table or the new one, never a mix. entries:
-- { {id=, name=, weight=}, ... }, the weights the table is built from.
-- The build, the diff and the batch reuse the service's arrays: a change
-- allocates only what it writes.
function Service:_publish(v, entries)
  local ring = self.ring
  local sc = self.mg_scratch
  if not sc or sc.ring ~= ring then
    sc = { ring = ring, tab = i32a(ring), keys = u32a(ring), vals = u32a(ring), n = -1 }
    self.mg_scratch = sc
  end
  local half = 1 - (v.table or 0)
  local base = v.id * 2 * ring + half * ring
  local mem = self:_maglev_mem()
  v.halves, v.pools, v.slots_of = v.halves or {}, v.pools or {}, v.slots_of or {}
  local n_e = #entries
  if same_pool(v.pools[half], entries) then
    v.slots_written = 0
  else
    v.cache = v.cache or {}
    local tab = maglev.build(entries, ring, nil, sc.tab, v.cache)
    -- Each list position's backend id (0: an empty slot) and slot count.
    if sc.n < n_e + 1 then sc.n, sc.ids, sc.counts = n_e + 1, u32a(n_e + 1), i32a(n_e + 1) end
    local ids, counts = sc.ids, sc.counts
    ffi.fill(counts, (n_e + 1) * 4)
    ids[0] = NO_BACKEND
    for i = 1, n_e do ids[i] = entries[i].id end
    -- What the half holds, as last written, so a change writes only the
    -- slots that differ (about 2/N of them): into the mapped half, or in one
    -- batch. A half not written yet holds 0xfefefefe, no backend's id:
    -- every slot differs.
    v.pools[half] = nil -- unknown until the slots are in
    local have = v.halves[half]
    if not have then
      have = u32a(ring)
      ffi.fill(have, ring * 4, 0xfe)
    end
    v.halves[half] = nil
    local n = maglev.diff(tab, ring, ids, n_e + 1, have, base, sc.keys, sc.vals, counts, mem and (mem + base) or nil)
    if n > 0 and not mem then
      local keys, vals = u32a(n), u32a(n)
      ffi.copy(keys, sc.keys, n * 4)
      ffi.copy(vals, sc.vals, n * 4)
      assert(self.m.maglev:update_batch(keys, vals))
    end
    v.halves[half] = have
    local slots = {}
    for i = 1, n_e do
      if counts[i] > 0 then slots[entries[i].id] = counts[i] end
    end
    v.slots_of[half], v.pools[half] = slots, pool_of(entries)
    v.slots_written = n
  end
  v.table = half
  v.published = true
  v.digest_of = nil -- the half's array is rewritten in place: _stats.lua's digest is stale
  -- The flip: the data plane's own record first (lb.bpf.c reads vip_ports),
  -- then the one conntrack's data plane and the tools read.
  self:_write_addr_vips(self:_mapped(v.addr))
  assert(self.m.vips:update(vip_key(v), vip_value(v)))
  v.slots = v.slots_of[half]
end

-- A backend's record, written when it differs from what this service last
-- wrote into this map (a forced refresh rewrites every backend: 1,000
-- syscalls for nothing on a pool change).
function Service:_write_backend(b)
  local a = self:_mapped(b.addr)
  local w = b.written
  if w and w.map == self.m.backends and w.addr == a and w.port == b.port and w.state == b.state
    and w.vip == b.vip.id and w.id == b.id then
    return
  end
  assert(self.m.backends:update(b.id, { addr = a, port = b.port or 0, state = b.state, vip = b.vip.id }))
  b.written = { map = self.m.backends, id = b.id, addr = a, port = b.port, state = b.state, vip = b.vip.id }
end

-- Delete a backend's flows and NAT entries: its clients' next packets choose
-- again (and are reset by the new backend), so they reconnect elsewhere.
function Service:_flush(v, b)
  if self.ct then
    local n = self.ct:flush_backend(b.id)
    bpf.log("info", ("service '%s': VIP '%s' backend '%s': flushed %d conntrack entr%s"):format(self.name,
      v.name, b.name, n, n == 1 and "y" or "ies"))
    return n
  end
  local fk, nk = {}, {}
  for k, f in self.m.flows:pairs() do
    if f.backend == b.id then fk[#fk + 1] = k end
  end
  for k, n in self.m.nat:pairs() do
    if n.backend == b.id then nk[#nk + 1] = k end
  end
  for _, k in ipairs(fk) do self.m.flows:delete(k) end
  for _, k in ipairs(nk) do self.m.nat:delete(k) end
  bpf.log("info", ("service '%s': VIP '%s' backend '%s': flushed %d flow(s)"):format(self.name, v.name,
    b.name, #fk))
end

return true
