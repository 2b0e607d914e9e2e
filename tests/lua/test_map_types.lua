-- SPDX-License-Identifier: MIT
-- One round trip per map type in tests/bpf/maps.bpf.c: hash, array, per-CPU
-- (values per possible CPU, kernel-side too via test_run), LRU, LPM trie,
-- ring buffer (refused), prog array, sockmap, sockhash, hash of maps, queue.
local t = require("t")
local uv = require("luv")

local obj = assert(bpf.load(t.object("maps")))
local ncpu = #obj:map("pc_arr"):lookup(0)
t.ok(ncpu >= 1, "per-CPU lookup gives one value per possible CPU")
local f = io.open("/sys/devices/system/cpu/possible")
local possible = f:read("*l") f:close()
local last = tonumber(possible:match("(%d+)$"))
t.eq(ncpu, last + 1, "one value per possible CPU (" .. possible .. ")")

local fv = { packets = 3, bytes = 4, name = "x", nested = { a = 1, b = 2 }, ports = { 9, 8, 7, 6 },
  flags = 1, level = 2, delta = -3, kind = 17, a6 = "2001:db8::5", as_u32 = 0x04030201, bytes4 = { 1, 2, 3, 4 },
  signed64 = 42, on = true, mac = { 1, 2, 3, 4, 5, 6 } }

-- array: every index exists; update, then read back.
local arr = obj:map("arr")
t.ok(arr:update(3, fv))
t.same(arr:lookup(3), fv, "array struct round trip")
t.eq(arr:lookup(0).packets, 0, "array entries start zeroed")
local _, _, e = arr:lookup(8)
t.eq(e, "ENOENT", "array index past max_entries")

-- lru_hash
local lru = obj:map("lru")
t.ok(lru:update(1, fv))
t.same(lru:lookup(1), fv, "lru_hash round trip")

