-- SPDX-License-Identifier: MIT
-- sk_lookup on a namespace and cgroup_skb on a cgroup, both made by this
-- test: the program sees traffic while attached, bpftool shows the link,
-- and nothing is left after detach.
local t = require("t")

local function cgroup2_root()
  for line in io.lines("/proc/mounts") do
    local dir, fs = line:match("^%S+ (%S+) (%S+)")
    if fs == "cgroup2" then return dir end
  end
end

local NS = t.unique("lbtsk")
local CG = cgroup2_root() .. "/" .. t.unique("lbtcg")

local function main()
  local obj = assert(bpf.load(t.object("progs")))

  -- sk_lookup: runs for UDP that arrives in the namespace.
  t.run("ip netns add " .. NS .. " && ip -n " .. NS .. " link set lo up")
  local sk = obj:program("sk_lookup_pass")
  local link = assert(sk:attach_sk_lookup({ netns = NS }))
  t.eq(link:description(), "sk_lookup in netns '" .. NS .. "'", "description")
  local info = link:info()
  t.eq(info.type, "netns", "link type")
  t.eq(info.attach_type, "sk_lookup", "attach type")
  local ino = tonumber(t.run("stat -L -c %i /run/netns/" .. NS))
  t.eq(info.netns_ino, ino, "netns inode")
  t.eq(t.links_of(sk), info.id .. ":" .. sk:info().id, "bpftool lists it")
  for _ = 1, 3 do t.run("ip netns exec " .. NS .. " bash -c 'echo x > /dev/udp/127.0.0.1/9'") end
  t.ok(t.counter(sk, "sk_lookups") >= 3, "sk_lookup ran: " .. t.counter(sk, "sk_lookups"))
  assert(link:detach())
  t.eq(t.links_of(sk), "", "no link left after sk_lookup detach")
  local n = t.counter(sk, "sk_lookups")
  t.run("ip netns exec " .. NS .. " bash -c 'echo x > /dev/udp/127.0.0.1/9'")
  t.eq(t.counter(sk, "sk_lookups"), n, "not run after detach")

  -- Current namespace by default: attach and detach only (no traffic here).
  link = assert(sk:attach_sk_lookup())
  t.eq(link:description(), "sk_lookup in the current netns", "default netns")
  t.eq(link:info().netns_ino, tonumber(t.run("stat -L -c %i /proc/self/ns/net")), "current netns inode")
  assert(link:detach())
  local ok, err, code = sk:attach_sk_lookup({ netns = "lbt-no-such-ns" })
  t.eq(code, "ENOENT", "missing netns: " .. tostring(err))

  -- cgroup_skb/egress on a fresh cgroup: counts what a process in it sends.
  t.run("mkdir " .. CG)
  local cg = obj:program("cgroup_skb_count")
  link = assert(cg:attach_cgroup(CG))
  t.eq(link:description(), "cgroup " .. CG .. " (cgroup_inet_egress)", "description")
  info = link:info()
  t.eq(info.type, "cgroup", "link type")
  t.eq(info.attach_type, "cgroup_inet_egress", "attach type from SEC()")
  local shown = t.run("bpftool cgroup show " .. CG)
  t.ok(shown:find("cgroup_skb_count", 1, true) and shown:find("cgroup_inet_egress", 1, true),
    "bpftool cgroup show:\n" .. shown)
  t.run("sh -c 'echo $$ > " .. CG .. "/cgroup.procs && ping -c 3 -i 0.01 -W1 127.0.0.1'")
  t.ok(t.counter(cg, "cgroup_packets") >= 3, "egress counted: " .. t.counter(cg, "cgroup_packets"))
  assert(link:detach())
  t.ok(not t.run("bpftool cgroup show " .. CG):find("cgroup_skb_count", 1, true), "detached from the cgroup")
  t.eq(t.links_of(cg), "", "no link left after cgroup detach")

  -- An explicit type that does not match the program: the kernel refuses, with a hint.
  ok, err, code = cg:attach_cgroup(CG, { type = "cgroup_inet4_connect" })
  t.eq(code, "EINVAL", "mismatched type: " .. tostring(err))
  t.ok(err:find("HINT: is the path a cgroup v2 directory", 1, true), "mismatched type hint")
  ok, err, code = cg:attach_cgroup(CG .. "-missing")
  t.eq(code, "ENOENT", "missing cgroup")
  t.ok(err:find("can't open cgroup '" .. CG .. "-missing'", 1, true), "missing cgroup message: " .. err)
  obj:close()
end

t.main(main, "ip netns del " .. NS, "rmdir " .. CG)
