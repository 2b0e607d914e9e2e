-- SPDX-License-Identifier: MIT
-- Map operations per second from Lua against the same operations in C
-- (bench/map_ops.c, libbpf directly) on the same map, in the same run:
-- 5 rounds, C and Lua alternating, medians and the Lua/C ratio.
-- usage: luabpf run bench/map_ops.lua BUILD_DIR [N] [ROUNDS]
--
-- Each side does what its users would write. Lua: update builds a fresh
-- value table per call, lookup returns a fresh table per call, update_batch
-- builds the two lists (a table per value) and makes one call, lookup_batch
-- returns two lists (a table per value), 1024 entries per syscall. C: update
-- and lookup reuse one struct on the stack, the batches fill and read flat
-- arrays, 1024 entries per syscall. "Lua extra" is what Lua adds per entry,
-- in nanoseconds, over the C side (the syscall's share is the same).
-- Rates are given per wall second and per CPU second of the process
-- (CLOCK_PROCESS_CPUTIME_ID): on a shared machine the CPU figures are the
-- steadier ones, since time spent preempted counts in neither.
local uv = require("luv")
local build = assert(arg[1], "usage: map_ops.lua BUILD_DIR [N] [ROUNDS]")
local N = tonumber(arg[2]) or 100000
local ROUNDS = tonumber(arg[3]) or 5
local object = build .. "/tests/bpf/maps.bpf.o"
local cbin = build .. "/bench/map_ops"
local ops = { "update", "lookup", "update_batch", "lookup_batch" }

local ffi = require("ffi")
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

local function lua_round()
  local obj = assert(bpf.open(object))
  local m = obj:map("bench")
  m:set_max_entries(N)
  assert(obj:load())
  local r = {}
  r.update = rate(function()
    for i = 0, N - 1 do m:update(i, { packets = i, bytes = 2 * i }) end
  end)
  local sink = 0
  r.lookup = rate(function()
    for i = 0, N - 1 do local v = m:lookup(i); sink = sink + v.packets + v.bytes end
  end)
  r.update_batch = rate(function()
    local ks, vs = {}, {}
    for i = 1, N do ks[i] = i - 1; vs[i] = { packets = i, bytes = 2 * i } end
    assert(m:update_batch(ks, vs))
  end)
  r.lookup_batch = rate(function()
    local ks, vs = m:lookup_batch()
    assert(#ks == N, "lookup_batch returned " .. #ks)
    for i = 1, #vs do sink = sink + vs[i].packets end
  end)
  obj:close()
  assert(sink > 0)
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

local function median(t)
  table.sort(t)
  local n = #t
  return n % 2 == 1 and t[(n + 1) / 2] or (t[n / 2] + t[n / 2 + 1]) / 2
end

-- [kind][op] = list of rates, kind 1 wall, 2 CPU
local cs, ls = { {}, {} }, { {}, {} }
for k = 1, 2 do
  for _, op in ipairs(ops) do cs[k][op], ls[k][op] = {}, {} end
end
for _ = 1, ROUNDS do
  local c, l = c_round(), lua_round()
  for k = 1, 2 do
    for _, op in ipairs(ops) do
      table.insert(cs[k][op], c[op][k]); table.insert(ls[k][op], l[op][k])
    end
  end
end

print(string.format("map_ops: %d ops on hash __u32 -> struct {__u64, __u64}, median of %d rounds", N, ROUNDS))
for k, kind in ipairs({ "wall", "CPU" }) do
  print(string.format("%-14s %14s %14s %8s %12s", "op (" .. kind .. ")", "C ops/s", "Lua ops/s", "Lua/C",
    "Lua extra"))
  for _, op in ipairs(ops) do
    local c, l = median(cs[k][op]), median(ls[k][op])
    print(string.format("%-14s %14.0f %14.0f %8.2f %9.0f ns", op, c, l, l / c, (1 / l - 1 / c) * 1e9))
  end
end
