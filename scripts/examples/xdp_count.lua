-- SPDX-License-Identifier: MIT
-- Count packets and bytes per protocol on an interface, print them every
-- interval until Ctrl-C (or --count reports), then detach and print totals.
--
--   luabpf run scripts/examples/xdp_count.lua --iface veth0 [--netns NAME]
local uv = require("luv")
local args = require("luabpf.args")

local opt = args.parse(arg, {
  name = "xdp_count.lua",
  summary = "Count packets and bytes per protocol (IPv4/IPv6/ARP/other, TCP/UDP/ICMP/other)\n"
    .. "seen by XDP on an interface.",
  options = {
    { "iface", required = true, help = "interface to count on" },
    { "netns", help = "named network namespace (ip netns) the interface is in" },
    { "mode", default = "auto", choices = { "auto", "native", "generic" }, help = "XDP mode" },
    { "interval", type = "number", default = 1, help = "seconds between reports" },
    { "count", type = "number", help = "stop after this many reports" },
    { "quiet", type = "flag", help = "print only the totals at exit" },
  },
})

-- Indices of the counters map, as in bpf/examples/xdp_count.h.
local ROWS = {
  { "ipv4", 0 }, { "ipv6", 1 }, { "arp", 2 }, { "other", 3 },
  { "tcp", 4 }, { "udp", 5 }, { "icmp", 6 }, { "other", 7 },
}

local obj = assert(bpf.load("xdp_count"))
local prog = obj:program("xdp_count")
local link, err = prog:attach_xdp(opt.iface, { mode = opt.mode, netns = opt.netns })
if not link then
  args.fatal(("couldn't attach XDP program 'xdp_count' to '%s': %s"):format(opt.iface, err),
    opt.mode == "native" and "try --mode=generic" or nil)
end
local counters = obj:map("counters")

local function read()
  local now = {}
  for i, row in ipairs(ROWS) do
    now[i] = counters:lookup_sum(row[2])
  end
  return now
end

-- Counts with thousands separators, rates to 3 significant digits with an
-- SI prefix (the column names the unit): luabpf.fmt, as `luabpf top` does.
local fmt = require("luabpf.fmt")

local function report(now, before, secs, title)
  local out = { ("%s  %s (%s)"):format(title, opt.iface, link:info().mode or opt.mode),
    ("  %-3s %-6s %12s %14s %10s %12s"):format("", "proto", "packets", "bytes", "pkts/s", "bytes/s") }
  for i, row in ipairs(ROWS) do
    local p, b = now[i].packets, now[i].bytes
    local dp = before and (p - before[i].packets) / secs or 0
    local db = before and (b - before[i].bytes) / secs or 0
    out[#out + 1] = ("  %-3s %-6s %12s %14s %10s %12s"):format(i <= 4 and "L3" or "L4", row[1],
      fmt.count(p), fmt.count(b), fmt.si(dp), fmt.si(db))
  end
  io.stdout:write(table.concat(out, "\n"), "\n")
  io.stdout:flush()
end

local last, last_t, reports = read(), uv.hrtime(), 0
local timer = uv.new_timer()
timer:start(opt.interval * 1000, opt.interval * 1000, function()
  local now, t = read(), uv.hrtime()
  if not opt.quiet then
    report(now, last, (t - last_t) / 1e9, os.date("%H:%M:%S"))
  end
  last, last_t, reports = now, t, reports + 1
  if opt.count and reports >= opt.count then bpf.stop(0) end
end)

bpf.on_shutdown(function()
  timer:close()
  report(read(), nil, 1, "totals")
  link:detach()
end)
