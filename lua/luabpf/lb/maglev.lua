-- SPDX-License-Identifier: MIT
-- Maglev consistent hashing (Eisenbud et al., NSDI 2016), weighted: the
-- lookup table the data plane indexes with a flow's hash. Each backend fills
-- the slots of its own permutation of the table, in turns proportional to its
-- weight, so removing one backend moves little more than its own share.
local ffi = require("ffi")
local bit = require("bit")
local band, bxor, rshift, lshift, arshift, tobit = bit.band, bit.bxor, bit.rshift, bit.lshift, bit.arshift, bit.tobit

local new_table = require("table.new")

local M = {}

M.DEFAULT_SIZE = 65537

-- 32-bit multiply modulo 2^32 without losing bits in a double.
local function mul32(a, b)
  local alo, ahi = band(a, 0xffff), rshift(a, 16)
  return tobit(alo * b + tobit(lshift(ahi * band(b, 0xffff), 16)))
end
M.mul32 = mul32

-- FNV-1a over a string with a seed: two seeds give the offset and the skip.
local function fnv1a(s, seed)
  local h = tobit(bxor(0x811c9dc5, seed))
  for i = 1, #s do
    h = mul32(bxor(h, s:byte(i)), 0x01000193)
  end
  -- A finaliser so names that differ in one byte spread over the table.
  h = bxor(h, rshift(h, 16)); h = mul32(h, 0x85ebca6b)
  h = bxor(h, rshift(h, 13)); h = mul32(h, 0xc2b2ae35)
  return bxor(h, rshift(h, 16))
end

local function unsigned(x)
  return x < 0 and x + 4294967296 or x
end

-- A name's two hashes (offset, skip; before the modulo), kept: a pool change
-- rebuilds the table from mostly the same names. Forgotten past 65,536 names.
local hashes, n_hashes = {}, 0
local function name_hashes(name)
  local h = hashes[name]
  if not h then
    if n_hashes >= 65536 then hashes, n_hashes = {}, 0 end
    h = { unsigned(fnv1a(name, 0x2545f491)), unsigned(fnv1a(name, 0x9e3779b9)) }
    hashes[name], n_hashes = h, n_hashes + 1
  end
  return h[1], h[2]
end

local function is_prime(n)
  if n < 2 then return false end
  if n % 2 == 0 then return n == 2 end
  for d = 3, math.floor(math.sqrt(n)), 2 do
    if n % d == 0 then return false end
  end
  return true
end
M.is_prime = is_prime

