-- SPDX-License-Identifier: MIT
-- Programs and links, each figure a median of ROUNDS against a baseline
-- measured in the same run:
--  * test_run: kernel ns per packet of xdp_rewrite (parses Eth/IPv4/UDP and
--    writes two bytes) against xdp_pass (returns at once);
--  * test_run from Lua: one call per packet (a syscall each) against one
--    call with repeat=N (the kernel loops), wall-clock ns per packet;
--  * swapping the program on an XDP and a tcx link: link:update() (atomic)
--    against detach + attach, and tcx attach+detach against clsact's.
-- usage: luabpf run bench/prog_ops.lua BUILD_DIR [N] [ROUNDS]
local uv = require("luv")
local bit = require("bit")
local build = assert(arg[1], "usage: prog_ops.lua BUILD_DIR [N] [ROUNDS]")
local N = tonumber(arg[2]) or 100000
local ROUNDS = tonumber(arg[3]) or 5
-- Attaching and detaching wait for RCU grace periods (milliseconds each).
local SWAPS, SLOW = 200, 20

local obj = assert(bpf.load(build .. "/tests/bpf/progs.bpf.o"))
local pass, rewrite = obj:program("xdp_pass"), obj:program("xdp_rewrite")
local drop = obj:program("xdp_drop")
local tc_pass, tc_drop = obj:program("tc_pass"), obj:program("tc_drop")

local function be16(n) return string.char(bit.rshift(n, 8), bit.band(n, 0xff)) end
local payload = string.rep("x", 18)
local pkt = "\2\0\0\0\0\2\2\0\0\0\0\1" .. be16(0x0800)
  .. "\69\0" .. be16(28 + #payload) .. "\0\1\0\0\64\17\0\0\10\0\0\1\10\0\0\2"
  .. be16(40000) .. be16(7777) .. be16(8 + #payload) .. "\0\0" .. payload

local function median(t)
  table.sort(t)
  return t[math.floor((#t + 1) / 2)]
end

local function ns_per(n, fn)
  local t0 = uv.hrtime()
  fn()
  return (uv.hrtime() - t0) / n
end

local ns = "lbtbench" .. uv.os_getpid()
local function sh(cmd) assert(os.execute(cmd) == 0, cmd) end
sh("ip netns add " .. ns)
sh("ip -n " .. ns .. " link add vb type veth peer name vc && ip -n " .. ns .. " link set vb up && ip -n "
  .. ns .. " link set vc up")

local results = {}
local function record(name, v)
  results[name] = results[name] or {}
  table.insert(results[name], v)
end

local ok, err = pcall(function()
  for _ = 1, ROUNDS do
    record("kernel_pass", assert(pass:test_run(pkt, { ["repeat"] = N })).duration_ns)
    record("kernel_rewrite", assert(rewrite:test_run(pkt, { ["repeat"] = N })).duration_ns)

    record("lua_repeat", ns_per(N, function() assert(rewrite:test_run(pkt, { ["repeat"] = N })) end))
    local n = math.floor(N / 10)
    record("lua_calls", ns_per(n, function()
      for _ = 1, n do rewrite:test_run(pkt) end
    end))

    local link = assert(pass:attach_xdp("vb", { netns = ns }))
    record("xdp_update", ns_per(SLOW, function()
      for i = 1, SLOW do assert(link:update(i % 2 == 1 and drop or pass)) end
    end))
    link:detach()
    record("xdp_reattach", ns_per(SLOW, function()
      for i = 1, SLOW do
        assert(assert((i % 2 == 1 and drop or pass):attach_xdp("vb", { netns = ns })):detach())
      end
    end))

    link = assert(tc_pass:attach_tc("vb", { netns = ns, mode = "tcx" }))
    record("tcx_update", ns_per(SWAPS, function()
      for i = 1, SWAPS do assert(link:update(i % 2 == 1 and tc_drop or tc_pass)) end
    end))
    link:detach()
    record("tcx_reattach", ns_per(SLOW, function()
      for _ = 1, SLOW do assert(assert(tc_pass:attach_tc("vb", { netns = ns, mode = "tcx" })):detach()) end
    end))
    record("clsact_reattach", ns_per(SWAPS, function()
      for _ = 1, SWAPS do assert(assert(tc_pass:attach_tc("vb", { netns = ns, mode = "clsact" })):detach()) end
    end))
  end
end)
for _, l in ipairs(bpf.links()) do l:detach() end
os.execute("ip netns del " .. ns)
assert(ok, err)

local m = {}
for k, v in pairs(results) do m[k] = median(v) end
print(string.format("prog_ops: N=%d, %d rounds, medians", N, ROUNDS))
print(string.format("  test_run in the kernel  xdp_pass %6.1f ns/pkt  xdp_rewrite %6.1f ns/pkt  ratio %.2f",
  m.kernel_pass, m.kernel_rewrite, m.kernel_rewrite / m.kernel_pass))
print(string.format("  test_run from Lua       repeat=N %6.1f ns/pkt  one call each %7.1f ns/pkt  ratio %.1f",
  m.lua_repeat, m.lua_calls, m.lua_calls / m.lua_repeat))
print(string.format("  XDP program swap        link:update %7.1f us  detach+attach %7.1f us  ratio %.1f",
  m.xdp_update / 1e3, m.xdp_reattach / 1e3, m.xdp_reattach / m.xdp_update))
print(string.format("  tcx program swap        link:update %7.1f us  detach+attach %7.1f us  ratio %.1f",
  m.tcx_update / 1e3, m.tcx_reattach / 1e3, m.tcx_reattach / m.tcx_update))
print(string.format("  tc attach+detach        clsact %7.1f us  tcx %7.1f us  ratio tcx/clsact %.1f",
  m.clsact_reattach / 1e3, m.tcx_reattach / 1e3, m.tcx_reattach / m.clsact_reattach))
obj:close()
