-- SPDX-License-Identifier: MIT
-- The conntrack flow table of the load balancer (lb.new{flow_table = "conntrack"},
-- bpf/lb/lb_ct.bpf.c): what the kernel must have, the nftables nat chains that
-- register nf_nat's hooks in the namespace, the sysctls a one-arm balancer
-- needs, and the entries (listed and flushed by mark with the conntrack tool).
-- Private to lua/luabpf/lb/; docs/lb.md "Flow table: LRU or conntrack".
local uv = require("luv")
local bit = require("bit")
local addr = require("luabpf._addr")

local M = {}

M.DEFAULT_MARK = 0x4c420000 -- "LB" in the high half; the low half is the backend id
M.MARK_MASK = 0xffff0000

-- What bpf/lb/lb_ct.bpf.c calls: all must be in the kernel's BTF.
M.KFUNCS = { "bpf_skb_ct_lookup", "bpf_skb_ct_alloc", "bpf_ct_insert_entry", "bpf_ct_set_nat_info",
  "bpf_ct_set_timeout", "bpf_ct_change_timeout", "bpf_ct_release",
  "bpf_xdp_ct_lookup" } -- ct_fastpath (bpf/lb/lb_ct_xdp.bpf.c)

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local readall = require("luabpf._util").read_file

-- Run a command (in netns when given); returns ok, stdout+stderr.
local function run(netns, cmd)
  if netns then cmd = ("ip netns exec %s %s"):format(q(netns), cmd) end
  -- LuaJIT's popen close gives no exit status: the shell prints it.
  local p = io.popen("{ " .. cmd .. "; } 2>&1; echo \"@@rc=$?\"")
  local out = p:read("*a")
  p:close()
  local rc = tonumber(out:match("@@rc=(%d+)%s*$"))
  return rc == 0, (out:gsub("@@rc=%d+%s*$", ""))
end
M.run = run

