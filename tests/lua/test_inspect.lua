-- SPDX-License-Identifier: MIT
-- `luabpf ls` and `luabpf dump` agree with `bpftool -j` for objects that
-- bpftool loaded (not luabpf): programs, maps, an XDP link and a netlink XDP
-- attachment in namespaces of our own; dumps decode what we wrote; errors say
-- what is wrong. Everything lives under a unique /sys/fs/bpf/luabpf-test-* dir.
local t = require("t")

local LUABPF = assert(os.getenv("LUABPF"))
local tag = t.unique("lbi")
local DIR = "/sys/fs/bpf/luabpf-test-" .. tag
local NSA, NSB = tag .. "a", tag .. "b"

-- A small JSON reader: numbers as Lua numbers (the test's values fit in 2^53).
local function json_decode(s)
  local i = 1
  local function ws() i = s:find("[^ \t\r\n]", i) or #s + 1 end
  local value
  local function str()
    local out = {}
    i = i + 1
    while true do
      local c = s:sub(i, i)
      if c == '"' then i = i + 1 break end
      if c == "\\" then
        local e = s:sub(i + 1, i + 1)
        if e == "u" then
          out[#out + 1] = string.char(tonumber(s:sub(i + 2, i + 5), 16) % 256)
          i = i + 6
        else
          out[#out + 1] = ({ n = "\n", t = "\t", r = "\r", b = "\b", f = "\f" })[e] or e
          i = i + 2
        end
      elseif c == "" then error("unterminated string in JSON")
      else out[#out + 1] = c i = i + 1 end
    end
    return table.concat(out)
  end
  function value()
    ws()
    local c = s:sub(i, i)
    if c == "{" then
      local o = {}
      i = i + 1 ws()
      if s:sub(i, i) == "}" then i = i + 1 return o end
      while true do
        ws()
        local k = str()
        ws() assert(s:sub(i, i) == ":", "JSON: ':' expected at " .. i) i = i + 1
        o[k] = value()
        ws()
        local d = s:sub(i, i) i = i + 1
        if d == "}" then return o end
        assert(d == ",", "JSON: ',' expected at " .. i)
      end
    elseif c == "[" then
      local a = {}
      i = i + 1 ws()
      if s:sub(i, i) == "]" then i = i + 1 return a end
      while true do
        a[#a + 1] = value()
        ws()
        local d = s:sub(i, i) i = i + 1
        if d == "]" then return a end
        assert(d == ",", "JSON: ',' expected at " .. i)
      end
    elseif c == '"' then return str()
    elseif s:sub(i, i + 3) == "true" then i = i + 4 return true
    elseif s:sub(i, i + 4) == "false" then i = i + 5 return false
    elseif s:sub(i, i + 3) == "null" then i = i + 4 return nil
    end
    local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", i)
    assert(num and #num > 0, "JSON: unexpected '" .. s:sub(i, i + 20) .. "'")
    i = i + #num
    return tonumber(num)
  end
  local v = value()
  ws()
  assert(i > #s, "JSON: trailing text at " .. i .. ": " .. s:sub(i, i + 40))
  return v
end

local function by_id(list)
  local m = {}
  for _, o in ipairs(list) do m[o.id] = o end
  return m
end

local function contains(list, x)
  for _, v in ipairs(list or {}) do if v == x then return true end end
  return false
end

-- Fields bpftool prints must match ours one by one (we may print more).
local function agree(ours, theirs, what, skip)
  t.ok(ours, what .. ": missing from luabpf's list")
  for k, v in pairs(theirs) do
    if not (skip and skip[k]) then
      t.same(ours[k], v, what .. " field '" .. k .. "'")
    end
  end
end

local nobody_dir -- an install of this build that uid nobody can reach, if the build tree is not

local function cleanup()
  if nobody_dir then t.sh("rm -rf " .. nobody_dir) end
  t.sh("ip -n " .. NSA .. " link set dev va xdpgeneric off")
  t.sh("ip netns del " .. NSA)
  t.sh("ip netns del " .. NSB)
  t.sh("rm -rf " .. DIR)
end

local function main()
  t.run("mkdir -p " .. DIR)
  -- Loaded by bpftool, not luabpf: the xdp programs and every map of maps.bpf.o.
  t.run(("bpftool prog loadall %s %s/p pinmaps %s/m"):format(t.object("maps"), DIR, DIR))
  local pcount = t.run("bpftool -j prog show pinned " .. DIR .. "/p/xdp_count")
  local prog_id = json_decode(pcount).id

  -- Values written through the pins, read back by `luabpf dump`.
  local flows = assert(bpf.map_from_pin(DIR .. "/m/flows"))
  local fkey = { addr = { v4 = "10.1.2.3" }, port = 8443, proto = 17 }
  assert(flows:update(fkey, { packets = 3, bytes = 4500, name = "api", kind = "PK_UDP",
    nested = { a = 7, b = 9 }, ports = { 1, 2, 3, 4 }, a6 = "fd00::1" }))
  local counts = assert(bpf.map_from_pin(DIR .. "/m/counts"))
  assert(counts:update(7, bpf.u64("18446744073709551615")))
  assert(counts:update(8, 42))
  local pc = assert(bpf.map_from_pin(DIR .. "/m/pc_hash"))
  assert(pc:update(5, { packets = 2, bytes = 100 }))
  local ncpus = #pc:lookup(5)
  local cfg = assert(bpf.map_from_pin(DIR .. "/m/cfg"))
  assert(cfg:update(1, { proto = 6, port = 80, addr = "192.168.7.1" }))

  -- An XDP link in netns b (pinned), and a netlink XDP attachment in netns a.
  t.veth_pair(NSA, NSB, "10.251." .. math.random(1, 250))
  local tail = assert(bpf.program_from_pin(DIR .. "/p/xdp_tail"))
  local link = assert(tail:attach_xdp("vb", { netns = NSB, mode = "generic" }))
  assert(link:pin(DIR .. "/link"))
  local link_id = link:info().id
  -- nsenter, not `ip -n`: ip netns exec mounts a fresh /sys without bpffs.
  t.run(("nsenter --net=/run/netns/%s ip link set dev va xdpgeneric pinned %s/p/xdp_count"):format(NSA, DIR))

  -- ls progs --json against bpftool -j -f prog show
  local ours = by_id(json_decode(t.run(LUABPF .. " ls progs --json")))
  for _, p in ipairs(json_decode(t.run("bpftool -j -f prog show"))) do
    if contains(p.pinned, DIR .. "/p/xdp_count") or contains(p.pinned, DIR .. "/p/xdp_tail") then
      agree(ours[p.id], p, "prog " .. p.id, { pids = true, run_time_ns = true, run_cnt = true })
    end
  end
  t.ok(ours[prog_id] and contains(ours[prog_id].pinned, DIR .. "/p/xdp_count"), "pinned path of xdp_count")
  local tail_attached = ours[tail:info().id].attached
  t.ok(tail_attached and tail_attached[1]:find("^xdp on ") and tail_attached[1]:find("(link " .. link_id .. ")", 1, true),
    "xdp_tail attached through link " .. link_id .. ": " .. t.dump(tail_attached))

  -- Inside netns a the netlink attachment shows by device name; in b the link does.
  local in_a = by_id(json_decode(t.run(LUABPF .. " --netns " .. NSA .. " ls progs --json")))
  t.same(in_a[prog_id].attached, { "xdp on va (generic, netlink)" }, "netlink XDP seen from netns a")
  local in_b = by_id(json_decode(t.run(LUABPF .. " --netns " .. NSB .. " ls links --json")))
  t.eq(in_b[link_id].devname, "vb", "link's device named in its own netns")
  t.eq(in_b[link_id].attach, "xdp on vb", "link's attach point in its own netns")

  -- ls maps --json against bpftool -j -f map show
  ours = by_id(json_decode(t.run(LUABPF .. " ls maps --json")))
  local n = 0
  -- One map at a time: bpftool 7.1's full listing carries btf_id over from
  -- the previous map to a map without BTF (a ringbuf).
  for _, m in ipairs(json_decode(t.run("bpftool -j -f map show"))) do
    for _, path in ipairs(m.pinned or {}) do
      if path:sub(1, #DIR + 3) == DIR .. "/m/" then
        local one = json_decode(t.run("bpftool -j -f map show id " .. m.id))
        agree(ours[m.id], one, "map " .. m.id .. " (" .. m.name .. ")", { pids = true })
        n = n + 1
      end
    end
  end
  t.ok(n >= 10, "maps of the object compared (" .. n .. ")")

  -- ls links --json against bpftool -j -f link show
  ours = by_id(json_decode(t.run(LUABPF .. " ls links --json")))
  local bl = json_decode(t.run("bpftool -j -f link show id " .. link_id))
  agree(ours[link_id], bl, "link " .. link_id, { pids = true, devname = true })
  t.eq(ours[link_id].prog_name, "xdp_tail", "link's program name")
  t.same(ours[link_id].pinned, { DIR .. "/link" }, "link's pin")
  -- This process holds the link: ls names it.
  local pid = require("luv").os_getpid()
  local held = false
  for _, h in ipairs(ours[link_id].pids or {}) do held = held or h.pid == pid end
  t.ok(held, "link " .. link_id .. " held by pid " .. pid .. ": " .. t.dump(ours[link_id].pids))

  -- ls pins DIR --json: every pin with its kind and id
  local pins = json_decode(t.run(LUABPF .. " ls pins " .. DIR .. " --json"))
  local bypath = {}
  for _, p in ipairs(pins) do bypath[p.path] = p end
  t.eq(bypath[DIR .. "/p/xdp_count"].id, prog_id, "pin of xdp_count")
  t.eq(bypath[DIR .. "/p/xdp_count"].kind, "prog", "kind of a program pin")
  t.eq(bypath[DIR .. "/link"].kind, "link", "kind of a link pin")
  t.eq(bypath[DIR .. "/m/flows"].id, flows:info().id, "pin of flows")
  local text = t.run(LUABPF .. " ls pins " .. DIR)
  t.ok(text:find((DIR .. "/m/flows"):gsub("%p", "%%%0") .. "%s+map%s+" .. flows:info().id .. "%s+hash%s+flows\n"),
    "ls pins text: " .. text)
  t.ok(text:find((DIR .. "/link"):gsub("%p", "%%%0") .. "%s+link%s+" .. link_id .. "%s+xdp%s+prog " .. tail:info().id),
    "ls pins text for the link: " .. text)

  -- dump: decoded values are what we wrote, and agree with bpftool's formatted dump
  -- (bpftool -j map dump's shape: bytes in key/value, the decoded entry in formatted)
  local d = json_decode(t.run(LUABPF .. " dump " .. DIR .. "/m/flows --json"))
  t.eq(#d, 1, "flows entries")
  for i, e in ipairs(d) do d[i] = e.formatted end
  t.eq(d[1].key.addr.v4, "10.1.2.3", "flows key addr as text")
  t.eq(d[1].key.port, 8443, "flows key __be16 port in host order")
  t.eq(d[1].value.packets, 3, "flows value packets")
  t.eq(d[1].value.name, "api", "flows value name")
  t.eq(d[1].value.kind, "PK_UDP", "flows value enum by name")
  t.same(d[1].value.ports, { 1, 2, 3, 4 }, "flows value array")
  t.eq(d[1].value.a6, "fd00::1", "flows value in6_addr as text")
  local bf = json_decode(t.run("bpftool -j map dump pinned " .. DIR .. "/m/flows"))[1].formatted
  for _, f in ipairs({ "packets", "bytes", "name", "kind", "ports", "nested" }) do
    t.same(d[1].value[f], bf.value[f], "flows value field '" .. f .. "' as bpftool formats it")
  end

  -- u64 beyond 2^53 printed exactly, as bpftool does.
  local raw = t.run(LUABPF .. " dump id " .. counts:info().id .. " --json")
  t.ok(raw:find('"formatted":{"key":7,"value":18446744073709551615}', 1, true), "exact u64 in: " .. raw)
  t.ok(t.run("bpftool -j map dump id " .. counts:info().id):find('"value":18446744073709551615', 1, true),
    "bpftool agrees on the u64")

  -- per-CPU: each CPU and the sum, as bpftool lists the CPUs
  d = json_decode(t.run(LUABPF .. " dump " .. DIR .. "/m/pc_hash --json"))
  for i, e in ipairs(d) do d[i] = e.formatted end
  t.eq(#d[1].values, ncpus, "one value per CPU")
  t.same(d[1].sum, { packets = 2 * ncpus, bytes = 100 * ncpus }, "per-CPU sum")
  local bp = json_decode(t.run("bpftool -j map dump pinned " .. DIR .. "/m/pc_hash"))[1].formatted
  t.same(d[1].values, bp.values, "per-CPU values as bpftool formats them")
  text = t.run(LUABPF .. " dump " .. DIR .. "/m/pc_hash")
  t.ok(text:find("5 => sum {packets = " .. 2 * ncpus .. ", bytes = " .. 100 * ncpus .. "}", 1, true)
    and text:find("  cpu0 {packets = 2, bytes = 100}", 1, true), "per-CPU text:\n" .. text)

  -- text: IPs as text, __be16 in host order
  text = t.run(LUABPF .. " dump pinned " .. DIR .. "/m/cfg")
  t.ok(text:find('1 => {proto = 6, port = 80, addr = "192.168.7.1"}', 1, true), "cfg text:\n" .. text)
  t.ok(text:find("# 1 entry", 1, true), "entry count")

  -- by name: a unique name works; a shared one lists the ids
  local uname = "lbi" .. tag:sub(-8)
  t.run(("bpftool map create %s/u type hash key 4 value 8 entries 4 name %s"):format(DIR, uname))
  t.run(("bpftool map update pinned %s/u key 1 0 0 0 value 2 0 0 0 0 0 0 0"):format(DIR))
  t.ok(t.run(LUABPF .. " dump " .. uname):find("1 => 2", 1, true), "dump by unique name (no BTF)")
  local obj2 = assert(bpf.load(t.object("maps")))
  local out, ok, rc = t.sh(LUABPF .. " dump flows")
  t.ok(not ok and rc == 1, "ambiguous name fails with 1")
  t.ok(out:find("maps are named 'flows': ids ", 1, true) and out:find(tostring(flows:info().id), 1, true)
    and out:find(tostring(obj2:map("flows"):info().id), 1, true), "ambiguous name lists the ids: " .. out)
  obj2:close()

  -- errors
  local function fails(cmd, want, code)
    local o, okk, c = t.sh(LUABPF .. " " .. cmd)
    t.ok(not okk, cmd .. " must fail")
    t.eq(c, code or 1, cmd .. " exit status")
    t.ok(o:find(want, 1, true), cmd .. ": output " .. o .. " lacks " .. want)
  end
  fails("dump 4294967295", "ERROR: no map with id 4294967295: ENOENT")
  fails("dump " .. DIR .. "/nope", "can't open pin '" .. DIR .. "/nope': ENOENT")
  fails("dump " .. DIR .. "/p/xdp_count", "is a pinned program (id " .. prog_id .. ", 'xdp_count'), not a map")
  fails("dump " .. DIR .. "/p", "is a directory, not a pin")
  fails("dump /etc/hostname", "it is not on bpffs")
  fails("dump name no_such_map_" .. tag, "no loaded map is named 'no_such_map_" .. tag .. "'")
  fails("dump " .. DIR .. "/m/events", "is a ringbuf: it has no entries to dump")
  fails("dump", "which map?", 2)
  fails("ls bogus", "unknown kind 'bogus'", 2)
  fails("ls maps --bogus", "unknown option '--bogus'", 2)
  -- nobody must reach the binary and its Lua library first: a build tree in
  -- a home directory (0700 on Debian 12) is closed to it, so it then runs an
  -- install of this build in a directory it can reach. (Through sh: setpriv
  -- itself execs with root's capabilities, the program's own loads run without.)
  local as_nobody = "setpriv --reuid=nobody --regid=nogroup --clear-groups "
  local function reaches(bin) return t.sh(as_nobody .. "sh -c '\"$0\" ls --help' " .. bin) end
  local bin = LUABPF
  if not select(2, reaches(bin)) then
    nobody_dir = t.run("mktemp -d /tmp/luabpf-nobody.XXXXXX"):match("%S+")
    t.run(("chmod 0755 %s && cmake --install %s --prefix %s >/dev/null"):format(nobody_dir,
      assert(os.getenv("LUABPF_BUILD_DIR")), nobody_dir))
    bin = nobody_dir .. "/bin/luabpf"
    print("note: nobody can't run " .. LUABPF .. " (a directory on its way is closed to it): it runs " .. bin)
    out, ok = reaches(bin)
    t.ok(ok, "nobody runs luabpf installed in " .. nobody_dir .. ": " .. out)
  end
  local nobody = as_nobody .. bin
  out, ok, rc = t.sh(nobody .. " ls maps")
  t.ok(not ok and rc == 3 and out:find("can't list maps: EPERM", 1, true), "ls as nobody: " .. tostring(rc) .. " " .. out)
  out, ok, rc = t.sh(nobody .. " dump " .. flows:info().id)
  t.ok(not ok and rc == 3 and out:find("EPERM", 1, true), "dump as nobody: " .. tostring(rc) .. " " .. out)

  assert(link:unpin())
  assert(link:detach())
end

local ok, err = xpcall(main, debug.traceback)
cleanup()
if not ok then error(err, 0) end
print("ok")
