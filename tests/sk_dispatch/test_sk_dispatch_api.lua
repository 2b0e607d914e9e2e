-- SPDX-License-Identifier: MIT
-- The sk_dispatch Lua API on a namespace of its own: which binding wins
-- (longest prefix, then a specific port, then the narrowest range), unbinding
-- hands ports back, fall-through, counters, a later open sees the same
-- state, misuse raises and refusals return nil, err, code.
local t = require("t")
local uv = require("luv")
local skd = require("luabpf.sk_dispatch")

local NS = t.unique("lbtskd")
local SERVER = os.tmpname()
local server_pid

-- One process, one listener per label on 127.0.0.1:9001.., each answering its
-- name; plus a plain server on 0.0.0.0:7000 for fall-through.
local PY = [[
import selectors, socket, sys
sel = selectors.DefaultSelector()
names = sys.argv[1:]
fds = []
for i, name in enumerate(names):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 7000) if name == "plain" else ("127.0.0.1", 9001 + i))
    s.listen(128)
    sel.register(s, selectors.EVENT_READ, name)
    fds.append(str(s.fileno()))
print(" ".join(fds), flush=True)
while True:
    for key, _ in sel.select():
        c, _ = key.fileobj.accept()
        c.sendall(key.data.encode() + b"\n")
        c.close()
]]

local function who(addr, port)
  local out = t.sh(("ip netns exec %s timeout 3 bash -c 'exec 3<>/dev/tcp/%s/%d && cat <&3' 2>&1"):format(
    NS, addr, port))
  if out:match("refused") then return "refused" end
  return (out:gsub("%s+$", ""))
end

