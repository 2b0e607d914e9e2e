-- SPDX-License-Identifier: MIT
-- uv.spawn for children that must not outlive luabpf: the balancer's
-- `ip monitor` watches (lb/_neigh.lua, lb/_life.lua) and health's exec checks
-- (_probe.lua). Private to lua/luabpf/.
local uv = require("luv")

local M = {}

-- The shell step between setpriv and cmd: its parent must still be luabpf
-- ($1), else luabpf died before the death signal was set and cmd would run
-- on; exit 125 then (nobody reads it).
local CHECK = '[ "$PPID" = "$1" ] || exit 125; shift; exec "$@"'

--- uv.spawn(cmd, opts with args, on_exit), the child tied to this process:
-- it gets SIGKILL when luabpf dies, however it dies (SIGKILL, the watchdog's
-- exit, a crash), instead of running on (an `ip monitor` until it next writes
-- to the closed pipe, in a quiet namespace for good). setpriv sets the
-- parent-death signal and execs sh, which checks that its parent is still
-- this process (no window in which luabpf died before the signal was set)
-- and execs cmd, in the same process: its pid is the child's. Execs keep the
-- signal (unless set-uid). It is sent when the thread that spawned the child
-- ends: spawn from the loop's thread, the main one. Only the child gets it,
-- not processes it starts. Without setpriv (util-linux), cmd is spawned as
-- before. Returns uv.spawn's results and whether the child is tied (a tied
-- cmd that can't be run exits 127: see M.findable).
function M.tied(cmd, opts, on_exit)
  local a = { "--pdeathsig", "KILL", "--", "/bin/sh", "-c", CHECK, "sh", tostring(uv.os_getpid()), cmd }
  for _, x in ipairs(opts.args or {}) do a[#a + 1] = x end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.args = a
  local proc, pid = uv.spawn("setpriv", o, on_exit)
  if proc then return proc, pid, true end
  proc, pid = uv.spawn(cmd, opts, on_exit)
  return proc, pid, false
end

--- Whether cmd can be run as execvp would find it (in path, a PATH value;
-- default this process's): nil, "ENOENT: ..." (or "EACCES: ...") if not,
-- as uv.spawn would say.
function M.findable(cmd, path)
  if cmd:find("/", 1, true) then
    if uv.fs_access(cmd, "X") then return true end
    if uv.fs_stat(cmd) then return nil, "EACCES: permission denied" end
  else
    for dir in (path or os.getenv("PATH") or "/usr/local/bin:/usr/bin:/bin"):gmatch("[^:]+") do
      if uv.fs_access(dir .. "/" .. cmd, "X") then return true end
    end
  end
  return nil, "ENOENT: no such file or directory"
end

return M
