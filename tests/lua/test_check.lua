-- SPDX-License-Identifier: MIT
-- luabpf check: good and bad load balancer and filter configs, scripts; the
-- exact "file:line: error: ..." lines and exit codes an operator sees, and
-- luabpf.config's locator on the shapes configs take.
local t = require("t")
local config = require("luabpf.config")
local LUABPF = os.getenv("LUABPF")
local SRC = os.getenv("LUABPF_SOURCE_DIR")
local dir = assert(io.popen("mktemp -d")):read("*l")
bpf.on_shutdown(function() os.execute("rm -rf " .. dir) end)

local function write(name, text)
  local path = dir .. "/" .. name
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end
-- The source line and caret after each message, and warnings about this
-- machine's interfaces, are tests/cli/test_check_caret.sh's: left out here.
local function check(args)
  local out, ok, rc = t.sh(LUABPF .. " check " .. args)
  out = out:gsub("[^\n]*\n", function(l)
    if l:match("^ +%d* | ") or l:match(": warning: interface '") then return "" end
  end)
  return out, ok, rc
end

-- The shipped example and script are valid.
local out, ok = check(SRC .. "/scripts/examples/lb.conf.lua " .. SRC .. "/scripts/examples/lb.lua")
t.ok(ok, "shipped config and script: exit 0")
t.eq(out, SRC .. "/scripts/examples/lb.conf.lua: OK: load balancer 'demo' on eth0: 1 VIP(s), 3 backend(s)\n"
  .. SRC .. "/scripts/examples/lb.lua: OK: script (syntax checked; it runs with the kernel only under luabpf run)\n",
  "shipped files")

-- The conntrack flow table's settings are lb.lua's, not unknown ones.
out, ok = check(write("ct.lua", [[
service = "ct"; interface = "eth1"; flow_table = "conntrack"; ct_sync = true; ct_fastpath = true
vips = { { name = "web", addr = "10.0.0.1", port = 80, backends = { { name = "b1", addr = "10.0.1.1", port = 80 } } } }
]]))
t.ok(ok, "conntrack config with ct_sync: exit 0")
t.eq(out, dir .. "/ct.lua: OK: load balancer 'ct' on eth1: 1 VIP(s), 1 backend(s)\n", "ct_sync is a setting lb.lua passes")

-- A config returning a table, with a dual-stack pool and health checks.
local good = write("good.lua", [[
return {
  service = "edge", interface = "eth1", xdp_mode = "native", max_vips = 4,
  vips = {
    { name = "web6", addr = "fd00::100", port = 443, mode = "dsr",
      check = { type = "tcp", interval = 2 },
      backends = { { addr = "fd00::11" }, { addr = "fd00::12", weight = 3 } } },
    { name = "dns", addr = "10.0.0.53", port = 53, proto = "udp", snat = "10.0.0.1",
      backends = { { name = "d1", addr = "10.0.1.1" } } },
  },
}
]])
out, ok = check("-q " .. good)
t.ok(ok, "good config: exit 0")
t.eq(out, "", "-q prints nothing for a valid file")

-- Errors: each at its line, all of them, sorted; a typo'd setting warns.
local bad = write("bad.lua", [[
service = "demo"
interface = "eth0"
intervall = 5
vips = {
  {
    name = "web", addr = "10.10.100.1", port = 80,
    backends = {
      { name = "b1", addr = "10.10.0.11", port = 8080 },
      { name = "b2", addr = "10.10.0.12",
        port = 70000 },
      { name = "b3", addr = "10.10.0.13", port = 8080, wieght = 2 },
    },
  },
  { name = "dns", addr = "10.10.100.300", port = 53, proto = "udp" },
  { name = "x", addr = "10.10.100.2", port = 80, proto = "sctp" },
  { name = "web", addr = "10.10.100.9", port = 80 },
}
]])
local rc
out, ok, rc = check(bad)
t.eq(rc, 1, "bad config: exit 1")
t.eq(out, table.concat({
  bad .. ":10: error: vip 'web': backend 10.10.0.12: port must be 1-65535, got 70000",
  bad .. ":11: error: vip 'web': backend: unknown option 'wieght' (valid: addr, check, name, port, sorry, weight)",
  bad .. ":14: error: vip 'dns': vip addr: '10.10.100.300' is not an IPv4 or IPv6 address",
  bad .. ":15: error: vip 'x': vip 10.10.100.2: proto must be tcp or udp, got sctp",
  bad .. ":16: error: VIP 'web' is declared twice",
  bad .. ":3: warning: unknown setting 'intervall' (lb.lua ignores it; settings: service, interface, xdp_mode, vips, netns, pin, flows, max_vips, max_backends, ring_size, flow_sample, drop_sample, flow_table, ct_mark, ct_fastpath, ct_sync, metrics, bgp)",
  bad .. ": invalid: 5 errors", "" }, "\n"), "bad config: every error at its line")

