-- SPDX-License-Identifier: MIT
-- The BTF codec as a user meets it through maps: every shape of key and value
-- in tests/bpf/maps.bpf.c round-trips, 64-bit values stay exact, and misuse
-- raises messages that name the map, the field and what was expected.
local t = require("t")
local ffi = require("ffi")

local obj = assert(bpf.load(t.object("maps")))
local flows, counts, big, cfg = obj:map("flows"), obj:map("counts"), obj:map("big"), obj:map("cfg")

-- Every field of struct flow_value, as it should come back.
local value = {
  packets = 1, bytes = 1500, name = "web-1",
  nested = { a = 7, b = 65535 },
  ports = { 80, 443, 0, 0 },
  flags = 5, level = 31, delta = -7,
  kind = 6,
  a6 = "fd00::1",
  as_u32 = 0x01020304, bytes4 = { 4, 3, 2, 1 },
  signed64 = -5, on = true,
  mac = { 0x02, 0, 0, 0, 0, 0x01 },
}

-- Struct round trip through a hash map: nested struct, char array, array,
-- bitfields (signed too), enum, in6_addr, anonymous union flattened, bool.
local key4 = { addr = { v4 = "10.0.0.1" }, port = 8080, proto = 6 }
t.eq(flows:update(key4, value), true, "update flows")
local got = t.ok(flows:lookup(key4), "lookup flows")
t.same(got, value, "flow value round trip")

-- The key decodes with both views of its union; port is host order.
local k = flows:keys()()
t.eq(k.addr.v4, "10.0.0.1", "key addr.v4")
t.eq(k.port, 8080, "key __be16 port is host order")
t.eq(k.proto, 6, "key proto")
t.eq(k.pad, 0, "missing field zero-filled")

-- __be16 really is big-endian in the map: the raw key bytes say so.
local raw_key = string.char(10, 0, 0, 1) .. string.rep("\0", 12) .. string.char(0x1f, 0x90, 6, 0)
t.same(flows:lookup(raw_key), value, "raw key bytes (exact size) accepted, port in network order")

-- IPv6 in the same union, and missing fields zero-fill.
local key6 = { addr = { v6 = "fd00::2" }, port = 53, proto = 17 }
t.ok(flows:update(key6, { packets = 2, name = "dns" }))
local v6 = flows:lookup(key6)
t.eq(v6.packets, 2, "v6 packets")
t.eq(v6.bytes, 0, "unset field is zero")
t.eq(v6.name, "dns", "char array decodes to a string up to NUL")
t.eq(v6.a6, "::", "zero in6_addr")
t.eq(v6.on, false, "zero bool")
t.same(v6.ports, { 0, 0, 0, 0 }, "zero array")

-- Enum by name; arrays shorter than the type zero-fill.
t.ok(flows:update(key6, { kind = "PK_UDP", ports = { 1 } }))
t.eq(flows:lookup(key6).kind, 17, "enum given by name")
t.same(flows:lookup(key6).ports, { 1, 0, 0, 0 }, "short sequence zero-fills")

-- A char array of exactly its size needs no NUL.
t.ok(flows:update(key6, { name = "0123456789abcdef" }))
t.eq(flows:lookup(key6).name, "0123456789abcdef", "16-char name in char[16]")

-- Bitfields: the neighbours are untouched by each other.
t.ok(flows:update(key6, { flags = 7, level = 0, delta = 2047 }))
local bf = flows:lookup(key6)
t.eq(bf.flags, 7, "flags:3 max") t.eq(bf.level, 0, "level:5") t.eq(bf.delta, 2047, "delta:12 max")
t.ok(flows:update(key6, { flags = 0, level = 17, delta = -2048 }))
bf = flows:lookup(key6)
t.eq(bf.flags, 0, "flags:3 zero") t.eq(bf.level, 17, "level:5") t.eq(bf.delta, -2048, "delta:12 min")

-- ---- 64-bit exactness ---------------------------------------------------
local two63p5 = bpf.u64("9223372036854775813") -- 2^63 + 5
t.ok(ffi.istype("uint64_t", two63p5), "bpf.u64 gives uint64_t cdata")
t.ok(big:update(two63p5, ffi.new("int64_t", -9007199254740993LL)))
local bk, bv = big:pairs()()
t.eq(type(bk), "cdata", "u64 key beyond 2^53 is cdata")
t.eq(bk, two63p5, "2^63+5 round trips exactly")
t.eq(tostring(bk), "9223372036854775813ULL", "printed exactly")
t.eq(bv, -9007199254740993LL, "negative s64 beyond 2^53 exact")
t.eq(big:lookup(2^63 + 4096), nil, "a number key beyond 2^53 is accepted (integral)")
t.ok(big:update(2^53, 2^53), "2^53 as numbers")
t.eq(type(big:lookup(2^53)), "number", "2^53 comes back as a number")
t.raises(function() big:update(1, 0xffffffffffffffffULL) end,
  "map 'big' value: expects __s64 (-9223372036854775808..9223372036854775807), got 18446744073709551615ULL",
  "uint64 cdata beyond int64 into __s64")
t.raises(function() big:update(-1, 0) end, "map 'big' key: expects __u64 (0..18446744073709551615), got -1",
  "negative number into __u64")

-- ---- errors name the map, the field and the expectation ----------------
t.raises(function() counts:lookup("abc") end,
  "map 'counts' key: expects __u32 (4 bytes), got a 3-byte string", "3-byte key")
t.raises(function() counts:update(1.5, 1) end, "map 'counts' key: expects an integer, got 1.5", "fraction")
t.raises(function() counts:update(2^32, 1) end, "map 'counts' key: expects __u32 (0..4294967295), got 4294967296",
  "out of range key")
