-- SPDX-License-Identifier: MIT
-- Pins outlive the process: pin a map, read it from a second luabpf process
-- through bpf.map_from_pin (BTF from the kernel, so fields keep their names),
-- write from there, see it here, unpin. Also bpf.map_from_id and pin errors.
local t = require("t")

local luabpf = assert(os.getenv("LUABPF"), "LUABPF unset")
local path = "/sys/fs/bpf/" .. t.unique("luabpf-test-")
local obj = assert(bpf.load(t.object("maps")))
local cfg = obj:map("cfg")

local function cleanup() os.remove(path); os.remove(path .. "-prog") end

local ok, err = pcall(function()
  t.ok(cfg:update(1, { proto = 6, port = 443, addr = "10.0.0.1" }))
  t.eq(cfg:pin(path), true, "pin")
  t.eq(cfg:info().pinned, path, "info().pinned")
  t.eq(cfg:pin(path), true, "pinning again at the same path is a no-op (as in libbpf)")
  local v, msg, name = obj:map("counts"):pin(path)
  t.eq(v, nil, "another map at a taken path fails") t.eq(name, "EEXIST", "EEXIST") t.ok(msg:find(path, 1, true), "message names the path")

  -- A second process opens the pin, reads by field name, and writes back.
  local code = [[
    local m = assert(bpf.map_from_pin(']] .. path .. [['))
    local v = assert(m:lookup(1))
    assert(m:update(2, { proto = 17, port = 53, addr = '192.0.2.1' }))
    io.write(string.format('%s %d %d %s %s', m:name(), v.proto, v.port, v.addr, m:info().pinned))
  ]]
  local out, okrun = t.sh(string.format("%s -e %q", luabpf, code))
  t.ok(okrun, "second process ran: " .. out)
  t.eq(out, "cfg 6 443 10.0.0.1 " .. path, "second process sees the same values by field name")
  t.same(cfg:lookup(2), { proto = 17, port = 53, addr = "192.0.2.1" }, "its write is visible here")

  -- map_from_pin here too: same map id, same decoding.
  local again = assert(bpf.map_from_pin(path))
  t.eq(again:info().id, cfg:info().id, "same kernel map")
  t.same(again:lookup(1), cfg:lookup(1), "same values")
  t.eq(tostring(again), "luabpf.map 'cfg' (hash, 4->8 bytes, 16 max)", "tostring of a pinned map")
  again:close()

  -- map_from_id, and a map without BTF decodes by the size rules.
  local byid = assert(bpf.map_from_id(cfg:info().id))
  t.same(byid:lookup(2), { proto = 17, port = 53, addr = "192.0.2.1" }, "map_from_id decodes with kernel BTF")
  byid:close()
  local raw = obj:map("raw")
  assert(raw:update(3, "abcdefghijkl"))
  local rawid = assert(bpf.map_from_id(raw:info().id))
  t.eq(rawid:lookup(3), "abcdefghijkl", "no-BTF map by id: raw value")
  t.eq(rawid:keys()(), 3, "no-BTF map by id: integer key")
  rawid:close()
  local none, _, ename = bpf.map_from_id(0x7ffffff0)
  t.eq(none, nil, "no such id") t.eq(ename, "ENOENT", "ENOENT for a missing id")
  none, _, ename = bpf.map_from_pin(path .. "-missing")
  t.eq(none, nil, "missing pin") t.eq(ename, "ENOENT", "ENOENT for a missing pin")

  -- A program pinned where a map is expected is refused, not misread.
  local prog = obj:program("xdp_tail")
  if prog and prog.pin then
    local ppath = path .. "-prog"
    assert(prog:pin(ppath))
    local notmap, pmsg, perr = bpf.map_from_pin(ppath)
    os.remove(ppath)
    t.eq(notmap, nil, "a program pin is not a map") t.eq(perr, "EINVAL", "EINVAL")
    t.ok(pmsg:find("is not a map", 1, true), pmsg)
  end

  -- Unpin: the path goes away; the map lives on while we hold it.
  t.eq(cfg:unpin(), true, "unpin")
  t.eq(io.open(path) , nil, "pin path removed")
  t.eq(cfg:info().pinned, nil, "info().pinned cleared")
  t.eq(cfg:lookup(1).port, 443, "map still usable after unpin")

  -- Pinning outside bpffs explains what to do.
  local v2, m2 = cfg:pin("/tmp/" .. t.unique("luabpf-notbpffs-"))
  t.eq(v2, nil, "pin outside bpffs fails")
  t.ok(m2:find("is /sys/fs/bpf mounted? mount -t bpf bpf /sys/fs/bpf", 1, true), "bpffs hint: " .. m2)
  local v3, m3 = cfg:pin("/sys/fs/bpf/" .. t.unique("no-such-dir-") .. "/x")
  t.eq(v3, nil, "pin into a missing directory fails")
  t.ok(m3:find("does not exist", 1, true), "missing directory named: " .. m3)
end)
cleanup()
if not ok then error(err, 0) end
print("test_pin: ok")
