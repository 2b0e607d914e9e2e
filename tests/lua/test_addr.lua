-- SPDX-License-Identifier: MIT
-- bpf.addr: an ipv4_t/ipv6_t field reads as its address however it reached
-- Lua. The cdata case is a struct laid out as a BPF program writes one (the
-- packet's bytes, network order), read through a const pointer as a ring
-- buffer handler gets it; bpf.ntoa takes that number for host order.
local t = require("t")
local ffi = require("ffi")

local ev_t = ffi.typeof([[struct { uint32_t saddr; struct { uint8_t addr[16]; } daddr; uint8_t a4[4]; uint64_t big; }]])
local raw = ffi.new(ev_t)
ffi.copy(ffi.cast("uint8_t *", raw) + 0, "\10\9\0\2", 4)               -- 10.9.0.2 as in a packet
ffi.copy(raw.daddr.addr, "\253\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16)     -- fd00::1
ffi.copy(raw.a4, "\192\168\1\7", 4)
local ev = ffi.cast(ffi.typeof("const $ *", ev_t), raw)

t.eq(bpf.addr(ev.saddr), "10.9.0.2", "ipv4_t read from cdata (a number)")
t.ok(bpf.ntoa(ev.saddr) ~= "10.9.0.2", "bpf.ntoa reads that number as host order: " .. bpf.ntoa(ev.saddr))
t.eq(bpf.addr(ev.daddr), "fd00::1", "ipv6_t struct field")
t.eq(bpf.addr(ev.daddr.addr), "fd00::1", "uint8_t[16] field")
t.eq(bpf.addr(ev.a4), "192.168.1.7", "uint8_t[4] field")
t.eq(bpf.addr(ffi.cast("const uint8_t (*)[16]", ev.daddr.addr)), "fd00::1", "pointer to 16 bytes")
t.eq(bpf.addr(ffi.new("uint32_t", ev.saddr)), "10.9.0.2", "uint32_t box")
t.eq(bpf.addr("\10\0\0\1"), "10.0.0.1", "4-byte string")
t.eq(bpf.addr(ffi.string(ev.daddr, 16)), "fd00::1", "16-byte string")
t.eq(bpf.addr("fd00:0::1"), "fd00::1", "table mode's text, canonical")

local function err(f, ...)
  local ok, e = pcall(f, ...)
  t.ok(not ok, "raises")
  return tostring(e)
end
t.ok(err(bpf.addr, ev.big):find("bpf.addr: uint64_t is 8 bytes, not an ipv4_t (4) or ipv6_t (16)", 1, true), "u64 field")
t.ok(err(bpf.addr, {}):find("bpf.addr expects an ipv4_t/ipv6_t field (number, cdata or string), got table", 1, true), "table")
t.ok(err(bpf.addr, "no-such"):find("bpf.addr: 'no-such' is neither an address nor 4 or 16 bytes", 1, true), "text")
t.ok(err(bpf.addr, -1):find("bpf.addr: -1 is not an ipv4_t field's value", 1, true), "negative")
t.ok(err(bpf.addr, ev):find("is not an address field (4 or 16 bytes)", 1, true), "pointer to a struct of another size")
print("ok")
