-- SPDX-License-Identifier: MIT
-- Driven by test_lb_vip_ports.sh, in its namespace: twelve DSR VIPs on one
-- address (ports 80-91), more than the 8 records vip_ports holds per
-- address. Every VIP port is forwarded (8 from vip_ports, the rest through
-- vips), other ports pass; after four VIPs go, their ports pass and the
-- others still forward. Then two VIPs come on the freed ids: port 93 (DSR)
-- and port 80 again, now NAT to port 8080; the old flows of ports 81-83
-- (whose ids went to others) pass, port 80's choose a backend of the new
-- VIP, twice (the second time from the flow table's fast path, bpf/lb/lb.h:
-- struct lb_vip_id). Then the address's vip_ports record is deleted behind
-- the control plane's back: established and new flows to its VIPs still go
-- by vip_hint and vip_ids; NAT replies are translated with and without the
-- SNAT address's record; the same for an IPv6 VIP. Prints one line per
-- step: port=verdict, and for a forward >the destination port it left with.
local bit = require("bit")
local uv = require("luv")
local lb = require("luabpf.lb")
local band, rshift = bit.band, bit.rshift

local ifname = assert(arg[1], "usage: lb_vip_ports.lua IFNAME")
-- Its index and MAC in this namespace (/sys/class/net is the host's).
local p = io.popen("ip -o link show dev " .. ifname)
local line = p:read("*a")
p:close()
local ifindex = assert(tonumber(line:match("^(%d+):")), "no " .. ifname)
local lbmac = line:match("link/ether (%x%x:%x%x:%x%x:%x%x:%x%x:%x%x)")
  :gsub("(%x%x):?", function(h) return string.char(tonumber(h, 16)) end)

local function be16(n) return string.char(rshift(n, 8), band(n, 0xff)) end
local function sum16(s, i, j, acc)
  for k = i, j, 2 do acc = acc + s:byte(k) * 256 + s:byte(k + 1) end
  while acc > 0xffff do acc = band(acc, 0xffff) + rshift(acc, 16) end
  return acc
end
-- A TCP SYN from 10.1.0.5:sport (4000) to 10.10.100.1:dport (or the
-- address dst, 4 bytes), right checksums.
local function syn(dport, sport, dst)
  local f = "\2\0\0\0\0\1" .. lbmac .. be16(0x0800) .. "\69\0" .. be16(40) .. "\0\1\64\0\64\6\0\0"
    .. "\10\1\0\5" .. (dst or "\10\10\100\1") .. be16(sport or 4000) .. be16(dport)
    .. "\0\0\0\1\0\0\0\0\80\2\255\255\0\0\0\0"
  f = f:sub(1, 24) .. be16(0xffff - sum16(f, 15, 34, 0)) .. f:sub(27)
  return f:sub(1, 50) .. be16(0xffff - sum16(f, 35, #f, sum16(f, 27, 34, 6 + #f - 34))) .. f:sub(53)
end

-- A backend's reply on a NAT flow: an ACK from 10.10.0.11:8080 to the
-- balancer's 10.10.0.2:dport, right checksums.
local function reply_pkt(dport)
  local f = "\2\0\0\0\0\17" .. lbmac .. be16(0x0800) .. "\69\0" .. be16(40) .. "\0\1\64\0\64\6\0\0"
    .. "\10\10\0\11\10\10\0\2" .. be16(8080) .. be16(dport) .. "\0\0\0\1\0\0\0\1\80\16\255\255\0\0\0\0"
  f = f:sub(1, 24) .. be16(0xffff - sum16(f, 15, 34, 0)) .. f:sub(27)
  return f:sub(1, 50) .. be16(0xffff - sum16(f, 35, #f, sum16(f, 27, 34, 6 + #f - 34))) .. f:sub(53)
end

-- The same from [fd00:1::5]:sport to [fd00:100::1]:dport.
local function syn6(dport, sport)
  local src = "\253\0\0\1" .. string.rep("\0", 11) .. "\5"
  local dst = "\253\0\1\0" .. string.rep("\0", 11) .. "\1"
  local tcp = be16(sport) .. be16(dport) .. "\0\0\0\1\0\0\0\0\80\2\255\255\0\0\0\0"
  local ph = src .. dst .. "\0\0\0\20\0\0\0\6"
  tcp = tcp:sub(1, 16) .. be16(0xffff - sum16(tcp, 1, #tcp, sum16(ph, 1, #ph, 0))) .. tcp:sub(19)
  return "\2\0\0\0\0\1" .. lbmac .. be16(0x86dd) .. "\96\0\0\0" .. be16(20) .. "\6\64" .. src .. dst .. tcp
end

local svc = assert(lb.new({ name = "vipports" .. uv.os_getpid(), attach = false, pin = false,
  prime_neighbours = false }))
local ok, err = pcall(function()
  for port = 80, 91 do
    svc:add_vip({ name = "v" .. port, addr = "10.10.100.1", port = port, mode = "dsr",
      backends = { { name = "b1", addr = "10.10.0.11" } } })
  end
  -- struct xdp_md: data, data_end (54), data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
  local md = require("ffi").new("uint32_t[6]", 0, 54, 0, ifindex, 0, 0)
  local opts = { ctx = require("ffi").string(md, 24), data_size_out = 256 }
  local function step(sport)
    local r = {}
    for port = 79, 93 do
      local res = assert(svc.prog:test_run(syn(port, sport), opts))
      local out = res.verdict
      if out == "XDP_TX" then out = out .. ">" .. (res.data:byte(37) * 256 + res.data:byte(38)) end
      r[#r + 1] = port .. "=" .. out
    end
    print(table.concat(r, " "))
  end
  step()
  for port = 80, 83 do svc:remove_vip("v" .. port) end
  step()
  svc:add_vip({ name = "w93", addr = "10.10.100.1", port = 93, mode = "dsr",
    backends = { { name = "b1", addr = "10.10.0.11" } } })
  svc:add_vip({ name = "v80", addr = "10.10.100.1", port = 80, mode = "nat", snat = "10.10.0.2",
    backends = { { name = "b1", addr = "10.10.0.11", port = 8080 } } })
  step()
  step()
  -- Without the address's vip_ports record, only the fast path still finds
  -- these VIPs: for established flows, and for new ones (another port).
  assert(svc.m.vip_ports:delete(svc:_mapped("10.10.100.1")))
  step()
  step(4001)
  -- Port 80's NAT flows (10.1.0.5:4000 and :4001, to 10.10.0.11:8080 from
  -- 10.10.0.2 on the clients' ports): the backend's replies go back to the
  -- clients from the VIP; port 4002, no flow's, passes. Then the same
  -- without the SNAT address's vip_ports record: where vip_hint names no
  -- VIP, nat alone decides.
  local nat = {}
  local function replies()
    for _, dport in ipairs({ 4000, 4001, 4002 }) do
      local res = assert(svc.prog:test_run(reply_pkt(dport), opts))
      local out, d = res.verdict, res.data
      if out == "XDP_TX" then
        local function at(a, port) return table.concat({ d:byte(a, a + 3) }, ".") .. ":" .. d:byte(port) * 256
          + d:byte(port + 1) end
        out = out .. ">" .. at(27, 35) .. ">" .. at(31, 37)
      end
      nat[#nat + 1] = out
    end
  end
  replies()
  assert(svc.m.vip_ports:delete(svc:_mapped("10.10.0.2")))
  replies()
  print("nat " .. table.concat(nat, " "))
  -- An IPv6 VIP: forwarded; its port 81 passes; then, without its address's
  -- vip_ports record, established and new flows still forward, port 81 passes.
  svc:add_vip({ name = "v6", addr = "fd00:100::1", port = 80, mode = "dsr",
    backends = { { name = "b6", addr = "fd00::11" } } })
  local md6 = require("ffi").new("uint32_t[6]", 0, 74, 0, ifindex, 0, 0)
  local opts6 = { ctx = require("ffi").string(md6, 24), data_size_out = 256 }
  local r = {}
  local function v6(dport, sport) r[#r + 1] = assert(svc.prog:test_run(syn6(dport, sport), opts6)).verdict end
  v6(80, 4000)
  v6(81, 4000)
  assert(svc.m.vip_ports:delete(svc:_mapped("fd00:100::1")))
  v6(80, 4000)
  v6(80, 4001)
  v6(81, 4000)
  print("v6 " .. table.concat(r, " "))
end)
svc:close()
assert(ok, err)

-- VIP ids past vip_ids (256 records) have no fast-path record: vip_hint
-- must not say "no VIP here" for them (the NAT replies' path would pass
-- their packets). 258 VIPs on 10.10.100.2, ports 1000-1257 (ids 0-257):
-- the last four forward their first packet.
local many = assert(lb.new({ name = "vipids" .. uv.os_getpid(), attach = false, pin = false,
  prime_neighbours = false, max_vips = 260, ring_size = 13 }))
ok, err = pcall(function()
  for i = 0, 257 do
    many:add_vip({ name = "m" .. i, addr = "10.10.100.2", port = 1000 + i, mode = "dsr",
      backends = { { name = "b1", addr = "10.10.0.11" } } })
  end
  local md = require("ffi").new("uint32_t[6]", 0, 54, 0, ifindex, 0, 0)
  local opts = { ctx = require("ffi").string(md, 24), data_size_out = 256 }
  local r = {}
  for i = 254, 257 do
    assert(many.vips["m" .. i].id == i, "VIP m" .. i .. " has id " .. tostring(many.vips["m" .. i].id))
    r[#r + 1] = assert(many.prog:test_run(syn(1000 + i, 4000, "\10\10\100\2"), opts)).verdict
  end
  print("ids " .. table.concat(r, " "))
end)
many:close()
assert(ok, err)