-- The kfuncs named in the BTF string tables of vmlinux and the conntrack/NAT
-- modules. Returns the missing ones.
local function missing_kfuncs()
  local blobs = {}
  for _, f in ipairs({ "vmlinux", "nf_conntrack", "nf_nat" }) do
    blobs[#blobs + 1] = readall("/sys/kernel/btf/" .. f) or ""
  end
  local all = table.concat(blobs)
  local missing = {}
  for _, k in ipairs(M.KFUNCS) do
    if not all:find("\0" .. k .. "\0", 1, true) then missing[#missing + 1] = k end
  end
  return missing
end

--- Can this kernel run the conntrack flow table? true, or nil and a message
-- with a hint. Loads nf_conntrack and nf_nat when they are modules.
function M.check()
  if not uv.fs_stat("/sys/kernel/btf/vmlinux") then
    return nil, "flow_table 'conntrack' needs kernel BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF)"
      .. "\nHINT: use flow_table = 'lru'"
  end
  local missing = missing_kfuncs()
  if #missing > 0 then
    run(nil, "modprobe -q nf_conntrack; modprobe -q nf_nat")
    missing = missing_kfuncs()
  end
  if #missing > 0 then
    return nil, ("flow_table 'conntrack' needs the kernel's conntrack kfuncs (Linux 6.1+ with "
      .. "CONFIG_NF_CONNTRACK and CONFIG_NF_NAT); this kernel's BTF lacks %s"
      .. "\nHINT: use flow_table = 'lru' (the XDP flow table), which needs none of them"):format(
        table.concat(missing, ", "))
  end
  if not run(nil, "command -v nft >/dev/null") then
    return nil, "flow_table 'conntrack' needs nft (Debian package nftables) to register the NAT hooks"
      .. "\nHINT: apt-get install nftables"
  end
  return true
end

local CT = {}
CT.__index = CT

--- o: name, interface, netns, mark. Nothing changes until setup().
function M.new(o)
  local mark = o.mark or M.DEFAULT_MARK
  if type(mark) ~= "number" or mark % 0x10000 ~= 0 or mark <= 0 or mark > 0xffffffff then
    error(("lb.new: ct_mark must be a 32-bit value whose low 16 bits are 0 (they hold the backend id), got %s")
      :format(tostring(o.mark)), 3)
  end
  return setmetatable({
    service = o.name, interface = o.interface, netns = o.netns, mark = mark, fastpath = o.fastpath,
    sync = o.sync, nat_written = {},
    -- nft identifiers take no '-'.
    table = "luabpf_lb_" .. o.name:gsub("-", "_"),
    sysctl_saved = {},
  }, CT)
end

function CT:_sysctl(key, val)
  local ok, out = run(self.netns, "sysctl -n " .. q(key))
  local old = ok and out:match("^%s*(%S+)") or nil
  if val ~= nil and old ~= tostring(val) then
    run(self.netns, ("sysctl -qw %s=%s"):format(q(key), q(val)))
  end
  return old
end

--- Register conntrack's and nf_nat's hooks in the namespace (the entries
-- carry their own NAT: the chains hold no NAT rule, but with ct_sync the
-- rules that NAT a marked new flow), and stop ICMP redirects on the interface: the
-- balancer forwards out of the interface a packet came in on, and a
-- redirect would send the client to the backend directly.
function CT:setup()
  local t = self.table
  local nft = {
    ("table inet %s {\n  comment \"luabpf lb service '%s' (flow_table conntrack, ct_mark 0x%08x)\"\n"):format(
      t, self.service, self.mark),
    -- ct_sync: a new flow's NAT target by its mark (ct_mark | backend id),
    -- written by nat_targets() before the backend can be chosen.
    "  map be4 { type mark : ipv4_addr . inet_service; }\n  map be6 { type mark : ipv6_addr . inet_service; }\n",
    "  map snat4 { type mark : ipv4_addr; }\n  map snat6 { type mark : ipv6_addr; }\n",
    "  chain prerouting { type nat hook prerouting priority dstnat; policy accept; }\n",
    "  chain postrouting { type nat hook postrouting priority srcnat; policy accept; }\n}\n",
    -- The rules are replaced in the same transaction: a restart neither
    -- doubles them nor leaves a moment without them.
    ("flush chain inet %s prerouting\nflush chain inet %s postrouting\n"):format(t, t),
  }
  if self.sync then
    local m = ("0x%08x/16"):format(self.mark)
    for _, f in ipairs({ { "ipv4", "ip", "4" }, { "ipv6", "ip6", "6" } }) do
      -- The data plane marked the packet (bpf/lb/lb_ct.bpf.c, ct_sync): the
      -- kernel's own entry takes the mark and the backend's address, so it
      -- raises ctnetlink events (conntrackd syncs it) like any NAT entry.
      nft[#nft + 1] = ("add rule inet %s prerouting meta mark %s ct state new ct mark set meta mark "
        .. "meta nfproto %s meta l4proto { tcp, udp } dnat %s to meta mark map @be%s\n"):format(t, m, f[1], f[2], f[3])
      nft[#nft + 1] = ("add rule inet %s postrouting ct mark %s ct status dnat meta nfproto %s "
        .. "snat %s to ct mark map @snat%s\n"):format(t, m, f[1], f[2], f[3])
    end
  end
  -- A nat chain alone registers nf_nat but not conntrack's own hooks; a rule
  -- with a ct expression does (nf_ct_netns_get). It sees only new
  -- connections that are not ours (ours come with their NAT made).
  nft[#nft + 1] = ("add rule inet %s prerouting ct state new counter comment \"keeps conntrack on for luabpf\"\n")
    :format(t)
  nft = table.concat(nft)
  local tmp = os.tmpname()
  local f = assert(io.open(tmp, "w"))
  f:write(nft)
  f:close()
  local ok, out = run(self.netns, "nft -f " .. q(tmp))
  os.remove(tmp)
  if not ok then
    return nil, ("service '%s': couldn't add nftables table inet %s for the NAT hooks: %s"):format(
      self.service, self.table, out:gsub("%s+$", ""))
  end
  if self.interface then
    for _, k in ipairs({ "net.ipv4.conf.all.send_redirects", "net.ipv4.conf." .. self.interface .. ".send_redirects" }) do
      local old = self:_sysctl(k, 0)
      if old and old ~= "0" then self.sysctl_saved[k] = old end
    end
    if next(self.sysctl_saved) then
      bpf.log("info", ("service '%s': ICMP redirects off on %s (one-arm NAT forwards out of the interface "
        .. "packets came in on)"):format(self.service, self.interface))
    end
    if self.fastpath or self.sync then
      -- Packets sent from XDP never reach conntrack's TCP window tracking:
      -- without this the FIN/RST ending the connection (slow path) would be
      -- out of window, INVALID, and left untranslated. Per namespace.
      local k = "net.netfilter.nf_conntrack_tcp_be_liberal"
      local old = self:_sysctl(k, 1)
      if old and old ~= "1" then
        self.sysctl_saved[k] = old
        bpf.log("info", ("service '%s': %s=1 in this namespace (%s)"):format(self.service, k, self.fastpath
          and "ct_fastpath: conntrack does not see the packets sent from XDP"
          or "ct_sync: a flow moved from another node arrives mid-window"))
      end
    end
    if self:_sysctl("net.ipv4.conf." .. self.interface .. ".forwarding") == "0" then
      bpf.log("warn", ("service '%s': forwarding is off on %s: new flows are dropped (drop_fwd_disabled)"
        .. "\nHINT: sysctl -w net.ipv4.conf.all.forwarding=1 net.ipv6.conf.all.forwarding=1")
        :format(self.service, self.interface))
    end
  end
  return true
end

-- One backend's NAT target as ct_sync's maps hold it: family, nft elements.
local function nat_target(mark, b)
  local v = b.vip
  local fam = addr.is_v4(b.addr) and "4" or "6"
  local port = (b.port and b.port ~= 0) and b.port or v.port
  local snat = (v.mode == 0 or v.mode == "nat") and v.snat and not addr.is_zero(addr.mapped(v.snat))
    and addr.mapped(v.snat) ~= addr.mapped("0.0.0.0") and v.snat or nil
  local key = ("0x%08x"):format(mark + b.id)
  return fam, ("%s : %s . %d"):format(key, b.addr, port), snat and ("%s : %s"):format(key, snat), key
end

--- ct_sync: write the NAT targets of these backends (records of lb/_pool.lua)
-- into the maps, in one nft transaction, skipping those already there as
-- they are; replace: the maps hold exactly these afterwards (an earlier
-- instance's elements serve until the same transaction swaps them).
-- Returns true, or nil and nft's message.
function CT:nat_targets(list, replace)
  local tx, n = {}, 0
  if replace then
    self.nat_written, self.nat_stale = {}, nil
    for _, m in ipairs({ "be4", "be6", "snat4", "snat6" }) do
      tx[#tx + 1] = ("flush map inet %s %s\n"):format(self.table, m)
    end
    n = 1
  end
  for _, b in ipairs(list) do
    local fam, be, snat, key = nat_target(self.mark, b)
    local want = fam .. "|" .. be .. "|" .. tostring(snat)
    local had = self.nat_written[b.id]
    if had ~= want then
      if had then
        local hfam, _, hsnat = had:match("^(%d)|(.-)|(.*)$")
        tx[#tx + 1] = ("delete element inet %s be%s { %s }\n"):format(self.table, hfam, key)
        if hsnat ~= "nil" then tx[#tx + 1] = ("delete element inet %s snat%s { %s }\n"):format(self.table, hfam, key) end
      end
      tx[#tx + 1] = ("add element inet %s be%s { %s }\n"):format(self.table, fam, be)
      if snat then tx[#tx + 1] = ("add element inet %s snat%s { %s }\n"):format(self.table, fam, snat) end
      n = n + 1
      self.nat_written[b.id] = want
    end
  end
  if n == 0 then return true end
  local tmp = os.tmpname()
  local f = assert(io.open(tmp, "w"))
  f:write(table.concat(tx))
  f:close()
  local ok, out = run(self.netns, "nft -f " .. q(tmp))
  os.remove(tmp)
  if not ok then
    self.nat_stale = true -- unknown now: bind's writer rewrites them all next time
    return nil, ("service '%s': couldn't write %d NAT target(s) into nftables table inet %s: %s"):format(
      self.service, n, self.table, out:gsub("%s+$", ""))
  end
  return true
end

--- ct_sync: keep the maps in step with the service's backend records. Every
-- record goes through svc:_write_backend (lb/_publish.lua), and a Maglev
-- table names a backend only after svc:_publish; this instance's copies of
-- both write the NAT targets first: a new backend's at the next publish (a
-- pool of 1,000 is one nft transaction, not 1,000), a backend a published
-- table names at once.
function CT:bind(svc)
  local write, publish = svc._write_backend, svc._publish
  local ct = self
  local pending = {}
  local function all()
    local list, seen = {}, {}
    for _, b in pairs(svc.backend_by_id) do list[#list + 1], seen[b] = b, true end
    for _, b in ipairs(pending) do
      if not seen[b] then list[#list + 1], seen[b] = b, true end
    end
    table.sort(list, function(a, b) return a.id < b.id end)
    return list
  end
  local function flush(level)
    if #pending == 0 and not ct.nat_stale then return end
    local stale = ct.nat_stale
    local ok, err = ct:nat_targets(stale and all() or pending, stale)
    pending = {}
    if not ok then error(err, level + 1) end
  end
  svc._write_backend = function(s, b)
    pending[#pending + 1] = b
    if b.vip and b.vip.slots and b.vip.slots[b.id] then flush(2) end
    return write(s, b)
  end
  svc._publish = function(s, v, entries)
    flush(2)
    return publish(s, v, entries)
  end
  return self:nat_targets(all(), true)
end

--- The namespace's conntrack timeouts the fast path refreshes entries with
-- (ms): TCP established, UDP stream (assured), UDP replied.
function CT:timeouts()
  local function ms(k, dflt)
    return (tonumber(self:_sysctl("net.netfilter." .. k)) or dflt) * 1000
  end
  return math.min(ms("nf_conntrack_tcp_timeout_established", 432000), 0xffffffff),
    math.min(ms("nf_conntrack_udp_timeout_stream", 120), 0xffffffff),
    math.min(ms("nf_conntrack_udp_timeout", 30), 0xffffffff)
end

--- Undo setup(): our entries go first (without the hooks their NAT would
-- stop half-way), then the table; sysctls we changed are restored.
function CT:teardown()
  self:flush_mark(self.mark, M.MARK_MASK)
  run(self.netns, ("nft delete table inet %s"):format(q(self.table)))
  for k, v in pairs(self.sysctl_saved) do run(self.netns, ("sysctl -qw %s=%s"):format(q(k), q(v))) end
  self.sysctl_saved = {}
end

--- Delete entries whose mark matches; returns how many went.
function CT:flush_mark(mark, mask)
  local n = 0
  for _, fam in ipairs({ "ipv4", "ipv6" }) do
    local _, out = run(self.netns, ("conntrack -D -f %s -m %d/%d"):format(fam, mark, mask or 0xffffffff))
    n = n + (tonumber(out:match("(%d+) flow entries have been deleted")) or 0)
  end
  return n
end

--- Entries of one backend id.
function CT:flush_backend(id)
  return self:flush_mark(self.mark + id, 0xffffffff)
end

-- One line of `conntrack -L`: original and reply tuples, state, mark.
local function parse_line(line)
  local proto = line:match("^(%a+)")
  if not proto then return nil end
  local e = { proto = proto, timeout = tonumber(line:match("^%a+%s+%d+%s+(%d+)")),
    state = line:match("^%a+%s+%d+%s+%d+%s+(%u[%u_]+)%s"), mark = tonumber(line:match("mark=(%d+)")) }
  local t = {}
  for k, v in line:gmatch("(%a+)=(%S+)") do
    if k == "src" or k == "dst" or k == "sport" or k == "dport" then
      t[#t + 1] = { k, v }
    end
  end
  local orig, reply = {}, {}
  for i, kv in ipairs(t) do
    local into = i <= 4 and orig or reply
    into[kv[1]] = kv[2]
  end
  e.src, e.sport, e.dst, e.dport = orig.src, tonumber(orig.sport), orig.dst, tonumber(orig.dport)
  -- The reply tuple is the translated one, seen from the backend.
  e.backend_addr, e.backend_port = reply.src, tonumber(reply.sport)
  e.nat_src, e.nat_sport = reply.dst, tonumber(reply.dport)
  e.assured = line:find("[ASSURED]", 1, true) ~= nil
  e.replied = line:find("[UNREPLIED]", 1, true) == nil
  return e
end
M.parse_line = parse_line

--- Our entries, parsed: every one whose mark is ours (or exactly `mark`).
function CT:entries(mark, mask)
  local out = {}
  for _, fam in ipairs({ "ipv4", "ipv6" }) do
    -- stderr's summary line would land inside stdout's buffered lines.
    local _, text = run(self.netns, ("conntrack -L -f %s -m %d/%d 2>/dev/null"):format(fam, mark or self.mark,
      mask or M.MARK_MASK))
    for line in text:gmatch("[^\n]+") do
      local e = line:find("mark=", 1, true) and parse_line(line)
      if e and e.src then
        e.backend_id = bit.band(e.mark, 0xffff)
        out[#out + 1] = e
      end
    end
  end
  return out
end

--- The entry of one flow (original direction), or nil.
function CT:get(src, sport, dst, dport, proto)
  -- -G takes no -f: the addresses give the family.
  local _, text = run(self.netns, ("conntrack -G -p %s -s %s -d %s --sport %d --dport %d 2>/dev/null"):format(
    proto, q(src), q(dst), sport, dport))
  for line in text:gmatch("[^\n]+") do
    local e = line:find("mark=", 1, true) and parse_line(line)
    if e and e.src and bit.band(e.mark, M.MARK_MASK) == bit.tobit(self.mark) then
      e.backend_id = bit.band(e.mark, 0xffff)
      return e
    end
  end
end

return M
