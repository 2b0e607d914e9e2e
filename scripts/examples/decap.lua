-- SPDX-License-Identifier: MIT
-- The backend's side of the balancer's modes "ipip" and "gue" (docs/lb.md):
-- strips the tunnels sent to this backend's addresses on tc ingress (no
-- ipip/fou module needed), so the client's packet reaches the service bound
-- to the VIP on lo, which answers the client directly. Counts what it strips
-- and prints the counters every interval that something changed, and at exit;
-- --listen serves them as Prometheus metrics (luabpf_decap_packets_total and
-- _bytes_total by interface and reason).
--
--   luabpf run scripts/examples/decap.lua --iface eth0 --addr 10.1.0.11[,fd01::11]
--       [--netns NS] [--gue-port 6080] [--interval 10] [--count N] [--listen ADDR:PORT]
local uv = require("luv")
local args = require("luabpf.args")
local decap = require("luabpf.decap")
local metrics = require("luabpf.metrics")

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
    { "listen", default = "off", metavar = "ADDR:PORT",
      help = "serve the counters as Prometheus metrics (port 0: any free port; 'off': none)" },
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
if opt.listen ~= "off" then
  local a, port = opt.listen:match("^%[?([^%]]*)%]?:(%d+)$")
  if not a then d:close(); args.fatal(("--listen expects ADDR:PORT, got '%s'"):format(opt.listen)) end
  local reg = metrics.registry()
  local function key(k) return { opt.iface, decap.REASONS[k + 1] or tostring(k) } end
  reg:counter { name = "luabpf_decap_packets_total", help = "Packets seen by the tunnel decapsulator, by reason",
    map = d.stats_map, value = "packets", labels = { "interface", "reason" }, key = key }
  reg:counter { name = "luabpf_decap_bytes_total", help = "Bytes (as received) seen by the tunnel decapsulator, by reason",
    map = d.stats_map, value = "bytes", labels = { "interface", "reason" }, key = key }
  local srv, serr = metrics.serve(reg, { address = a, port = tonumber(port) })
  if not srv then d:close(); args.fatal(serr, "pick another port with --listen, or 0 for any free one") end
  print(("metrics on %s"):format(srv.url))
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
