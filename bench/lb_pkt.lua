-- SPDX-License-Identifier: MIT
-- The load balancer's cost per packet under test_run, beside XDP_PASS and a
-- minimal MAC-swap XDP_TX program in the same run.
--
-- test_run does not reset the packet between in-kernel repeats: with
-- repeat=N the balancer sees its own output (a packet now addressed to a
-- backend, not a VIP) from the second run on and looks cheap. So each packet
-- here is one repeat=1 call, in loops of CHUNK calls, and the figure is a
-- loop's ns per call minus that of the XDP_PASS loop run just before it (the
-- syscall and Lua floor): the median of those paired differences, so a burst
-- of load from elsewhere on the machine spoils a pair, not the figure.
-- The kernel's own duration_ns of those repeat=1 calls, minus XDP_PASS's, is
-- printed beside it; the repeat=N figure too, to show how far off it is.
--
-- Run by bench/lb_pkt.sh, which makes the namespace (an interface with
-- forwarding on and static neighbours for the backends, so bpf_fib_lookup
-- answers) and runs this inside it:
--   luabpf --netns NS run bench/lb_pkt.lua BUILD_DIR IFNAME [N] [CHUNK]
-- N calls per case in all (default 1,000,000), in loops of CHUNK (50,000).
local bit = require("bit")
local uv = require("luv")
local lb = require("luabpf.lb")
local bench = require("_bench")

local USAGE = "usage: lb_pkt.lua BUILD_DIR IFNAME [N] [CHUNK]"
local build = assert(arg[1], USAGE)
local ifname = assert(arg[2], USAGE)
local N = tonumber(arg[3]) or 1000000
local CHUNK = math.min(tonumber(arg[4]) or 50000, N)
local ROUNDS = math.ceil(N / CHUNK)
-- Flow-table misses cycle through MISS_FLOWS distinct flows, four times the
-- table: each one was evicted long before it comes round again, and the
-- table is full, so a miss pays for the LRU eviction as it does in service.
local FLOWS = 16384
local MISS_FLOWS = 4 * 65536
local HIT_FLOWS = 1024

local ifindex = bench.ifindex(ifname)

local function be16(n) return string.char(bit.rshift(n, 8), bit.band(n, 0xff)) end
local function ip4(s)
  local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  return string.char(tonumber(a), tonumber(b), tonumber(c), tonumber(d))
end

-- Ethernet / IPv4 / TCP SYN, 54 bytes: the smallest packet a flow starts with.
local function tcp4(src, sport, dst, dport)
  return "\2\0\0\0\0\2\2\0\0\0\0\1" .. be16(0x0800)
    .. "\69\0" .. be16(40) .. "\0\1\64\0\64\6\0\0" .. src .. ip4(dst)
    .. be16(sport) .. be16(dport) .. "\0\0\0\1\0\0\0\0\80\2\255\255\0\0\0\0"
end

-- Flow i: source 10.1.x.y, port 1024 + i % 64512 (the NAT's first choice of
-- source port, so a miss does not also pay for a port collision).
local function flow_pkt(i, dport)
  local a = math.floor(i / 64512)
  local src = string.char(10, 1 + a, bit.band(bit.rshift(i, 8), 0xff), bit.band(i, 0xff))
  return tcp4(src, 1024 + i % 64512, "10.10.100.1", dport)
end

local opts = bench.xdp_opts(ifindex, 54)

local svc = assert(lb.new({ name = "bench" .. uv.os_getpid(), attach = false, pin = false,
  prime_neighbours = false, flows = FLOWS }))
