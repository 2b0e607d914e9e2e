-- SPDX-License-Identifier: MIT
-- Programs: names, types, info, pins, handles without an object, misuse,
-- and test_run on crafted packets (verdicts and output bytes).
local t = require("t")
local bit = require("bit")

local obj = assert(bpf.open(t.object("progs")))
local xdp_pass = obj:program("xdp_pass")

-- Before load: a name and a type, but no fd.
t.eq(xdp_pass:name(), "xdp_pass", "name")
t.eq(xdp_pass:type(), "xdp", "type before load")
t.eq(xdp_pass:section(), "xdp", "section")
t.eq(obj:program("tc_pass"):type(), "sched_cls", "tc type")
t.eq(obj:program("tp_getpid"):section(), "tracepoint/syscalls/sys_enter_getpid", "tp section")
t.raises(function() xdp_pass:fd() end, "program 'xdp_pass' is not loaded: call obj:load() first")
t.raises(function() xdp_pass:attach_xdp("lo") end, "is not loaded")
t.ok(tostring(xdp_pass):find("not loaded", 1, true), "tostring says not loaded")

-- set_autoload(false) keeps a program out of the kernel.
local cg = obj:program("cgroup_skb_count")
cg:set_autoload(false)
t.eq(cg:autoload(), false, "autoload after set_autoload(false)")
t.raises(function() cg:set_autoload("no") end, "boolean expected")

assert(obj:load())
t.raises(function() cg:fd() end, "program 'cgroup_skb_count' was not loaded (autoload is off)")
t.raises(function() xdp_pass:set_autoload(true) end, "set_autoload must come before obj:load()")