-- Lua errors keep Lua's own line; settings the service needs are required.
out, ok, rc = check(write("syntax.lua", "interface = 'eth0'\nvips = {\n  { addr = '1.2.3.4', port = 80 }\n"))
t.eq(rc, 1, "syntax error: exit 1")
t.eq(out:match("^[^\n]*"), dir .. "/syntax.lua:4: error: '}' expected (to close '{' at line 2) near '<eof>'", "syntax error line")
out = check(write("runtime.lua", "interface = 'eth0'\nlocal x = nil\nvips = { x.y }\n"))
t.eq(out:match("^[^\n]*"), dir .. "/runtime.lua:3: error: attempt to index local 'x' (a nil value)", "runtime error line")
out = check("--kind lb " .. write("novips.lua", "interface = 'eth0'\nservice = 'a.b'\n"))
t.eq(out, dir .. "/novips.lua:2: error: service must be a word of letters, digits, '_' and '-' (it names the pin directory), got a.b\n"
  .. dir .. "/novips.lua: error: 'vips' is required (a list)\n" .. dir .. "/novips.lua: invalid: 2 errors\n",
  "service name and missing vips")
-- No kernel: the config can't reach bpf.
out = check(write("kernel.lua", "local o = bpf.load('lb')\ninterface = 'eth0'\nvips = {}\n"))
t.eq(out:match("^[^\n]*"), dir .. "/kernel.lua:1: error: a config can't use bpf: it is data, read without touching the system "
  .. "(only os.getenv, os.time, os.date and os.clock are there); do that in the script", "bpf is out of reach")

-- Filter configs.
out, ok = check(write("filter.lua", "default = 'drop'\nallow = { '10.0.0.0/8', '22/tcp' }\ndeny = { '192.0.2.0/24' }\n"))
t.ok(ok, "filter config valid")
t.eq(out, dir .. "/filter.lua: OK: DDoS filter: 3 rule(s), default drop\n", "filter summary")
out, ok, rc = check(write("filter_bad.lua", "default = 'reject'\nallow = {\n  '10.0.0.0/8',\n  '10.0.0.0/99',\n}\n"))
t.eq(rc, 1, "bad filter config: exit 1")
t.ok(out:find(dir .. "/filter_bad.lua:1: error: default must be pass or drop, got reject", 1, true), "filter: bad default at line 1")
t.ok(out:find(dir .. "/filter_bad.lua:4: error: ", 1, true), "filter: bad prefix at line 4: " .. out)

-- Scripts: syntax only.
out, ok, rc = check(write("script.lua", "local o = bpf.load('x')\nif o then\n"))
t.eq(rc, 1, "script with a syntax error: exit 1")
t.eq(out:match("^[^\n]*"), dir .. "/script.lua:3: error: 'end' expected (to close 'if' at line 2) near '<eof>'", "script syntax error")

-- Usage.
out, ok, rc = check("")
t.eq(rc, 2, "no file: exit 2")
t.ok(out:find("ERROR: check: no FILE given", 1, true), "no file: message")
out, ok, rc = check("--kind yaml x")
t.eq(rc, 2, "bad --kind: exit 2")
out, ok, rc = check(dir .. "/nonexistent.lua")
t.eq(out, dir .. "/nonexistent.lua: error: can't read: No such file or directory\n" .. dir
  .. "/nonexistent.lua: invalid: 1 error\n", "missing file")

-- The module: load() returns the config or "file:line: message".
local cfg, err = config.load(good, "lb")
t.eq(cfg and cfg.service, "edge", "config.load returns the table")
cfg, err = config.load(bad, "lb")
t.eq(cfg, nil, "config.load refuses")
t.eq(err, bad .. ":10: vip 'web': backend 10.10.0.12: port must be 1-65535, got 70000", "config.load's first error")
-- The locator on nested and bracketed keys, comments and long strings.
local loc = config.locator([=[
--[[ a long
comment ]] x = [[two
lines]]
vips = { -- the list
  [1] = { name = "a",
          backends = { {
            port = 1 } } },
}
]=])
t.eq(loc:find({ "x" }), 2, "after a long comment")
t.eq(loc:find({ "vips", 1, "backends", 1, "port" }), 7, "nested path")
t.eq(loc:find({ "vips", 1 }, "vip: name wrong 'a'"), 5, "field by its quoted value")
t.eq(loc:find({ "vips", 9 }), 4, "missing item: its list's line")
bpf.log("info", "test_check: all checks passed")
