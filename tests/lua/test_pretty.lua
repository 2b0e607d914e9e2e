-- SPDX-License-Identifier: MIT
-- luabpf.pretty as docs/pretty.md describes it: values, and a map printed by
-- pretty.format with its entries (it printed only its header before).
local t = require("t")
local pretty = require("luabpf.pretty")

t.eq(pretty.format({ addr = "10.0.0.1", port = 443, bytes = bpf.u64("18446744073709551615") }),
  '{ addr = "10.0.0.1", bytes = 18446744073709551615, port = 443 }', "table, sorted keys, exact u64")
t.eq(pretty.format({ 1, 2, "x\0" }), '{ 1, 2, "x\\x00" }', "sequence, bytes escaped")
t.eq(pretty.format({ ["end"] = 1, [2.5] = true }), "{ [2.5] = true, [\"end\"] = 1 }", "keys that are no identifiers")
local cyc = {}
cyc.me = cyc
t.eq(pretty.format(cyc), "{ me = <cycle> }", "cycle")
t.eq(pretty.format({ a = { b = { c = 1 } } }, { depth = 2 }), "{ a = { b = {...} } }", "depth")
t.eq(pretty.format({ 0 / 0, math.huge }), "{ 0/0, math.huge }", "NaN, inf")
local long = pretty.format({ aaaaaaaaaa = string.rep("x", 50), bbbbbbbbbb = string.rep("y", 50) }, { width = 60 })
t.eq(long, '{\n  aaaaaaaaaa = "' .. string.rep("x", 50) .. '",\n  bbbbbbbbbb = "' .. string.rep("y", 50) .. '"\n}', "width")

local obj = assert(bpf.load(t.object("maps")))
local cfg = obj:map("cfg")
t.eq(pretty.format(cfg), "luabpf.map 'cfg' (hash, 4->8 bytes, 16 max)\n  (empty)", "empty map")
assert(cfg:update(1, { proto = 6, port = 80, addr = "192.168.7.1" }))
assert(cfg:update(2, { proto = 17, port = 53, addr = "10.0.0.53" }))
local text = pretty.format(cfg)
t.ok(text:find("^luabpf.map 'cfg' %(hash, 4%->8 bytes, 16 max%)\n"), "header: " .. text)
t.ok(text:find('\n  1 => { addr = "192.168.7.1", port = 80, proto = 6 }', 1, true), "entry 1: " .. text)
t.ok(text:find('\n  2 => { addr = "10.0.0.53", port = 53, proto = 17 }', 1, true), "entry 2: " .. text)
t.eq(pretty.map(cfg), text, "format(map) is pretty.map")
text = pretty.format(cfg, { limit = 1 })
t.ok(text:find("\n  ... 2 entries in all (m:dump() returns every one)", 1, true), "limit: " .. text)
t.eq(select(2, text:gsub("=>", "")), 1, "one entry under limit 1")
t.eq(pretty.format({ m = cfg }), "{ m = luabpf.map 'cfg' (hash, 4->8 bytes, 16 max) }", "a map inside a table: header only")
t.ok(pretty.format(obj:map("events")):find("\n  (", 1, true), "a ring buffer: its error in parentheses")
obj:close()
print("ok")