-- The canonical order: by name (bytes), then by weight, then by position.
-- Two backends asking for the same free slot in one round get it in this
-- order, so the table depends on the pool, not on the order backends were
-- added or listed in (every node builds the same table whatever its history).
-- For names that repeat (canonical below sorts unique names itself, by
-- table.sort's own string order: no Lua comparator called per pair).
local function canonical_sort(backends, n)
  local ord = {}
  for i = 1, n do ord[i] = i end
  table.sort(ord, function(a, b)
    local x, y = backends[a], backends[b]
    if x.name ~= y.name then return x.name < y.name end
    local wx, wy = x.weight or 1, y.weight or 1
    if wx ~= wy then return wx < wy end
    return a < b
  end)
  return ord
end

-- Insert name into the sorted list at its place (binary search).
local function insert_sorted(list, name)
  local lo, hi = 1, #list + 1
  while lo < hi do
    local mid = rshift(lo + hi, 1)
    if list[mid] < name then lo = mid + 1 else hi = mid end
  end
  table.insert(list, lo, name)
end

-- How many new names a rebuild places by binary search into the last
-- sorted list; more are sorted again.
local MERGE_MAX = 32

-- The canonical order of backends[1..n]: their positions, by name. cache
-- (one per VIP: the last order made) saves the sort (table.sort calls a
-- comparison through the C API, ~1 ms for 1,000 names): the same names in
-- the same order (a weight or health change) reuse the last order; a few
-- names added or removed (a pool change) keep the last sorted list's order
-- and place the new ones by binary search. Names that repeat are ordered by
-- weight too: sorted each time, not cached.
local function canonical(backends, n, cache)
  local list = cache.list
  if list and #list == n then
    local same = true
    for i = 1, n do
      if backends[i].name ~= list[i] then same = false break end
    end
    if same then return cache.ord end
  end
  local names, at = new_table(n, 0), new_table(0, n)
  for i = 1, n do
    local nm = backends[i].name
    if type(nm) ~= "string" or at[nm] then return canonical_sort(backends, n) end
    names[i], at[nm] = nm, i
  end
  local sorted, old = cache.sorted, cache.at
  local out
  if sorted then
    local kept, nk = new_table(n + 1, 0), 0
    for j = 1, #sorted do
      local nm = sorted[j]
      if at[nm] then nk = nk + 1; kept[nk] = nm end
    end
    if n - nk <= MERGE_MAX then
      for i = 1, n do
        if not old[names[i]] then insert_sorted(kept, names[i]) end
      end
      out = kept
    end
  end
  if not out then
    out = {}
    for i = 1, n do out[i] = names[i] end
    table.sort(out)
  end
  local ord = new_table(n, 0)
  for i = 1, n do ord[i] = at[out[i]] end
  cache.list, cache.ord, cache.sorted, cache.at = names, ord, out, at
  return ord
end
M.canonical = canonical

local shared_cache = {} -- for callers that pass none

local i32 = ffi.typeof("int32_t[?]")
local u32 = ffi.typeof("uint32_t[?]")
local f64 = ffi.typeof("double[?]")

-- The fill loop in Lua: host/maglev.c's lbpf_maglev__fill, line for line
-- (the same double arithmetic on the credits, so the same table). Used
-- when the host does not export it (another LuaJIT), and by the tests.
local function fill_lua(entry, size, live, pos, nextc, skip, step, credit)
  local filled = 0
  while true do
    for k = 0, live - 1 do
      local cr = credit[k] + step[k]
      if cr >= 1 then
        local c, sk, p = nextc[k], skip[k], pos[k]
        repeat
          cr = cr - 1
          -- c + skip, less size past the end, without a 50/50 branch (which
          -- makes LuaJIT side traces); the sum stays below 2^31.
          while entry[c] ~= 0 do
            c = c + sk - size
            c = c + band(arshift(c, 31), size)
          end
          entry[c] = p
          c = c + sk - size
          c = c + band(arshift(c, 31), size)
          filled = filled + 1
          if filled == size then
            nextc[k], credit[k] = c, cr
            return filled
          end
        until cr < 1
        nextc[k] = c
      end
      credit[k] = cr
    end
  end
end

ffi.cdef [[
uint32_t lbpf_maglev__fill(int32_t *entry, uint32_t size, uint32_t live, const int32_t *pos,
  uint32_t *nextc, const uint32_t *skip, const double *step, double *credit);
uint32_t lbpf_maglev__diff(const int32_t *entry, uint32_t size, const uint32_t *ids, uint32_t npos,
  uint32_t *have, uint32_t base, uint32_t *keys, uint32_t *vals, int32_t *counts, uint64_t *mapped);
]]
local have_c, fill_c = pcall(function() return ffi.C.lbpf_maglev__fill end)
M.fills = { lua = fill_lua, c = have_c and fill_c or nil }
-- Which fill build() uses: the host's C one when there is one.
M.fill = have_c and "c" or "lua"

-- host/maglev.c's lbpf_maglev__diff, line for line, for a host without it.
local function diff_lua(entry, size, ids, npos, have, base, keys, vals, counts, mapped)
  local n = 0
  for s = 0, size - 1 do
    local e = entry[s]
    if e < 0 or e >= npos then return size + 1 end
    local id = ids[e]
    counts[e] = counts[e] + 1
    if have[s] ~= id then
      have[s] = id
      keys[n], vals[n] = base + s, id
      if mapped then mapped[s] = id end
      n = n + 1
    end
  end
  return n
end
local have_diff, diff_c = pcall(function() return ffi.C.lbpf_maglev__diff end)

--- What publishing table entry (from build) over a half that holds have
-- (uint32_t[size], backend ids) changes: have becomes the new ids (ids[pos],
-- pos 0: an empty slot), counts[pos] (int32_t[npos], zeroed) the slots per
-- position, and (keys, vals)[0..n) the slots that differ (base + slot, id);
-- mapped (a uint64_t pointer to the half in the mapped map, or nil) gets them
-- too. Returns n. Raises if the table holds a position past npos.
function M.diff(entry, size, ids, npos, have, base, keys, vals, counts, mapped)
  local n = (have_diff and diff_c or diff_lua)(entry, size, ids, npos, have, base, keys, vals, counts, mapped)
  if n > size then error("maglev: table holds a position past the list", 2) end
  return n
end

--- Build the table for backends = { {name=, weight=}, ... } (weight 0: not
-- placed). Returns a 0-based int32_t array of SIZE backend positions (1-based
-- indices into the list), 0 for an empty slot; all 0 when no backend has a
-- weight. Backends are placed in canonical order (by name), so the list's
-- order does not change the table. fill: "c" or "lua" (default M.fill).
-- out: an int32_t[size] to build into (its old contents are cleared) instead
-- of a new array, so a service's rebuilds reuse one. cache: a table the
-- build keeps its last canonical order in (one per VIP: see canonical).
local primes = {} -- sizes checked
local scratch = { n = -1 } -- the per-backend arrays, reused by the next build
function M.build(backends, size, fill, out, cache)
  size = size or M.DEFAULT_SIZE
  if not primes[size] and not is_prime(size) then
    error(("maglev: table size %d is not prime (65537 and 655373 are)"):format(size), 2)
  end
  local fn = M.fills[fill or M.fill]
  if not fn then error(("maglev: no fill '%s' (have: lua%s)"):format(tostring(fill), have_c and ", c" or ""), 2) end
  local n, maxw = #backends, 0
  for i = 1, n do
    local b = backends[i]
    local w = b.weight or 1
    if type(w) ~= "number" or w < 0 then
      error(("maglev: backend '%s' weight must be a number >= 0"):format(tostring(b.name)), 2)
    end
    if w > maxw then maxw = w end
  end
  primes[size] = true
  local entry = out
  if entry then ffi.fill(entry, size * 4) else entry = i32(size) end
  if maxw == 0 then return entry end
  -- Per live backend k (canonical order): its list position, the next slot
  -- of its permutation (offset + j * skip mod size, kept as a running sum),
  -- its skip, its turns per round (weight / top weight: a full turn places
  -- one slot) and its turns earned.
  local ord = canonical(backends, n, cache or shared_cache)
  local sc = scratch
  if sc.n < n then
    sc = { n = n, pos = i32(n), nextc = u32(n), skip = u32(n), step = f64(n), credit = f64(n) }
    scratch = sc
  end
  local pos, nextc, skip, step, credit = sc.pos, sc.nextc, sc.skip, sc.step, sc.credit
  ffi.fill(credit, n * 8)
  local live = 0
  for _, i in ipairs(ord) do
    local b = backends[i]
    local w = b.weight or 1
    if w > 0 then
      pos[live] = i
      local off, sk = name_hashes(b.name)
      nextc[live] = off % size
      skip[live] = sk % (size - 1) + 1
      step[live] = w / maxw
      live = live + 1
    end
  end
  if fn == fill_lua then
    fill_lua(entry, size, live, pos, nextc, skip, step, credit)
  elseif fn(entry, size, live, pos, nextc, skip, step, credit) == 0 then
    -- C had no memory for its arrays (or the size is past 2^26): start again in Lua.
    ffi.fill(entry, size * 4)
    ffi.fill(credit, n * 8)
    for k = 0, live - 1 do
      local off = name_hashes(backends[pos[k]].name)
      nextc[k] = off % size
    end
    fill_lua(entry, size, live, pos, nextc, skip, step, credit)
  end
  return entry
end

--- Share of slots per backend position: { [i] = count }.
function M.shares(entry, size)
  size = size or M.DEFAULT_SIZE
  local c = {}
  for s = 0, size - 1 do
    local e = entry[s]
    c[e] = (c[e] or 0) + 1
  end
  return c
end

return M
