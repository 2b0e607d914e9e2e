-- SPDX-License-Identifier: MIT
-- Maglev (lua/luabpf/maglev.lua) at the data plane's table size (65537):
--  * build time for 10, 100 and 1,000 backends, median of ROUNDS, against a
--    baseline in the same run: one Lua pass writing every slot (the least any
--    build costs);
--  * what removing one backend moves: of the slots the surviving backends
--    held, the share that now belongs to another backend (Maglev's paper
--    promises "little more than" zero; rendezvous hashing would give 0), and
--    the removed backend's own share (1/N ideally), median over REMOVALS
--    different removed backends;
--  * how even the table is: the largest and smallest share against 1/N;
--  * the build against the Lua build it replaced (commit b34aaf8's
--    maglev.lua, read from git), same pools, alternating, in this run.
-- usage: luabpf run bench/lb_maglev.lua [ROUNDS] [REMOVALS]
local uv = require("luv")
local maglev = require("luabpf.lb.maglev")

local ROUNDS = tonumber(arg[1]) or 5
local REMOVALS = tonumber(arg[2]) or 5
local SIZE = maglev.DEFAULT_SIZE

local median = require("_bench").median

-- The Lua build before host/maglev.c (tests/lb/test_maglev.lua keeps a copy
-- and checks the tables are the same).
local here = debug.getinfo(1, "S").source:sub(2):match("(.*)/") or "."
local git = io.popen(("git -C '%s' show b34aaf8:lua/luabpf/lb/maglev.lua 2>/dev/null"):format(here))
local old_src = git:read("*a")
git:close()
local old = assert(old_src ~= "" and load(old_src, "=maglev@b34aaf8"), "lb_maglev: needs git and commit b34aaf8")()

local function pool(n, skip)
  local t = {}
  for i = 1, n do
    if i ~= skip then t[#t + 1] = { name = ("10.0.%d.%d:8080"):format(math.floor(i / 256), i % 256) } end
  end
  return t
end

-- Each slot's owner by name, for comparing two tables of different pools.
local function owners(list, tab)
  local o = {}
  for s = 0, SIZE - 1 do o[s] = list[tab[s]].name end
  return o
end

local function floor_pass()
  local t0 = uv.hrtime()
  local e = {}
  for s = 0, SIZE - 1 do e[s] = s % 7 + 1 end
  return (uv.hrtime() - t0) / 1e6
end

maglev.build(pool(10), SIZE) -- warm up the JIT
local floor = {}
for _ = 1, ROUNDS do floor[#floor + 1] = floor_pass() end
local floor_ms = median(floor)

print(("lb_maglev: table size %d, build times median of %d, movement median of %d removals")
  :format(SIZE, ROUNDS, REMOVALS))
print(("  baseline: one Lua pass writing %d slots %.2f ms"):format(SIZE, floor_ms))
print(("  %-9s %10s %9s %14s %16s %18s"):format("backends", "build ms", "x pass", "survivors moved",
  "removed's share", "max/min share x1/N"))
for _, n in ipairs({ 10, 100, 1000 }) do
  local list = pool(n)
  local times, tab = {}, nil
  for _ = 1, ROUNDS do
    local t0 = uv.hrtime()
    tab = maglev.build(list, SIZE)
    times[#times + 1] = (uv.hrtime() - t0) / 1e6
  end
  local before = owners(list, tab)
  local shares = maglev.shares(tab, SIZE)
  local hi, lo = 0, math.huge
  for i = 1, n do
    local c = shares[i] or 0
    if c > hi then hi = c end
    if c < lo then lo = c end
  end
  local moved, own = {}, {}
  for r = 1, REMOVALS do
    local gone = math.floor(r * n / (REMOVALS + 1)) + 1
    local rest = pool(n, gone)
    local after = owners(rest, maglev.build(rest, SIZE))
    local gone_name = list[gone].name
    local held, changed, theirs = 0, 0, 0
    for s = 0, SIZE - 1 do
      if before[s] == gone_name then
        theirs = theirs + 1
      else
        held = held + 1
        if after[s] ~= before[s] then changed = changed + 1 end
      end
    end
    moved[#moved + 1] = changed / held
    own[#own + 1] = theirs / SIZE
  end
  local ideal = SIZE / n
  print(("  %-9d %10.1f %8.1fx %13.2f%% %9.3f%% (1/N %.3f%%) %8.2f/%.2f"):format(n, median(times),
    median(times) / floor_ms, 100 * median(moved), 100 * median(own), 100 / n, hi / ideal, lo / ideal))
end

-- Against the old build: equal weights and weights 1-3, old and new in turn.
print(("  build against b34aaf8's Lua build (median of %d pairs, fill '%s'):"):format(ROUNDS, maglev.fill))
print(("  %-9s %-8s %10s %10s %8s"):format("backends", "weights", "old ms", "new ms", "new/old"))
for _, n in ipairs({ 10, 100, 1000 }) do
  for _, wt in ipairs({ "equal", "1-3" }) do
    local list = pool(n)
    if wt ~= "equal" then for i, b in ipairs(list) do b.weight = i % 3 + 1 end end
    local to, tn, ratio = {}, {}, {}
    old.build(list, SIZE)
    for r = 1, ROUNDS do
      local t0 = uv.hrtime()
      old.build(list, SIZE)
      local t1 = uv.hrtime()
      maglev.build(list, SIZE)
      local t2 = uv.hrtime()
      to[r], tn[r], ratio[r] = (t1 - t0) / 1e6, (t2 - t1) / 1e6, (t2 - t1) / (t1 - t0)
    end
    print(("  %-9d %-8s %10.2f %10.2f %8.2f"):format(n, wt, median(to), median(tn), median(ratio)))
  end
end
