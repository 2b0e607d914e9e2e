-- SPDX-License-Identifier: MIT
-- The ring and perf buffers' drain loops, in Lua so the JIT compiles them
-- together with the handler. host/l_ringbuf.c and host/l_perfbuf.c call the
-- function ring() or perf() returns once per batch (and catch handler
-- errors). A ring's loop reads each record's header from the mapped ring
-- itself and calls C only to give space back (lbpf_ring__settle); a perf
-- buffer's fetches records with one ffi.C call per chunk (lbpf_perf__fill
-- collects up to 64 into arrays). Each record goes to the handler: in cdata
-- mode a pointer cast the compiler sinks away, in table mode a table built
-- by a decoder generated once from the event's BTF type (decoder() below),
-- in raw mode a string.
local ffi = require("ffi")

-- The heads of host/ring_chunk.h's structs (int32_t where C has uint32_t:
-- it loads without a conversion to double).
ffi.cdef [[
struct lbpf_ring {
  int32_t i, stop, one;
  int32_t len[1];
  const void *ptr[1];
  uint64_t pos, mask;
  const uint8_t *data;
};
struct lbpf_chunk {
  int32_t n, i, stop, cpu;
  const void *ptr[64];
  int32_t len[64];
};
void lbpf_ring__settle(struct lbpf_ring *r);
uint64_t lbpf_ring__produced(const struct lbpf_ring *r);
uint32_t lbpf_perf__fill(struct lbpf_chunk *c, uint32_t want);
uint64_t uv_hrtime(void);
int lbpf_ring__ntop(int v6, const void *src, char *dst);
size_t strnlen(const char *s, size_t maxlen);
]]

local cast, typeof, fstring, tonumber = ffi.cast, ffi.typeof, ffi.string, tonumber
local M = {}
local TWO53 = 2 ^ 53

-- ---- table decoders -------------------------------------------------------
-- decoder(tree, what) -> function(p) -> the table (or value) the general
-- decoder (host/btf_decode.c) makes of the bytes at p, or nil when the tree
-- has a shape this generator leaves to C. tree: host/ring_decode.c.

local INLINE_ARRAY = 8 -- longer arrays are a loop in a helper function

local function new_gen()
  return { types = {}, tindex = {}, helpers = {}, nhelp = 0 }
end

