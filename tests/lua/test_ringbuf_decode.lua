-- SPDX-License-Identifier: MIT
-- Table mode's two decoders give the same tables: the one generated in Lua
-- from the event's BTF type (lua/luabpf/_ringbuf.lua, what ring and perf
-- buffers use) and the general one in C (host/btf_decode.c, what they used
-- before). Both run on the same fuzzed bytes for every type the map and ring
-- tests use: nested, anonymous and packed structs, unions, char and other
-- arrays, 2-D arrays, bitfields (signed, bool), enums, __be16, ipv4_t,
-- ipv6_t, in6_addr, 64-bit values on both sides of 2^53, floats. Then the
-- same events through a ring, one buffer with each decoder.
local t = require("t")
local ffi = require("ffi")
local R = require("luabpf._ringbuf")

local ROUNDS = 3000
math.randomseed(tonumber(os.getenv("SEED") or "") or os.time())

-- Bytes that reach every branch: zeros and 0xff runs (small and huge 64-bit
-- values, both signs), and random bytes.
local function fuzz(size)
  local b, mode = {}, math.random(4)
  for i = 1, size do
    local r = math.random(10)
    if mode == 1 then b[i] = 0
    elseif mode == 2 then b[i] = r <= 8 and 0xff or math.random(0, 255)
    elseif mode == 3 then b[i] = r <= 6 and 0 or math.random(0, 255)
    else b[i] = math.random(0, 255) end
  end
  return string.char(unpack(b))
end

local function same(a, b, path)
  if type(a) ~= type(b) then
    return false, ("%s: %s vs %s"):format(path, type(a), type(b))
  end
  if type(a) == "table" then
    for k, v in pairs(a) do
      local ok, why = same(v, b[k], path .. "." .. tostring(k))
      if not ok then return false, why end
    end
    for k in pairs(b) do
      if a[k] == nil then return false, path .. "." .. tostring(k) .. ": only in the general one" end
    end
    return true
  elseif type(a) == "cdata" then
    if tostring(ffi.typeof(a)) ~= tostring(ffi.typeof(b)) or a ~= b then
      return false, ("%s: %s vs %s"):format(path, tostring(a), tostring(b))
    end
    return true
  elseif type(a) == "number" and a ~= a then
    return b ~= b, path .. ": NaN vs " .. tostring(b)
  end
  return a == b, ("%s: %s vs %s"):format(path, tostring(a), tostring(b))
end

-- 64-bit values at the edges of exact numbers (2^53), as 8 bytes.
local edges = {}
for _, v in ipairs({ 2 ^ 53 - 1, 2 ^ 53, -2 ^ 53, 0, -1 }) do
  for d = -1, 1 do
    local b = ffi.new("int64_t[1]", v)
    b[0] = b[0] + d
    edges[#edges + 1] = ffi.string(b, 8)
  end
end
edges[#edges + 1] = ffi.string(ffi.new("uint64_t[1]", 0x8000000000000000ULL), 8)

local function check_type(events, decl)
  local rb = bpf.ringbuf(events, function() end, { decode = decl })
  local tree = rb:_tree()
  t.ok(tree, decl .. ": the type has a decode tree")
  local fast = R.decoder(tree, decl)
  t.ok(fast, decl .. ": a decoder was generated")
  for i = 1, ROUNDS do
    local s = tree.size == 8 and edges[i] or fuzz(tree.size)
    local want = rb:_decode(s)
    local got = fast(ffi.cast("const uint8_t *", s))
    local ok, why = same(got, want, decl)
    if not ok then
      t.ok(false, ("%s: generated and general decoders differ on %q: %s"):format(decl, s, why))
    end
  end
  rb:close()
  return tree.size
end

local maps = assert(bpf.load(t.object("maps")))
for _, decl in ipairs({ "struct flow_key", "struct flow_value", "struct cnt", "struct small",
  "struct cfg", "struct lpm_v4", "__be16", "ipv4_t", "__u64", "__s64" }) do
  check_type(maps:map("events"), decl)
end
local obj = assert(bpf.load(t.object("ringbuf"), { max_entries = { events = 2 ^ 20 } }))
for _, decl in ipairs({ "struct event", "struct odd" }) do
  check_type(obj:map("events"), decl)
end
print(("ok: %d fuzzed inputs per type, both decoders agree"):format(ROUNDS))

-- Through a ring: 2,000 events, once with each decoder; each event is what
-- the producer (tests/bpf/ringbuf.bpf.c, fill()) wrote for its sequence number.
local N = 2000
for _, general in ipairs({ false, true }) do
  local how = general and "general" or "generated"
  R.general = general
  local bad
  local rb = bpf.ringbuf(obj:map("events"), function(e, len)
    local q = e.seq
    local want = { seq = q, pid = q * 7 % 2 ^ 32, port = q % 65536, flag = q % 2, comm = "luabpf-test",
      ts = q * 1000, pair = { a = q + 1, b = q + 2 }, tag = { 0xdead, 0xbeef } }
    local ok, why = same(e, want, how .. " event")
    if not ok or len ~= 56 then bad = bad or (why or "length " .. len) end
  end, { decode = "struct event" })
  R.general = nil
  rb:pause()
  assert(obj:program("emit"):test_run(string.char(N % 256, math.floor(N / 256), 0, 0, 0) .. string.rep("\0", 59)))
  t.eq(rb:consume(), N, how .. " decoder: events consumed")
  t.eq(bad, nil, how .. " decoder: every event as written")
  rb:close()
end
-- short events: the same message from both
local short = bpf.ringbuf(obj:map("events"), function() end, { decode = "struct odd" })
t.raises(function() short:_decode(string.rep("\0", 56)) end,
  "ringbuf 'events': a 56-byte event is smaller than struct odd (72 bytes)")
short:close()
print("ok: a ring's events decode the same both ways")
