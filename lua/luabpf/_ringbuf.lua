-- SPDX-License-Identifier: MIT
-- The ring buffer drain loop, in Lua so the JIT compiles it together with
-- the handler: per record one ffi.C call (lbpf_ring__next, host/l_ringbuf.c)
-- and, in cdata mode, a pointer cast the compiler sinks away. host/l_ringbuf.c
-- calls the returned function once per batch and catches handler errors.
local ffi = require("ffi")

ffi.cdef [[
struct lbpf_ring { uint32_t len; uint32_t stop; };
const void *lbpf_ring__next(struct lbpf_ring *r);
]]

local M = {}

-- One chunk per buffer, loaded anew each time: each gets its own traces, so
-- two buffers with different handlers don't keep knocking each other's out.
local drain_src = [[
local next_, r, handler, decode, size, ctype, cast, tostr, err, name = ...
return function(budget)
  local n = 0
  while n < budget do
    local p = next_(r)
    if p == nil then break end
    n = n + 1
    local len = r.len
    %s
  end
  return n
end
]]

local bodies = {
  cdata = [[
    if len < size then
      err(("ringbuf '%s': a %d-byte event is smaller than its type (%d bytes)")
        :format(name, len, size), 0)
    end
    handler(cast(ctype, p), len)]],
  raw = "handler(tostr(p, len), len)",
  table = "handler(decode(), len)",
}

-- A ctype for a declaration from host/btf_ffi.c, checked against BTF's size.
function M.ctype(decl, size, what)
  local ok, ct = pcall(ffi.typeof, decl)
  if not ok then error(what .. ": LuaJIT's ffi rejects the type made from BTF: " .. ct, 0) end
  if ffi.sizeof(ct) ~= size then
    error(("%s: the FFI type is %d bytes, BTF says %d"):format(what, ffi.sizeof(ct), size), 0)
  end
  return ffi.typeof("const $ *", ct)
end

-- ring(ring, mode, decl, size, handler, decode, name) -> drain(budget) -> n, ctype
function M.ring(ring, mode, decl, size, handler, decode, name)
  local ctype
  if mode == "cdata" then ctype = M.ctype(decl, size, "ringbuf '" .. name .. "'") end
  local chunk = assert(loadstring(drain_src:format(bodies[mode]), "=ringbuf '" .. name .. "'"))
  return chunk(ffi.C.lbpf_ring__next, ffi.cast("struct lbpf_ring *", ring), handler, decode,
    size, ctype, ffi.cast, ffi.string, error, name), ctype
end

-- caster(decl, size, what) -> function(lightuserdata) -> cdata pointer (perf buffers).
function M.caster(decl, size, what)
  local ctype, cast = M.ctype(decl, size, what), ffi.cast
  return function(p) return cast(ctype, p) end
end

return M
