-- SPDX-License-Identifier: MIT
-- SYN cookies from XDP, through test_run, run by tests/filter/test_filter_syn.sh
-- inside a namespace of its own (the filter sets its tcp_syncookies): a SYN
-- to a protected port with a local listener comes back as a SYN-ACK carrying
-- the kernel's cookie (checked byte by byte, checksums included), the ACK
-- that returns it passes and a forged one is dropped; under the threshold
-- SYNs pass; a port with no listener is left to the stack.
local t = require("t")
local bit = require("bit")
local uv = require("luv")
local filter = require("luabpf.filter")

local function be16(n) return string.char(bit.rshift(n, 8) % 256, n % 256) end
local function be32(n)
  return string.char(bit.band(bit.rshift(n, 24), 255), bit.band(bit.rshift(n, 16), 255),
    bit.band(bit.rshift(n, 8), 255), bit.band(n, 255))
end
local function u16(s, i) return s:byte(i) * 256 + s:byte(i + 1) end
local function u32(s, i) return ((s:byte(i) * 256 + s:byte(i + 1)) * 256 + s:byte(i + 2)) * 256 + s:byte(i + 3) end

-- Internet checksum of a string (even length), as a number.
local function csum(s)
  local sum = 0
  for i = 1, #s - 1, 2 do sum = sum + u16(s, i) end
  while sum > 0xffff do sum = bit.band(sum, 0xffff) + bit.rshift(sum, 16) end
  return bit.band(bit.bnot(sum), 0xffff)
end

local CMAC, SMAC = "\2\0\0\0\0\1", "\2\0\0\0\0\2"
local LO, PEER = "\127\0\0\1", "\127\0\0\2"

