-- SPDX-License-Identifier: MIT
-- Traffic on an interface from tc, ingress and egress: packets and bytes per
-- protocol and per peer address, printed every interval and exported as
-- Prometheus metrics. Every packet goes on unchanged.
--
--   luabpf run scripts/examples/tc_stats.lua --iface eth0 [--netns NS]
--       [--listen 127.0.0.1:9435] [--interval 1] [--top 10] [--count N]
local uv = require("luv")
local args = require("luabpf.args")
local metrics = require("luabpf.metrics")
local fmt = require("luabpf.fmt")

local opt = args.parse(arg, {
  name = "tc_stats.lua",
  summary = "Count packets and bytes per protocol and per peer on an interface (tc ingress\n"
    .. "and egress), print them and serve them as Prometheus metrics.",
  options = {
    { "iface", required = true, help = "interface to watch" },
    { "netns", help = "named network namespace (ip netns) the interface is in" },
    { "listen", default = "127.0.0.1:" .. metrics.DEFAULT_PORT, metavar = "ADDR:PORT",
      help = "metrics endpoint (port 0: any free port; 'off': none)" },
    { "name", help = "register the endpoint for `luabpf top NAME`" },
    { "interval", type = "number", default = 1, help = "seconds between reports" },
    { "top", type = "number", default = 10, help = "peers shown per report" },
    { "max-peers", type = "number", default = 4096, help = "peers tracked (an LRU keeps the busiest)" },
    { "count", type = "number", help = "stop after this many reports" },
    { "quiet", type = "flag", help = "print only the totals at exit" },
  },
})

-- As in bpf/examples/tc_stats.h.
local DIRS = { [0] = "ingress", [1] = "egress" }
local L3 = { [0] = "ipv4", [1] = "ipv6", [2] = "arp", [3] = "other" }
local PROTOS = { [1] = "icmp", [6] = "tcp", [17] = "udp", [58] = "icmpv6", [132] = "sctp", [47] = "gre",
  [50] = "esp", [0] = "none" }

local obj, err = bpf.load("tc_stats", { max_entries = { peer_stats = opt["max-peers"] } })
if not obj then args.fatal("couldn't load tc_stats: " .. tostring(err)) end

