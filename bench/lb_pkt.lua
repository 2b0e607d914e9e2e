-- SPDX-License-Identifier: MIT
-- The load balancer's cost per packet under test_run: this tree's data plane
-- beside a baseline's (by default commit e1ec3e1's, built by bench/lb_pkt.sh)
-- in the same run, each driven by its own service (the same Lua control
-- plane, the same VIPs, backends and Maglev tables).
--
-- test_run does not reset the packet between in-kernel repeats: with
-- repeat=N the balancer sees its own output (a packet now addressed to a
-- backend, not a VIP) from the second run on and looks cheap. So each packet
-- here is one repeat=1 call, in loops of CHUNK calls; every loop of a case is
-- paired with an XDP_PASS loop run just before it, and a case's figure is the
-- median over the pairs of the kernel's duration_ns per run minus that of its
-- XDP_PASS loop (the kernel's own floor), so a burst of load from elsewhere
-- on the machine spoils a pair, not the figure. Both services are made
-- afresh LOADS times (default 3) and a ratio is the median of the loads'
-- ratios: their maps land elsewhere each time, which moves a case for a
-- whole load (A/A runs of one object: 0.69-1.16 not a VIP).
--
-- Every output frame is checked (check_out): the verdict; for a pass, the
-- frame unchanged; for a forward, the MACs (ours, a backend's), in DSR the
-- IP packet byte for byte, in NAT the addresses and ports of that backend,
-- every other byte unchanged, and the IPv4 and TCP checksums right (the
-- inputs carry right ones). Before timing, both data planes must give the
-- same output for the same packets. So a fast wrong path can't win.
--
-- With KATRAN_OBJ set (bench/lb_pkt.sh builds it from KATRAN_SRC), Katran's
-- balancer (bench/_katran.lua) is loaded beside them at each load, with a
-- VIP on port 84 and the same backends, and timed on its own hit and new
-- flows; its outputs are checked as IPIP to a backend, and this tree's DSR
-- and IPIP figures are printed over Katran's.
--
-- Run by bench/lb_pkt.sh, which makes the namespace and builds the baseline:
--   luabpf --netns NS run bench/lb_pkt.lua BUILD_DIR IFNAME N CHUNK BASE_OBJ BASE_NAME [CASES]
local bit = require("bit")
local uv = require("luv")
local lb = require("luabpf.lb")
local bench = require("_bench")

local USAGE = "usage: lb_pkt.lua BUILD_DIR IFNAME N CHUNK BASE_OBJ [BASE_NAME [CASES]]"
local build = assert(arg[1], USAGE)
local ifname = assert(arg[2], USAGE)
local N = tonumber(arg[3]) or 1000000
local CHUNK = math.min(tonumber(arg[4]) or 50000, N)
local base_obj = assert(arg[5], USAGE)
local base_name = arg[6] or "baseline"
local only = arg[7] and arg[7] ~= "" and arg[7] or nil -- "dsr_hit,nat_hit": those cases only
local ROUNDS = math.ceil(N / CHUNK)
-- The services are made afresh LOADS times, ROUNDS / LOADS pairs each; a
-- ratio is the median of the loads' ratios (where the maps land moves a
-- case for a whole load: docs/benchmarks.md).
local LOADS = math.max(1, math.floor(tonumber(os.getenv("LOADS")) or 3))
local KATRAN = os.getenv("KATRAN_OBJ") ~= "" and os.getenv("KATRAN_OBJ") or nil
local KATRAN_NAME = os.getenv("KATRAN_NAME") or "Katran"
-- New flows cycle through MISS_FLOWS distinct flows, sixteen times the
-- table: each one was evicted long before it comes round again, and the
-- table is full, so a new flow pays for the LRU eviction as it does in
-- service.
local FLOWS = 16384
local MISS_FLOWS = 16 * FLOWS
local HIT_FLOWS = 1024
local band, rshift = bit.band, bit.rshift

local ifindex = bench.ifindex(ifname)
local lbmac
do
  local p = io.popen("ip -o link show dev " .. ifname)
  local m = p:read("*a"):match("link/ether (%x%x:%x%x:%x%x:%x%x:%x%x:%x%x)")
  p:close()
  lbmac = m:gsub("(%x%x):?", function(h) return string.char(tonumber(h, 16)) end)
end

local function be16(n) return string.char(rshift(n, 8), band(n, 0xff)) end
local function ip4(s)
  local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  return string.char(tonumber(a), tonumber(b), tonumber(c), tonumber(d))
end

-- The one's complement sum of s's bytes i..j (1-based, an even count), folded.
local function sum16(s, i, j, acc)
  for k = i, j, 2 do acc = acc + s:byte(k) * 256 + s:byte(k + 1) end
  while acc > 0xffff do acc = band(acc, 0xffff) + rshift(acc, 16) end
  return acc
end
-- The sums over an IPv4 header at 15..34 and a TCP segment after it, with
-- its pseudo-header: 0xffff when the checksum in the frame is right.
local function ip_sum(f) return sum16(f, 15, 34, 0) end
local function tcp_sum(f)
  return sum16(f, 35, #f, sum16(f, 27, 34, 6 + #f - 34))
end

-- Ethernet / IPv4 / TCP, 54 bytes, right checksums: a SYN (flags 0x02) or an ACK.
local function tcp4(src, sport, dst, dport, flags)
  local f = "\2\0\0\0\0\1" .. lbmac .. be16(0x0800)
    .. "\69\0" .. be16(40) .. "\0\1\64\0\64\6\0\0" .. src .. ip4(dst)
    .. be16(sport) .. be16(dport) .. "\0\0\0\1\0\0\0\0\80" .. string.char(flags)
    .. "\255\255\0\0\0\0"
  f = f:sub(1, 24) .. be16(0xffff - ip_sum(f)) .. f:sub(27)
  return f:sub(1, 50) .. be16(0xffff - tcp_sum(f)) .. f:sub(53)
end

-- Ethernet / IPv6 / TCP, 74 bytes, a right checksum, from [fd00:1::x:y]:sport
-- to [fd00:100::1]:dport.
local V6_VIP = "\253\0\1\0" .. string.rep("\0", 11) .. "\1"
local function tcp6(i, sport, dport, flags)
  local src = "\253\0\0\1" .. string.rep("\0", 10) .. string.char(band(rshift(i, 8), 0xff), band(i, 0xff))
  local tcp = be16(sport) .. be16(dport) .. "\0\0\0\1\0\0\0\0\80" .. string.char(flags) .. "\255\255\0\0\0\0"
  local ph = src .. V6_VIP .. "\0\0\0\20\0\0\0\6"
  tcp = tcp:sub(1, 16) .. be16(0xffff - sum16(tcp, 1, #tcp, sum16(ph, 1, #ph, 0))) .. tcp:sub(19)
  return "\2\0\0\0\0\1" .. lbmac .. be16(0x86dd) .. "\96\0\0\0" .. be16(20) .. "\6\64" .. src .. V6_VIP .. tcp
end

-- Flow i: source 10.1.x.y, port 1024 + i % 64512 (the NAT's first choice of
-- source port, so a new flow does not also pay for a port collision).
local function flow_pkt(i, dport, flags)
  local a = math.floor(i / 64512)
  local src = string.char(10, 1 + a, band(rshift(i, 8), 0xff), band(i, 0xff))
  return tcp4(src, 1024 + i % 64512, "10.10.100.1", dport, flags)
end

-- Backends (BACKENDS, for add_vip) and their addresses and MACs (BE, for
-- the checks: bench/lib.sh's permanent neighbours).
local BACKENDS, DSR_BACKENDS, DSR6_BACKENDS, BE = {}, {}, {}, {}
for i = 1, 3 do
  DSR6_BACKENDS[i] = { name = "b" .. i, addr = "fd00::1" .. i }
  BACKENDS[i] = { name = "b" .. i, addr = "10.10.0.1" .. i, port = 8080 }
  DSR_BACKENDS[i] = { name = "b" .. i, addr = "10.10.0.1" .. i } -- DSR keeps the VIP's port
  BE[i] = { ip = ip4(BACKENDS[i].addr), port = 8080, mac = "\2\0\0\0\0" .. string.char(0x10 + i) }
end
local SNAT = ip4("10.10.0.2")
local GW_MAC = "\2\0\0\0\0\254" -- Katran's default router
local VIP = ip4("10.10.100.1")
local CLIENT_MAC = "\2\0\0\0\0\1" -- 10.10.0.1, the clients' next hop (bench/lib.sh)
-- NAT replies: a reply frame -> the client's frame of its flow (nat_replies()).
local REPLY_TO = {}

-- What is wrong with output frame out for input frame f in mode (nil: right).
local function check_out(mode, f, out)
  if mode == "pass" then
    return out ~= f and "a passed frame was modified" or nil
  end
  if out:sub(7, 12) ~= lbmac then return "source MAC is not the interface's" end
  if mode == "nat_reply" then
    -- to the client's next hop, from the VIP's address and port to the
    -- client's, every other byte but the checksums unchanged
    local c = REPLY_TO[f]
    if out:sub(1, 6) ~= CLIENT_MAC then return "reply: destination MAC is not the client's next hop" end
    if #out ~= #f then return ("reply: length %d, sent %d"):format(#out, #f) end
    if out:sub(27, 30) ~= VIP or out:sub(35, 36) ~= be16(80) then return "reply: source is not the VIP" end
    if out:sub(31, 34) ~= c:sub(27, 30) or out:sub(37, 38) ~= c:sub(35, 36) then
      return "reply: destination is not the flow's client"
    end
    if out:sub(15, 24) ~= f:sub(15, 24) or out:sub(39, 50) ~= f:sub(39, 50) or out:sub(53) ~= f:sub(53) then
      return "reply: bytes other than addresses, ports and checksums changed"
    end
    if ip_sum(out) ~= 0xffff then return "reply: wrong IPv4 header checksum" end
    if tcp_sum(out) ~= 0xffff then return "reply: wrong TCP checksum" end
    return nil
  end
  local be
  for _, b in ipairs(BE) do
    if out:sub(1, 6) == b.mac then be = b end
  end
  if not be then return "destination MAC is no backend's" end
  if mode == "dsr" then
    return out:sub(15) ~= f:sub(15) and "DSR changed the IP packet" or nil
  end
  if mode == "ipip" or mode == "gue" then
    -- The client's packet whole behind 20 (IPIP) or 28 (GUE) bytes of outer
    -- IPv4 (+ UDP) from the balancer to the backend whose MAC it got.
    local ovh = mode == "ipip" and 20 or 28
    if #out ~= #f + ovh then return ("%s: length %d, sent %d"):format(mode, #out, #f) end
    if out:sub(15 + ovh) ~= f:sub(15) then return mode .. " changed the client's packet" end
    if out:sub(27, 30) ~= SNAT or out:sub(31, 34) ~= be.ip then return mode .. ": outer addresses" end
    if out:byte(24) ~= (mode == "ipip" and 4 or 17) then return mode .. ": outer protocol" end
    if ip_sum(out) ~= 0xffff then return mode .. ": wrong outer IPv4 header checksum" end
    if mode == "gue" and (out:sub(37, 38) ~= be16(6080) or out:byte(35) < 0x80) then
      return "gue: UDP ports"
    end
    return nil
  end
  if #out ~= #f then return ("length %d, sent %d"):format(#out, #f) end
  if out:sub(27, 30) ~= SNAT then return "NAT source is not the balancer's address" end
  if out:sub(31, 34) ~= be.ip then return "NAT destination is not the backend its MAC is" end
  if out:sub(37, 38) ~= be16(be.port) then return "NAT destination port is not the backend's" end
  if out:byte(35) < 4 then return "NAT source port under 1024" end
  if out:sub(15, 24) ~= f:sub(15, 24) or out:sub(39, 50) ~= f:sub(39, 50)
    or out:sub(53) ~= f:sub(53) then
    return "NAT changed bytes other than addresses, ports and checksums"
  end
  if ip_sum(out) ~= 0xffff then return "wrong IPv4 header checksum" end
  if tcp_sum(out) ~= 0xffff then return "wrong TCP checksum" end
end

-- test_run's ctx must give the packet's length: 54 bytes IPv4, 74 IPv6.
local opts54, opts74 = bench.xdp_opts(ifindex, 54), bench.xdp_opts(ifindex, 74)
local function opts(p) return #p == 74 and opts74 or opts54 end
local pid = uv.os_getpid()

-- One service per data plane: the baseline's object is loaded in place of
-- "lb" while its service starts.
local function service(tag, obj)
  local real = bpf.load
  if obj then
    bpf.load = function(name, o) return real(name == "lb" and obj or name, o) end
  end
  local ok, svc, err = pcall(lb.new, { name = ("bench%s%d"):format(tag, pid), attach = false,
    pin = false, prime_neighbours = false, flows = FLOWS })
  bpf.load = real
  assert(ok, svc)
  assert(svc, err)
  if obj then
    -- The baseline's struct lb_vip lacks fields this tree's Lua writes
    -- (encap_port): its vips map gets the record without them.
    local vips = svc.m.vips
    svc.m.vips = setmetatable({ update = function(_, k, v)
      while true do
        local okw, r, e = pcall(vips.update, vips, k, v)
        local field = not okw and tostring(r):match("unknown field '([%w_]+)'")
        if not field then
          if not okw then error(r, 2) end
          return r, e
        end
        v[field] = nil
      end
    end }, { __index = function(_, name)
      local f = vips[name]
      return function(_, ...) return f(vips, ...) end
    end })
  end
  local okv, verr = pcall(function()
    svc:add_vip({ name = "nat", addr = "10.10.100.1", port = 80, mode = "nat", snat = "10.10.0.2",
      backends = BACKENDS })
    svc:add_vip({ name = "dsr", addr = "10.10.100.1", port = 81, mode = "dsr",
      backends = DSR_BACKENDS })
    svc:add_vip({ name = "dsr6", addr = "fd00:100::1", port = 81, mode = "dsr",
      backends = DSR6_BACKENDS })
    if not obj then -- the tunnel modes (issue 21): this tree only, against its DSR
      svc:add_vip({ name = "ipip", addr = "10.10.100.1", port = 82, mode = "ipip", encap_src = "10.10.0.2",
        backends = DSR_BACKENDS })
      svc:add_vip({ name = "gue", addr = "10.10.100.1", port = 83, mode = "gue", encap_src = "10.10.0.2",
        backends = DSR_BACKENDS })
    end
  end)
  if not okv then svc:close(); error(verr) end
  return svc
end

-- A VIP's new flows so far, from its per-CPU counters (svc:stats() reads
-- this tree's reasons, which the baseline's map is too short for).
local function new_flows(svc, vip)
  return tonumber(svc.m.vip_stats:lookup_sum(svc.vips[vip].id).new_flows)
end

-- The flows key (struct lb_flow_key) of an IPv4 TCP frame: v4-mapped addresses.
local V4MAP = string.rep("\0", 10) .. "\255\255"
local function flow_key(f)
  return V4MAP .. f:sub(27, 30) .. V4MAP .. f:sub(31, 34) .. f:sub(35, 38) .. "\6\0\0\0"
end

-- Fill list with a reply for each client frame of fwd (established NAT
-- flows): from the backend prog sent it to, on the backend's port, to the
-- balancer's address on the flow's port (as the output shows them).
local function nat_replies(prog, fwd, list)
  for i, f in ipairs(fwd) do
    local res = prog:test_run(f, opts(f))
    assert(res.verdict == "XDP_TX", "a NAT flow's packet was not forwarded")
    local out = res.data
    local r = tcp4(out:sub(31, 34), out:byte(37) * 256 + out:byte(38), "10.10.0.2",
      out:byte(35) * 256 + out:byte(36), 0x10)
    if list[i] then REPLY_TO[list[i]] = nil end -- rebuilt before each pair: the old one goes
    list[i] = r
    REPLY_TO[r] = f
  end
end

local planes, pass_obj = {}, nil
local function close_planes()
  for _, p in ipairs(planes) do p.svc:close() end
  if planes.katran then planes.katran.close() end
  planes = {}
end
local ok, err = pcall(function()
  pass_obj = assert(bpf.load(build .. "/bpf/xdp_pass.bpf.o"))

  local hit, miss = { nat = {}, nat_reply = {}, dsr = {}, dsr6 = {}, ipip = {}, gue = {}, katran = {} },
    { nat = {}, dsr = {}, ipip = {}, katran = {} }
  for i = 1, HIT_FLOWS do
    hit.nat[i] = flow_pkt(i, 80, 0x10)
    hit.dsr[i] = flow_pkt(i, 81, 0x10)
    hit.dsr6[i] = tcp6(i, 1024 + i, 81, 0x10)
    hit.ipip[i] = flow_pkt(i, 82, 0x10)
    hit.gue[i] = flow_pkt(i, 83, 0x10)
    hit.katran[i] = flow_pkt(i, 84, 0x10)
  end
  for i = 1, MISS_FLOWS do
    miss.nat[i] = flow_pkt(HIT_FLOWS + i, 80, 0x02)
    miss.dsr[i] = flow_pkt(HIT_FLOWS + i, 81, 0x02)
    if KATRAN then
      miss.ipip[i] = flow_pkt(HIT_FLOWS + i, 82, 0x02)
      miss.katran[i] = flow_pkt(HIT_FLOWS + i, 84, 0x02)
    end
  end
  local other = { tcp4(ip4("10.10.0.1"), 40000, "10.10.0.99", 80, 0x02) }

  -- Both data planes give the same output for the same packets: the hit
  -- flows (made here) and the first new flows.
  local function same(list, n)
    for i = 1, n do
      local o = planes[1].svc.prog:test_run(list[i], opts(list[i]))
      local nw = planes[2].svc.prog:test_run(list[i], opts(list[i]))
      if o.verdict ~= nw.verdict or o.data ~= nw.data then
        error(("packet %d: %s and this tree differ: %s %s, %s %s"):format(i, base_name,
          o.verdict, o.data:sub(1, 54):gsub(".", function(c) return ("%02x"):format(c:byte()) end),
          nw.verdict, nw.data:sub(1, 54):gsub(".", function(c) return ("%02x"):format(c:byte()) end)))
      end
    end
  end

  local function check(mode) return function(f, out) return check_out(mode, f, out) end end
  local katran_be = {}
  for i, b in ipairs(BE) do katran_be[i] = b.ip end
  local function check_katran(f, out) return require("_katran").check(f, out, katran_be, GW_MAC, ip_sum) end
  local SHAPES = {
    { "not_vip", "not a VIP (pass)", other, "XDP_PASS", "pass", 1.0 },
    { "dsr_hit", "DSR, established flow", hit.dsr, "XDP_TX", "dsr", 0.55 },
    { "nat_hit", "NAT, established flow", hit.nat, "XDP_TX", "nat", 0.35 },
    -- No goal: a backend's reply on an established NAT flow, back to its client.
    { "nat_reply", "NAT, reply", hit.nat_reply, "XDP_TX", "nat_reply", nil, reply = true },
    -- No goal: IPv6 beside IPv4 (the hint hashes its address's words).
    { "dsr6_hit", "DSR IPv6, established flow", hit.dsr6, "XDP_TX", "dsr", nil, vip = "dsr6" },
    { "dsr_new", "DSR, new flow", miss.dsr, "XDP_TX", "dsr", 0.65 },
    { "nat_new", "NAT, new flow", miss.nat, "XDP_TX", "nat", 0.45 },
    -- This tree only (no goal): the tunnels' cost beside its own DSR.
    { "ipip_hit", "IPIP, established flow", hit.ipip, "XDP_TX", "ipip", nil, new_only = true },
    { "gue_hit", "GUE, established flow", hit.gue, "XDP_TX", "gue", nil, new_only = true },
  }
  if only then
    local keep = {}
    for _, s in ipairs(SHAPES) do
      if ("," .. only .. ","):find("," .. s[1] .. ",", 1, true) then keep[#keep + 1] = s end
    end
    assert(#keep > 0, "no case named in " .. only)
    SHAPES = keep
  end
  if KATRAN then -- Katran's own cases, and this tree's IPIP new flows beside them,
    -- whatever CASES says
    SHAPES[#SHAPES + 1] = { "ipip_new", "IPIP, new flow", miss.ipip, "XDP_TX", "ipip", nil, new_only = true }
    SHAPES[#SHAPES + 1] = { "katran_hit", "Katran, established flow", hit.katran, "XDP_TX", nil, nil,
      katran = true }
    SHAPES[#SHAPES + 1] = { "katran_new", "Katran, new flow", miss.katran, "XDP_TX", nil, nil, katran = true }
  end

  -- One load: both services made afresh (their maps land elsewhere in
  -- memory each time, which moves a case by up to a quarter for as long as
  -- they live), checked, timed for rounds pairs, and closed.
  local function one_load(rounds)
    planes[1] = { key = "old", label = base_name, svc = service("o", base_obj) }
    planes[2] = { key = "new", label = "this tree", svc = service("n") }
    same(hit.nat, HIT_FLOWS)
    nat_replies(planes[1].svc.prog, hit.nat, hit.nat_reply)
    same(hit.nat_reply, HIT_FLOWS)
    same(hit.dsr, HIT_FLOWS)
    same(hit.dsr6, HIT_FLOWS)
    same(other, 1)
    local cases = { { "pass", "XDP_PASS program", pass_obj:program("xdp_pass"), other, "XDP_PASS" } }
    if KATRAN then
      planes.katran = require("_katran").plane({ obj = KATRAN, vip = ip4("10.10.100.1"), port = 84,
        backends = katran_be, gw_mac = GW_MAC, flows = FLOWS, ncpus = #uv.cpu_info() })
    end
    for _, s in ipairs(SHAPES) do
      if s.katran then
        cases[#cases + 1] = { s[1] .. "_new", s[2], planes.katran.prog, s[3], s[4], check_katran,
          warm = s[1]:match("_hit$"), rearm = planes.katran.rearm }
      end
      for _, p in ipairs(planes) do
        if not ((s.new_only and p.key == "old") or s.katran) then
        cases[#cases + 1] = { s[1] .. "_" .. p.key, s[2] .. " (" .. p.label .. ")", p.svc.prog, s[3],
          s[4], check(s[5]), svc = p.svc, vip = s[1]:match("_hit$") and (s.vip or s[5]),
          reply = s.reply and hit.nat }
        end
      end
    end
    -- The hit flows are in the table before their pair (a new-flow loop
    -- evicts them), and must still be hits after it.
    local _, _, kd = bench.paired(cases, rounds, bench.runner(CHUNK, opts), function(c, pair)
      if c.reply then
        -- The new-flow loops churn flows and nat (LRU) and may have evicted
        -- these flows or their reply mappings: each flow is made anew (its
        -- flows entry deleted, its packet sent; the port claim keeps a
        -- mapping still there) and its reply rebuilt from the output.
        -- Emptying both maps instead made the new-flow cases after it
        -- slower (docs/benchmarks.md).
        for _, f in ipairs(c.reply) do c.svc.m.flows:delete(flow_key(f)) end
        nat_replies(c[3], c.reply, c[4])
      end
      if c.rearm then c.rearm() end
      if c.vip or c.warm then
        for _, p in ipairs(c[4]) do assert(c[3]:test_run(p, opts(p)).verdict == c[5]) end
      end
      local before = c.vip and new_flows(c.svc, c.vip)
      pair()
      if c.vip then
        local made = new_flows(c.svc, c.vip) - before
        if made > 0 then error(("%s: %d of the flows were new, not hits"):format(c[2], made)) end
      end
    end)
    for _, p in ipairs(planes) do
      local drops = 0
      for i, r in ipairs(lb.REASONS) do
        -- The baseline's enum is shorter: its map ends before the newer reasons.
        local c = i <= p.svc.m.reasons:info().max_entries and p.svc.m.reasons:lookup_sum(i - 1)
        if c and r:match("^drop_") then drops = drops + tonumber(c.packets) end
      end
      assert(drops == 0, ("the %s data plane dropped %d packets during the bench"):format(p.label, drops))
    end
    close_planes()
    return kd
  end

  -- kdiff: every pair of every load, per case; loads: each load's own kdiff.
  local kdiff, loads = {}, {}
  for l = 1, LOADS do
    loads[l] = one_load(math.ceil(ROUNDS / LOADS))
    for name, list in pairs(loads[l]) do
      kdiff[name] = kdiff[name] or {}
      for _, v in ipairs(list) do table.insert(kdiff[name], v) end
    end
  end

  local median = bench.median
  local per = math.ceil(ROUNDS / LOADS)
  print(("lb_pkt: %d repeat=1 test_run calls per case in loops of %d, each loop paired with "
    .. "an XDP_PASS loop; every output checked"):format(per * LOADS * CHUNK, CHUNK))
  print(("  kernel ns per packet minus the XDP_PASS floor (%.1f ns), medians of %d pairs; "
    .. "new/old: the median of %d loads' ratios (each load's services made afresh)")
    :format(median(kdiff.pass), per * LOADS, LOADS))
  print(("  %-24s %12s %12s %9s %7s  %s"):format("case", base_name, "this tree", "new/old", "goal",
    "loads"))
  local missed, goals = 0, 0
  for _, s in ipairs(SHAPES) do
    if s.katran then goto continue end
    if s.new_only then
      local like = s[1]:match("_new$") and "dsr_new" or "dsr_hit"
      local nw, dsr = median(kdiff[s[1] .. "_new"]), kdiff[like .. "_new"] and median(kdiff[like .. "_new"])
      print(("  %-24s %12s %9.1f ns %s"):format(s[2], "-", nw,
        dsr and ("  %.2f x this tree's DSR, %s"):format(nw / dsr, like == "dsr_new" and "new flow"
          or "established flow") or ""))
      goto continue
    end
    if s[6] then goals = goals + 1 end
    local o, nw = median(kdiff[s[1] .. "_old"]), median(kdiff[s[1] .. "_new"])
    local rs, shown = {}, {}
    for l, kd in ipairs(loads) do
      rs[l] = median(kd[s[1] .. "_new"]) / median(kd[s[1] .. "_old"])
      shown[l] = ("%.2f"):format(rs[l])
    end
    local r = median(rs)
    local mark = (not s[6] or r <= s[6]) and "" or "  (missed)"
    if mark ~= "" then missed = missed + 1 end
    print(("  %-24s %9.1f ns %9.1f ns %9.2f %7s  %s%s"):format(s[2], o, nw, r, s[6] and "<= " .. s[6] or "-",
      table.concat(shown, " "), mark))
    ::continue::
  end
  print(("  goals met: %d of %d"):format(goals - missed, goals))
  if KATRAN then
    -- this tree's case over Katran's, per load, and the median of the loads
    local function over(ours, theirs)
      if not kdiff[ours .. "_new"] then return "-" end
      local rs, shown = {}, {}
      for l, kd in ipairs(loads) do
        rs[l] = median(kd[ours .. "_new"]) / median(kd[theirs .. "_new"])
        shown[l] = ("%.2f"):format(rs[l])
      end
      return ("%.2f (loads %s)"):format(median(rs), table.concat(shown, " "))
    end
    print(("  %s, the same way: established flow %.1f ns, new flow %.1f ns"):format(KATRAN_NAME,
      median(kdiff.katran_hit_new), median(kdiff.katran_new_new)))
    print("    this tree / Katran, established flow: DSR " .. over("dsr_hit", "katran_hit") .. ", IPIP "
      .. over("ipip_hit", "katran_hit") .. ", NAT " .. over("nat_hit", "katran_hit"))
    print("    this tree / Katran, new flow: DSR " .. over("dsr_new", "katran_new") .. ", IPIP "
      .. over("ipip_new", "katran_new") .. ", NAT " .. over("nat_new", "katran_new"))
  end
end)
if pass_obj then pass_obj:close() end
close_planes()
assert(ok, err)