-- info() as bpftool shows it.
local fd = xdp_pass:fd()
t.ok(fd > 2, "fd")
local info = xdp_pass:info()
t.eq(info.name, "xdp_pass", "info.name")
t.eq(info.type, "xdp", "info.type")
t.ok(info.id > 0, "info.id")
t.ok(#info.tag == 16 and info.tag:match("^%x+$"), "info.tag is 16 hex digits: " .. tostring(info.tag))
t.ok(info.jited_size > 0, "info.jited_size")
t.ok(info.xlated_size > 0, "info.xlated_size")
t.ok(math.abs(info.loaded_at - os.time()) < 60, "info.loaded_at is about now: " .. info.loaded_at)
t.eq(type(info.map_ids), "table", "info.map_ids")
local shown = t.sh("bpftool prog show id " .. info.id)
t.ok(shown:find("name xdp_pass", 1, true) and shown:find("tag " .. info.tag, 1, true),
  "bpftool agrees on name and tag: " .. shown)

-- run_cnt counts once stats are on.
assert(bpf.enable_stats())
local pkt64 = string.rep("\0", 64)
assert(xdp_pass:test_run(pkt64, { ["repeat"] = 10 }))
info = xdp_pass:info()
t.eq(info.stats_enabled, true, "stats_enabled")
t.eq(info.run_cnt, 10, "run_cnt after 10 test runs")

-- ---- test_run on an Ethernet/IPv4/UDP packet ----------------------------
local function be16(n) return string.char(bit.rshift(n, 8), bit.band(n, 0xff)) end
local function udp_packet(dport, payload)
  local eth = "\2\0\0\0\0\2" .. "\2\0\0\0\0\1" .. be16(0x0800)
  local ip = "\69\0" .. be16(20 + 8 + #payload) .. "\0\1\0\0" .. "\64\17" .. "\0\0"
    .. "\10\0\0\1" .. "\10\0\0\2"
  local udp = be16(40000) .. be16(dport) .. be16(8 + #payload) .. "\0\0"
  return eth .. ip .. udp .. payload
end

local pkt = udp_packet(7777, "hello")
local r = assert(obj:program("xdp_rewrite"):test_run(pkt))
t.eq(r.verdict, "XDP_TX", "rewrite verdict")
t.eq(r.retval, 3, "rewrite retval")
t.eq(#r.data, #pkt, "rewrite keeps the length")
local TTL, PAYLOAD = 14 + 8 + 1, 14 + 20 + 8 + 1
t.eq(r.data:byte(TTL), 63, "TTL decremented")
t.eq(r.data:byte(PAYLOAD), 0xAB, "first payload byte rewritten")
t.eq(r.data:sub(PAYLOAD + 1), "ello", "rest of the payload untouched")
t.eq(r.data:sub(1, TTL - 1), pkt:sub(1, TTL - 1), "headers before the TTL untouched")

r = assert(obj:program("xdp_rewrite"):test_run(udp_packet(53, "hello")))
t.eq(r.verdict, "XDP_PASS", "other port passes")
t.eq(r.data, udp_packet(53, "hello"), "other port: bytes unchanged")

r = assert(obj:program("xdp_drop"):test_run(pkt, { ["repeat"] = 1000 }))
t.eq(r.verdict, "XDP_DROP", "drop verdict")
t.eq(type(r.duration_ns), "number", "duration_ns")
t.ok(r.duration_ns < 1e6, "duration_ns is per run: " .. r.duration_ns)

r = assert(obj:program("tc_drop"):test_run(pkt))
t.eq(r.verdict, "TC_ACT_SHOT", "tc verdict")
r = assert(obj:program("tc_pass"):test_run(pkt))
t.eq(r.verdict, "TC_ACT_OK", "tc pass verdict")

-- Too short for XDP: the kernel says EINVAL, with a hint.
local ok, err, code = obj:program("xdp_pass"):test_run("")
t.eq(ok, nil, "empty packet fails")
t.eq(code, "EINVAL", "empty packet errno")
t.ok(err:find("program 'xdp_pass': test_run: EINVAL", 1, true), "empty packet message: " .. err)

-- Output bigger than data_size_out: ENOSPC, with the option to raise.
ok, err, code = xdp_pass:test_run(pkt64, { data_size_out = 8 })
t.eq(code, "ENOSPC", "small data_size_out: " .. tostring(err))
t.ok(err:find("HINT: the output is larger than data_size_out", 1, true), "ENOSPC hint")

t.raises(function() xdp_pass:test_run(pkt, { reps = 2 }) end,
  "test_run: unknown option 'reps' (valid: repeat, ctx, data_size_out)")
t.raises(function() xdp_pass:test_run(pkt, { ["repeat"] = 0 }) end, "option 'repeat' expects 1..")
t.raises(function() xdp_pass:test_run(pkt, { ctx = 5 }) end, "option 'ctx' expects a string")

-- ---- misuse ----------------------------------------------------------------
t.raises(function() obj:program("tc_pass"):attach_xdp("lo") end,
  "program 'tc_pass' is a sched_cls program: attach_xdp needs a xdp one")
t.raises(function() xdp_pass:attach_tc("lo") end, "attach_tc needs a sched_cls one")
t.raises(function() xdp_pass:attach_xdp({}) end, "expects an interface name or index, got table")
t.raises(function() xdp_pass:attach_xdp("lo", { mode = "fast" }) end,
  "option 'mode' expects auto, native or generic, got 'fast'")
t.raises(function() xdp_pass:attach_xdp("lo", { netsn = "x" }) end,
  "attach_xdp: unknown option 'netsn' (valid: mode, netns, replace)")
t.raises(function() obj:program("tc_pass"):attach_tc("lo", { direction = "up" }) end,
  "attach_tc: option 'direction' expects ingress or egress, got 'up'")
t.raises(function() obj:program("tc_pass"):attach_tc("lo", { mode = "xdp" }) end,
  "attach_tc: option 'mode' expects auto, tcx or clsact, got 'xdp'")
t.raises(function() obj:program("tc_pass"):attach_tc("lo", { mode = "tcx", priority = 3 }) end,
  "use mode='clsact'")
t.raises(function() xdp_pass:attach() end, "attach it with prog:attach_xdp(ifname)")
t.raises(function() obj:program("tc_pass"):attach_cgroup("/sys/fs/cgroup", { type = "sideways" }) end,
  "attach_cgroup: unknown attach type 'sideways'")

-- Missing interface and missing namespace: ENODEV / ENOENT triples.
ok, err, code = xdp_pass:attach_xdp("lbt-none0")
t.eq(ok, nil, "missing interface")
t.eq(code, "ENODEV", "missing interface errno")
t.eq(err, "program 'xdp_pass': interface 'lbt-none0' not found: ENODEV: No such device",
  "missing interface message")
ok, err, code = xdp_pass:attach_xdp("eth0", { netns = "lbt-nonexistent" })
t.eq(code, "ENOENT", "missing netns errno")
t.ok(err:find("netns 'lbt-nonexistent' not found (/run/netns/lbt-nonexistent)", 1, true),
  "missing netns message: " .. err)

-- ---- pins and handles without an object ----------------------------------
local pin = "/sys/fs/bpf/" .. t.unique("lbtprog")
ok, err, code = xdp_pass:pin("/tmp/" .. t.unique("notbpffs"))
t.eq(code, "EINVAL", "pin outside bpffs")
t.ok(err:find("not on bpffs", 1, true), "pin outside bpffs message: " .. err)
assert(xdp_pass:pin(pin))
local ok2, perr = pcall(function()
  local p2 = assert(bpf.program_from_pin(pin))
  t.eq(p2:name(), "xdp_pass", "program_from_pin name")
  t.eq(p2:type(), "xdp", "program_from_pin type")
  t.eq(p2:info().id, xdp_pass:info().id, "same program by pin")
  t.eq(p2:section(), nil, "no section without an object")
  r = assert(p2:test_run(pkt))
  t.eq(r.verdict, "XDP_PASS", "test_run through a pinned handle")
  t.raises(function() p2:attach_tracepoint("syscalls", "sys_enter_getpid") end,
    "was opened by pin or id")
  p2:close()
  t.raises(function() p2:name() end, "closed program")
  p2:close() -- idempotent

  local p3 = assert(bpf.program_from_id(xdp_pass:info().id))
  t.eq(p3:name(), "xdp_pass", "program_from_id")
  p3:close()
end)
assert(xdp_pass:unpin())
t.ok(ok2, perr)
t.eq(io.open(pin) == nil and true, true, "pin removed by unpin")
ok, err, code = bpf.program_from_pin(pin)
t.eq(code, "ENOENT", "program_from_pin on a missing path: " .. tostring(err))
-- A pin that holds a map is not a program.
local mpin = "/sys/fs/bpf/" .. t.unique("lbtprogmap")
assert(obj:map(".bss"):pin(mpin))
ok, err, code = bpf.program_from_pin(mpin)
os.remove(mpin)
t.eq(code, "EINVAL", "program_from_pin on a map pin: " .. tostring(err))
t.eq(err, "'" .. mpin .. "' is pinned but is not a program (a map or a link?)", "map pin message")
ok, err, code = bpf.program_from_id(0x7ffffff0)
t.eq(code, "ENOENT", "program_from_id on a missing id: " .. tostring(err))

-- A program outlives nothing: closing the object makes it raise.
obj:close()
t.raises(function() xdp_pass:fd() end, "program 'xdp_pass': its object 'progs' is closed")
t.eq(tostring(xdp_pass), "luabpf.program 'xdp_pass' (object closed)", "tostring after close")