-- Ethernet / IPv4 / TCP from PEER:40000 to LO:port.
local function tcp4(port, flags, seq, ack, opts)
  opts = opts or ""
  local th = be16(40000) .. be16(port) .. be32(seq) .. be32(ack)
    .. string.char((20 + #opts) / 4 * 16, flags) .. be16(64240) .. "\0\0\0\0" .. opts
  local ip = "\69\0" .. be16(20 + #th) .. "\0\1\64\0\64\6\0\0" .. PEER .. LO
  return SMAC .. CMAC .. be16(0x0800) .. ip .. th
end

local function tcp6(port, flags, seq, ack, opts)
  opts = opts or ""
  local th = be16(40000) .. be16(port) .. be32(seq) .. be32(ack)
    .. string.char((20 + #opts) / 4 * 16, flags) .. be16(64240) .. "\0\0\0\0" .. opts
  local src, dst = string.rep("\0", 15) .. "\2", string.rep("\0", 15) .. "\1"
  return SMAC .. CMAC .. be16(0x86dd) .. "\96\0\0\0" .. be16(#th) .. "\6\64" .. src .. dst .. th
end

local MSS1400 = "\2\4\5\120" -- MSS option, 1400

-- A listener on loopback: test_run's packets arrive on this namespace's lo,
-- so the filter's socket lookup finds it.
local function listen(host)
  local srv = uv.new_tcp()
  assert(srv:bind(host, 0))
  assert(srv:listen(16, function() end))
  return srv, srv:getsockname().port
end

local srv4, port4 = listen("127.0.0.1")
local srv6, port6 = listen("::1")
local spare = uv.new_tcp()
assert(spare:bind("127.0.0.1", 0))
local closed_port = spare:getsockname().port -- bound, not listening
spare:close()

local f = assert(filter.new({ attach = false, sample = 0 }))
local prog = f.prog
local function reasons() return t.filter_reasons(f) end
local function moved(before) return t.filter_moved(f, before) end

-- ---- SYN cookies, IPv4 -------------------------------------------------------
f:protect({ ports = { port4, port6, closed_port }, threshold = 3 })
local b = reasons()
-- Under the threshold the kernel answers: the SYNs pass.
for i = 1, 3 do
  t.eq(assert(prog:test_run(tcp4(port4, 0x02, 1000 + i, 0, MSS1400))).verdict, "XDP_PASS", "SYN " .. i .. " under the threshold")
end
local syn = tcp4(port4, 0x02, 0x11223344, 0, MSS1400)
local r = assert(prog:test_run(syn))
t.eq(r.verdict, "XDP_TX", "SYN over the threshold: answered from XDP")
t.same(moved(b), { pass = 3, syn_cookie = 1 }, "counters")
local out = r.data
t.eq(#out, 14 + 20 + 24, "SYN-ACK length")
t.eq(out:sub(1, 12), CMAC .. SMAC, "MACs swapped")
local ip = out:sub(15, 34)
t.eq(ip:sub(13, 16) .. ip:sub(17, 20), LO .. PEER, "addresses swapped")
t.eq(u16(ip, 3), 44, "IP total length")
t.eq(csum(ip), 0, "IP header checksum")
local th = out:sub(35)
t.eq(u16(th, 1), port4, "source port")
t.eq(u16(th, 3), 40000, "destination port")
t.eq(u32(th, 9), 0x11223345, "ack = the SYN's seq + 1")
t.eq(th:byte(14), 0x12, "flags SYN|ACK")
t.eq(th:byte(13), 6 * 16, "data offset: 24 bytes")
t.eq(th:sub(21, 22), "\2\4", "MSS option")
local mss = u16(th, 23)
t.ok(mss >= 536 and mss <= 1400, "MSS from the cookie table, at most the client's (" .. mss .. ")")
t.eq(csum(ip:sub(13, 20) .. "\0\6" .. be16(#th) .. th), 0, "TCP checksum")
local cookie = u32(th, 5)

b = reasons()
local ack = tcp4(port4, 0x10, 0x11223345, (cookie + 1) % 2 ^ 32)
t.eq(assert(prog:test_run(ack)).verdict, "XDP_PASS", "ACK with the cookie passes")
-- A cookie whose MSS index is out of the table: invalid for sure (a small
-- change may land on another valid index: cookies carry few check bits).
local bad = tcp4(port4, 0x10, 0x11223345, (cookie + 1 + 0x100000) % 2 ^ 32)
t.eq(assert(prog:test_run(bad)).verdict, "XDP_DROP", "ACK with a forged cookie is dropped")
local other = ack:sub(1, 26) .. "\127\0\0\3" .. ack:sub(31) -- the same ACK from 127.0.0.3
t.eq(assert(prog:test_run(other)).verdict, "XDP_DROP", "the cookie from another source is dropped")
t.eq(assert(prog:test_run(tcp4(closed_port, 0x02, 5, 0, MSS1400))).verdict, "XDP_PASS",
  "no listener: the stack answers")
t.same(moved(b), { syn_cookie_ok = 1, syn_cookie_bad = 2, pass = 1 }, "cookie counters")
t.eq(f:stats().protected[port4].packets, 1 + 1 + 2, "counted on the protected port")

-- ---- SYN cookies, IPv6 ----------------------------------------------------------
f:set({ syn_threshold = 0 }) -- cookies always, from the first SYN
r = assert(prog:test_run(tcp6(port6, 0x02, 77, 0, MSS1400)))
t.eq(r.verdict, "XDP_TX", "IPv6 SYN answered")
out = r.data
t.eq(#out, 14 + 40 + 24, "IPv6 SYN-ACK length")
th = out:sub(55)
t.eq(th:byte(14), 0x12, "IPv6 flags SYN|ACK")
t.eq(u32(th, 9), 78, "IPv6 ack")
t.eq(csum(out:sub(23, 54) .. be32(#th) .. "\0\0\0\6" .. th), 0, "IPv6 TCP checksum")
cookie = u32(th, 5)
t.eq(assert(prog:test_run(tcp6(port6, 0x10, 78, (cookie + 1) % 2 ^ 32))).verdict, "XDP_PASS", "IPv6 cookie ACK")
t.eq(assert(prog:test_run(tcp6(port6, 0x10, 78, (cookie + 1 + 0x100000) % 2 ^ 32))).verdict, "XDP_DROP", "IPv6 forged ACK")

-- ---- SYN-ACKs from SYNs of every header layout (issue 17, fault 1) ---------------
-- Each answer is printed as "SYNACK name sent-hex answer-hex" for
-- test_filter_syn.sh, which parses it with scapy: ports from the real TCP
-- header, no trailing bytes, lengths and checksums right.
local function hex(s) return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end
-- IPv4 SYN from PEER:40000 to LO:port with IP options ipopts (a multiple of
-- 4 bytes), frag_off frag, an optional 802.1Q tag, payload and padding.
local function syn4(port, o)
  local ipopts, opts, data = o.ipopts or "", o.opts or MSS1400, o.data or ""
  local th = be16(40000) .. be16(port) .. be32(o.seq or 5000) .. be32(0)
    .. string.char((20 + #opts) / 4 * 16, 0x02) .. be16(64240) .. "\0\0\0\0" .. opts .. data
  local ip = string.char(64 + 5 + #ipopts / 4, 0) .. be16(20 + #ipopts + #th) .. "\0\1"
    .. be16(o.frag or 0x4000) .. "\64\6\0\0" .. PEER .. LO .. ipopts
  ip = ip:sub(1, 10) .. be16(csum(ip)) .. ip:sub(13)
  local eth = SMAC .. CMAC .. (o.vlan and (be16(0x8100) .. be16(o.vlan)) or "") .. be16(0x0800)
  return eth .. ip .. th .. (o.pad or "")
end
local RA, NOPS = "\148\4\0\0", "\1\1\1\0" -- router alert; NOPs and end of list
local layouts = {
  { "IPv4 options (router alert)", { ipopts = RA } },
  { "IPv4 options, 40 bytes (IHL 15)", { ipopts = string.rep(NOPS, 10), seq = 7 } },
  { "IPv4 options and a payload", { ipopts = RA, data = "hello" } },
  { "Ethernet padding after the SYN", { pad = string.rep("\0", 6), opts = "" } },
  { "no TCP options, no padding (the answer grows)", { opts = "" } },
  { "802.1Q tag and IPv4 options", { vlan = 7, ipopts = NOPS } },
}
b = reasons()
local answers = {}
for i, l in ipairs(layouts) do
  local frame = syn4(port4, l[2])
  r = assert(prog:test_run(frame))
  answers[i] = r
  print(("SYNACK %s %s %s"):format(l[1]:gsub("%W+", "_"), hex(frame), hex(r.data)))
end
for i, l in ipairs(layouts) do
  t.eq(answers[i].verdict, "XDP_TX", l[1] .. ": answered")
  if l[2].ipopts == RA then
    -- The cookie was made for the real ports: its ACK (with the same options) passes.
    local c = u32(answers[i].data, #answers[i].data - 24 + 5)
    local a = tcp4(port4, 0x10, 5001, (c + 1) % 2 ^ 32)
    a = a:sub(1, 14) .. string.char(0x46) .. a:sub(16, 16) .. be16(u16(a, 17) + 4) .. a:sub(19, 34) .. RA .. a:sub(35)
    t.eq(assert(prog:test_run(a)).verdict, "XDP_PASS", l[1] .. ": the cookie's ACK passes")
  end
end
t.same(moved(b), { syn_cookie = #layouts, syn_cookie_ok = 2 }, "layout counters")
-- Fragments are the kernel's to reassemble: a SYN in one passes (and the
-- kernel's own cookies answer it: tcp_syncookies=2).
b = reasons()
t.eq(assert(prog:test_run(syn4(port4, { frag = 0x2000 }))).verdict, "XDP_PASS", "IPv4 SYN, first fragment (MF): passed")
local s6 = tcp6(port6, 0x02, 99, 0, MSS1400)
local frag6 = "\6\0\0\0\0\0\0\42" -- next header TCP, offset 0, M=0 (atomic), id 42
s6 = s6:sub(1, 18) .. be16(u16(s6, 19) + 8) .. "\44" .. s6:sub(22, 54) .. frag6 .. s6:sub(55)
r = assert(prog:test_run(s6))
t.eq(r.verdict, "XDP_PASS", "IPv6 SYN behind a fragment header: passed")
t.eq(r.data, s6, "IPv6 SYN behind a fragment header: unchanged")
t.same(moved(b), { pass = 2 }, "fragment counters")

t.raises(function() f:protect(port4) end, "port " .. port4 .. " is already protected")
t.raises(function() f:protect({ ports = { 80 }, treshold = 1 }) end, "unknown option 'treshold'")
f:unprotect(port4)
t.eq(assert(prog:test_run(syn)).verdict, "XDP_PASS", "unprotected: SYNs pass")
t.eq(io.open("/proc/sys/net/ipv4/tcp_syncookies"):read("*l"), "2", "tcp_syncookies while protected")
f:close()
srv4:close()
srv6:close()

t.eq(io.open("/proc/sys/net/ipv4/tcp_syncookies"):read("*l"), "1", "tcp_syncookies restored")
print("ok")
