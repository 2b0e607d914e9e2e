-- SPDX-License-Identifier: MIT
-- Maglev consistent hashing (Eisenbud et al., NSDI 2016), weighted: the
-- lookup table the data plane indexes with a flow's hash. Each backend fills
-- the slots of its own permutation of the table, in turns proportional to its
-- weight, so removing one backend moves little more than its own share.
local bit = require("bit")
local band, bxor, rshift, lshift, tobit = bit.band, bit.bxor, bit.rshift, bit.lshift, bit.tobit

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

local function is_prime(n)
  if n < 2 then return false end
  if n % 2 == 0 then return n == 2 end
  for d = 3, math.floor(math.sqrt(n)), 2 do
    if n % d == 0 then return false end
  end
  return true
end
M.is_prime = is_prime

--- Build the table for backends = { {name=, weight=}, ... } (weight 0: not
-- placed). Returns a 0-based array of backend positions (1-based indices into
-- the list), or an empty-filled array (0) when no backend has a weight.
function M.build(backends, size)
  size = size or M.DEFAULT_SIZE
  if not is_prime(size) then
    error(("maglev: table size %d is not prime (65537 and 655373 are)"):format(size), 2)
  end
  local n, maxw = #backends, 0
  local offset, skip, nexti, credit, live = {}, {}, {}, {}, {}
  for i = 1, n do
    local b = backends[i]
    local w = b.weight or 1
    if type(w) ~= "number" or w < 0 then
      error(("maglev: backend '%s' weight must be a number >= 0"):format(tostring(b.name)), 2)
    end
    if w > maxw then maxw = w end
    offset[i] = unsigned(fnv1a(b.name, 0x2545f491)) % size
    skip[i] = unsigned(fnv1a(b.name, 0x9e3779b9)) % (size - 1) + 1
    nexti[i] = 0
    credit[i] = 0
  end
  local entry = {}
  for s = 0, size - 1 do entry[s] = 0 end
  if maxw == 0 then return entry end
  for i = 1, n do
    if (backends[i].weight or 1) > 0 then live[#live + 1] = i end
  end
  local filled = 0
  while true do
    for _, i in ipairs(live) do
      -- Each round a backend earns weight/maxweight turns; a full turn places one slot.
      credit[i] = credit[i] + (backends[i].weight or 1) / maxw
      while credit[i] >= 1 do
        credit[i] = credit[i] - 1
        local c = (offset[i] + nexti[i] * skip[i]) % size
        while entry[c] ~= 0 do
          nexti[i] = nexti[i] + 1
          c = (offset[i] + nexti[i] * skip[i]) % size
        end
        entry[c] = i
        nexti[i] = nexti[i] + 1
        filled = filled + 1
        if filled == size then return entry end
      end
    end
  end
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
