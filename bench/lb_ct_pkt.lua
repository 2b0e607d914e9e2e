-- SPDX-License-Identifier: MIT
-- Per-packet cost of both flow tables' programs in one run, under test_run
-- with repeat=1 calls (the kernel's duration_ns; medians of rounds):
--   lru        xdp_lb (bpf/lb/lb.bpf.c): flow-table hit, and a new flow
--   conntrack  tc_lb (bpf/lb/lb_ct.bpf.c): conntrack hit, and a new flow
--              (lookup miss, Maglev, alloc, NAT info, insert)
--   fast       xdp_ct_fast (bpf/lb/lb_ct_xdp.bpf.c, ct_fastpath = true) on an
--              established entry made with `conntrack -I` (DNAT, SNAT, our
--              mark): lookup, FIB, rewrite, XDP_TX, both directions; and
--              what it adds to a packet it passes on (a lookup miss)
-- beside each program's floor: a packet not for a VIP. In conntrack mode
-- this is only the tc part: the stack's conntrack, NAT and forwarding come
-- on top (the fast path's figure is the whole of its work), and
-- bench/lb_ct.sh measures the whole (requests/s).
-- Run by bench/lb_ct.sh inside a namespace with forwarding and neighbours:
--   luabpf --netns NS run bench/lb_ct_pkt.lua IFNAME [CALLS] [ROUNDS]
local ffi = require("ffi")
local bit = require("bit")
local lb = require("luabpf.lb")
local bench = require("_bench")

local ifname = assert(arg[1], "usage: lb_ct_pkt.lua IFNAME [CALLS] [ROUNDS]")
local CALLS = tonumber(arg[2]) or 2000
local ROUNDS = tonumber(arg[3]) or 7
local p = io.popen("cat /sys/class/net/" .. ifname .. "/ifindex 2>/dev/null || ip -o link show dev " .. ifname)
local ifindex = tonumber(p:read("*a"):match("^(%d+)"))
p:close()
assert(ifindex, "no interface " .. ifname)

local function be16(n) return string.char(bit.rshift(n, 8), bit.band(n, 0xff)) end
local function ip4(s)
  local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  return string.char(tonumber(a), tonumber(b), tonumber(c), tonumber(d))
end
-- Ethernet / IPv4 / TCP, 54 bytes: the IPv4 header checksum right (the data planes
-- drop a wrong one: drop_ip_checksum), the TCP checksum not looked at.
local function tcp(src, dst, sport, dport, flags)
  local ip = "\69\0" .. be16(40) .. "\0\1\64\0\64\6"
  local addrs = ip4(src) .. ip4(dst)
  return "\2\0\10\10\0\2\2\0\10\10\0\1" .. be16(0x0800)
    .. ip .. bench.ip_csum(ip .. "\0\0" .. addrs) .. addrs
    .. be16(sport) .. be16(dport) .. "\0\0\0\1\0\0\0\0" .. string.char(0x50, flags) .. "\255\255\0\0\0\0"
end

local xdp_ctx = ffi.string(ffi.new("uint32_t[6]", 0, 54, 0, ifindex, 0, 0), 24)
local skb = ffi.new("uint32_t[48]")
skb[9], skb[10] = ifindex, ifindex -- ingress_ifindex, ifindex
local skb_ctx = ffi.string(skb, 4 * 48)

local function svc(mode, name, fast)
  local s = assert(lb.new({ name = name, attach = false, pin = false, prime_neighbours = false,
    flow_table = mode, drop_sample = 0, max_vips = 2, max_backends = 8, ct_fastpath = fast }))
  s:add_vip({ name = "web", addr = "10.10.100.1", port = 80, snat = "10.10.0.2", backends = {
    { name = "b1", addr = "10.10.0.11", port = 8080 }, { name = "b2", addr = "10.10.0.12", port = 8080 } } })
  return s
end

local function median(t)
  table.sort(t)
  return t[math.floor((#t + 1) / 2)]
end

-- ns per packet: the median over rounds of each round's mean kernel duration.
local function measure(prog, ctx, packet_for)
  local per = {}
  for r = 1, ROUNDS do
    local sum = 0
    for i = 1, CALLS do
      local res = assert(prog:test_run(packet_for(r, i), { ctx = ctx }))
      sum = sum + res.duration_ns
    end
    per[#per + 1] = sum / CALLS
  end
  return median(per)
end

local out = {}
local port = 1024
local function new_port()
  port = port + 1
  if port > 65000 then port = 1025 end
  return port
end
for _, mode in ipairs({ "lru", "conntrack" }) do
  local s = svc(mode, "lbctpkt" .. mode)
  local ctx = mode == "lru" and xdp_ctx or skb_ctx
  local other = tcp("10.10.0.1", "10.10.0.50", 40000, 80, 0x02)
  local hitp = tcp("10.10.0.1", "10.10.100.1", 40000, 80, 0x10)
  assert(s.prog:test_run(tcp("10.10.0.1", "10.10.100.1", 40000, 80, 0x02), { ctx = ctx }))
  local floor = measure(s.prog, ctx, function() return other end)
  local hit = measure(s.prog, ctx, function() return hitp end)
  -- New flows: a fresh client address and port each call (conntrack keeps them).
  local new = measure(s.prog, ctx, function(r, i)
    return tcp(("10.10.%d.%d"):format(1 + r, 1 + i % 250), "10.10.100.1", new_port(), 80, 0x02)
  end)
  local reasons = s:stats().reasons
  assert(reasons.forwarded >= CALLS * ROUNDS * 2, mode .. ": packets were not forwarded: "
    .. tostring(reasons.forwarded))
  out[mode] = { floor = floor, hit = hit, new = new }
  s:close()
end
-- The conntrack mode's new flows stay in the table: remove them.
os.execute("conntrack -D -m 1279393792/4294901760 >/dev/null 2>&1")

do
  local s = svc("conntrack", "lbctpktfast", true)
  assert(s.xprog, "no fast path program")
  -- An established entry of ours with its NAT bound, as the stack leaves it
  -- after a handshake (conntrack -I: -u would clobber the mark, conntrack-tools 1.4.7).
  local ok = os.execute("conntrack -I -s 10.10.0.1 -d 10.10.100.1 -p tcp --sport 40000 --dport 80 "
    .. "--state ESTABLISHED --timeout 600 --dst-nat 10.10.0.11:8080 --src-nat 10.10.0.2 --mark 0x4c420000 "
    .. ">/dev/null 2>&1")
  assert(ok == 0 or ok == true, "conntrack -I failed")
  local XDP_PASS, XDP_TX = 2, 3
  local fwd = tcp("10.10.0.1", "10.10.100.1", 40000, 80, 0x10)
  local back = tcp("10.10.0.11", "10.10.0.2", 8080, 40000, 0x10)
  local miss = tcp("10.10.0.1", "10.10.100.1", 40001, 80, 0x10)
  local other = tcp("10.10.0.1", "10.10.0.50", 40000, 80, 0x02)
  for what, pkt in pairs({ forward = fwd, reply = back }) do
    local r = assert(s.xprog:test_run(pkt, { ctx = xdp_ctx }))
    assert(r.retval == XDP_TX, ("fast path %s: XDP action %d, not XDP_TX: the entry was not used"):format(
      what, r.retval))
  end
  assert(s.xprog:test_run(miss, { ctx = xdp_ctx }).retval == XDP_PASS)
  out.fast = {
    floor = measure(s.xprog, xdp_ctx, function() return other end),
    hit = measure(s.xprog, xdp_ctx, function() return fwd end),
    reply = measure(s.xprog, xdp_ctx, function() return back end),
    miss = measure(s.xprog, xdp_ctx, function() return miss end),
  }
  local reasons = s:stats().reasons
  assert(reasons.ct_fast >= CALLS * ROUNDS and reasons.ct_fast_reply >= CALLS * ROUNDS,
    "fast path packets not counted")
  s:close()
  os.execute("conntrack -D -m 1279393792/4294901760 >/dev/null 2>&1")
end
print(("%-10s %12s %12s %12s"):format("per packet", "not a VIP", "flow hit", "new flow"))
for _, mode in ipairs({ "lru", "conntrack" }) do
  local o = out[mode]
  print(("%-10s %9.0f ns %9.0f ns %9.0f ns"):format(mode, o.floor, o.hit, o.new))
end
local f = out.fast
print(("%-10s %9.0f ns %9.0f ns %12s  (XDP, established: the whole path; reply %.0f ns)"):format(
  "fast", f.floor, f.hit, "-", f.reply))
print(("fast path on a packet it passes on (lookup miss): %.0f ns before the tc program"):format(f.miss))
print(("ratio conntrack/lru: hit %.2f, new flow %.2f (the stack's conntrack and NAT not included)")
  :format(out.conntrack.hit / out.lru.hit, out.conntrack.new / out.lru.new))
print(("ratio fast/lru: established %.2f"):format(f.hit / out.lru.hit))
