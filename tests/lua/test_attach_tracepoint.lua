-- SPDX-License-Identifier: MIT
-- Tracepoint attach, explicit and from the SEC() name: the program counts
-- this process's getpid() calls while attached and stops at detach, and
-- `bpftool link show` has no link of ours afterwards. libbpf finds
-- tracepoints in tracefs: when it is not mounted, the error says so, and
-- the test goes on in a private mount namespace with tracefs mounted.
local t = require("t")
local ffi = require("ffi")
ffi.cdef("int getpid(void);")

local function tracefs()
  return io.open("/sys/kernel/tracing/events/syscalls") or io.open("/sys/kernel/debug/tracing/events/syscalls")
end

if not tracefs() then
  t.ok(not os.getenv("LBT_TRACEFS_MOUNTED"), "tracefs still missing after mounting it")
  local obj = assert(bpf.load(t.object("progs")))
  local ok, err = obj:program("tp_getpid"):attach_tracepoint("syscalls", "sys_enter_getpid")
  t.eq(ok, nil, "no tracefs: attach fails")
  t.ok(err:find("HINT: tracefs is not mounted", 1, true), "no tracefs: hint: " .. tostring(err))
  ok, err = obj:program("tp_getpid"):attach()
  t.ok(err:find("HINT: tracefs is not mounted", 1, true), "no tracefs: attach() hint: " .. tostring(err))
  obj:close()
  local rc = os.execute("LBT_TRACEFS_MOUNTED=1 unshare -m sh -c 'mount -t tracefs tracefs /sys/kernel/tracing"
    .. " && exec \"$LUABPF\" run " .. arg[0] .. "'")
  t.eq(rc, 0, "the test in a mount namespace with tracefs")
  return
end

local function getpid_n(n) for _ = 1, n do ffi.C.getpid() end end

local obj = assert(bpf.open(t.object("progs")))
obj:set("target_pid", ffi.C.getpid())
assert(obj:load())
local tp = obj:program("tp_getpid")

-- Explicit category and name.
local link = assert(tp:attach_tracepoint("syscalls", "sys_enter_getpid"))
t.eq(link:description(), "tracepoint syscalls/sys_enter_getpid", "description")
t.eq(link:info().type, "perf_event", "a perf_event link")
t.eq(link:info().prog_name, "tp_getpid", "link prog")
t.eq(t.links_of(tp), link:info().id .. ":" .. tp:info().id, "bpftool lists the link")
getpid_n(25)
t.eq(t.counter(tp, "getpid_calls"), 25, "25 getpid() calls counted")
assert(link:detach())
getpid_n(10)
t.eq(t.counter(tp, "getpid_calls"), 25, "nothing counted after detach")
t.eq(t.links_of(tp), "", "bpftool link show: no link left")

-- From the SEC() name.
link = assert(tp:attach())
t.eq(link:description(), "tracepoint/syscalls/sys_enter_getpid", "attach() description")
getpid_n(5)
t.eq(t.counter(tp, "getpid_calls"), 30, "attach(): 5 more counted")
assert(link:detach())
t.eq(t.links_of(tp), "", "no link left after attach() + detach")

local ok, err, code = tp:attach_tracepoint("syscalls", "sys_enter_no_such_call")
t.eq(code, "ENOENT", "missing tracepoint")
t.ok(err:find("can't attach program 'tp_getpid' to tracepoint syscalls/sys_enter_no_such_call: ENOENT", 1, true)
  and err:find("HINT: no such tracepoint?", 1, true), "missing tracepoint message: " .. err)

-- A perf_event link can't be detached by force: pinned, detach() refuses.
link = assert(tp:attach())
local pin = "/sys/fs/bpf/" .. t.unique("lbttp")
assert(link:pin(pin))
ok, err, code = link:detach()
t.eq(ok, nil, "detach of a pinned perf_event link refused")
t.ok(err:find("link:unpin() first", 1, true), "says to unpin: " .. tostring(err))
assert(link:unpin())
assert(link:detach())
t.eq(t.links_of(tp), "", "gone after unpin + detach")
obj:close()
