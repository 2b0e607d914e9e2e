-- SPDX-License-Identifier: MIT
-- Link lifetimes inside one process: the GC never detaches, close() and
-- detach() do, pins, link_from_id, bpf.links(), a link outliving obj:close().
-- Uses sk_lookup on a namespace of its own: a kernel link with no traffic.
local t = require("t")

local NS = t.unique("lbtln")

local function main()
  t.run("ip netns add " .. NS)
  local obj = assert(bpf.load(t.object("progs")))
  local sk = obj:program("sk_lookup_pass")
  local prog_id = sk:info().id

  -- Dropping the last reference does not detach: the list holds it.
  local id
  do
    local link = assert(sk:attach_sk_lookup({ netns = NS }))
    id = link:info().id
  end
  collectgarbage()
  collectgarbage()
  t.eq(t.links_of(sk), id .. ":" .. prog_id, "still attached after a full GC")
  t.eq(#bpf.links(), 1, "bpf.links() keeps it")
  local link = bpf.links()[1]
  t.eq(link:info().id, id, "the same link")

  -- link_from_id opens any link; detaching through it detaches the kernel link.
  local other = assert(bpf.link_from_id(id))
  t.eq(other:description(), "netns link " .. id .. " (by id)", "link_from_id description")
  t.eq(#bpf.links(), 2, "two handles on the list")
  assert(other:detach())
  -- The kernel keeps a detached link object while any fd is open; it is
  -- defunct: no namespace any more.
  t.eq(link:info().netns_ino, 0, "detached in the kernel through the second handle")
  assert(link:detach()) -- already detached in the kernel: still fine
  t.eq(t.links_of(sk), "", "gone once both handles are detached")
  t.eq(#bpf.links(), 0, "list empty")
  local ok, err, code = bpf.link_from_id(0x7ffffff0)
  t.eq(code, "ENOENT", "link_from_id on a missing id: " .. tostring(err))

  -- close() of an unpinned link detaches it.
  link = assert(sk:attach_sk_lookup({ netns = NS }))
  link:close()
  t.eq(t.links_of(sk), "", "close() detaches an unpinned link")
  t.raises(function() link:info() end, "detached link")
  link:close() -- idempotent

  -- Pins: bpffs only, no duplicates; close() of a pinned link keeps it attached.
  link = assert(sk:attach_sk_lookup({ netns = NS }))
  id = link:info().id
  local pin = "/sys/fs/bpf/" .. t.unique("lbtln")
  ok, err, code = link:pin("/tmp/" .. t.unique("x"))
  t.eq(code, "EINVAL", "pin outside bpffs")
  t.ok(err:find("not on bpffs (pin under /sys/fs/bpf)", 1, true), "pin outside bpffs message: " .. err)
  t.raises(function() link:unpin() end, "is not pinned")
  assert(link:pin(pin))
  t.eq(link:pinned(), pin, "pinned()")
  t.ok(tostring(link):find("pinned at " .. pin, 1, true), "tostring shows the pin: " .. tostring(link))
  ok, err, code = link:pin(pin)
  t.eq(code, "EEXIST", "pin twice at one path: " .. tostring(err))
  link:close()
  t.eq(t.links_of(sk), id .. ":" .. prog_id, "a pinned link stays attached after close()")
  t.eq(#bpf.links(), 0, "closed handle left the list")
  link = assert(bpf.link_from_pin(pin))
  t.eq(link:info().id, id, "reopened by pin")
  assert(link:unpin())
  t.eq(link:pinned(), nil, "not pinned after unpin")
  t.eq(io.open(pin), nil, "pin file removed")

  -- A link keeps working after its object is closed (the kernel holds the program).
  obj:close()
  t.eq(link:info().prog_id, prog_id, "info after obj:close()")
  assert(link:detach())
  t.eq(#bpf.links(), 0, "nothing live")
end

local ok, err = xpcall(main, debug.traceback)
for _, l in ipairs(bpf.links()) do
  if l:pinned() then l:unpin() end
  l:detach()
end
t.sh("ip netns del " .. NS)
if not ok then error(err, 0) end
