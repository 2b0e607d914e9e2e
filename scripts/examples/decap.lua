-- SPDX-License-Identifier: MIT
-- The backend's side of the balancer's modes "ipip" and "gue" (docs/lb.md):
-- strips the tunnels sent to this backend's addresses on tc ingress (no
-- ipip/fou module needed), so the client's packet reaches the service bound
-- to the VIP on lo, which answers the client directly. Counts what it strips
-- and prints the counters every interval that something changed, and at exit.
--
--   luabpf run scripts/examples/decap.lua --iface eth0 --addr 10.1.0.11[,fd01::11]
--       [--netns NS] [--gue-port 6080] [--interval 10] [--count N]
local uv = require("luv")
local args = require("luabpf.args")
local decap = require("luabpf.decap")

local opt = args.parse(arg, {
  name = "decap.lua",
  summary = "Strip the load balancer's IPIP and GUE tunnels on a backend (tc ingress).",
  options = {
    { "iface", required = true, help = "the backend's interface the tunnels come in on" },
    { "addr", required = true, metavar = "ADDR[,ADDR]",
      help = "outer addresses whose tunnels are ours (the backend's, as the balancer's pool names it)" },
    { "netns", help = "named network namespace (ip netns) the interface is in" },
    { "gue-port", type = "number", default = decap.GUE_PORT, help = "GUE's UDP port (the balancer's gue_port)" },
    { "interval", type = "number", default = 10, help = "seconds between reports (0: only at exit)" },
    { "count", type = "number", help = "stop after this many intervals" },
  },
})

local addrs = {}
for a in opt.addr:gmatch("[^,%s]+") do addrs[#addrs + 1] = a end
local ok, d, err = pcall(decap.new, { interface = opt.iface, netns = opt.netns, addrs = addrs,
  gue_port = opt["gue-port"] })
if not ok then args.fatal((tostring(d):gsub("^[^:]*:%d+: ", "")), "give --addr the backend's own addresses, comma-separated") end
if not d then
  args.fatal(err, "is the interface's name right (ip link), and is luabpf running as root?")
end
print(("decap: stripping IPIP and GUE (udp %d) to %s on %s%s"):format(opt["gue-port"], table.concat(addrs, ", "),
  opt.iface, opt.netns and (" in netns " .. opt.netns) or ""))
io.stdout:flush()

local function line(s)
  local out = {}
  for _, name in ipairs(decap.REASONS) do
    if s[name].packets > 0 then out[#out + 1] = ("%s %d"):format(name, s[name].packets) end
  end
  return #out > 0 and table.concat(out, ", ") or "nothing yet"
end

local last, ticks = "", 0
local timer = uv.new_timer()
if opt.interval > 0 then
  timer:start(opt.interval * 1000, opt.interval * 1000, function()
    local l = line(d:stats())
    if l ~= last then
      print(os.date("%H:%M:%S") .. "  " .. l)
      io.stdout:flush()
      last = l
    end
    ticks = ticks + 1
    if opt.count and ticks >= opt.count then bpf.stop(0) end
  end)
end

bpf.on_shutdown(function()
  timer:close()
  print("totals  " .. line(d:stats()))
  d:close()
end)
