-- SPDX-License-Identifier: MIT
-- The FFI type cdata mode builds from BTF: every field where BTF (as bpftool
-- prints it) says it is, through padding, bitfields, a packed member, unions,
-- enums, typedefs, pointers, 2-D arrays; anonymous, so two objects may both
-- have a `struct odd` without clashing in ffi's namespace.
local t = require("t")
local ffi = require("ffi")

local path = t.object("ringbuf")
local obj = assert(bpf.load(path))
local events = obj:map("events")

-- What BTF says: member -> byte offset, from bpftool's raw dump.
local dump = t.sh("/usr/sbin/bpftool btf dump file " .. path)
local btf, size, inside = {}, nil, false
for line in dump:gmatch("[^\n]+") do
  if line:match("^%[%d+%] STRUCT 'odd'") then
    inside, size = true, tonumber(line:match("size=(%d+)"))
  elseif inside and line:match("^%s+'") then
    local name, bits = line:match("'([%w_]+)' type_id=%d+ bits_offset=(%d+)")
    if not line:find("bitfield_size", 1, true) then btf[name] = tonumber(bits) / 8 end
  elseif inside then
    break
  end
end
t.eq(size, 72, "bpftool's size of struct odd")
t.eq(btf.tight, 24, "bpftool's offset of tight")

local rb = bpf.ringbuf(events, function() end, { decode = "cdata:struct odd" })
local ct = rb:ctype()
t.ok(ct, "rb:ctype() in cdata mode")
do
  local raw = bpf.ringbuf(events, function() end)
  t.eq(raw:ctype(), nil, "no ctype in raw mode")
  raw:close() -- an open buffer keeps the loop (and this test) running
end

local buf = ffi.new("uint8_t[?]", size)
local p = ffi.cast(ct, buf)
t.eq(ffi.sizeof(p[0]), size, "sizeof the FFI struct")

-- Write little-endian bytes at BTF's offset, read them back by field name.
local function put(off, n, v)
  for i = 0, n - 1 do buf[off + i] = v % 256; v = math.floor(v / 256) end
end
put(btf.kind, 1, 0x7f)
put(1, 1, 0xff) -- the bitfields' byte: must not leak into neighbours
put(btf.port, 2, 0x1234)
put(btf.addr, 4, 0x0a000001)
put(btf.addr + 15, 1, 0x99)
put(btf.colour, 4, 2)
put(btf.tight, 1, 0x42)
put(btf.tight + 1, 8, 2 ^ 40 + 5) -- packed: y right after x
put(btf.ptr, 8, 2 ^ 47 + 16)
put(btf.grid + (1 * 3 + 2) * 2, 2, 0x10000 - 3) -- grid[1][2] = -3
put(btf.ok, 1, 1)
ffi.copy(buf + btf.name, "abcde", 5)

t.eq(p.kind, 0x7f, "kind")
t.eq(p.port, 0x1234, "port (typedef port_t)")
t.eq(p.addr.v4, 0x0a000001, "addr.v4 (union)")
t.eq(p.addr.v6[15], 0x99, "addr.v6[15] (union)")
t.eq(p.colour, 2, "colour (enum)")
t.eq(p.tight.x, 0x42, "tight.x (packed struct)")
t.eq(tonumber(p.tight.y), 2 ^ 40 + 5, "tight.y (packed struct)")
t.eq(tonumber(p.ptr), 2 ^ 47 + 16, "ptr (a kernel address, as a number)")
t.eq(p.grid[1][2], -3, "grid[1][2] (signed, 2-D)")
t.eq(p.grid[0][0], 0, "grid[0][0]")
t.eq(p.ok, true, "ok (_Bool)")
t.eq(ffi.string(p.name, 5), "abcde", "name (char[5])")
t.raises(function() return p.flags end, "flags", "bitfields are not fields in cdata mode")
t.raises(function() p.kind = 1 end, "const", "events are read-only")

-- Two buffers, two distinct anonymous types: nothing named in ffi's namespace.
local rb2 = bpf.ringbuf(events, function() end, { decode = "cdata:struct odd" })
t.ok(rb2:ctype() ~= ct, "each buffer has its own type")
t.ok(not pcall(ffi.typeof, "struct odd"), "no 'struct odd' declared in ffi's namespace")
rb:close(); rb2:close()

-- Events shorter than the type (56-byte struct event read as 72-byte struct
-- odd): the handler is not called, each is an error, delivery goes on.
for _, mode in ipairs({ "cdata:struct odd", "struct odd" }) do
  local called = 0
  local short = bpf.ringbuf(events, function() called = called + 1 end, { decode = mode })
  assert(obj:program("emit"):test_run(string.char(3, 0, 0, 0, 0) .. string.rep("\0", 59)))
  t.eq(short:consume(), 3, mode .. ": short events consumed")
  t.eq(called, 0, mode .. ": handler calls for short events")
  t.eq(short:stats().errors, 3, mode .. ": one error per short event")
  short:close()
end
for _, b in ipairs({ "struct event", "cdata:struct event" }) do
  bpf.ringbuf(events, function() end, { decode = b }):close()
end