local links = {}
for _, dir in ipairs({ "ingress", "egress" }) do
  local link, aerr = obj:program("tc_stats_" .. dir):attach_tc(opt.iface, { direction = dir, netns = opt.netns })
  if not link then args.fatal(("couldn't attach tc %s on '%s': %s"):format(dir, opt.iface, aerr)) end
  links[#links + 1] = link
end

local proto_stats, peer_stats = obj:map("proto_stats"), obj:map("peer_stats")
local function peer_text(a) return (a:gsub("^::ffff:(%d+%.%d+%.%d+%.%d+)$", "%1")) end
local proto_labels = { "interface", "direction", "l3", "proto" }
local function proto_key(k)
  return { opt.iface, DIRS[k.direction] or k.direction, L3[k.l3] or k.l3,
    k.l3 <= 1 and (PROTOS[k.proto] or tostring(k.proto)) or "none" }
end
local function peer_key(k) return { opt.iface, DIRS[k.direction] or k.direction, peer_text(k.addr) } end

local reg = metrics.registry()
reg:counter { name = "luabpf_tc_packets_total", help = "Packets seen by tc, by direction, layer 3 and IP protocol",
  map = proto_stats, value = "packets", labels = proto_labels, key = proto_key }
reg:counter { name = "luabpf_tc_bytes_total", help = "Bytes (whole frames) seen by tc, by direction, layer 3 and IP protocol",
  map = proto_stats, value = "bytes", labels = proto_labels, key = proto_key }
reg:counter { name = "luabpf_tc_peer_packets_total", help = "IP packets seen by tc, by peer (source on ingress, destination on egress)",
  map = peer_stats, value = "packets", labels = { "interface", "direction", "peer" }, key = peer_key }
reg:counter { name = "luabpf_tc_peer_bytes_total", help = "IP bytes seen by tc, by peer (source on ingress, destination on egress)",
  map = peer_stats, value = "bytes", labels = { "interface", "direction", "peer" }, key = peer_key }
reg:programs(obj)

if opt.listen ~= "off" then
  local addr, port = opt.listen:match("^%[?([^%]]*)%]?:(%d+)$")
  if not addr then args.fatal(("--listen expects ADDR:PORT, got '%s'"):format(opt.listen)) end
  local srv, serr = metrics.serve(reg, { address = addr, port = tonumber(port), name = opt.name })
  if not srv then args.fatal(serr, "pick another port with --listen, or 0 for any free one") end
  print(("metrics on %s"):format(srv.url))
end

-- Reports read the same maps; rates come from the difference between reports.
local function read()
  local rows, peers = {}, {}
  for k, v in proto_stats:pairs() do
    local lv = proto_key(k)
    local s = bpf.sum(v)
    rows[#rows + 1] = { dir = lv[2], l3 = lv[3], proto = lv[4], packets = tonumber(s.packets), bytes = tonumber(s.bytes) }
  end
  for k, v in peer_stats:pairs() do
    local s = bpf.sum(v)
    peers[#peers + 1] = { dir = DIRS[k.direction], peer = peer_text(k.addr), packets = tonumber(s.packets),
      bytes = tonumber(s.bytes) }
  end
  return rows, peers
end

local function id(r) return r.dir .. "/" .. (r.peer or (r.l3 .. "/" .. r.proto)) end

local function report(title, secs, before)
  local rows, peers = read()
  local prev = {}
  for _, r in ipairs(before or {}) do prev[id(r)] = r end
  local function rate(r, f)
    local p = prev[id(r)]
    return before and fmt.si((r[f] - (p and p[f] or 0)) / secs) or "-"
  end
  table.sort(rows, function(a, b) return id(a) < id(b) end)
  table.sort(peers, function(a, b) return a.bytes > b.bytes or (a.bytes == b.bytes and id(a) < id(b)) end)
  local out = { ("%s  %s%s"):format(title, opt.iface, opt.netns and (" in netns " .. opt.netns) or ""),
    ("  %-8s %-6s %-7s %12s %14s %10s %12s"):format("dir", "l3", "proto", "packets", "bytes", "pkts/s", "bytes/s") }
  for _, r in ipairs(rows) do
    out[#out + 1] = ("  %-8s %-6s %-7s %12s %14s %10s %12s"):format(r.dir, r.l3, r.proto, fmt.count(r.packets),
      fmt.count(r.bytes),
      rate(r, "packets"), rate(r, "bytes"))
  end
  out[#out + 1] = ("  %-8s %-22s %12s %14s"):format("dir", "peer", "packets", "bytes")
  for i = 1, math.min(#peers, opt.top) do
    local p = peers[i]
    out[#out + 1] = ("  %-8s %-22s %12s %14s"):format(p.dir, p.peer, fmt.count(p.packets), fmt.count(p.bytes))
  end
  if #peers > opt.top then out[#out + 1] = ("  ... %d more peers"):format(#peers - opt.top) end
  io.stdout:write(table.concat(out, "\n"), "\n")
  io.stdout:flush()
  return rows
end

local last, last_t, reports = (read()), uv.hrtime(), 0
local timer = uv.new_timer()
timer:start(opt.interval * 1000, opt.interval * 1000, function()
  local now = uv.hrtime()
  if not opt.quiet then
    last = report(os.date("%H:%M:%S"), (now - last_t) / 1e9, last)
  end
  last_t, reports = now, reports + 1
  if opt.count and reports >= opt.count then bpf.stop(0) end
end)

bpf.on_shutdown(function()
  timer:close()
  for _, l in ipairs(links) do l:detach() end
  report("totals", 1, nil)
end)
