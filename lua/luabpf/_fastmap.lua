-- SPDX-License-Identifier: MIT
-- The map's hot methods through LuaJIT's FFI, the way lua-resty-core does
-- it: host/l_map_ffi.c exports flat functions returning 0 or an errno, and
-- install() swaps lookup, update, delete and the batches on the map
-- metatable for the functions below, so the JIT compiles a map operation
-- into the caller's trace. One plan per map (its key and value ctypes,
-- buffers and a decoder for the codec's flat shapes) is built on first use.
-- The fast path only takes what it is sure of: keys and values given as the
-- map's type (cdata, or numbers where the type is an integer or a float),
-- lookups whose value decodes to a number or a flat table. Anything else,
-- and every misuse, goes to the C method, which says what it always said.
local ffi = require("ffi")

ffi.cdef [[
int lbpf_map__ffi_fd(const void *u);
int lbpf_map__ffi_lookup(int fd, const void *key, void *value);
int lbpf_map__ffi_update(int fd, const void *key, const void *value, uint64_t flags);
int lbpf_map__ffi_delete(int fd, const void *key);
const char *lbpf_map__ffi_errmsg(const void *u, int err, const void *key, const char *op);
const char *lbpf_map__ffi_errname(int err);
int lbpf_map__ffi_lookup_batch(const void *u, void *keys, void *vals, uint32_t cap,
                               uint32_t chunk, uint32_t *n);
int lbpf_map__ffi_update_batch(const void *u, const void *keys, const void *vals, uint32_t n,
                               uint64_t flags);
int lbpf_map__ffi_delete_batch(const void *u, const void *keys, uint32_t n);
int lbpf_map__ffi_lookup_chunk(const void *u, int first, void *in, void *out, void *keys,
                               void *vals, uint32_t *n);
uint32_t lbpf_map__ffi_batch_count(const void *u);
]]

local C, cast, istype, typeof, sizeof, fstring = ffi.C, ffi.cast, ffi.istype, ffi.typeof,
  ffi.sizeof, ffi.string
local floor, type, getmetatable, tonumber = math.floor, type, getmetatable, tonumber

local M = {}
local MT, fastinfo
local c = {} -- the C methods, for fallbacks (and tests that compare both paths)
local plans = setmetatable({}, { __mode = "k" }) -- map userdata -> plan | false

local flag_values = { any = 0, noexist = 1, exist = 2, lock = 4 }
local TWO53 = 2 ^ 53

-- Generated functions by their source: maps of the same shape share one,
-- so the JIT's traces through them (a batch's loop) serve every such map.
local generated = {}
local function generate(src, name, ...)
  local f = generated[src]
  if not f then
    f = assert(loadstring(src, "=" .. name))(...)
    generated[src] = f
  end
  return f
end

local function int_ctype(size, sign)
  return typeof((sign and "int%d_t" or "uint%d_t"):format(size * 8))
end

