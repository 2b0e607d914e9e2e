-- SPDX-License-Identifier: MIT
-- sk_lookup dispatcher CLI (docs/sk_lookup.md): steer many ports and
-- addresses onto one listening socket of a running process, list what is
-- bound, unbind, remove. What it sets up is pinned and stays after it exits.
--
--   luabpf run sk_dispatch.lua --pid PID [--fd FD] --ports 8000-8999 [--addr CIDR[,CIDR]] [--proto tcp|udp]
--   luabpf run sk_dispatch.lua list
--   luabpf run sk_dispatch.lua unbind --label NAME [--ports P] [--addr CIDR] [--proto tcp|udp]
--   luabpf run sk_dispatch.lua remove          (detach and unpin: the namespace's own lookups again)
--   luabpf run sk_dispatch.lua prune           (forget state of namespaces that are gone)
local args = require("luabpf.args")
local skd = require("luabpf.sk_dispatch")

local spec = {
  name = "sk_dispatch.lua",
  summary = "commands: (none) register --pid's socket and bind --ports to it; list; unbind; remove; prune",
  positional = { { "command" } },
  options = {
    { "pid", type = "number", help = "the process whose listening socket takes the connections" },
    { "fd", type = "number", help = "which of its fds (needed when several sockets fit)" },
    { "ports", help = "a port, LO-HI, or '*' for every port" },
    { "addr", help = "destination prefixes, comma-separated: 10.0.0.0/24,fd00::/64 [default: every address the socket's family takes]" },
    { "proto", choices = { "tcp", "udp" }, help = "[default: tcp]" },
    { "label", help = "the name the bindings go by [default: COMM:PORT of the socket]" },
    { "fall-through", type = "flag", help = "when the socket is gone, let the kernel's own lookup go on instead of refusing" },
    { "netns", help = "work on this network namespace (name or path) instead of ours" },
  },
}
local opt = args.parse(arg, spec)
local cmd = opt.command or "register"

local function split(s)
  local out = {}
  for p in (s or ""):gmatch("[^,%s]+") do out[#out + 1] = p end
  return out
end

-- Misuse raises in the library: report it as a usage error.
local function try(fn, ...)
  local ok, a, b, c = pcall(fn, ...)
  if not ok then
    io.stderr:write("ERROR: ", tostring(a):gsub("^[^:]*:%d+: ", ""), "\n")
    os.exit(2)
  end
  return a, b, c
end

local function open(create)
  local d, err, code = skd.open({ netns = opt.netns, create = create })
  if not d then
    if code == "ENOENT" and not create then
      io.stdout:write(err, "\n")
      os.exit(0)
    end
    args.fatal(err)
  end
  return d
end

local function when(t) return t and os.date("%Y-%m-%d %H:%M:%S", t) or "-" end

local function list()
  local d = open(false)
  local info = d:info()
  print(("sk_lookup dispatcher net:[%d], link %d, program %d, pinned at %s"):format(
    info.netns_ino, info.link_id, info.prog_id, info.dir))
  local socks = {}
  for _, s in ipairs(d:sockets()) do
    socks[s.label] = socks[s.label] or {}
    local owner = s.pid and ("pid %d (%s) fd %d"):format(s.pid, s.comm or "?", s.fd) or ("fd " .. s.fd)
    local a = s.addr:find(":", 1, true) and ("[" .. s.addr .. "]") or s.addr
    table.insert(socks[s.label], ("%s %s:%d %s%s"):format(s.proto, a, s.port, owner,
      s.state == "ok" and "" or " GONE"))
  end
  local fmt = "%-20s %-5s %-22s %-12s %-11s %10s %10s %10s %8s  %s"
  print(fmt:format("LABEL", "PROTO", "PREFIX", "PORTS", "FALLTHRU", "LOOKUPS", "HITS", "MISSES", "ERRORS", "SOCKET"))
  local shown = {}
  for _, b in ipairs(d:bindings()) do
    shown[b.label] = true
    print(fmt:format(b.label, b.proto, b.prefix, b.ports, b.fallthrough and "yes" or "no (drop)",
      b.stats.lookups, b.stats.hits, b.stats.misses, b.stats.errors,
      socks[b.label] and table.concat(socks[b.label], ", ") or "none registered"))
  end
  for label, l in pairs(socks) do
    if not shown[label] then
      print(fmt:format(label, "-", "-", "-", "-", "-", "-", "-", "-", table.concat(l, ", ")))
    end
  end
  d:close()
end

local function register()
  if not opt.pid then args.fatal("--pid is required (the process whose socket takes the connections)", "see --help", 2) end
  if not opt.ports then args.fatal("--ports is required (8000-8999, a port, or '*')", "see --help", 2) end
  local proto = opt.proto or "tcp"
  -- Check the command line before touching anything.
  local prefixes = split(opt.addr)
  local fams = {}
  for _, p in ipairs(prefixes) do
    local _, _, v4 = try(skd.parse_prefix, p)
    fams[v4 and "v4" or "v6"] = true
  end
  try(skd.parse_ports, opt.ports)

  -- Find the socket before making anything: a refusal leaves no trace.
  local ino, nerr = skd.netns_ino(opt.netns)
  if not ino then args.fatal(nerr) end
  local sock, err, code = skd.find_socket(opt.pid, { fd = opt.fd, proto = proto, netns = ino,
    v4 = fams.v4, v6 = fams.v6 })
  if not sock then
    local hint
    if code == "ENOTUNIQ" then hint = "add --fd with one of the fds above" end
    if code == "EXDEV" then hint = "run in the target's namespace: luabpf --netns NS run ..." end
    if code == "ENOENT" and proto == "tcp" then hint = "for a UDP server add --proto udp" end
    args.fatal(err, hint)
  end
  require("ffi").C.close(sock.dupfd)
  local d = open(true)
  local label = opt.label or ("%s:%d"):format(sock.comm, sock.port)
  if #prefixes == 0 then
    -- Every address the socket takes: its family, and IPv4 too when dual-stack.
    if sock.family == "inet" or not sock.v6only then prefixes[#prefixes + 1] = "0.0.0.0/0" end
    if sock.family == "inet6" then prefixes[#prefixes + 1] = "::/0" end
  end
  -- The socket first: a binding without one would refuse connections.
  local s, rerr = d:register(label, { pid = opt.pid, fd = sock.fd }, { proto = proto })
  if not s then d:close() args.fatal(rerr) end
  print(("registered pid %d (%s) fd %d: %s for label '%s'"):format(s.pid, s.comm, s.fd, s.description, label))
  for _, p in ipairs(prefixes) do
    local b, berr = try(d.bind, d, label, { proto = proto, prefix = p, ports = opt.ports,
      fallthrough = opt["fall-through"] or false })
    if not b then d:close() args.fatal(berr) end
    print(("bound %s %s ports %s -> '%s' (binding %d%s)"):format(b.proto, b.prefix, b.ports, label, b.id,
      b.fallthrough and ", falls through when the socket is gone" or ""))
  end
  print(("pinned at %s: dispatch stays after this exits; undo with `sk_dispatch.lua unbind --label %s` or `sk_dispatch.lua remove`"):format(
    d.dir, label))
  d:close()
end

local function unbind()
  if not opt.label then args.fatal("unbind needs --label NAME (see `sk_dispatch.lua list`)", nil, 2) end
  local d = open(false)
  local n = 0
  local prefixes = split(opt.addr)
  if #prefixes == 0 and not opt.ports and not opt.proto then
    n = try(d.unbind, d, opt.label)
    local s = d:unregister(opt.label)
    print(("label '%s': %d binding(s) and %d socket(s) removed"):format(opt.label, n, s))
  else
    for _, p in ipairs(#prefixes > 0 and prefixes or { false }) do
      n = n + try(d.unbind, d, opt.label, { prefix = p or nil, ports = opt.ports, proto = opt.proto })
    end
    print(("label '%s': %d binding(s) removed"):format(opt.label, n))
  end
  d:close()
  if n == 0 then os.exit(1) end
end

local function remove()
  local d = open(false)
  local dir = d.dir
  local ok, err = d:destroy()
  if not ok then args.fatal(err) end
  print("removed the sk_lookup dispatcher pinned at " .. dir)
end

local function prune()
  for _, dir in ipairs(skd.prune()) do print("removed " .. dir) end
end

local cmds = { register = register, list = list, unbind = unbind, remove = remove, prune = prune }
if not cmds[cmd] then
  io.stderr:write(("ERROR: sk_dispatch.lua: unknown command '%s' (list, unbind, remove, prune)\n"):format(cmd))
  os.exit(2)
end
cmds[cmd]()
