-- SPDX-License-Identifier: MIT
-- Katran's XDP balancer (github.com/facebookincubator/katran,
-- katran/lib/bpf/balancer.bpf.c, built by bench/lb_pkt.sh from a checkout
-- you give it) set up the way its control plane sets it up, for
-- bench/lb_pkt.lua to time beside ours: one TCP VIP, its backends in
-- `reals`, its consistent-hash ring in `ch_rings`, the default router's MAC
-- in `ctl_array`, and one connection table (LRU) per CPU in `lru_mapping`,
-- as Katran runs in production (without them it falls back to one shared
-- table and counts that as an anomaly). Katran forwards in IPIP to the
-- backend, out to the default router's MAC.
local M = {}

local RING_SIZE = 65537 -- Katran's per-VIP ring (balancer_consts.h)
-- Its new-connection rate's slot in `stats` (MAX_VIPS + NEW_CONN_RATE_CNTR).
local CONN_RATE = 512 + 2

-- A struct of raw bytes: Katran's maps carry unions, which we write as bytes.
local function bytes(n, parts)
  local b = {}
  for i = 1, n do b[i] = "\0" end
  for off, s in pairs(parts) do
    for i = 1, #s do b[off + i] = s:sub(i, i) end
  end
  return table.concat(b)
end

local function le32(n)
  return string.char(n % 256, math.floor(n / 256) % 256, math.floor(n / 65536) % 256,
    math.floor(n / 16777216) % 256)
end

--- plane{obj=, vip=, port=n, backends={addrs}, gw_mac=6 bytes (addresses as
-- 4 network-order bytes),
-- flows=n, ncpus=n} -> {prog=, close=, rearm=}: loaded and filled. Raises naming
-- the map that refused.
function M.plane(o)
  local obj = assert(bpf.load(o.obj, { max_entries = { ch_rings = RING_SIZE, fallback_cache = o.flows } }))
  local inner = {}
  local ok, err = pcall(function()
    local function put(name, k, v)
      local r, e = obj:map(name):update(k, v)
      assert(r, ("katran map '%s': %s"):format(name, tostring(e)))
    end
    -- vip_definition {union {vip; vipv6[4]}, port, proto} -> vip_meta {flags, vip_num}
    put("vip_map", bytes(20, { [0] = o.vip, [16] = string.char(math.floor(o.port / 256), o.port % 256),
      [18] = "\6" }), bytes(8, {}))
    -- reals from 1 (0 is no real), real_definition {union {dst; dstv6[4]}, flags}
    for i, addr in ipairs(o.backends) do put("reals", le32(i), bytes(20, { [0] = addr })) end
    -- the ring of VIP 0: position -> real, each real in turn
    local ring = obj:map("ch_rings")
    local keys, vals = {}, {}
    for i = 0, RING_SIZE - 1 do
      keys[#keys + 1] = i
      vals[#vals + 1] = i % #o.backends + 1
    end
    assert(ring:update_batch(keys, vals))
    put("ctl_array", le32(0), bytes(8, { [0] = o.gw_mac }))
    -- one connection table per CPU, shaped as lru_mapping's inner map
    for cpu = 0, o.ncpus - 1 do
      local path = ("/sys/fs/bpf/lbpkt_katran_%d_%d"):format(require("luv").os_getpid(), cpu)
      local cmd = ("bpftool map create %s type lru_hash key 40 value 16 entries %d name katran_lru"):format(path,
        o.flows)
      assert(os.execute(cmd) == 0, "can't create Katran's per-CPU table: " .. cmd)
      local p = io.popen("bpftool -j map show pinned " .. path)
      local id = tonumber(p:read("*a"):match('"id":(%d+)'))
      p:close()
      inner[#inner + 1] = assert(bpf.map_from_id(id))
      os.remove(path) -- held by our fd now
      put("lru_mapping", cpu, inner[#inner])
    end
  end)
  local function close()
    for _, m in ipairs(inner) do m:close() end
    obj:close()
  end
  if not ok then close(); error(err, 0) end
  -- Past MAX_CONN_RATE (125,000) new flows in a second on a CPU, Katran makes
  -- no LRU entry for the rest of that second (is_under_flood() in
  -- balancer.bpf.c), and the bench's new-flow loops go faster than that.
  -- rearm() zeroes that count before a loop (20,000 packets at most), so
  -- each of its new flows makes its entry, as each of ours does.
  local stats = obj:map("stats")
  local function rearm()
    assert(stats:update(CONN_RATE, { v1 = 0, v2 = 0 }))
  end
  return { prog = obj:program("balancer_ingress"), close = close, rearm = rearm }
end

--- What is wrong with Katran's output out for input f (nil: right): the
-- client's packet whole behind an outer IPv4 header (protocol 4, a right
-- checksum) to one of the backends (addrs), from our MAC f's destination to
-- the default router's, gw_mac.
function M.check(f, out, addrs, gw_mac, ip_sum)
  if #out ~= #f + 20 then return ("katran: length %d, sent %d"):format(#out, #f) end
  if out:sub(1, 6) ~= gw_mac or out:sub(7, 12) ~= f:sub(1, 6) then return "katran: MACs" end
  if out:sub(35) ~= f:sub(15) then return "katran changed the client's packet" end
  if out:byte(24) ~= 4 then return "katran: outer protocol" end
  local dst, known = out:sub(31, 34), false
  for _, a in ipairs(addrs) do known = known or a == dst end
  if not known then return "katran: outer destination is no backend" end
  if ip_sum(out) ~= 0xffff then return "katran: wrong outer IPv4 header checksum" end
end

return M
