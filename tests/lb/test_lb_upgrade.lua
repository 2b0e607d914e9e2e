-- SPDX-License-Identifier: MIT
-- An upgrade keeps the flows: a service whose pinned Maglev map was made by
-- a version before BPF_F_MMAPABLE (a map's flags are part of its definition)
-- starts on it instead of refusing, with the same table, and a pool change
-- reaches the data plane through that map (written by syscall).
local uv = require("luv")
local t = require("t")
local lb = require("luabpf.lb")

local id = ("up%d"):format(uv.os_getpid())
local root = "/sys/fs/bpf/luabpf-test-" .. id
local path = ("%s/%s/maglev"):format(root, id)
local scratch = root .. "/old" -- the old object's own pins, removed at the end
local function new(name, pin)
  return assert(lb.new({ name = name, attach = false, pin = pin, pin_root = root,
    prime_neighbours = false, max_vips = 2, max_backends = 16 }))
end
local function pool(without)
  local l = {}
  for i = 1, 4 do
    if i ~= without then l[#l + 1] = { name = "b" .. i, addr = "10.45.0." .. i, port = 80 } end
  end
  return { name = "web", addr = "10.44.0.1", port = 80, mode = "dsr", backends = l }
end
local function same(a, b)
  local differ = #a == #b and 0 or math.huge
  for s = 1, #a do if a[s] ~= b[s] then differ = differ + 1 end end
  return differ
end

local svc, plain
local ok, err = pcall(function()
  -- State pinned by this version, then its Maglev map replaced by one made
  -- as before the flag: the same definition without it, the same slots.
  svc = new(id, true)
  svc:add_vip(pool())
  local before = svc:table("web")
  svc:close()
  svc = nil
  local pm = assert(bpf.map_from_pin(path))
  local info = pm:info()
  local keys, values = pm:lookup_batch()
  pm:close()
  assert(os.remove(path))
  assert(uv.fs_mkdir(scratch, tonumber("700", 8)))
  local old = assert(bpf.load("lb", { pin_root_path = scratch, map_flags = { maglev = 0 },
    max_entries = { maglev = info.max_entries } }))
  local om = old:map("maglev")
  assert(om:update_batch(keys, values))
  assert(om:pin(path))
  old:close()
  t.eq(bit.band(assert(bpf.map_from_pin(path)):info().flags, 1024), 0, "the pinned Maglev map has no BPF_F_MMAPABLE")

  svc = new(id, true)
  t.ok(true, "started on the old Maglev map")
  svc:apply({ pool() })
  t.eq(same(svc:table("web"), before), 0, "the same table after the restart: slots that differ")
  t.eq(svc:_maglev_mem(), false, "the old map is written by syscall, not mapped")
  t.eq(bit.band(assert(bpf.map_from_pin(path)):info().flags, 1024), 0, "the pinned map is the old one still")

  svc:remove_backend("web", "b2")
  plain = new(id .. "p", false)
  plain:add_vip(pool(2))
  t.eq(same(svc:table("web"), plain:table("web")), 0,
    "b2 removed: the data plane's table is the one built directly without b2 (slots that differ)")
end)
if svc then svc:close({ destroy = true }) end
if plain then plain:close() end
local dir = uv.fs_scandir(scratch)
while dir do
  local n = uv.fs_scandir_next(dir)
  if not n then break end
  os.remove(scratch .. "/" .. n)
end
os.remove(scratch)
os.remove(root)
assert(ok, err)
print("test_lb_upgrade: all checks passed")
