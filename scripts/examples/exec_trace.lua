-- SPDX-License-Identifier: MIT
-- Process exec events, as execsnoop shows them: from the sched_process_exec
-- tracepoint through a ring buffer into a Lua handler that prints each one
-- (time, pid, parent, uid, command, arguments) and counts them per command,
-- also as Prometheus metrics.
--
--   luabpf run scripts/examples/exec_trace.lua [--comm NAME] [--uid N]
--       [--listen 127.0.0.1:9435] [--count N]
local ffi = require("ffi")
local uv = require("luv")
local args = require("luabpf.args")
local metrics = require("luabpf.metrics")

local opt = args.parse(arg, {
  name = "exec_trace.lua",
  summary = "Print every exec (pid, parent, uid, command and arguments) and count them per command.",
  options = {
    { "comm", help = "only commands with this name (a Lua pattern)" },
    { "uid", type = "number", help = "only processes of this uid (filtered in the kernel)" },
    { "listen", default = "off", metavar = "ADDR:PORT", help = "serve metrics there (port 0: any free port)" },
    { "count", type = "number", help = "stop after this many events were printed" },
    { "quiet", type = "flag", help = "count, print only the totals at exit" },
  },
})

local obj = assert(bpf.open("exec_trace"))
if opt.uid then
  obj:set("filter_uid", true)
  obj:set("target_uid", opt.uid)
end
local ok, err = obj:load()
if not ok then args.fatal("couldn't load exec_trace: " .. tostring(err)) end

local link, aerr = obj:program("exec_trace"):attach()
if not link then
  args.fatal("couldn't attach to tracepoint sched/sched_process_exec: " .. tostring(aerr),
    aerr and aerr:find("tracefs", 1, true) and "mount -t tracefs tracefs /sys/kernel/tracing" or nil)
end

local reg = metrics.registry()
local execs = reg:counter { name = "luabpf_exec_events_total", help = "Execs seen, by command", labels = { "comm" } }
local shown, seen, boot_offset = 0, 0, nil

-- bpf_ktime_get_ns() is CLOCK_MONOTONIC: turn it into wall-clock time.
local function wall(ns)
  if not boot_offset then
    local tv = uv.gettimeofday and { uv.gettimeofday() } or { os.time(), 0 }
    boot_offset = tv[1] + tv[2] / 1e6 - uv.hrtime() / 1e9
  end
  return boot_offset + tonumber(ns) / 1e9
end

local function argv(ev)
  local raw = ffi.string(ev.args, ev.args_len)
  local out = {}
  for a in (raw:gsub("%z$", "") .. "\0"):gmatch("([^%z]*)%z") do out[#out + 1] = a end
  if ev.args_truncated ~= 0 then out[#out + 1] = "..." end
  return out
end

local rb = bpf.ringbuf(obj:map("events"), function(ev)
  seen = seen + 1
  local comm = ffi.string(ev.comm)
  if opt.comm and not comm:match(opt.comm) then return end
  execs:inc({ comm })
  if opt.quiet then return end
  local t = wall(ev.time_ns)
  io.stdout:write(("%s.%03d pid=%d ppid=%d uid=%d comm=%s file=%s args=%s\n"):format(
    os.date("%H:%M:%S", math.floor(t)), math.floor(t % 1 * 1000), ev.pid, ev.ppid, ev.uid, comm,
    ffi.string(ev.filename), table.concat(argv(ev), " ")))
  io.stdout:flush()
  shown = shown + 1
  if opt.count and shown >= opt.count then bpf.stop(0) end
end, { decode = "cdata:struct exec_event", lost_map = obj:map("events_lost") })

reg:gauge { name = "luabpf_exec_events_lost", help = "Exec events the ring buffer had no room for",
  collect = function(emit) emit(rb:lost() or 0) end }
reg:programs(obj)

if opt.listen ~= "off" then
  local addr, port = opt.listen:match("^%[?([^%]]*)%]?:(%d+)$")
  if not addr then args.fatal(("--listen expects ADDR:PORT, got '%s'"):format(opt.listen)) end
  local srv, serr = metrics.serve(reg, { address = addr, port = tonumber(port) })
  if not srv then args.fatal(serr, "pick another port with --listen, or 0 for any free one") end
  print(("metrics on %s"):format(srv.url))
end
print("tracing execs (Ctrl-C to stop)")
io.stdout:flush()

bpf.on_shutdown(function()
  local lost = rb:lost() or 0
  rb:close()
  link:detach()
  local rows = execs:samples()
  table.sort(rows, function(a, b) return a.value > b.value end)
  local out = { ("totals: %d execs, %d lost"):format(seen, lost) }
  for i = 1, math.min(#rows, 20) do out[#out + 1] = ("  %8d %s"):format(rows[i].value, rows[i].labels[1]) end
  io.stdout:write(table.concat(out, "\n"), "\n")
end)