t.raises(function() counts:update({}, 1) end, "map 'counts' key: expects an integer, got table", "table key")
t.raises(function() flows:update(key4, { nested = { a = "x" } }) end,
  "map 'flows' value field 'nested.a' expects an integer, got string", "nested field type")
t.raises(function() flows:update({ addr = { v4 = "10.0.0.300" } }, value) end,
  "map 'flows' key field 'addr.v4': '10.0.0.300' is not an IPv4 address", "bad dotted quad")
t.raises(function() flows:update({ addr = { v6 = "10.0.0.1" } }, value) end,
  "map 'flows' key field 'addr.v6': '10.0.0.1' is not an IPv6 address", "IPv4 text for ipv6_t")
t.raises(function() cfg:update(1, { prot = 6 }) end,
  "map 'cfg' value: unknown field 'prot' (fields: proto, port, addr)", "unknown field")
t.raises(function() flows:update(key4, { name = "this name is far too long" }) end,
  "map 'flows' value field 'name' expects a string of at most 16 bytes, got 25 bytes", "long string")
t.raises(function() flows:update(key4, { ports = { 1, 2, 3, 4, 5 } }) end,
  "map 'flows' value field 'ports' expects at most 4 elements, got 5", "long sequence")
t.raises(function() flows:update(key4, { ports = { 1, "x" } }) end,
  "map 'flows' value field 'ports[2]' expects an integer, got string", "array element path")
t.raises(function() flows:update(key4, { flags = 8 }) end,
  "map 'flows' value field 'flags' expects a 3-bit integer (0..7), got 8", "bitfield range")
t.raises(function() flows:update(key4, { kind = "PK_SCTP" }) end,
  "map 'flows' value field 'kind': 'PK_SCTP' is not a value of enum proto_kind (values: PK_NONE, PK_TCP, PK_UDP)",
  "unknown enumerator")
t.ok(flows:update(key6, { on = 1 })) t.eq(flows:lookup(key6).on, true, "bool from 1")
t.raises(function() flows:update(key4, { on = 2 }) end,
  "map 'flows' value field 'on' expects a boolean, got 2", "bool field")
t.raises(function() cfg:update(1, { port = 65536 }) end,
  "map 'cfg' value field 'port' expects __be16 (0..65535), got 65536", "__be16 range")
t.raises(function() cfg:update(1, 5) end, "map 'cfg' value: expects struct cfg (a table), got number", "struct")
-- The error points at the caller's line, not at C.
local msg = t.raises(function() counts:lookup("abc") end, "test_codec.lua:")
t.ok(msg:find("^[^:]*test_codec%.lua:%d+: map 'counts'"), "error position is the script's: " .. msg)

-- ---- cfg: __be16 and ipv4_t on the wire ----------------------------------
t.ok(cfg:update(1, { proto = 6, port = 443, addr = "192.168.1.20" }))
t.same(cfg:lookup(1), { proto = 6, port = 443, addr = "192.168.1.20" }, "cfg round trip")
t.ok(cfg:update(2, { addr = bpf.ip4("10.1.2.3") }), "ipv4_t from a host-order number")
t.eq(cfg:lookup(2).addr, "10.1.2.3", "ipv4_t number encodes in network order")

-- No BTF: sizes 1/2/4/8 are integers, others raw strings of the exact size.
local raw = obj:map("raw")
t.ok(raw:update(7, string.rep("x", 12)))
t.eq(raw:lookup(7), string.rep("x", 12), "no-BTF 12-byte value is a raw string")
t.eq(raw:keys()(), 7, "no-BTF 4-byte key is a number")
t.raises(function() raw:update(7, "short") end, "map 'raw' value: expects 12 raw bytes (12 bytes), got a 5-byte string")

-- ---- module helpers -------------------------------------------------------
t.eq(bpf.ip4("10.0.0.1"), 0x0a000001, "bpf.ip4")
t.eq(bpf.ntoa(0x0a000001), "10.0.0.1", "bpf.ntoa number")
t.eq(bpf.ntoa(string.char(10, 0, 0, 2)), "10.0.0.2", "bpf.ntoa 4 bytes")
t.eq(bpf.ntoa(string.char(0xfd) .. string.rep("\0", 14) .. "\1"), "fd00::1", "bpf.ntoa 16 bytes")
t.eq(bpf.htons(0x1234), 0x3412, "htons") t.eq(bpf.ntohs(0x3412), 0x1234, "ntohs")
t.eq(bpf.htonl(0x01020304), 0x04030201, "htonl") t.eq(bpf.ntohl(0x04030201), 0x01020304, "ntohl")
t.raises(function() bpf.ip4("300.1.1.1") end, "bpf.ip4: '300.1.1.1' is not an IPv4 address")
t.eq(bpf.sum({ 1, 2, 3 }), 6, "sum numbers")
t.same(bpf.sum({ { p = 1, n = { a = 1 }, l = { 1, 2 } }, { p = 2, n = { a = 5 }, l = { 3, 4 } } }),
  { p = 3, n = { a = 6 }, l = { 4, 6 } }, "field-wise nested sum")
t.eq(bpf.sum({ 2^53, 2^53 }), bpf.u64(2^54), "sum past 2^53 stays exact as cdata")
t.eq(bpf.sum({ bpf.u64("18446744073709551000"), 15 }), bpf.u64("18446744073709551015"), "cdata + number")
t.eq(bpf.u64(5), 5ULL, "bpf.u64 number")
t.raises(function() bpf.u64(-1) end, "bpf.u64 expects a non-negative integer")
print("test_codec: ok")