-- percpu_hash and lru_percpu_hash: a list in, a list out; a single value goes to every CPU.
for _, name in ipairs({ "pc_hash", "lru_pc" }) do
  local m = obj:map(name)
  local list = {}
  for i = 1, ncpu do list[i] = { packets = i, bytes = 10 * i } end
  t.ok(m:update(5, list))
  t.same(m:lookup(5), list, name .. " list round trip")
  local sum = m:lookup_sum(5)
  t.eq(sum.packets, ncpu * (ncpu + 1) / 2, name .. " lookup_sum packets")
  t.eq(sum.bytes, 10 * ncpu * (ncpu + 1) / 2, name .. " lookup_sum bytes")
  t.ok(m:update(6, { packets = 7, bytes = 1 }))
  local all = m:lookup(6)
  t.eq(#all, ncpu, name .. ": single value written to every CPU")
  for i = 1, ncpu do t.same(all[i], { packets = 7, bytes = 1 }, name .. " cpu " .. i) end
  local bad = {}
  for i = 1, ncpu + 1 do bad[i] = { packets = 1 } end
  t.raises(function() m:update(5, bad) end,
    string.format("map '%s' value: per-CPU map expects one value per possible CPU (%d), got %d", name, ncpu, ncpu + 1))
end

-- A 12-byte per-CPU value: slots are 16 bytes apart in the syscall buffer.
local small = obj:map("pc_small")
local list = {}
for i = 1, ncpu do list[i] = { a = i, b = 100 + i, c = 1000 + i } end
t.ok(small:update(2, list))
t.same(small:lookup(2), list, "12-byte per-CPU values land on their CPU")

-- Per-CPU values produced by the kernel: run xdp_count N times on one CPU.
local prog = obj:program("xdp_count")
if prog and prog.test_run then
  local pkt = string.rep("\0", 64)
  local r = assert(prog:test_run(pkt, { ["repeat"] = 10 }))
  t.eq(r.retval, 2, "XDP_PASS")
  local per = obj:map("pc_arr"):lookup(0)
  local nonzero = 0
  for i = 1, ncpu do if per[i].packets > 0 then nonzero = nonzero + 1 end end
  t.ok(nonzero >= 1, "some CPU counted")
  t.same(bpf.sum(per), { packets = 10, bytes = 640 }, "kernel-side per-CPU counters sum")
  t.same(obj:map("pc_arr"):lookup_sum(0), { packets = 10, bytes = 640 }, "lookup_sum")
end

-- lpm_trie: struct {prefixlen, ipv4_t} keys, longest prefix wins.
local routes = obj:map("routes")
t.ok(routes:update({ prefixlen = 8, addr = "10.0.0.0" }, 1))
t.ok(routes:update({ prefixlen = 24, addr = "10.1.2.0" }, 2))
t.ok(routes:update({ prefixlen = 32, addr = "10.1.2.3" }, 3))
t.eq(routes:lookup({ prefixlen = 32, addr = "10.1.2.3" }), 3, "exact /32")
t.eq(routes:lookup({ prefixlen = 32, addr = "10.1.2.4" }), 2, "longest prefix /24")
t.eq(routes:lookup({ prefixlen = 32, addr = "10.9.9.9" }), 1, "falls back to /8")
t.eq(routes:lookup({ prefixlen = 32, addr = "11.0.0.1" }), nil, "no route")
local seen = {}
for k, v in routes:pairs() do seen[k.addr .. "/" .. k.prefixlen] = v end
t.same(seen, { ["10.0.0.0/8"] = 1, ["10.1.2.0/24"] = 2, ["10.1.2.3/32"] = 3 }, "lpm iteration")
local ks, vs = routes:lookup_batch()
t.eq(#ks, 3, "lpm lookup_batch falls back to iteration") t.eq(#vs, 3, "lpm values")

-- ringbuf: element operations are refused with the way to read it.
local events = obj:map("events")
for _, op in ipairs({ "lookup", "update", "pairs", "dump" }) do
  t.raises(function() events[op](events, 0, 0) end,
    "map 'events' is a ringbuf: read it with bpf.ringbuf(map, handler)", "ringbuf " .. op)
end
t.eq(events:info().type, "ringbuf", "ringbuf info")

-- prog_array: a program userdata (or fd) in, its id out; the tail call runs.
local jmp = obj:map("jmp")
local tail = obj:program("xdp_tail")
if tail and tail.info then
  t.ok(jmp:update(0, tail))
  t.eq(jmp:lookup(0), tail:info().id, "prog_array lookup gives the program id")
  t.ok(jmp:update(1, tail:fd()), "prog_array takes an fd")
  t.eq(jmp:lookup(1), tail:info().id, "fd form")
  t.ok(jmp:delete(0)) t.ok(jmp:delete(1))
end
t.raises(function() jmp:update(0, "x") end, "map 'jmp' value expects a program (or a program fd), got string")
t.raises(function() jmp:update(0, obj:map("counts")) end,
  "map 'jmp' value expects a program (or a program fd), got userdata", "a map is not a program")

-- sockmap/sockhash: a connected unix socket pair by fd, and by a luv handle's :fileno().
local fds = assert(uv.socketpair("stream", 0))
for _, name in ipairs({ "socks", "sockh" }) do
  local m = obj:map(name)
  t.ok(m:update(0, fds[1]), name .. " takes an fd")
  local pipe = uv.new_pipe(false)
  pipe:open(fds[2])
  t.ok(m:update(1, pipe), name .. " takes a handle with :fileno()")
  t.eq(type(m:lookup(0)), "number", name .. " lookup gives the socket cookie")
  t.ok(m:lookup(0) ~= m:lookup(1), name .. " distinct cookies")
  t.ok(m:delete(0)) t.ok(m:delete(1))
  t.raises(function() m:update(0, {}) end, "map '" .. name .. "' value expects a socket fd (or a handle with :fileno()), got table")
  pipe:close()
  fds = assert(uv.socketpair("stream", 0))
end

-- hash_of_maps: a map userdata in, the inner map's id out.
local outer, ia, ib = obj:map("outer"), obj:map("inner_a"), obj:map("inner_b")
t.ok(outer:update(1, ia)) t.ok(outer:update(2, ib:fd()))
t.eq(outer:lookup(1), ia:info().id, "hash_of_maps gives the inner map id")
t.eq(outer:lookup(2), ib:info().id, "inner by fd")
local inner = assert(bpf.map_from_id(outer:lookup(1)))
t.ok(inner:update(0, 99)) t.eq(ia:lookup(0), 99, "inner map reached through its id")
inner:close()

-- queue: no keys; push/pop and update(nil, v)/lookup_and_delete(nil).
local q = obj:map("q")
t.ok(q:push({ packets = 1, bytes = 2 })) t.ok(q:update(nil, { packets = 3, bytes = 4 }))
t.same(q:peek(), { packets = 1, bytes = 2 }, "queue peek") t.same(q:lookup(), { packets = 1, bytes = 2 }, "lookup = peek")
t.same(q:pop(), { packets = 1, bytes = 2 }, "queue pop is FIFO")
t.same(q:lookup_and_delete(), { packets = 3, bytes = 4 }, "lookup_and_delete pops")
local v, _, errname = q:pop()
t.eq(v, nil, "empty queue") t.eq(errname, "ENOENT", "empty queue errno")
t.raises(function() q:lookup(1) end, "map 'q' is a queue: it has no keys (pass nil)")

-- lookup_and_delete on a hash.
local counts = obj:map("counts")
t.ok(counts:update(9, 90))
t.eq(counts:lookup_and_delete(9), 90, "lookup_and_delete value")
t.eq(counts:lookup(9), nil, "and it is gone")
print("test_map_types: ok")