-- The name of an upvalue holding ctype decl (a pointer type), declared once.
local function ptype(g, decl)
  local name = g.tindex[decl]
  if not name then
    g.types[#g.types + 1] = typeof(decl)
    name = "T" .. #g.types
    g.tindex[decl] = name
  end
  return name
end

local gen

local scalar = {
  int = function(g, n, at)
    local bits = n.size * 8
    if bits ~= 8 and bits ~= 16 and bits ~= 32 and bits ~= 64 then return nil end
    local v = ("cast(%s, %s)[0]"):format(ptype(g, ("%sint%d_t *"):format(n.sign and "" or "u", bits)), at)
    if bits < 64 then return v end
    return (n.sign and "i64(%s)" or "u64(%s)"):format(v)
  end,
  bool = function(g, n, at)
    local bits = n.size * 8
    if bits ~= 8 and bits ~= 16 and bits ~= 32 and bits ~= 64 then return nil end
    return ("(cast(%s, %s)[0] ~= 0)"):format(ptype(g, ("uint%d_t *"):format(bits)), at)
  end,
  float = function(g, n, at)
    if n.size ~= 4 and n.size ~= 8 then return nil end
    return ("cast(%s, %s)[0]"):format(ptype(g, n.size == 4 and "float *" or "double *"), at)
  end,
  be = function(g, n, at)
    local b = ptype(g, "const uint8_t *")
    if n.size == 2 then
      return ("(cast(%s, %s)[0] * 256 + cast(%s, %s)[1])"):format(b, at, b, at)
    elseif n.size == 4 then
      return ("be32(cast(%s, %s))"):format(b, at)
    elseif n.size == 8 then
      return ("u64(bswap(cast(%s, %s)[0]))"):format(ptype(g, "uint64_t *"), at)
    end
    return nil
  end,
  ipv4 = function(_, _, at) return ("ntop(0, %s)"):format(at) end,
  ipv6 = function(_, _, at) return ("ntop(1, %s)"):format(at) end,
  chars = function(g, n, at)
    return ("fstring(%s, tonumber(strnlen(%s, %d)))"):format(at,
      ("cast(%s, %s)"):format(ptype(g, "const char *"), at), n.size)
  end,
  raw = function(_, n, at) return ("fstring(%s, %d)"):format(at, n.size) end,
  -- a bitfield: its bytes as one exact number (up to 40 bits), shifted and masked
  bits = function(g, n, at)
    local nbytes = math.floor((n.shift + n.bits + 7) / 8)
    if n.bits > 32 then return nil end
    local b = ptype(g, "const uint8_t *")
    local parts = {}
    for i = nbytes - 1, 0, -1 do parts[#parts + 1] = ("cast(%s, %s)[%d] * %d"):format(b, at, i, 2 ^ (8 * i)) end
    local v = ("(floor((%s) / %d) %% %d)"):format(table.concat(parts, " + "), 2 ^ n.shift, 2 ^ n.bits)
    if n.bool then return ("(%s ~= 0)"):format(v) end
    if n.sign then return ("sx(%s, %d)"):format(v, 2 ^ n.bits) end
    return v
  end,
}

-- Lua source for the value of node n at byte address expression at.
function gen(g, n, at)
  if scalar[n.k] then return scalar[n.k](g, n, at) end
  if n.k == "struct" then
    local seen, order = {}, {}
    for _, f in ipairs(n.f) do
      -- a later field of the same name wins, as lua_setfield's order does
      if not seen[f.name] then order[#order + 1] = f.name end
      seen[f.name] = f
    end
    local parts = {}
    for _, name in ipairs(order) do
      local f = seen[name]
      local v = gen(g, f.node, ("%s + %d"):format(at, f.off))
      if not v then return nil end
      parts[#parts + 1] = ("[%q] = %s"):format(name, v)
    end
    return "{ " .. table.concat(parts, ", ") .. " }"
  elseif n.k == "array" then
    local e = n.e
    if n.n <= INLINE_ARRAY then
      local parts = {}
      for i = 0, n.n - 1 do
        local v = gen(g, e, ("%s + %d"):format(at, i * e.size))
        if not v then return nil end
        parts[#parts + 1] = v
      end
      return "{ " .. table.concat(parts, ", ") .. " }"
    end
    -- a helper per array node: A<k>(q) fills a table of n.n elements from q
    g.nhelp = g.nhelp + 1
    local name = "A" .. g.nhelp
    local q = "q" .. g.nhelp
    local v = gen(g, e, ("%s + i * %d"):format(q, e.size))
    if not v then return nil end
    g.helpers[#g.helpers + 1] = ("local function %s(%s)\n  local t = new_tab(%d, 0)\n"
      .. "  for i = 0, %d do t[i + 1] = %s end\n  return t\nend\n"):format(name, q, n.n, n.n - 1, v)
    return ("%s(%s)"):format(name, at)
  end
  return nil
end

local function u64(v)
  if v <= TWO53 then return tonumber(v) end
  return v
end

local function i64(v)
  if v <= TWO53 and v >= -TWO53 then return tonumber(v) end
  return v
end

local function sx(v, m)
  if v >= m / 2 then return v - m end
  return v
end

local function be32(b)
  return ((b[0] * 256 + b[1]) * 256 + b[2]) * 256 + b[3]
end

local ntop_buf = ffi.new("char[64]")
local function ntop(v6, p)
  return fstring(ntop_buf, ffi.C.lbpf_ring__ntop(v6, p, ntop_buf))
end

local new_tab = (function()
  local ok, nt = pcall(require, "table.new")
  return ok and nt or function() return {} end
end)()

function M.decoder(tree, what)
  if not tree then return nil end
  local g = new_gen()
  local expr = gen(g, tree, "p")
  if not expr then return nil end
  local args = { "cast", "fstring", "tonumber", "strnlen", "u64", "i64", "be32", "bswap", "ntop",
    "new_tab", "floor", "sx", "u8p" }
  for i = 1, #g.types do args[#args + 1] = "T" .. i end
  local src = ("local %s = ...\n%sreturn function(q)\n  local p = cast(u8p, q)\n  return %s\nend\n")
    :format(table.concat(args, ", "), table.concat(g.helpers), expr)
  local chunk = loadstring(src, "=" .. what .. " decoder")
  if not chunk then return nil end -- too big for one function: the general decoder does it
  return chunk(cast, fstring, tonumber, ffi.C.strnlen, u64, i64, be32, require("bit").bswap, ntop,
    new_tab, math.floor, sx, typeof("const uint8_t *"), unpack(g.types))
end

-- ---- the drain loop -------------------------------------------------------

-- One chunk per buffer, loaded anew each time: each gets its own traces, so
-- two buffers with different handlers don't keep knocking each other's out.
-- budget: events at most; batch: events between looks at the clock; no new
-- batch after deadline (hrtime, ns), nor at all when it is 0; slice: the
-- wake's time (deadline - slice is when it began).

-- Where both loops pace themselves: at the end of each batch, stop unless
-- the budget and the deadline allow another (put in for PACE below). While
-- looks come quicker than a 16th of the slice, each next one is twice as
-- many events away, up to 4 batches (a look costs ~130 ns when the loop
-- streams a ring from memory: 256 events of 4 ns apart it was a seventh of
-- the time); a slower one brings it back to a batch.
local pace_src = [[
if n >= lim then
      if lim >= budget or deadline == 0 then break end
      local t = tonumber(now())
      if t >= deadline then break end
      if t - looked < quick then
        if step < most then step = step + step end
      else
        step = batch
      end
      lim, looked = lim + step, t
      if lim > budget then lim = budget end
    end]]
local pace_init = "local step, most, looked, quick = batch, 4 * batch, deadline - slice, slice / 16"

-- A ring buffer: the records' headers are read where the kernel wrote them
-- (host/ring_chunk.h, struct lbpf_ring). A header's length has the busy bit
-- (the sign, read as int32: still being written) and the discard bit; the
-- next record starts past the 8-byte header and the length rounded up to 8.
-- Before each handler call the loop notes the record as handed out (r.i, and
-- r.pos past it), so one the handler fails on counts as consumed.
local ring_src = [[
local settle, produced, r, handler, decode, size, ctype, cast, tostr, err, name, tname, kind, now,
  tonumber, band, i32p = ...
local data, mask = r.data, r.mask
local quarter = (mask + 1) / 4 -- held back from the producer at most, before a settle
return function(budget, batch, deadline, slice)
  PACE_INIT
  local n, lim, held = 0, batch < budget and batch or budget, 0
  local pos = r.pos
  local prod, last = produced(r), pos
  while true do
    PACE
    if pos >= prod then
      prod = produced(r)
      if pos >= prod then break end
    end
    if r.stop ~= 0 then break end
    local at = data + band(pos, mask)
    local h = cast(i32p, at)[0]
    if h < 0 then break end -- busy: the next record is still being written
    local len = band(h, 0x3fffffff)
    pos = pos + band(len + 15, -8)
    r.pos = pos
    if len == h then
      local p = at + 8
      held = held + 1
      r.i = held
      n = n + 1
      %s
    end
    if pos - last > quarter then
      settle(r)
      held, last = 0, pos
    end
  end
  return n
end
]]

-- A perf buffer: chunks of records collected by lbpf_perf__fill.
local chunk_src = [[
local fill, r, handler, decode, size, ctype, cast, tostr, err, name, tname, kind, now, tonumber = ...
local ptrs, lens = r.ptr, r.len
return function(budget, batch, deadline, slice)
  PACE_INIT
  local n, lim = 0, batch < budget and batch or budget
  while true do
    PACE
    local i, k = r.i, r.n
    if i >= k then
      k = budget - n
      k = fill(r, k < 64 and k or 64)
      if k == 0 then break end
      i = 0
    end
    if k - i > lim - n then k = i + lim - n end
    -- a numeric for: the JIT keeps j an integer
    for j = i, k - 1 do
      if r.stop ~= 0 then return n + j - i end
      local p, len = ptrs[j], lens[j]
      r.i = j + 1
      %s
    end
    n = n + k - i
  end
  return n
end
]]

-- The handler's call in each mode; CPU is ", r.cpu" for perf buffers.
local short_ring = [[
      if len < size then
        err(("ringbuf '%s': a %d-byte event is smaller than its type (%d bytes)")
          :format(name, len, size), 0)
      end
]]
local short_named = [[
      if len < size then
        err((kind .. " '%s': a %d-byte event is smaller than %s (%d bytes)")
          :format(name, len, tname, size), 0)
      end
]]
local bodies = {
  cdata = "handler(cast(ctype, p), len CPU)",
  raw = "handler(tostr(p, len), len CPU)",
  -- the general decoder, in C: it reads the record being handed out (a
  -- ring's loop puts it where decode() looks)
  table = "handler(decode(), len CPU)",
  ring_table = "r.len[0], r.ptr[0] = len, p; handler(decode(), len)",
  -- a generated decoder, same checks and message as the C one
  fast_table = "handler(decode(p), len CPU)",
}

-- A ctype for a declaration from host/btf_ffi.c, checked against BTF's size.
function M.ctype(decl, size, what)
  local ok, ct = pcall(typeof, decl)
  if not ok then error(what .. ": LuaJIT's ffi rejects the type made from BTF: " .. ct, 0) end
  if ffi.sizeof(ct) ~= size then
    error(("%s: the FFI type is %d bytes, BTF says %d"):format(what, ffi.sizeof(ct), size), 0)
  end
  return typeof("const $ *", ct)
end

-- drain(kind, chunk, mode, decl, size, handler, decode, name, type_name, tree)
--   -> drain(budget) -> n, ctype
local function drain(kind, ring, mode, decl, size, handler, decode, name, tname, tree)
  local ctype
  local what = kind .. " '" .. name .. "'"
  if mode == "cdata" then ctype = M.ctype(decl, size, what) end
  if mode == "table" and not M.general then
    local fast = M.decoder(tree, what)
    if fast then mode, decode = "fast_table", fast end
  end
  local body = bodies[kind == "ringbuf" and mode == "table" and "ring_table" or mode]
    :gsub(" CPU%)", kind == "perfbuf" and ", r.cpu)" or ")")
  if mode == "cdata" then
    -- ring buffers always said "its type"; perf buffers named it
    body = (kind == "ringbuf" and short_ring or short_named) .. body
  elseif mode == "fast_table" then
    body = short_named .. body
  end
  local tail = { handler, decode, size, ctype, cast, fstring, error, name, tname, kind, ffi.C.uv_hrtime, tonumber }
  if kind == "ringbuf" then
    local src = ring_src:gsub("PACE_INIT", pace_init):gsub("PACE", pace_src):format(body)
    local chunk = assert(loadstring(src, "=" .. what))
    tail[#tail + 1] = require("bit").band
    tail[#tail + 1] = typeof("const int32_t *")
    return chunk(ffi.C.lbpf_ring__settle, ffi.C.lbpf_ring__produced, cast("struct lbpf_ring *", ring),
      unpack(tail, 1, 14)), ctype
  end
  local src = chunk_src:gsub("PACE_INIT", pace_init):gsub("PACE", pace_src):format(body)
  local chunk = assert(loadstring(src, "=" .. what))
  return chunk(ffi.C.lbpf_perf__fill, cast("struct lbpf_chunk *", ring), unpack(tail, 1, 12)), ctype
end

-- ring(ring, mode, decl, size, handler, decode, name, type_name, tree) (host/l_ringbuf.c)
function M.ring(...)
  return drain("ringbuf", ...)
end

-- perf(chunk, mode, ...) (host/l_perfbuf.c): the same, with the CPU as the handler's third argument
function M.perf(...)
  return drain("perfbuf", ...)
end

return M