-- The range a number must be in for an integer field (the codec plan's check).
local function int_range(f)
  if f.kind ~= "int" and f.kind ~= "enum" then return nil end
  local bits = f.size * 8
  if f.sign then return -2 ^ (bits - 1), 2 ^ (bits - 1) end
  return 0, 2 ^ bits
end

-- Lua source that takes one from n for each key of t, so n ends 0 when t has
-- exactly the n fields found, no other key. Up to UNROLL fields the next()
-- calls are written out (one trace with the caller's; a `for ... in next`
-- loop is a trace of its own, entered and left per table, and cost most of
-- an encode); a table with more keys than fields is refused at the first
-- one too many.
local UNROLL = 16
local function key_count(fields)
  if fields > UNROLL then return "for _ in next, t do n = n - 1 end" end
  local src = { "local k = next(t)" }
  for level = 1, fields do
    src[#src + 1] = ("%sif k ~= nil then n = n - 1; k = next(t, k)"):format(("  "):rep(level - 1))
  end
  src[#src + 1] = ("%sif k ~= nil then return false end"):format(("  "):rep(fields))
  for level = fields, 1, -1 do src[#src + 1] = ("  "):rep(level - 1) .. "end" end
  return table.concat(src, "\n  ")
end

-- storer(plan, size) -> store(t, d) -> true, with the table t written as
-- the plan's flat struct at the byte pointer d, or false: t is not a plain
-- table of integral numbers in range by field name (the C plan's rules,
-- host/btf_plan.c), and the C codec must look. nil where a field is not an
-- integer or an enum (the C plan's other kinds stay in C).
local function storer(plan, size)
  if not (plan and plan.struct) then return nil end
  local first, names, used = {}, {}, 0
  for _, f in ipairs(plan.fields) do
    if f.kind ~= "int" and f.kind ~= "enum" then return nil end
    used = used + f.size
    if not first[f.name] then
      first[f.name] = f
      names[#names + 1] = f.name
    end
  end
  local types, reads, checks, stores = {}, {}, {}, {}
  for i, name in ipairs(names) do
    local f = first[name]
    local lo, hi = int_range(f)
    reads[i] = ("local v%d = t[%q]"):format(i, name)
    checks[i] = ("if v%d ~= nil then\n    if type(v%d) ~= \"number\" or not (v%d >= %.17g and v%d < %.17g "
      .. "and v%d %% 1 == 0) then return false end\n    n = n + 1\n  end"):format(i, i, i, lo, i, hi, i)
  end
  local index = {}
  for i, name in ipairs(names) do index[first[name]] = i end
  for _, f in ipairs(plan.fields) do
    types[#types + 1] = typeof("$ *", int_ctype(f.size, f.sign))
    local i = index[f] -- a later field of a name already seen stays zero, as in C
    stores[#stores + 1] = ("cast(T%d, d + %d)[0] = %s"):format(#types, f.off, i and ("v%d or 0"):format(i) or "0")
  end
  local args = { "cast", "type", "getmetatable", "next", "fill" }
  for i = 1, #types do args[#args + 1] = "T" .. i end
  local src = ("local %s = ...\nreturn function(t, d)\n  if type(t) ~= \"table\" or getmetatable(t) ~= nil "
    .. "then return false end\n  %s\n  local n = 0\n  %s\n  %s\n"
    .. "  if n ~= 0 then return false end\n  %s%s\n  return true\nend\n"):format(table.concat(args, ", "),
    table.concat(reads, "\n  "), table.concat(checks, "\n  "), key_count(#names),
    used < size and ("fill(d, %d)\n  "):format(size) or "", table.concat(stores, "\n  "))
  return generate(src, "luabpf._fastmap table encoder", cast, type, getmetatable, next, ffi.fill, unpack(types))
end

-- encoder(x) -> a pointer-like cdata holding x as the type, or false.
local function encoder(ct, plan, size)
  local buf = ffi.new(typeof("$[1]", ct))
  local f = plan and not plan.struct and plan.fields[1]
  if f and (f.kind == "int" or f.kind == "enum") then
    local lo, hi = int_range(f)
    local exact = f.size == 8 and ct -- int64 cdata of the same signedness
    return function(x)
      if type(x) == "number" then
        if x >= lo and x < hi and x % 1 == 0 then
          buf[0] = x
          return buf
        end
        return false
      end
      if exact and istype(exact, x) then
        buf[0] = x
        return buf
      end
      return false
    end
  elseif f and f.kind == "float" then
    return function(x)
      if type(x) == "number" then
        buf[0] = x
        return buf
      end
      return false
    end
  elseif f then
    return function() return false end -- bool, be: the C codec's rules
  end
  local store = storer(plan, size)
  if store then
    local d = cast("uint8_t *", buf)
    return function(x)
      if type(x) == "table" then return store(x, d) and buf end
      if istype(ct, x) then return x end
      return false
    end, store
  end
  return function(x)
    if istype(ct, x) then return x end
    return false
  end
end

-- putter(ct, plan, store) -> put(x, d) -> true with x written as the type
-- at the byte pointer d, or false (the C codec must look): what the encoder
-- takes, but into a slot of an array (lists of tables or numbers for the
-- batches). nil where the FFI path leaves every such x to C.
local function putter(ct, plan, store)
  if store then return store end
  local f = plan and not plan.struct and plan.fields[1]
  if not (f and (f.kind == "int" or f.kind == "enum")) then return nil end
  local lo, hi = int_range(f)
  local exact = f.size == 8 and ct
  local T = typeof("$ *", ct)
  return function(x, d)
    if type(x) == "number" then
      if x >= lo and x < hi and x % 1 == 0 then
        cast(T, d)[0] = x
        return true
      end
      return false
    end
    if exact and istype(exact, x) then
      cast(T, d)[0] = x
      return true
    end
    return false
  end
end

-- How one scalar of a plan reads, as Lua source over the pointer expression e.
local function read_src(f, e, types, i)
  if f.kind == "float" then
    types[#types + 1] = typeof(f.size == 4 and "float *" or "double *")
  elseif f.kind == "int" or f.kind == "enum" then
    types[#types + 1] = typeof("$ *", int_ctype(f.size, f.sign))
  else
    return nil
  end
  local v = ("cast(T%d, %s)[0]"):format(#types, e)
  if f.size < 8 or f.kind == "float" then return v, "" end
  -- 64-bit integers: a number up to 2^53, the cdata beyond (codec_push_u64)
  local name = "v" .. i
  local pre = ("local %s = %s\n"):format(name, v)
  if f.sign then
    return ("((%s <= TWO53 and %s >= -TWO53) and tonumber(%s) or %s)"):format(name, name, name,
      name), pre
  end
  return ("(%s <= TWO53 and tonumber(%s) or %s)"):format(name, name, name), pre
end

-- decoder(pointer) -> the Lua value the codec's plan would give, or nil if
-- the plan has a field the FFI path leaves to C.
local function decoder(plan)
  if not plan then return nil end
  local types, pre, parts = {}, {}, {}
  for i, f in ipairs(plan.fields) do
    local v, p = read_src(f, ("p + %d"):format(f.off), types, i)
    if not v then return nil end
    pre[#pre + 1] = p
    parts[#parts + 1] = plan.struct and ("[%q] = %s"):format(f.name, v) or v
  end
  local args = { "cast", "tonumber", "TWO53", "u8p" }
  for i = 1, #types do args[#args + 1] = "T" .. i end
  local src = ("local %s = ...\nreturn function(q)\nlocal p = cast(u8p, q)\n%sreturn %s\nend\n")
    :format(table.concat(args, ", "), table.concat(pre), plan.struct
      and "{ " .. table.concat(parts, ", ") .. " }" or parts[1])
  return generate(src, "luabpf._fastmap decoder", cast, tonumber, TWO53, typeof("const uint8_t *"), unpack(types))
end

-- One ctype per declaration (host/btf_ffi.c's: anonymous, with every field
-- and pad spelled out, so the same text is the same layout): maps of one
-- type, in one object or another (a reload), share their ctypes, a cdata
-- made for one is the other's too, and a trace made on one map's cdata
-- stays good for the next.
local ctypes_by_decl = {}

local function ctype_of(decl, size)
  local ct = ctypes_by_decl[decl]
  if ct == nil then
    local ok, made = pcall(typeof, decl)
    ct = ok and made
    ctypes_by_decl[decl] = ct
  end
  if not ct or sizeof(ct) ~= size then return nil end
  return ct
end

local function plan_for(m)
  if type(m) ~= "userdata" or getmetatable(m) ~= MT then return false end
  local info = fastinfo(m)
  local kt = info and info.key_decl and ctype_of(info.key_decl, info.key_size)
  local vt = info and info.value_decl and ctype_of(info.value_decl, info.value_size)
  if not (kt and vt) then
    if info then plans[m] = false end
    return false
  end
  local p = {
    name = info.name, kt = kt, vt = vt, ksize = info.key_size, vsize = info.value_size,
    vdec = decoder(info.value_plan), kdec = decoder(info.key_plan),
    karr = typeof("$[?]", kt), varr = typeof("$[?]", vt), n = ffi.new("uint32_t[1]"),
    kplan = info.key_plan, vplan = info.value_plan, -- for tests: the fields
  }
  p.kenc, p.kstore = encoder(kt, info.key_plan, info.key_size)
  p.venc, p.vstore = encoder(vt, info.value_plan, info.value_size)
  p.kput, p.vput = putter(kt, info.key_plan, p.kstore), putter(vt, info.value_plan, p.vstore)
  local tok = info.key_size > 8 and info.key_size or 8
  p.tin = ffi.new("uint8_t[?]", 2 * tok)
  p.tout = p.tin + tok
  p.vbuf = ffi.new(typeof("$[1]", vt))
  -- only a struct or array cdata is passed by reference: a scalar one is a value
  p.into, p.kinto = tonumber(vt()) == nil, tonumber(kt()) == nil
  plans[m] = p
  return p
end

-- The map's plan (false: the C methods do everything), built on first use.
local function plan(m)
  local p = plans[m]
  if p == nil then p = plan_for(m) end
  return p
end

-- The plan, and the value of flags (nil for one the C method rejects).
local function plan_flags(m, flags)
  if flags == nil then return plan(m), 0 end
  return plan(m), flag_values[flags]
end

-- Where the C method gets a key or value the FFI path passed over, a struct
-- or array cdata of the map's type goes as its bytes, which the codec takes
-- as the raw value: the same bytes as on the FFI path.
local function bytes(x, ct, by_ref)
  if by_ref and type(x) == "cdata" and istype(ct, x) then return fstring(x, sizeof(ct)) end
  return x
end

local function fail(m, err, key, op)
  return nil, fstring(C.lbpf_map__ffi_errmsg(m, err, key, op)), fstring(C.lbpf_map__ffi_errname(err))
end

local function failf(p, err, what)
  return nil, ("map '%s': %s: %s"):format(p.name, what, fstring(C.lbpf_map__ffi_errmsg(nil, err, nil, what)))
    , fstring(C.lbpf_map__ffi_errname(err))
end

-- m:lookup(key [, out]): out, a cdata of the value's struct or array type
-- (m:ctypes()), is filled and returned instead of a new value; the key must
-- then be one the FFI path takes (a number for an integer key, a cdata of
-- the key's type).
local function lookup(m, k, out)
  local p = plan(m)
  if p then
    local into = p.into and type(out) == "cdata" and istype(p.vt, out)
    local dec = p.vdec
    if into or dec then
      local fd = C.lbpf_map__ffi_fd(m)
      local kp = fd >= 0 and p.kenc(k)
      if kp then
        local buf = into and out or p.vbuf
        local err = C.lbpf_map__ffi_lookup(fd, kp, buf)
        if err ~= 0 then return fail(m, err, kp, "lookup") end
        if into then return out end
        return dec(buf)
      end
      if into and fd >= 0 then
        error(("map '%s': lookup into a cdata takes the key as the map's key type (a number "
          .. "for an integer key, or a cdata of m:ctypes()), got %s"):format(p.name, type(k)), 2)
      end
    end
  end
  if p then k = bytes(k, p.kt, p.kinto) end
  return c.lookup(m, k, out)
end

local function update(m, k, v, flags)
  local p, fl = plan_flags(m, flags)
  if p and fl then
    local fd = C.lbpf_map__ffi_fd(m)
    local kp = fd >= 0 and p.kenc(k)
    local vp = kp and p.venc(v)
    if vp then
      local err = C.lbpf_map__ffi_update(fd, kp, vp, fl)
      if err ~= 0 then return fail(m, err, kp, "update") end
      return true
    end
  end
  if p then k, v = bytes(k, p.kt, p.kinto), bytes(v, p.vt, p.into) end
  return c.update(m, k, v, flags)
end

local function delete(m, k)
  local p = plan(m)
  if p then
    local fd = C.lbpf_map__ffi_fd(m)
    local kp = fd >= 0 and p.kenc(k)
    if kp then
      local err = C.lbpf_map__ffi_delete(fd, kp)
      if err ~= 0 then return fail(m, err, kp, "delete") end
      return true
    end
  end
  if p then k = bytes(k, p.kt, p.kinto) end
  return c.delete(m, k)
end

-- Entries in a cdata array of ct (fixed or variable length), or nil.
local function arr_len(x, ct, vla)
  if type(x) ~= "cdata" then return nil end
  local n = floor(sizeof(x) / sizeof(ct))
  if istype(vla, x) or istype(typeof("$[$]", ct, n), x) then return n end
  return nil
end

local ENOENT, ENOSPC = 2, 28
local u8p = typeof("uint8_t *")

-- The count of m:lookup_batch(opts) when opts is nil or a plain {count = n}
-- the C method would take as it is, else nil (C checks and says why not).
local function list_count(m, opts)
  if opts == nil then return C.lbpf_map__ffi_batch_count(m) end
  if type(opts) ~= "table" or getmetatable(opts) ~= nil then return nil end
  local k = next(opts)
  if k == nil then return C.lbpf_map__ffi_batch_count(m) end
  local n = rawget(opts, "count")
  if k ~= "count" or next(opts, k) ~= nil or type(n) ~= "number" or n % 1 ~= 0 or n < 1
    or n > 2 ^ 24 then
    return nil
  end
  return n
end

-- m:lookup_batch([{count = n}]) -> keys, values: what collect() in
-- host/l_map_batch.c gives, read in chunks of count entries into cdata
-- arrays and decoded in Lua. nil: the type has no batches (C iterates).
local function lookup_lists(m, p, count)
  local kdec, vdec, ksize, vsize = p.kdec, p.vdec, p.ksize, p.vsize
  local ka, va = p.karr(count), p.varr(count)
  local kb, vb = cast(u8p, ka), cast(u8p, va)
  local tin, tout, nn = p.tin, p.tout, p.n
  local keys, vals, n, first = {}, {}, 0, 1
  while true do
    nn[0] = count
    local err = C.lbpf_map__ffi_lookup_chunk(m, first, tin, tout, ka, va, nn)
    if err == -1 then return nil end
    local got = tonumber(nn[0])
    if err == ENOSPC and got == 0 then
      -- a hash bucket holds more than count entries: grow and retry
      count = count * 2
      ka, va = p.karr(count), p.varr(count)
      kb, vb = cast(u8p, ka), cast(u8p, va)
    elseif err ~= 0 and err ~= ENOENT then
      return failf(p, err, "lookup_batch")
    else
      for i = 0, got - 1 do
        n = n + 1
        keys[n] = kdec(kb + i * ksize)
        vals[n] = vdec(vb + i * vsize)
      end
      if err ~= 0 then return keys, vals end -- ENOENT: that was the last chunk
      first = 0
      tin, tout = tout, tin
    end
  end
end

-- m:lookup_batch({keys = K, values = V [, count = n]}) -> entries read into
-- the cdata arrays K and V (of m:ctypes()), every entry that fits.
-- m:lookup_batch([{count = n}]) -> keys, values, lists of Lua values.
local function lookup_batch(m, opts)
  local p = plan(m)
  local ks = type(opts) == "table" and rawget(opts, "keys")
  if not (p and ks ~= nil and ks ~= false) then
    if p and p.kdec and p.vdec and C.lbpf_map__ffi_fd(m) >= 0 then
      local count = list_count(m, opts)
      if count then
        local keys, vals, e = lookup_lists(m, p, count)
        if keys ~= nil then return keys, vals, e end
      end
    end
    return c.lookup_batch(m, opts)
  end
  local fd = C.lbpf_map__ffi_fd(m)
  if fd < 0 then return c.lookup_batch(m, opts) end -- closed, not loaded: C says so
  local vs, count = rawget(opts, "values"), rawget(opts, "count")
  for key in pairs(opts) do
    if key ~= "keys" and key ~= "values" and key ~= "count" then
      error(("map '%s': lookup_batch: unknown option '%s' (valid: count, keys, values)")
        :format(p.name, tostring(key)), 2)
    end
  end
  local nk, nv = arr_len(ks, p.kt, p.karr), arr_len(vs, p.vt, p.varr)
  if not nk or not nv then
    error(("map '%s': lookup_batch: keys and values must be cdata arrays of the map's key and "
      .. "value types (m:ctypes()), got %s and %s"):format(p.name, type(ks), type(vs)), 2)
  end
  if count ~= nil and (type(count) ~= "number" or count < 1 or count % 1 ~= 0) then
    error(("map '%s': lookup_batch: count must be at least 1, got %s"):format(p.name,
      tostring(count)), 2)
  end
  local err = C.lbpf_map__ffi_lookup_batch(m, ks, vs, nk < nv and nk or nv, count or 1024, p.n)
  if err ~= 0 then return failf(p, err, "lookup_batch") end
  return tonumber(p.n[0])
end

-- A list (a Lua table, read raw as the C method does) into a new cdata
-- array of arr through put, or nil if an element is not one put takes.
local function put_list(list, n, arr, size, put)
  local a = arr(n)
  local b = cast(u8p, a)
  for i = 1, n do
    if not put(rawget(list, i), b + (i - 1) * size) then return nil end
  end
  return a
end

local function update_batch(m, ks, vs, flags)
  local p, fl = plan_flags(m, flags)
  if p and fl and type(ks) == "cdata" and C.lbpf_map__ffi_fd(m) >= 0 then
    local nk, nv = arr_len(ks, p.kt, p.karr), arr_len(vs, p.vt, p.varr)
    if nk and nk == nv then
      if nk == 0 then return true end
      local err = C.lbpf_map__ffi_update_batch(m, ks, vs, nk, fl)
      if err ~= 0 then return failf(p, err, "update_batch") end
      return true
    end
  elseif p and fl and p.kput and p.vput and type(ks) == "table" and type(vs) == "table"
    and C.lbpf_map__ffi_fd(m) >= 0 then
    -- lists: encoded in Lua when every element is one the plan takes
    local n = #ks
    local ka = n > 0 and n == #vs and put_list(ks, n, p.karr, p.ksize, p.kput)
    local va = ka and put_list(vs, n, p.varr, p.vsize, p.vput)
    if va then
      local err = C.lbpf_map__ffi_update_batch(m, ka, va, n, fl)
      if err ~= 0 then return failf(p, err, "update_batch") end
      return true
    end
  end
  return c.update_batch(m, ks, vs, flags)
end

local function delete_batch(m, ks)
  local p = plan(m)
  if p and p.kput and type(ks) == "table" and C.lbpf_map__ffi_fd(m) >= 0 then
    local n = #ks
    local ka = n > 0 and put_list(ks, n, p.karr, p.ksize, p.kput)
    if ka then
      local err = C.lbpf_map__ffi_delete_batch(m, ka, n)
      if err ~= 0 then return failf(p, err, "delete_batch") end
      return true
    end
  end
  if p and type(ks) == "cdata" and C.lbpf_map__ffi_fd(m) >= 0 then
    local nk = arr_len(ks, p.kt, p.karr)
    if nk then
      if nk == 0 then return true end
      local err = C.lbpf_map__ffi_delete_batch(m, ks, nk)
      if err ~= 0 then return failf(p, err, "delete_batch") end
      return true
    end
  end
  return c.delete_batch(m, ks)
end

-- m:ctypes() -> key ctype, value ctype (nil for maps the FFI path leaves to C:
-- per-CPU, fd values, keyless, or a type LuaJIT's FFI can't express).
local function ctypes(m)
  local p = plan(m)
  if not p then
    c.name(m) -- raises on a closed map or a non-map, as the other methods do
    return nil
  end
  return p.kt, p.vt
end

local hot = {
  lookup = lookup, update = update, delete = delete, lookup_batch = lookup_batch,
  update_batch = update_batch, delete_batch = delete_batch,
}

-- install(mt, fastinfo): called once by host/l_map_ffi.c.
function M.install(mt, info)
  MT, fastinfo = mt, info
  for name, fn in pairs(hot) do
    c[name] = mt[name]
    mt[name] = fn
  end
  c.name = mt.name
  mt.ctypes = ctypes
end

M.c = c
M.plan = plan
return M
