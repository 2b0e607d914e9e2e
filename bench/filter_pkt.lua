-- SPDX-License-Identifier: MIT
-- The DDoS filter's cost per packet under test_run, on a pass and on a drop,
-- alone and chained in front of the load balancer, beside XDP_PASS in the
-- same run. As bench/lb_pkt.lua does: each packet is one repeat=1 call (the
-- balancer rewrites packets, so repeat=N would measure its own output), in
-- loops of CHUNK calls; a case's figure is its loop's ns per call minus that
-- of the XDP_PASS loop run just before it (the syscall and Lua floor), the
-- median of those paired differences. The kernel's own duration_ns is printed
-- beside it, and for the filter alone (which leaves packets as they are) the
-- more precise repeat=N figure minus XDP_PASS's.
--
-- Run by bench/filter_pkt.sh inside a namespace where bpf_fib_lookup answers:
--   luabpf --netns NS run bench/filter_pkt.lua BUILD_DIR IFNAME [N] [CHUNK]
local bit = require("bit")
local uv = require("luv")
local lb = require("luabpf.lb")
local filter = require("luabpf.filter")
local bench = require("_bench")

local USAGE = "usage: filter_pkt.lua BUILD_DIR IFNAME [N] [CHUNK]"
local build = assert(arg[1], USAGE)
local ifname = assert(arg[2], USAGE)
local N = tonumber(arg[3]) or 400000
local CHUNK = math.min(tonumber(arg[4]) or 20000, N)
local ROUNDS = math.ceil(N / CHUNK)
local HIT_FLOWS = 256

local ifindex = bench.ifindex(ifname)

local function be16(n) return string.char(bit.rshift(n, 8), bit.band(n, 0xff)) end
local function tcp4(src, sport, dst, dport)
  local ip = "\69\0" .. be16(40) .. "\0\1\64\0\64\6"
  return "\2\0\0\0\0\2\2\0\0\0\0\1" .. be16(0x0800)
    .. ip .. bench.ip_csum(ip .. "\0\0" .. src .. dst) .. src .. dst
    .. be16(sport) .. be16(dport) .. "\0\0\0\1\0\0\0\0\80\16\255\255\0\0\0\0"
end
local VIP = "\10\10\100\1"
local opts = bench.xdp_opts(ifindex, 54)

local svc = assert(lb.new({ name = "fbench" .. uv.os_getpid(), attach = false, pin = false,
  prime_neighbours = false }))
local objs, filters = {}, {}
local ok, err = pcall(function()
  svc:add_vip({ name = "nat", addr = "10.10.100.1", port = 80, mode = "nat", snat = "10.10.0.2",
    backends = { { name = "b1", addr = "10.10.0.11", port = 8080 },
                 { name = "b2", addr = "10.10.0.12", port = 8080 } } })
  objs.pass = assert(bpf.load(build .. "/bpf/xdp_pass.bpf.o"))

  -- A filter as it would run: 1,000 denied /24s, 100 denied ports, an
  -- allow entry, a generous rate limit (every packet updates its bucket),
  -- 1 in 100 packets sampled.
  local function loaded(extra)
    local f = assert(filter.new({ attach = false, sample = extra.sample or 100 }))
    filters[#filters + 1] = f
    if extra.bare then return f end
    for i = 0, 999 do f:deny(("100.%d.%d.0/24"):format(64 + math.floor(i / 256), i % 256)) end
    for port = 10000, 10099 do f:deny(port .. "/udp") end
    f:allow("192.0.2.0/24")
    f:rate_limit(extra.rate or { pps = 1e9, burst_packets = 1e9 })
    return f
  end
  local bare = loaded({ bare = true, sample = 0 })
  local full = loaded({})
  local limited = loaded({ rate = { pps = 0.001, burst_packets = 1 } }) -- one packet per 1,000 s
  local chained = loaded({})
  assert(chained:chain(svc.prog))

  local hits = {}
  for i = 1, HIT_FLOWS do hits[i] = tcp4(string.char(10, 1, math.floor(i / 256), i % 256), 1024 + i, VIP, 80) end
  local denied = { tcp4("\100\64\5\7", 40000, VIP, 80) }
  local limited_pkts = { tcp4("\198\51\100\9", 40000, VIP, 80) }
  for _, x in ipairs(hits) do assert(svc.prog:test_run(x, opts).verdict == "XDP_TX") end
  assert(limited.prog:test_run(limited_pkts[1], opts)) -- the burst of 1 goes

  local cases = {
    { "pass", "XDP_PASS program", objs.pass:program("xdp_pass"), hits, "XDP_PASS" },
    { "bare", "filter, no rules: pass", bare.prog, hits, "XDP_PASS" },
    { "full", "filter, 1,100 rules: pass", full.prog, hits, "XDP_PASS" },
    { "deny", "filter: drop, denied prefix", full.prog, denied, "XDP_DROP" },
    { "rate", "filter: drop, over its rate", limited.prog, limited_pkts, "XDP_DROP" },
    { "lb", "LB alone: NAT flow hit", svc.prog, hits, "XDP_TX" },
    { "chain", "filter -> LB: NAT flow hit", chained.prog, hits, "XDP_TX" },
  }
  local wall, _, kern = bench.paired(cases, ROUNDS, bench.runner(CHUNK, opts))
  local median = bench.median
  -- repeat=N: the filter leaves packets as they are, so the kernel's loop is right here.
  local function rep(prog, pkt)
    local t = {}
    for _ = 1, 5 do t[#t + 1] = assert(prog:test_run(pkt, { ["repeat"] = 200000, ctx = opts.ctx })).duration_ns end
    return median(t)
  end
  local rpass = rep(cases[1][3], hits[1])
  local repn = { bare = rep(bare.prog, hits[1]) - rpass, full = rep(full.prog, hits[1]) - rpass,
    deny = rep(full.prog, denied[1]) - rpass, rate = rep(limited.prog, limited_pkts[1]) - rpass }

  print(("filter_pkt: %d repeat=1 test_run calls per case in loops of %d, each paired with an "
    .. "XDP_PASS loop; medians"):format(ROUNDS * CHUNK, CHUNK))
  print(("  XDP_PASS floor: %.0f ns per call wall-clock; repeat=200000: %.1f ns per run")
    :format(median(wall.pass), rpass))
  print(("  %-30s %14s %16s %18s"):format("case", "wall - floor", "kernel - floor", "repeat=N - floor"))
  for i = 2, #cases do
    local c = cases[i]
    print(("  %-30s %11.0f ns %13.1f ns %15s"):format(c[2], median(wall[c[1]]), median(kern[c[1]]),
      repn[c[1]] and ("%.1f ns"):format(repn[c[1]]) or "-"))
  end
  local chain = median(wall.chain) - median(wall.lb) - median(wall.full)
  print(("  the chain's own cost (filter -> LB, minus each alone): %.0f ns wall"):format(chain))
end)
for _, f in ipairs(filters) do f:close() end
for _, o in pairs(objs) do o:close() end
svc:close()
assert(ok, err)
