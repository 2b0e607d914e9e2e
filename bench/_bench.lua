-- SPDX-License-Identifier: MIT
-- What the per-packet benches (bench/lb_pkt.lua, bench/filter_pkt.lua) share:
-- the XDP context for an interface, the IPv4 header checksum, and repeat=1 test_run loops each paired
-- with a floor loop run just before it, so a burst of load from elsewhere on
-- the machine spoils a pair, not the figure. A bench beside this file loads
-- it with require("_bench") (`luabpf run` puts the script's directory first
-- on package.path).
local bit = require("bit")
local ffi = require("ffi")
local uv = require("luv")

local M = {}

--- The median of a list (the upper one of an even count), leaving it unsorted.
function M.median(t)
  local c = {}
  for i, v in ipairs(t) do c[i] = v end
  table.sort(c)
  return c[math.floor((#c + 1) / 2)]
end

--- The IPv4 header checksum of h (its checksum field zero), as 2 bytes: the
--- data planes drop a frame whose header checksum is wrong.
function M.ip_csum(h)
  local sum = 0
  for i = 1, #h, 2 do sum = sum + h:byte(i) * 256 + h:byte(i + 1) end
  while sum > 0xffff do sum = bit.band(sum, 0xffff) + bit.rshift(sum, 16) end
  sum = bit.band(bit.bnot(sum), 0xffff)
  return string.char(bit.rshift(sum, 8), bit.band(sum, 0xff))
end

--- The ifindex of IFNAME in this namespace; raises when there is none.
function M.ifindex(ifname)
  local p = io.popen("ip -o link show dev " .. ifname .. " 2>/dev/null")
  local ifindex = tonumber(p:read("*a"):match("^(%d+):"))
  p:close()
  assert(ifindex, "no interface " .. ifname .. " in this namespace")
  return ifindex
end

--- test_run options for LEN-byte packets arriving on ifindex: the xdp_md
-- context, and a small output buffer (the default, input + 4 KiB, is
-- allocated per call).
function M.xdp_opts(ifindex, len)
  local md = ffi.new("uint32_t[6]", 0, len, 0, ifindex, 0, 0)
  return { ctx = ffi.string(md, 24), data_size_out = 256 }
end

--- A function running CHUNK repeat=1 test_run calls of one case
-- { key, label, prog, packets, verdict [, check] }, cycling through its
-- packets where the last loop left off; it returns wall-clock ns per call and
-- the mean of the kernel's duration_ns, and raises on a verdict other than
-- the case's, or when check(packet, output) returns a complaint. opts: the
-- test_run options, or a function of the packet giving them.
function M.runner(chunk, opts)
  local pos = {}
  return function(c)
    local prog, pkts, want, check = c[3], c[4], c[5], c[6]
    local n, k, sum = #pkts, pos[c[1]] or 0, 0
    local t0 = uv.hrtime()
    for _ = 1, chunk do
      k = k + 1
      if k > n then k = 1 end
      local r = prog:test_run(pkts[k], type(opts) == "function" and opts(pkts[k]) or opts)
      if r.verdict ~= want then
        error(("%s: packet %d gave %s, not %s"):format(c[2], k, tostring(r.verdict), want))
      end
      local bad = check and check(pkts[k], r.data)
      if bad then error(("%s: packet %d: %s"):format(c[2], k, bad)) end
      sum = sum + r.duration_ns
    end
    local dt = uv.hrtime() - t0
    pos[c[1]] = k
    return dt / chunk, sum / chunk
  end
end

--- ROUNDS rounds of, for each case after the first (the floor), a loop of
-- the floor and then one of the case, after one warm-up loop of the floor.
-- around(c, pair), if given, runs each pair itself (to prepare or check
-- around it). Returns three tables of lists keyed by case: wall (the case's
-- wall ns per call minus its floor's; the floor's own under its key), kern
-- (the kernel's ns per run as measured) and kdiff (kernel minus its floor's).
function M.paired(cases, rounds, run, around)
  local floor = cases[1]
  local wall, kern, kdiff = {}, {}, {}
  for _, c in ipairs(cases) do wall[c[1]], kern[c[1]], kdiff[c[1]] = {}, {}, {} end
  run(floor) -- warm up: JIT traces, page cache, the kernel's test_run paths
  for _ = 1, rounds do
    for i = 2, #cases do
      local c = cases[i]
      local function pair()
        local w0, k0 = run(floor)
        local w1, k1 = run(c)
        table.insert(wall[floor[1]], w0)
        table.insert(kern[floor[1]], k0)
        table.insert(kdiff[floor[1]], k0)
        table.insert(wall[c[1]], w1 - w0)
        table.insert(kern[c[1]], k1)
        table.insert(kdiff[c[1]], k1 - k0)
      end
      if around then around(c, pair) else pair() end
    end
  end
  return wall, kern, kdiff
end

return M
