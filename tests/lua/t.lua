-- SPDX-License-Identifier: MIT
-- A small assertion library for the Lua API tests (run by `luabpf run`).
local t = {}

local function fmt(v)
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v)
end

-- A failed assertion inside a callback is caught and logged by the host's
-- pcall and the loop goes on: stop it with exit code 1 first (the first stop
-- wins), so the test fails wherever the assertion ran.
local function fail(msg, level)
  if bpf and bpf.stop then bpf.stop(1) end
  error(msg, (level or 1) + 2)
end

function t.eq(got, want, what)
  if got ~= want then
    fail(string.format("%s: got %s, want %s", what or "value", fmt(got), fmt(want)))
  end
end

function t.ok(v, what)
  if not v then fail((what or "expected a true value") .. ": got " .. fmt(v)) end
  return v
end

local function deep_eq(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do if not deep_eq(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end
t.deep_eq = deep_eq

function t.dump(v, indent)
  indent = indent or ""
  if type(v) ~= "table" then return fmt(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(x, y) return tostring(x) < tostring(y) end)
  local out = {}
  for _, k in ipairs(keys) do
    out[#out + 1] = indent .. "  " .. tostring(k) .. " = " .. t.dump(v[k], indent .. "  ")
  end
  return "{\n" .. table.concat(out, ",\n") .. "\n" .. indent .. "}"
end

function t.same(got, want, what)
  if not deep_eq(got, want) then
    fail(string.format("%s:\n got  %s\n want %s", what or "value", t.dump(got), t.dump(want)))
  end
end

-- t.raises(fn, pattern): fn must raise an error whose message contains pattern
-- (plain text). Returns the message.
function t.raises(fn, pattern, what)
  local ok, err = pcall(fn)
  if ok then fail((what or "call") .. ": expected an error containing '" .. pattern .. "'") end
  err = tostring(err)
  if not err:find(pattern, 1, true) then
    fail(string.format("%s: error %q does not contain %q", what or "call", err, pattern))
  end
  return err
end

-- Path of a test BPF object built from tests/bpf/NAME.bpf.c.
function t.object(name)
  return assert(os.getenv("LUABPF_TEST_BPF_DIR"), "LUABPF_TEST_BPF_DIR unset") .. "/" .. name .. ".bpf.o"
end

-- Run a shell command; returns its output, whether it exited 0, and the code.
-- (LuaJIT's popen:close() does not report the exit status: the shell does,
-- from a subshell so that `exit N` in cmd is reported too.)
function t.sh(cmd)
  local p = assert(io.popen("( " .. cmd .. "\n) 2>&1; echo \"__rc=$?\""))
  local out = p:read("*a")
  p:close()
  local body, rc = out:match("^(.*)__rc=(%d+)%s*$")
  rc = tonumber(rc)
  return body or out, rc == 0, rc
end

-- Run a shell command that must succeed; returns its output. Raises, at the
-- caller's line, with the command, its exit status and output otherwise.
function t.run(cmd)
  local out, ok, rc = t.sh(cmd)
  if not ok then error(string.format("%s: exit status %s: %s", cmd, tostring(rc), out), 2) end
  return out
end

-- The integer NAME in one of prog's maps (a .bss global), as bpftool dumps
-- it: read through the kernel, not through our own copy.
function t.counter(prog, name)
  for _, id in ipairs(prog:info().map_ids) do
    local n = t.run("bpftool map dump id " .. id):match('"' .. name .. '": (%d+)')
    if n then return tonumber(n) end
  end
  error("no counter " .. name, 2)
end

-- Kernel links (`bpftool link show`) running one of these programs (program
-- userdata or program ids), as "ID:PROG" text, in bpftool's order: other
-- processes' links do not matter to a test.
function t.links_of(...)
  local want, found = {}, {}
  for _, p in ipairs({ ... }) do want[type(p) == "number" and p or p:info().id] = true end
  for id, prog in t.run("bpftool link show"):gmatch("(%d+): [^\n]-prog (%d+)") do
    if want[tonumber(prog)] then found[#found + 1] = id .. ":" .. prog end
  end
  return table.concat(found, " ")
end

-- Namespaces a and b joined by a veth pair, va in a (PREFIX.1/24) and vb in
-- b (PREFIX.2/24), both up. The caller removes them: `ip netns del`.
function t.veth_pair(a, b, prefix)
  t.run("ip netns add " .. a)
  t.run("ip netns add " .. b)
  t.run("ip link add va netns " .. a .. " type veth peer name vb netns " .. b)
  t.run("ip -n " .. a .. " addr add " .. prefix .. ".1/24 dev va && ip -n " .. a .. " link set va up")
  t.run("ip -n " .. b .. " addr add " .. prefix .. ".2/24 dev vb && ip -n " .. b .. " link set vb up")
end

-- A filter's packets per reason (luabpf.filter's f:stats().reasons), and
-- the reasons that moved since such a snapshot: { reason = packets more }.
function t.filter_reasons(f)
  local out = {}
  for k, v in pairs(f:stats().reasons) do out[k] = v.packets end
  return out
end
function t.filter_moved(f, before)
  local out = {}
  for k, v in pairs(t.filter_reasons(f)) do
    if v ~= before[k] then out[k] = v - before[k] end
  end
  return out
end

-- Call done() once cond() holds, or after ms (default 5000; done's assertions
-- then fail with what was seen). Checked every millisecond on the loop. An
-- error in done prints "FAIL: ..." and stops the loop with exit code 1.
function t.wait_for(cond, done, ms)
  local uv = require("luv")
  uv.update_time()
  local deadline = uv.now() + (ms or 5000)
  local timer = uv.new_timer()
  timer:start(1, 1, function()
    if cond() or uv.now() >= deadline then
      timer:close()
      local ok, err = pcall(done)
      if not ok then io.stderr:write("FAIL: ", tostring(err), "\n"); bpf.stop(1) end
    end
  end)
end

-- Namespaces a and b joined as veth_pair does, and ping(): up to three echoes
-- from a to b (a busy machine may lose the first to a slow neighbour
-- resolution), true if any is answered, false when none is (a drop drops
-- all). Raises unless ping works before any program is attached.
function t.ping_pair(a, b, prefix)
  t.veth_pair(a, b, prefix)
  local function ping() return select(2, t.sh("ip netns exec " .. a .. " ping -c3 -i0.2 -W2 " .. prefix .. ".2")) end
  t.ok(ping(), "ping works before any program")
  return ping
end

-- The attach tests' start: ping_pair, then tests/bpf/progs loaded. Returns
-- ping, the object, and its programs named pass and drop.
function t.progs_pair(a, b, prefix, pass, drop)
  local ping = t.ping_pair(a, b, prefix)
  local obj = assert(bpf.load(t.object("progs")))
  return ping, obj, obj:program(pass), obj:program(drop)
end

-- Run main (the test) with a traceback; then, passed or failed, detach every
-- live link and run each cleanup command (their failures ignored); raise
-- main's error last.
function t.main(main, ...)
  local ok, err = xpcall(main, debug.traceback)
  for _, l in ipairs(bpf.links()) do l:detach() end
  for _, cmd in ipairs({ ... }) do t.sh(cmd) end
  if not ok then error(err, 0) end
end

-- A unique name for namespaces, pins and interfaces made by this test.
function t.unique(prefix)
  local uv = require("luv")
  return string.format("%s%d%d", prefix or "lbt", uv.os_getpid() % 100000, math.random(1000, 9999))
end

math.randomseed(os.time() + require("luv").os_getpid())

return t
