-- SPDX-License-Identifier: MIT
-- The DDoS filter's data plane through test_run, with exact counts: deny and
-- allow lists (allow inside a denied prefix, allow wins), ports, protocols,
-- the default policy, rate limits reached and not reached (packets and
-- bytes), bans, a chained program, and bad rules from Lua.
local t = require("t")
local bit = require("bit")
local filter = require("luabpf.filter")

local function be16(n) return string.char(bit.rshift(n, 8) % 256, n % 256) end
local function ip4(s)
  local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  return string.char(tonumber(a), tonumber(b), tonumber(c), tonumber(d))
end

-- Ethernet / IPv4 / L4 with `pad` bytes of payload.
local function pkt4(src, dst, proto, dport, pad)
  local l4
  pad = string.rep("x", pad or 0)
  if proto == 6 then
    l4 = be16(40000) .. be16(dport) .. "\0\0\0\1\0\0\0\0\80\16\255\255\0\0\0\0" .. pad
  elseif proto == 17 then
    l4 = be16(40000) .. be16(dport) .. be16(8 + #pad) .. "\0\0" .. pad
  else
    l4 = "\8\0\0\0\0\1\0\1" .. pad -- ICMP echo request
  end
  return "\2\0\0\0\0\2\2\0\0\0\0\1" .. be16(0x0800)
    .. "\69\0" .. be16(20 + #l4) .. "\0\1\64\0\64" .. string.char(proto) .. "\0\0"
    .. ip4(src) .. ip4(dst) .. l4
end

local function pkt6(src_last, dport)
  local src = ("\253\0" .. string.rep("\0", 13) .. string.char(src_last))
  local dst = ("\253\0" .. string.rep("\0", 13) .. "\1")
  local l4 = be16(40000) .. be16(dport) .. be16(8) .. "\0\0"
  return "\2\0\0\0\0\2\2\0\0\0\0\1" .. be16(0x86dd) .. "\96\0\0\0" .. be16(#l4) .. "\17\64"
    .. src .. dst .. l4
end

local f = assert(filter.new({ attach = false, sample = 0 }))
local prog = f.prog

-- Run `n` copies of a packet; returns the verdicts seen, counted.
local function run(p, n)
  local seen = {}
  for _ = 1, n or 1 do
    local r = assert(prog:test_run(p))
    seen[r.verdict] = (seen[r.verdict] or 0) + 1
  end
  return seen
end

local function reasons() return t.filter_reasons(f) end
-- Reasons that moved since `before`.
local function moved(before) return t.filter_moved(f, before) end

-- ---- lists ----------------------------------------------------------
t.eq(f:deny("10.0.0.0/8"), "10.0.0.0/8", "deny returns the rule's name")
f:allow({ src = "10.1.2.0/24", name = "office" })
f:deny("23/tcp")
f:deny("icmp")
f:allow("22/tcp")
f:deny({ src = "fd00::/64", name = "v6-lab" })
f:allow("fd00::8/125")

local b = reasons()
t.same(run(pkt4("10.5.5.5", "10.9.0.1", 17, 53), 7), { XDP_DROP = 7 }, "denied prefix")
t.same(run(pkt4("10.1.2.3", "10.9.0.1", 17, 53), 5), { XDP_PASS = 5 }, "allowed inside the denied prefix")
t.same(run(pkt4("192.168.1.1", "10.9.0.1", 6, 23), 3), { XDP_DROP = 3 }, "denied port")
t.same(run(pkt4("192.168.1.1", "10.9.0.1", 17, 23), 2), { XDP_PASS = 2 }, "23/udp is not 23/tcp")
t.same(run(pkt4("192.168.1.1", "10.9.0.1", 1), 4), { XDP_DROP = 4 }, "denied protocol")
t.same(run(pkt4("10.5.5.5", "10.9.0.1", 6, 22), 6), { XDP_PASS = 6 }, "allowed port beats denied prefix")
t.same(run(pkt6(0x10, 53), 3), { XDP_DROP = 3 }, "denied IPv6 prefix")
t.same(run(pkt6(0x09, 53), 2), { XDP_PASS = 2 }, "allowed IPv6 inside it")
t.same(run(pkt6(0x09, 53):sub(1, 30), 1), { XDP_DROP = 1 }, "IPv6 header cut short")
t.same(run("\2\0\0\0\0\2\2\0\0\0\0\1\8\6" .. string.rep("\0", 28), 1), { XDP_PASS = 1 }, "ARP")
t.same(moved(b), { deny_src = 10, allow = 13, deny_port = 3, pass = 2, deny_proto = 4,
  malformed = 1, pass_non_ip = 1 }, "counters per reason")
local per = {}
for _, r in ipairs(f:rules()) do per[r.name] = r.packets end
t.same(per, { ["10.0.0.0/8"] = 7, office = 5, ["23/tcp"] = 3, ["proto icmp"] = 4, ["22/tcp"] = 6,
  ["v6-lab"] = 3, ["fd00::8/125"] = 2 }, "counters per rule")
t.eq(f:stats().rules.office.bytes, 5 * #pkt4("10.1.2.3", "10.9.0.1", 17, 53), "bytes per rule")

-- Removing a rule takes effect at once; so does the default policy.
f:remove("office")
t.same(run(pkt4("10.1.2.3", "10.9.0.1", 17, 53), 2), { XDP_DROP = 2 }, "office removed: denied again")
f:remove({ port = 23, proto = "tcp" })
t.same(run(pkt4("192.168.1.1", "10.9.0.1", 6, 23), 1), { XDP_PASS = 1 }, "23/tcp removed")
f:set({ default = "drop" })
b = reasons()
t.same(run(pkt4("192.168.1.1", "10.9.0.1", 17, 53), 2), { XDP_DROP = 2 }, "default drop")
t.same(run(pkt4("10.5.5.5", "10.9.0.1", 6, 22), 1), { XDP_PASS = 1 }, "allow still passes")
t.same(moved(b), { default_drop = 2, allow = 1 }, "default drop counted")
f:set({ default = "pass" })

-- ---- bad rules --------------------------------------------------------
t.raises(function() f:deny("10.0.0.0/33") end, "'10.0.0.0/33': prefix length must be 0-32 for IPv4")
t.raises(function() f:deny("10.0.0.1/8") end, "'10.0.0.1/8' has bits set past /8 (the network is 10.0.0.0/8)")
t.raises(function() f:deny("10.0.0.300/24") end, "'10.0.0.300/24' is not an IPv4 or IPv6 prefix")
t.raises(function() f:deny("fd00::/129") end, "prefix length must be 0-128 for IPv6")
t.raises(function() f:deny("10.0.0.0/8") end, "deny 10.0.0.0/8: already in the deny list (rule '10.0.0.0/8')")
t.raises(function() f:deny({ src = "192.0.2.0/24", name = "v6-lab" }) end, "there is already a rule named 'v6-lab'")
t.raises(function() f:deny({ src = "10.0.0.0/8", name = "x" }) end, "already in the deny list")
t.raises(function() f:deny("10.3.0.0/16") end, "deny 10.3.0.0/16 overlaps deny 10.0.0.0/8")
t.raises(function() f:deny("8.0.0.0/5") end, "deny 8.0.0.0/5 overlaps deny 10.0.0.0/8")
t.raises(function() f:deny("fd00::9/128") end, "deny fd00::9/128 overlaps deny fd00::/64")
f:allow("172.16.0.0/12")
t.raises(function() f:deny("172.16.1.0/24") end,
  "deny 172.16.1.0/24 is inside allow 172.16.0.0/12 (rule '172.16.0.0/12'): allow wins")
t.raises(function() f:allow("10.0.0.0/7") end, "allow 10.0.0.0/7 covers deny 10.0.0.0/8")
t.raises(function() f:deny("22/tcp") end, "port 22/tcp is already in allow rule '22/tcp' (allow wins")
t.raises(function() f:deny({ port = "20-30" }) end, "port 22/tcp is already in allow rule")
t.raises(function() f:deny({ port = 70000 }) end, "port must be 1-65535")
t.raises(function() f:deny({ port = 53, proto = "icmp" }) end, "ports are for tcp or udp")
t.raises(function() f:deny({ proto = "nope" }) end, "unknown protocol 'nope'")
t.raises(function() f:allow("icmp") end, "protocol already in deny rule 'proto icmp'")
t.raises(function() f:deny({ src = "10.0.0.0/8", port = 80 }) end, "one per rule")
t.raises(function() f:deny({ prefix = "10.0.0.0/8" }) end, "unknown option 'prefix' (valid: name, port, proto, src)")
t.raises(function() f:remove("nothing") end, "filter 'filter' has no rule 'nothing'")
t.raises(function() f:rate_limit({ pps = 10, burst = 3 }) end, "unknown option 'burst'")
t.raises(function() f:rate_limit({ pps = -1 }) end, "rate_limit: pps must be a number")
t.raises(function() f:ban("172.16.5.5") end, "allow wins, so the ban would never match")
t.raises(function() filter.new({ attach = false, default = "reject" }) end, "default must be 'pass' or 'drop'")
t.raises(function() filter.new({}) end, "interface is required")
-- Nothing of the refused rules reached the maps.
t.same(run(pkt4("10.3.3.3", "10.9.0.1", 17, 53), 1), { XDP_DROP = 1 }, "still denied by the /8 only")
t.eq(f:stats().rules["10.0.0.0/8"].packets, 7 + 2 + 1, "the /8 took it")

-- ---- rate limits --------------------------------------------------------
f:rate_limit({ pps = 1, burst_packets = 5 })
b = reasons()
t.same(run(pkt4("192.0.2.1", "10.9.0.1", 17, 53), 20), { XDP_PASS = 5, XDP_DROP = 15 }, "pps reached: burst of 5")
t.same(run(pkt4("192.0.2.2", "10.9.0.1", 17, 53), 3), { XDP_PASS = 3 }, "pps not reached")
t.same(run(pkt4("10.5.5.5", "10.9.0.1", 6, 22), 9), { XDP_PASS = 9 }, "allowed sources are not limited")
t.same(moved(b), { pass = 8, rate_pps = 15, allow = 9 }, "rate counters")
-- Sources share a bucket per prefix.
f:rate_limit({ pps = 1, burst_packets = 4, prefix4 = 24 })
t.same(run(pkt4("198.51.100.1", "10.9.0.1", 17, 53), 3), { XDP_PASS = 3 }, "/24 bucket, first source")
t.same(run(pkt4("198.51.100.200", "10.9.0.1", 17, 53), 3), { XDP_PASS = 1, XDP_DROP = 2 },
  "/24 bucket, second source shares it")
-- Bytes: 1000 bytes/s with a 1000-byte burst takes ten 100-byte frames.
local p100 = pkt4("192.0.2.50", "10.9.0.1", 17, 53, 100 - 42)
t.eq(#p100, 100, "frame size")
f:rate_limit({ bytes_per_sec = 1000, burst_bytes = 1000 })
b = reasons()
t.same(run(p100, 14), { XDP_PASS = 10, XDP_DROP = 4 }, "bytes/s reached")
t.same(moved(b), { pass = 10, rate_bps = 4 }, "bytes counters")
f:rate_limit(false)
t.same(run(p100, 3), { XDP_PASS = 3 }, "limit removed")

-- ---- chaining ----------------------------------------------------------------
local progs = assert(bpf.load(t.object("progs")))
assert(f:chain(progs:program("xdp_drop")))
t.same(run(pkt4("192.0.2.9", "10.9.0.1", 17, 53), 2), { XDP_DROP = 2 }, "passed on: the next program decides")
b = reasons()
t.same(run(pkt4("10.5.5.5", "10.9.0.1", 17, 53), 1), { XDP_DROP = 1 }, "denied: never reaches it")
t.same(moved(b), { deny_src = 1 }, "denied by the filter")
t.raises(function() f:chain(progs:program("tc_pass")) end, "chain: program 'tc_pass' is sched_cls, not xdp")
assert(f:chain(nil))
t.same(run(pkt4("192.0.2.9", "10.9.0.1", 17, 53), 1), { XDP_PASS = 1 }, "unchained")

-- ---- bans (expiry is in test_filter_policy.lua) -----------------------------
local events = {}
f.on_event = function(ev) events[#events + 1] = ev end
assert(f:ban("203.0.113.0/24"))
t.same(run(pkt4("203.0.113.77", "10.9.0.1", 17, 53), 4), { XDP_DROP = 4 }, "banned")
t.eq(f:bans()["203.0.113.0/24"].packets, 4, "packets per ban")
t.eq(events[1].type .. " " .. events[1].src, "ban 203.0.113.0/24", "ban event")
f:unban("203.0.113.0/24")
t.same(run(pkt4("203.0.113.77", "10.9.0.1", 17, 53), 1), { XDP_PASS = 1 }, "unbanned")
t.eq(events[2].type .. " " .. events[2].reason, "unban removed", "unban event")

f:close()
t.raises(function() f:deny("1.2.3.4") end, "filter 'filter' is closed")
progs:close()
print("ok")