local pass_obj, swap_obj
local ok, err = pcall(function()
  local backends = {
    { name = "b1", addr = "10.10.0.11", port = 8080 },
    { name = "b2", addr = "10.10.0.12", port = 8080 },
    { name = "b3", addr = "10.10.0.13", port = 8080 },
  }
  svc:add_vip({ name = "nat", addr = "10.10.100.1", port = 80, mode = "nat", snat = "10.10.0.2",
    backends = backends })
  svc:add_vip({ name = "dsr", addr = "10.10.100.1", port = 81, mode = "dsr", backends = backends })
  pass_obj = assert(bpf.load(build .. "/bpf/xdp_pass.bpf.o"))
  swap_obj = assert(bpf.load(build .. "/bench/bpf/xdp_macswap.bpf.o"))
  local progs = { pass = pass_obj:program("xdp_pass"), macswap = swap_obj:program("xdp_macswap"),
    lb = svc.prog }

  local hit = { [80] = {}, [81] = {} }
  for i = 1, HIT_FLOWS do
    hit[80][i] = flow_pkt(i, 80)
    hit[81][i] = flow_pkt(i, 81)
  end
  local miss = {}
  for i = 1, MISS_FLOWS do miss[i] = flow_pkt(HIT_FLOWS + i, 80 + i % 2) end
  local other = { tcp4(ip4("10.10.0.1"), 40000, "10.10.0.99", 80) }

  -- Each case: the program, its packets, the verdict it must give.
  local cases = {
    { "pass", "XDP_PASS program", progs.pass, other, "XDP_PASS" },
    { "macswap", "MAC-swap XDP_TX program", progs.macswap, other, "XDP_TX" },
    { "not_vip", "lb: not a VIP (pass)", progs.lb, other, "XDP_PASS" },
    { "nat_hit", "lb: VIP, NAT, flow hit", progs.lb, hit[80], "XDP_TX" },
    { "dsr_hit", "lb: VIP, DSR, flow hit", progs.lb, hit[81], "XDP_TX" },
    { "miss", "lb: VIP, flow miss (new flow)", progs.lb, miss, "XDP_TX" },
  }
  -- The hit flows are in the table before their pair (a miss loop evicts
  -- them), and must still be hits after it.
  local wall, kern = bench.paired(cases, ROUNDS, bench.runner(CHUNK, opts), function(c, pair)
    if c[1]:match("_hit$") then
      for _, p in ipairs(c[4]) do assert(c[3]:test_run(p, opts).verdict == c[5]) end
    end
    local vip = c[1] == "nat_hit" and "nat" or c[1] == "dsr_hit" and "dsr"
    local before = vip and svc:stats().vips[vip].new_flows
    pair()
    if vip then
      local made = svc:stats().vips[vip].new_flows - before
      if made > 0 then error(("%s: %d of the flows were new, not hits"):format(c[2], made)) end
    end
  end)

  -- What repeat=N reports for a NAT flow-hit packet (the kernel loop reuses it).
  local rep = {}
  for _ = 1, 5 do
    assert(progs.lb:test_run(hit[80][1], opts))
    local r = assert(progs.lb:test_run(hit[80][1], { ["repeat"] = 100000, ctx = opts.ctx }))
    table.insert(rep, r.duration_ns)
  end

  local s = svc:stats()
  local drops = 0
  for r, v in pairs(s.reasons) do
    if r:match("^drop_") then drops = drops + v end
  end
  assert(drops == 0, "the balancer dropped packets during the bench: " .. drops)

  local median = bench.median
  local floor_w, floor_k = median(wall.pass), median(kern.pass)
  print(("lb_pkt: %d repeat=1 test_run calls per case in loops of %d, each loop paired with "
    .. "an XDP_PASS loop; medians"):format(ROUNDS * CHUNK, CHUNK))
  print(("  XDP_PASS floor: %.0f ns per call wall-clock, %.1f ns per run in the kernel")
    :format(floor_w, floor_k))
  print(("  %-30s %14s %14s %10s"):format("case", "wall - floor", "kernel", "x PASS"))
  for i = 2, #cases do
    local c = cases[i]
    local k = median(kern[c[1]])
    print(("  %-30s %11.0f ns %11.1f ns %9.1fx"):format(c[2], median(wall[c[1]]), k, k / floor_k))
  end
  print(("  repeat=100000 on one NAT flow-hit packet: %.1f ns per run (misleading: from the "
    .. "second run on,"):format(median(rep)))
  print("  the packet is the first run's output, addressed to a backend, and passes)")
end)
if swap_obj then swap_obj:close() end
if pass_obj then pass_obj:close() end
svc:close()
assert(ok, err)
