-- SPDX-License-Identifier: MIT
-- Map operations per second from Lua against the same operations in C
-- (bench/map_ops.c, libbpf directly) on the same map, in the same run:
-- ROUNDS rounds, C and Lua alternating, medians, the Lua/C ratio of the
-- medians and the spread (lowest and highest ratio of one round's pair).
-- usage: luabpf run bench/map_ops.lua BUILD_DIR [N] [ROUNDS]
--
-- Three ways from Lua, each what its users would write:
--   cdata    keys and values as the map's types (m:ctypes()): update and
--            lookup reuse one value cdata, batches fill and read cdata
--            arrays. The FFI fast path (lua/luabpf/_fastmap.lua).
--   table    a fresh value table per update and per lookup, lists of tables
--            for the batches: the same methods, the table conversion.
--   general  the table way through the C methods alone (the path before the
--            FFI one, kept for what the fast path does not cover): today's
--            figure beside the new one.
-- C: update and lookup reuse one struct on the stack, the batches fill and
-- read flat arrays, 1024 entries per syscall. Keys are numbers (the map's
-- key is a __u32). Rates per wall second and per CPU second of the process
-- (CLOCK_PROCESS_CPUTIME_ID): on a shared machine the CPU figures are the
-- steadier ones, since time spent preempted counts in neither.
local uv = require("luv")
local ffi = require("ffi")
local fm = require("luabpf._fastmap")
local build = assert(arg[1], "usage: map_ops.lua BUILD_DIR [N] [ROUNDS]")
local N = tonumber(arg[2]) or 100000
local ROUNDS = tonumber(arg[3]) or 7
local object = build .. "/tests/bpf/maps.bpf.o"
local cbin = build .. "/bench/map_ops"
local ops = { "update", "lookup", "update_batch", "lookup_batch", "delete" }
local modes = { "cdata", "table", "general" }

pcall(ffi.cdef, [[
  struct map_ops_timespec { long tv_sec; long tv_nsec; };
  int clock_gettime(int clk, struct map_ops_timespec *ts);
]])
local CLOCK_PROCESS_CPUTIME_ID = 2
local ts = ffi.new("struct map_ops_timespec")
local function cpu_s()
  ffi.C.clock_gettime(CLOCK_PROCESS_CPUTIME_ID, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

-- Two rates for one run of fn: per wall second, per CPU second.
local function rate(fn)
  local t0, c0 = uv.hrtime(), cpu_s()
  fn()
  return { N / ((uv.hrtime() - t0) / 1e9), N / (cpu_s() - c0) }
end

local sink = 0

local function cdata_ops(m, r)
  local K, V = m:ctypes()
  local v, out = V(), V()
  r.update = rate(function()
    for i = 0, N - 1 do
      v.packets = i; v.bytes = 2 * i
      m:update(i, v)
    end
  end)
  r.lookup = rate(function()
    for i = 0, N - 1 do
      m:lookup(i, out)
      sink = sink + tonumber(out.packets + out.bytes)
    end
  end)
  local ks, vs = ffi.new(ffi.typeof("$[?]", K), N), ffi.new(ffi.typeof("$[?]", V), N)
  r.update_batch = rate(function()
    for i = 0, N - 1 do ks[i] = i; vs[i].packets = i + 1; vs[i].bytes = 2 * i end
    assert(m:update_batch(ks, vs))
  end)
  r.lookup_batch = rate(function()
    local n = m:lookup_batch({ keys = ks, values = vs })
    assert(n == N, "lookup_batch returned " .. tostring(n))
    for i = 0, n - 1 do sink = sink + tonumber(vs[i].packets) end
  end)
  r.delete = rate(function()
    for i = 0, N - 1 do m:delete(i) end
  end)
end

-- The table way, through methods t (the map's, or the C ones alone).
local function table_ops(m, r, t)
  r.update = rate(function()
    for i = 0, N - 1 do t.update(m, i, { packets = i, bytes = 2 * i }) end
  end)
  r.lookup = rate(function()
    for i = 0, N - 1 do local x = t.lookup(m, i); sink = sink + x.packets + x.bytes end
  end)
  r.update_batch = rate(function()
    local ks, vs = {}, {}
    for i = 1, N do ks[i] = i - 1; vs[i] = { packets = i, bytes = 2 * i } end
    assert(t.update_batch(m, ks, vs))
  end)
  r.lookup_batch = rate(function()
    local ks, vs = t.lookup_batch(m)
    assert(#ks == N, "lookup_batch returned " .. #ks)
    for i = 1, #vs do sink = sink + vs[i].packets end
  end)
  r.delete = rate(function()
    for i = 0, N - 1 do t.delete(m, i) end
  end)
end

local function lua_round(mode)
  local obj = assert(bpf.open(object))
  local m = obj:map("bench")
  m:set_max_entries(N)
  assert(obj:load())
  local r = {}
  if mode == "cdata" then
    cdata_ops(m, r)
  else
    table_ops(m, r, mode == "table" and getmetatable(m) or fm.c)
  end
  obj:close()
  return r
end

local function c_round()
  local p = assert(io.popen(string.format("%q %q %d", cbin, object, N)))
  local r = {}
  for line in p:lines() do
    local op, w, c = line:match("^(%S+) (%S+) (%S+)$")
    if op then r[op] = { tonumber(w), tonumber(c) } end
  end
  assert(p:close(), "map_ops (C) failed")
  return r
end

local median = require("_bench").median -- (the upper middle of an even count)

-- rates[side][kind][op] = list, side "C" or a mode, kind 1 wall, 2 CPU
local rates = {}
for _, side in ipairs({ "C", unpack(modes) }) do
  rates[side] = { {}, {} }
  for k = 1, 2 do for _, op in ipairs(ops) do rates[side][k][op] = {} end end
end
local function add(side, r)
  for k = 1, 2 do
    for _, op in ipairs(ops) do table.insert(rates[side][k][op], r[op][k]) end
  end
end
for _ = 1, ROUNDS do
  -- C, then each Lua way, each paired with the C run just before it
  for _, mode in ipairs(modes) do
    add("C", c_round())
    add(mode, lua_round(mode))
  end
end
assert(sink > 0)

print(string.format("map_ops: %d ops on hash __u32 -> struct {__u64, __u64}, medians of %d rounds"
  .. " (ratio: Lua/C of the medians [lowest-highest of the rounds])", N, ROUNDS))
for k, kind in ipairs({ "wall", "CPU" }) do
  print(string.format("%-14s %11s %11s %-18s %11s %-18s %11s %-18s", "op (" .. kind .. ")", "C ops/s",
    "cdata", "  Lua/C", "table", "  Lua/C", "general", "  Lua/C"))
  for _, op in ipairs(ops) do
    local cs = rates.C[k][op]
    local c = median(cs)
    local line = string.format("%-14s %11.0f", op, c)
    for mi, mode in ipairs(modes) do
      local ls = rates[mode][k][op]
      local lo, hi = math.huge, 0
      for i = 1, #ls do
        -- the C run paired with this Lua run: C runs go mode by mode
        local rr = ls[i] / cs[(i - 1) * #modes + mi]
        lo, hi = math.min(lo, rr), math.max(hi, rr)
      end
      line = line .. string.format(" %11.0f   %4.2f [%4.2f-%4.2f]", median(ls), median(ls) / c, lo, hi)
    end
    print(line)
  end
end
-- The table conversion's own figure: the same table way, fast path over the
-- general one (the C methods alone, the path before the FFI one).
print(string.format("%-14s %s", "table÷general", "(wall, CPU: medians of the two ways' rates)"))
for _, op in ipairs(ops) do
  print(string.format("%-14s %5.2f %5.2f", op, median(rates.table[1][op]) / median(rates.general[1][op]),
    median(rates.table[2][op]) / median(rates.general[2][op])))
end
