-- SPDX-License-Identifier: MIT
-- Map operations per second from Lua against the same operations in C
-- (bench/map_ops.c, libbpf directly, loaded into this process) on the same
-- kind of map, in the same run: ROUNDS rounds, each Lua way beside a C run
-- (C first in odd rounds, second in even ones), medians, the Lua/C ratio of
-- the medians and the spread (lowest and highest ratio of one round's
-- pair). Each side has its own map, loaded once (a round leaves it empty).
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

-- Two rates for one run of fn(...): per wall second, per CPU second.
local function rate(fn, ...)
  collectgarbage() -- each measurement starts with no garbage from the one before
  local t0, c0 = uv.hrtime(), cpu_s()
  fn(...)
  return { N / ((uv.hrtime() - t0) / 1e9), N / (cpu_s() - c0) }
end

local sink = 0

-- The key and value arrays of the batches, allocated and touched once: the
-- cdata way sees them as arrays of its map's types, C as __u32 and struct
-- map_ops_cnt (what a fresh allocation's pages cost is in neither figure).
local slot_bytes = ffi.new("uint8_t[?]", 20 * N)
local function slots(K, V)
  return ffi.cast(ffi.typeof("$(*)[$]", K, N), slot_bytes)[0],
    ffi.cast(ffi.typeof("$(*)[$]", V, N), slot_bytes + 4 * N)[0]
end

-- Each way's operations are functions made once and given the round's map:
-- a loop in a closure made anew each round would start a new side trace
-- each round (LuaJIT's traces check which closure they run in), a longer
-- chain of failing checks every round, as a script's one hot loop never
-- has.
local cdata_way = {
  update = function(m, v)
    for i = 0, N - 1 do
      v.packets = i; v.bytes = 2 * i
      m:update(i, v)
    end
  end,
  lookup = function(m, out)
    for i = 0, N - 1 do
      m:lookup(i, out)
      sink = sink + tonumber(out.packets + out.bytes)
    end
  end,
  update_batch = function(m, ks, vs)
    for i = 0, N - 1 do ks[i] = i; vs[i].packets = i + 1; vs[i].bytes = 2 * i end
    assert(m:update_batch(ks, vs))
  end,
  lookup_batch = function(m, ks, vs)
    local n = m:lookup_batch({ keys = ks, values = vs })
    assert(n == N, "lookup_batch returned " .. tostring(n))
    for i = 0, n - 1 do sink = sink + tonumber(vs[i].packets) end
  end,
  delete = function(m)
    for i = 0, N - 1 do m:delete(i) end
  end,
}

local function cdata_ops(m, r)
  local K, V = m:ctypes()
  assert(ffi.sizeof(K) == 4 and ffi.sizeof(V) == 16, "map 'bench' is __u32 -> {__u64, __u64}")
  local ks, vs = slots(K, V)
  r.update = rate(cdata_way.update, m, V())
  r.lookup = rate(cdata_way.lookup, m, V())
  r.update_batch = rate(cdata_way.update_batch, m, ks, vs)
  r.lookup_batch = rate(cdata_way.lookup_batch, m, ks, vs)
  r.delete = rate(cdata_way.delete, m)
end

-- The table way, as source: "table" runs it as written (the map's methods),
-- "general" with each m:op(...) made C.op(m, ...) (the C methods alone).
-- Two chunks, so each way has its own traces (one loop calling both kinds
-- of method would be a polymorphic call site neither way has in real use).
local table_src = [[
local C, acc, N = ...
return {
  update = function(m)
    for i = 0, N - 1 do m:update(i, { packets = i, bytes = 2 * i }) end
  end,
  lookup = function(m)
    for i = 0, N - 1 do local x = m:lookup(i); acc.sink = acc.sink + x.packets + x.bytes end
  end,
  update_batch = function(m)
    local ks, vs = {}, {}
    for i = 1, N do ks[i] = i - 1; vs[i] = { packets = i, bytes = 2 * i } end
    assert(m:update_batch(ks, vs))
  end,
  lookup_batch = function(m)
    local ks, vs = m:lookup_batch()
    assert(#ks == N, "lookup_batch returned " .. #ks)
    for i = 1, #vs do acc.sink = acc.sink + vs[i].packets end
  end,
  delete = function(m)
    for i = 0, N - 1 do m:delete(i) end
  end,
}
]]
local acc = { sink = 0 }
local table_ways = {
  table = assert(loadstring(table_src, "=map_ops table way"))(fm.c, acc, N),
  general = assert(loadstring((table_src:gsub("m:(%w+)%(", "C.%1(m, ")), "=map_ops general way"))(fm.c, acc, N),
}
local function table_ops(m, r, way)
  for _, op in ipairs(ops) do r[op] = rate(table_ways[way][op], m) end
end

-- One map per side (C and each Lua way), loaded once and used every round:
-- a round ends with every entry deleted, and a script's map lives long
-- (a fresh map per round made each of a way's traces grow a new branch a
-- round).
local maps = {}
local function map_of(side)
  if not maps[side] then
    local obj = assert(bpf.open(object))
    local m = obj:map("bench")
    m:set_max_entries(N)
    assert(obj:load())
    maps[side] = { obj = obj, m = m }
  end
  return maps[side].m
end

local function lua_round(mode)
  local m = map_of(mode)
  local r = {}
  if mode == "cdata" then
    cdata_ops(m, r)
  else
    table_ops(m, r, mode)
  end
  return r
end

-- C in this process (bench/map_ops.c, libmap_ops_c.so) on a map loaded as
-- lua_round()'s are, its batches through the arrays the cdata way uses
-- (slots(), above): one process, clocks and set of pages for both.
ffi.cdef [[
  struct map_ops_cnt { uint64_t packets, bytes; };
  int map_ops_op(int fd, uint32_t n, int op, uint32_t *keys, struct map_ops_cnt *vals, double *out);
]]
local clib = ffi.load(build .. "/bench/libmap_ops_c.so")
local c_rates = ffi.new("double[2]")
local function c_round()
  local fd = map_of("C"):fd()
  local kp, vp = ffi.cast("uint32_t *", slot_bytes), ffi.cast("struct map_ops_cnt *", slot_bytes + 4 * N)
  local r = {}
  for i, op in ipairs(ops) do
    collectgarbage() -- as rate() does before each Lua measurement
    assert(clib.map_ops_op(fd, N, i - 1, kp, vp, c_rates) == 0, "map_ops_op (C) failed: " .. op)
    r[op] = { c_rates[0], c_rates[1] }
  end
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
for round = 1, ROUNDS do
  -- each Lua way paired with a C run right beside it: C first in odd
  -- rounds, second in even ones (whatever the second of two runs gains or
  -- loses, both sides get it as often)
  for _, mode in ipairs(modes) do
    if round % 2 == 1 then
      add("C", c_round())
      add(mode, lua_round(mode))
    else
      add(mode, lua_round(mode))
      add("C", c_round())
    end
  end
end
assert(sink > 0 and acc.sink > 0)
for _, side in pairs(maps) do side.obj:close() end

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
        -- the C run paired with this Lua run: C runs go mode by mode, a round at a time
        local rr = ls[i] / cs[(i - 1) * #modes + mi]
        lo, hi = math.min(lo, rr), math.max(hi, rr)
      end
      line = line .. string.format(" %11.0f   %4.2f [%4.2f-%4.2f]", median(ls), median(ls) / c, lo, hi)
    end
    print(line)
  end
end
-- The conversion alone, where the kernel's time would drown it: only the
-- map's calls are timed, with the values (tables, lists, cdata) made before;
-- the three ways one after the other on one map of CHUNK entries, the order
-- rotating, many times; per op, a way's CPU time per entry over the cdata
-- way's in the same repetition (the same syscalls), median of the
-- repetitions. delete takes numbers in every way: nothing to convert.
local CHUNK, REPS = 5000, 5 * ROUNDS
local conv_ops = { "update", "lookup", "update_batch", "lookup_batch" }
-- Made once, as the rounds' ways are (n: entries, ks and vs: what each way
-- writes and reads).
local conv_src = [[
local C, acc = ...
return {
  update = function(m, n, ks, vs) for i = 0, n - 1 do m:update(i, vs[i + 1]) end end,
  lookup = function(m, n) for i = 0, n - 1 do acc.x = m:lookup(i) end end,
  update_batch = function(m, n, ks, vs) assert(m:update_batch(ks, vs)) end,
  lookup_batch = function(m) acc.x = m:lookup_batch() end,
}
]]
local conv_ways = {
  table = assert(loadstring(conv_src, "=map_ops table conversion"))(fm.c, acc),
  general = assert(loadstring((conv_src:gsub("m:(%w+)%(", "C.%1(m, ")), "=map_ops general conversion"))(fm.c, acc),
  cdata = {
    update = function(m, n, _, va) local v = va[0]; for i = 0, n - 1 do m:update(i, v) end end,
    lookup = function(m, n, _, va) local v = va[0]; for i = 0, n - 1 do m:lookup(i, v) end end,
    update_batch = function(m, _, ka, va) assert(m:update_batch(ka, va)) end,
    lookup_batch = function(m, n, ka, va) assert(m:lookup_batch({ keys = ka, values = va }) == n) end,
  },
}
local function conversion()
  local saved = N
  N = CHUNK
  local obj = assert(bpf.open(object))
  local m = obj:map("bench")
  m:set_max_entries(N)
  assert(obj:load())
  local K, V = m:ctypes()
  local ks, vs, ka, va = {}, {}, ffi.new(ffi.typeof("$[?]", K), N), ffi.new(ffi.typeof("$[?]", V), N)
  for i = 1, N do
    ks[i], vs[i], ka[i - 1] = i - 1, { packets = i, bytes = 2 * i }, i - 1
    va[i - 1].packets, va[i - 1].bytes = i, 2 * i
  end
  local args = { cdata = { ka, va }, table = { ks, vs }, general = { ks, vs } }
  local function run(way, r)
    for _, op in ipairs(conv_ops) do r[op] = rate(conv_ways[way][op], m, N, args[way][1], args[way][2]) end
  end
  local d = { table = {}, general = {} }
  for _, op in ipairs(conv_ops) do d.table[op], d.general[op] = {}, {} end
  for rep = 1, REPS do
    local r = {}
    for i = 0, #modes - 1 do
      local mode = modes[(rep + i) % #modes + 1]
      r[mode] = {}
      run(mode, r[mode])
    end
    for _, op in ipairs(conv_ops) do
      local base = 1e9 / r.cdata[op][2]
      table.insert(d.table[op], 1e9 / r.table[op][2] - base)
      table.insert(d.general[op], 1e9 / r.general[op][2] - base)
    end
  end
  obj:close()
  N = saved
  return d
end
local conv = conversion()

-- The table conversion's own figure: the same table way, fast path over the
-- general one (the C methods alone, the path before the FFI one), as whole
-- operations; and the conversion alone (above), general's over table's.
print(string.format("%-14s %s", "table÷general", string.format("(wall, CPU: medians of the two ways' rates; "
  .. "conversion alone: CPU ns per entry over the cdata way, %d entries, medians of %d, and general÷table)",
  CHUNK, REPS)))
local goals, cgoals = {}, {}
for _, op in ipairs(ops) do
  local line = string.format("%-14s %5.2f %5.2f", op, median(rates.table[1][op]) / median(rates.general[1][op]),
    median(rates.table[2][op]) / median(rates.general[2][op]))
  if conv.table[op] then
    local cg, ct = median(conv.general[op]), median(conv.table[op])
    local x = ct > 0 and string.format("%5.1fx", cg / ct) or "  n/a"
    line = line .. string.format("   conversion: general %6.0f ns, table %6.0f ns, %s", cg, ct, x)
    cgoals[#cgoals + 1] = string.format("%s %s", op, x:match("%S+"))
  end
  print(line)
  goals[#goals + 1] = string.format("%s %.2f", op, median(rates.cdata[2][op]) / median(rates.C[2][op]))
end
print("goal (issue 16): cdata >= 0.95 of C (CPU, medians): " .. table.concat(goals, ", "))
print("goal (issue 16): table conversion >= 2x the general path's (conversion alone): "
  .. table.concat(cgoals, ", "))