local function main()
  t.run("ip netns add " .. NS .. " && ip -n " .. NS .. " link set lo up")
  -- Whole prefixes local, so any address in them reaches sk_lookup.
  t.run("ip -n " .. NS .. " route add local 10.0.0.0/16 dev lo")
  t.run("ip -n " .. NS .. " -6 route add local fd00::/64 dev lo")
  local f = assert(io.open(SERVER, "w"))
  f:write(PY)
  f:close()
  local names = { "a", "b", "c", "d", "e", "plain" }
  local out = t.run(("ip netns exec %s /usr/bin/python3 %s %s > %s.out 2>&1 & echo $!"):format(
    NS, SERVER, table.concat(names, " "), SERVER))
  server_pid = tonumber(out:match("%d+"))
  local fds
  for _ = 1, 100 do
    fds = t.sh("cat " .. SERVER .. ".out"):match("^[%d ]+\n")
    if fds then break end
    uv.sleep(50)
  end
  t.ok(fds, "server started")
  local fd = {}
  local i = 0
  for n in fds:gmatch("%d+") do
    i = i + 1
    fd[names[i]] = tonumber(n)
  end

  -- Nothing yet: open without create says so.
  local d, err, code = skd.open({ netns = NS, create = false })
  t.eq(code, "ENOENT", "no dispatcher yet: " .. tostring(err))
  t.ok(err:find("no sk_lookup dispatcher in netns '" .. NS .. "'", 1, true), "message: " .. err)
  local _
  _, err, code = skd.open({ netns = "lbt-no-such-ns" })
  t.eq(code, "ENOENT", "missing netns")

  d = assert(skd.open({ netns = NS }))
  t.ok(tostring(d):find("luabpf.sk_dispatch net:[", 1, true), tostring(d))
  local link_id = d:info().link_id

  -- Misuse raises, naming the thing.
  t.raises(function() d:bind("a", { prefix = "10.0.0.1/16" }) end, "prefix '10.0.0.1/16' has host bits set (did you mean 10.0.0.0/16?)")
  t.raises(function() d:bind("a", { prefix = "10.0.0.0/33" }) end, "longer than 32 bits")
  t.raises(function() d:bind("a", { prefix = "example.com" }) end, "'example.com' is not an IPv4 or IPv6 prefix")
  t.raises(function() d:bind("a", { prefix = "10.0.0.0/16", ports = "9000-8000" }) end, "ports '9000-8000' is not a range within 1-65535")
  t.raises(function() d:bind("a", { prefix = "10.0.0.0/16", ports = 0 }) end, "is not a range within 1-65535")
  t.raises(function() d:bind("a", { prefix = "10.0.0.0/16", proto = "sctp" }) end, "proto expects 'tcp' or 'udp', got sctp")
  t.raises(function() d:bind("a", { prefix = "10.0.0.0/16", port = 80 }) end, "unknown option 'port' (valid: fallthrough, ports, prefix, proto)")
  t.raises(function() d:bind("bad label", { prefix = "10.0.0.0/16" }) end, "label must be up to 63 letters")
  t.raises(function() d:register("a", "x") end, "socket expects an fd, a handle with :fileno() or {pid=, fd=}, got string")

  -- a: every port of 10.0.0.0/16; b: 8000-8999 of the /24; c: 8080 of the /24;
  -- d: 8000-8999 of 10.0.0.7/32; e: port 80 of the /16 (a specific port beats a's wildcard).
  assert(d:bind("a", { prefix = "10.0.0.0/16" }))
  assert(d:bind("b", { prefix = "10.0.0.0/24", ports = "8000-8999" }))
  assert(d:bind("c", { prefix = "10.0.0.0/24", ports = 8080 }))
  assert(d:bind("d", { prefix = "10.0.0.7", ports = { 8000, 8999 } }))
  assert(d:bind("e", { prefix = "10.0.0.0/16", ports = 80 }))
  for i, n in ipairs({ "a", "b", "c", "d", "e" }) do
    local s = assert(d:register(n, { pid = server_pid, fd = fd[n] }))
    t.eq(s.description, ("TCP listening on 127.0.0.1:%d"):format(9000 + i), "socket of " .. n)
  end
  -- a's socket is IPv4 only: registering it again now that a has an IPv6 prefix is refused.
  assert(d:bind("a", { prefix = "fd00::/64", ports = "*" }))
  local e1, c1
  _, e1, c1 = d:register("a", { pid = server_pid, fd = fd.a })
  t.eq(c1, "EAFNOSUPPORT", "IPv4 socket for an IPv6 binding")
  t.ok(e1:find("can't take IPv6, and IPv6 prefixes are bound", 1, true), e1)
  local e2, c2
  _, e2, c2 = d:bind("b", { prefix = "10.0.0.0/16", ports = 80 })
  t.eq(c2, "EEXIST", "same binding for another label")
  t.ok(e2:find("tcp 10.0.0.0/16 ports 80 is already bound to label 'e'", 1, true), e2)

  t.eq(who("10.0.1.5", 81), "a", "only the /16 wildcard")
  t.eq(who("10.0.0.5", 81), "a", "the /24 has no binding for port 81")
  t.eq(who("10.0.0.5", 8500), "b", "/24 range beats /16")
  t.eq(who("10.0.0.5", 8080), "c", "a specific port beats the range")
  t.eq(who("10.0.0.7", 8080), "d", "the longest prefix beats a specific port")
  t.eq(who("10.0.0.7", 9000), "a", "/32 covers 8000-8999 only")
  t.eq(who("10.0.1.5", 80), "e", "a specific port beats the wildcard at the same length")
  t.eq(who("fd00::99", 443), "refused", "IPv6 bound to a, which has no IPv6 socket: dropped")

  -- Counters per binding.
  local by = {}
  for _, b in ipairs(d:bindings()) do by[b.label .. " " .. b.prefix .. " " .. b.ports] = b end
  t.same(by["c 10.0.0.0/24 8080"].stats, { lookups = 1, hits = 1, misses = 0, errors = 0 }, "c's counters")
  t.same(by["a 10.0.0.0/16 *"].stats, { lookups = 3, hits = 3, misses = 0, errors = 0 }, "a's IPv4 counters")
  t.same(by["a fd00::/64 *"].stats, { lookups = 1, hits = 0, misses = 1, errors = 0 }, "a's IPv6 counters")

  -- Unbinding hands ports back to the next most specific binding.
  t.eq(d:unbind("c"), 1, "unbind c")
  t.eq(who("10.0.0.5", 8080), "b", "8080 back to b's range")
  t.eq(d:unbind("b", { prefix = "10.0.0.0/24", ports = "8000-8999" }), 1, "unbind b's range")
  t.eq(who("10.0.0.5", 8500), "a", "8500 back to a")
  t.eq(d:unbind("b"), 0, "nothing left of b")
  t.same(d:labels().b, { id = 1, bindings = 0, sockets = 1 }, "label b stays while its socket is registered")
  t.eq(d:unregister("b"), 1, "unregister b")
  t.eq(d:labels().b, nil, "label b forgotten: no bindings, no socket")

  -- Fall-through: no socket registered; the plain server on :7000 answers.
  assert(d:bind("f", { prefix = "10.0.0.0/24", ports = 7000, fallthrough = true }))
  t.eq(who("10.0.0.5", 7000), "plain", "fall-through reaches the namespace's own listener")
  assert(d:bind("f", { prefix = "10.0.0.0/24", ports = 7000 }))
  t.eq(who("10.0.0.5", 7000), "refused", "fail closed: dropped, not the other listener")
  local fb
  for _, b in ipairs(d:bindings()) do if b.label == "f" then fb = b end end
  t.eq(fb.fallthrough, false, "fall-through switched off in place")
  t.same(fb.stats, { lookups = 2, hits = 0, misses = 2, errors = 0 }, "f's misses")

  -- Our own socket lives in another netns: refused, as a not-listening one is.
  local tcp = uv.new_tcp()
  assert(tcp:bind("127.0.0.1", 0))
  local e3, c3
  _, e3, c3 = d:register("own", tcp)
  t.eq(c3, "EINVAL", "not listening: " .. tostring(e3))
  t.ok(e3:find("but not listening", 1, true), e3)
  assert(tcp:listen(8, function() end))
  _, e3, c3 = d:register("own", tcp)
  t.eq(c3, "EXDEV", "another netns: " .. tostring(e3))
  t.ok(e3:find("lives in another network namespace", 1, true), e3)
  tcp:close()
  _, e3, c3 = d:register("own", { pid = uv.os_getpid() })
  t.eq(c3, "EINVAL", "own pid")
  t.ok(e3:find("is this luabpf process", 1, true), e3)

  -- A later open sees the same state; taking over keeps the link.
  local before = d:bindings()
  local socks = d:sockets()
  t.eq(#socks, 4, "four sockets registered")
  t.eq(socks[1].label .. " " .. socks[1].state .. " " .. socks[1].pid, "a ok " .. server_pid, "a's socket")
  d:close()
  t.raises(function() d:bindings() end, "closed sk_dispatch")
  local ro = assert(skd.open({ netns = NS, create = false }))
  t.same(ro:bindings(), before, "create=false: the same bindings")
  ro:close()
  d = assert(skd.open({ netns = NS }))
  t.eq(d:info().link_id, link_id, "the pinned link was taken over, not replaced")
  t.same(d:bindings(), before, "the same bindings after taking over")
  t.eq(who("10.0.0.7", 8080), "d", "still dispatching")

  -- The server goes: every label's socket is gone; a is unregistered explicitly.
  t.eq(d:unregister("a"), 1, "unregister a")
  t.eq(who("10.0.1.5", 81), "refused", "a without a socket drops")
  t.run("kill " .. server_pid)
  server_pid = nil
  -- The kernel frees the sockets once the process has exited: until then, up to 10 s.
  for _ = 1, 200 do
    local live = false
    for _, s in ipairs(d:sockets()) do live = live or s.state ~= "gone" end
    if not live then break end
    uv.sleep(50)
  end
  for _, s in ipairs(d:sockets()) do t.eq(s.state, "gone", "socket of " .. s.label) end

  assert(d:destroy())
  t.eq(t.sh("ls /sys/fs/bpf/luabpf/sk_dispatch/" .. tostring(d.netns_ino) .. " 2>&1"):match("No such file") ~= nil,
    true, "pins removed")
  t.eq(who("10.0.0.5", 8500), "refused", "the namespace's own lookup: nothing listens")
end

local ok, err = xpcall(main, debug.traceback)
if server_pid then t.sh("kill " .. server_pid) end
local d = skd.open({ netns = NS, create = false })
if d then d:destroy() end
t.sh("ip netns del " .. NS)
os.remove(SERVER)
os.remove(SERVER .. ".out")
if not ok then error(err, 0) end
