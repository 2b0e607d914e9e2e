-- SPDX-License-Identifier: MIT
-- The balancer's lifecycle around its pin directory (issue 17 faults 3, 4,
-- 6; issue 19): one process per service (flock on the directory, as
-- tubular does), a stale temporary directory of a process that is gone
-- removed, a pinned link checked before it is taken over (same interface,
-- same program; a link severed by its interface going away is replaced),
-- the interface watched while the service runs, and which settings a
-- reload can't change. Private to lua/luabpf/lb/ (init.lua, lb.lua).
local ffi = require("ffi")
local uv = require("luv")

local M = {}

local util = require("luabpf._util")
local C = util.cdef({ "open", "flock", "close", "strerror" })
local O_RDONLY, O_DIRECTORY, O_CLOEXEC = 0, 0x10000, 0x80000
local LOCK_EX, LOCK_NB = 2, 4
local EWOULDBLOCK = 11

local read_file = util.read_file

-- The command line of pid, as ps shows it ("luabpf --netns x run lb.lua web.conf.lua").
local function cmdline(pid)
  local s = read_file("/proc/" .. pid .. "/cmdline")
  if not s or s == "" then return nil end
  return (s:gsub("%z$", ""):gsub("%z", " "))
end

local function alive(pid)
  return uv.fs_stat("/proc/" .. pid) ~= nil
end

--- Who holds the flock on dir: pid, command line (nil when no one does or
-- /proc/locks doesn't say). /proc/locks names a lock by its inode.
function M.holder(dir)
  local st = uv.fs_stat(dir)
  local locks = st and read_file("/proc/locks")
  if not locks then return nil end
  for line in locks:gmatch("[^\n]+") do
    local pid, ino = line:match("FLOCK%s+%S+%s+WRITE%s+(%d+)%s+%x+:%x+:(%d+)")
    if pid and tonumber(ino) == st.ino then return tonumber(pid), cmdline(pid) end
  end
  return nil
end

--- Take dir's lock for the life of this process: the fd (kept open, closed
-- by M.unlock or at exit), or nil, message, held (true: another process
-- holds it; false: dir can't be opened, e.g. no bpffs there).
function M.lock(dir, name)
  local fd = C.open(dir, bit.bor(O_RDONLY, O_DIRECTORY, O_CLOEXEC))
  if fd < 0 then
    local e = ffi.errno()
    return nil, ("service '%s': can't open %s to lock it: %s"):format(name, dir, ffi.string(C.strerror(e))), false
  end
  if C.flock(fd, bit.bor(LOCK_EX, LOCK_NB)) == 0 then return fd end
  local e = ffi.errno()
  C.close(fd)
  if e ~= EWOULDBLOCK then
    return nil, ("service '%s': can't lock %s: %s"):format(name, dir, ffi.string(C.strerror(e))), false
  end
  local pid, cmd = M.holder(dir)
  return nil, ("service '%s' is run by pid %s (%s): one process per service, this one changes nothing")
    :format(name, pid and tostring(pid) or "?", cmd or "another process holds " .. dir), true
end

function M.unlock(fd)
  if fd then C.close(fd) end
end

local function rm_dir(dir)
  local p = io.popen("ls -A " .. dir .. " 2>/dev/null")
  for f in p:lines() do os.remove(dir .. "/" .. f) end
  p:close()
  return os.remove(dir)
end

--- Remove the temporary pin directories (tmp-PID-NAME, pin = false) that
-- a process that is gone left under root (a watchdog exit, SIGKILL): one
-- nobody holds the lock of and whose pid is dead. Each is logged.
function M.clean_stale(root)
  local p = io.popen("ls -A " .. root .. " 2>/dev/null")
  local dirs = {}
  for f in p:lines() do
    local pid = f:match("^tmp%-(%d+)%-")
    if pid and tonumber(pid) ~= uv.os_getpid() then dirs[#dirs + 1] = { f, pid } end
  end
  p:close()
  for _, d in ipairs(dirs) do
    local dir, pid = root .. "/" .. d[1], d[2]
    local fd = not alive(pid) and M.lock(dir, d[1])
    if fd then
      local n = 0
      local l = io.popen("ls -A " .. dir .. " 2>/dev/null")
      for _ in l:lines() do n = n + 1 end
      l:close()
      local ok = rm_dir(dir)
      M.unlock(fd)
      bpf.log(ok and "info" or "warn", ("%s %s: the temporary state (%d pinned object%s) of pid %s, which is gone "
        .. "(a watchdog exit or SIGKILL)"):format(ok and "removed" or "could not remove", dir, n,
        n == 1 and "" or "s", pid))
    end
  end
end

-- The argv that runs `ip ARGS...` in the service's namespace: the process's
-- own (luabpf --netns), a named one (ip -n) or a path (nsenter).
local function ip_argv(netns, args)
  local a = {}
  if netns and netns:find("/", 1, true) then
    a[1] = "--net=" .. netns
    a[2] = "ip"
  elseif netns then
    a[1], a[2] = "-n", netns
  end
  for _, x in ipairs(args) do a[#a + 1] = x end
  return (netns and netns:find("/", 1, true)) and "nsenter" or "ip", a
end

local function shq(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

--- The interface's index in the service's namespace, or nil.
function M.ifindex(netns, ifname)
  local cmd, a = ip_argv(netns, { "-o", "link", "show", "dev", ifname })
  local parts = { cmd }
  for _, x in ipairs(a) do parts[#parts + 1] = shq(x) end
  local p = io.popen(table.concat(parts, " ") .. " 2>/dev/null")
  local out = p:read("*a")
  p:close()
  return tonumber(out:match("^(%d+):"))
end

--- The pinned link at path, checked before it is taken over: the link, or
-- false when there is none to take (none pinned, or one severed by its
-- interface going away: then it is unpinned and logged), or nil and why
-- it is refused (another interface, another program).
function M.adopt(svc, path, prog_name, what)
  if not uv.fs_stat(path) then return false end
  local link, err = bpf.link_from_pin(path)
  if not link then return nil, ("service '%s': can't open the pinned %s link %s: %s"):format(svc.name, what, path, err) end
  local info = link:info() or {}
  if info.ifindex == 0 then
    -- The interface it was on went away (deleted, or recreated with a new
    -- index): the kernel keeps the link, detached; update() would fail
    -- with ENOLINK. A new one is attached instead.
    link:close()
    os.remove(path)
    bpf.log("warn", ("service '%s': the pinned %s link %s was severed (its interface went away): attaching "
      .. "a new one to %s"):format(svc.name, what, path, tostring(svc.interface)))
    return false
  end
  local want = M.ifindex(svc.netns, svc.interface)
  -- info.ifname is this process's namespace's name for the index: right
  -- under luabpf --netns, not for a service given netns = ...
  local on = not svc.netns and info.ifname or ("ifindex " .. tostring(info.ifindex))
  if info.ifindex and want ~= info.ifindex then
    link:close()
    return nil, ("service '%s': the pinned %s link %s is on %s (ifindex %s), this configuration says %s (%s): "
      .. "refusing to take it over"):format(svc.name, what, path, on, tostring(info.ifindex),
        tostring(svc.interface), want and ("ifindex " .. want) or "no such interface"),
      ("stop the service on %s first ('luabpf lb stop %s', or start with --destroy on %s), or set interface = \"%s\"")
        :format(on, svc.name, on, on)
  end
  if info.prog_name and info.prog_name ~= prog_name then
    link:close()
    return nil, ("service '%s': the pinned %s link %s runs program '%s', this data plane's is '%s' "
      .. "(another flow_table?): refusing to take it over"):format(svc.name, what, path, info.prog_name, prog_name),
      ("stop it first ('luabpf lb stop %s'), or start with the flow_table it was made with"):format(svc.name)
  end
  return link
end

--- Ask the kernel to resolve each recovered backend's next hop now (one
-- ping each, as a new backend gets): after the interface was recreated its
-- neighbour table is empty, and the data plane drops (drop_no_neigh) what it
-- can't address.
function M.prime(svc)
  local seen = {}
  for _, b in pairs(svc.backend_by_id) do
    if not seen[b.addr] then
      seen[b.addr] = true
      local h = uv.spawn("ping", { args = { b.addr:find(":", 1, true) and "-6" or "-4", "-c", "1", "-W", "1", b.addr },
        stdio = { nil, nil, nil } }, function() end)
      if h then h:close() end
    end
  end
end

--- Watch the service's interface (`ip -o monitor link`): log when it goes
-- away (XDP goes with it) and when it comes back without the program.
-- Returns the watch (:close()); without `ip`, nothing is watched.
function M.watch_link(svc)
  local w = { closed = false }
  local cmd, a = ip_argv(svc.netns, { "-o", "monitor", "link" })
  local out = uv.new_pipe(false)
  local buf = ""
  -- Tied to luabpf: the monitor ends with it, even on SIGKILL (luabpf/_spawn.lua).
  local proc = require("luabpf._spawn").tied(cmd, { args = a, stdio = { nil, out, nil } }, function()
    if w.proc then w.proc:close() end
    w.proc = nil
  end)
  if not proc then
    out:close()
    return w
  end
  uv.unref(proc)
  uv.unref(out)
  w.proc, w.out = proc, out
  local iface, gone = svc.interface, false
  out:read_start(function(err, data)
    if err or not data then
      if not out:is_closing() then out:close() end
      return
    end
    buf = buf .. data
    for line in buf:gmatch("([^\n]*)\n") do
      local deleted = line:sub(1, 8) == "Deleted "
      local idx, name = (deleted and line:sub(9) or line):match("^(%d+): ([^:@%s]+)")
      if name == iface then
        if deleted and not gone then
          gone = true
          bpf.log("error", ("service '%s': interface %s (ifindex %s) went away, and XDP with it: VIP traffic "
            .. "is not balanced until the service is restarted"):format(svc.name, iface, idx))
        elseif not deleted and gone then
          gone = false
          bpf.log("warn", ("service '%s': interface %s is back (ifindex %s) without the balancer: restart the "
            .. "service to attach it"):format(svc.name, iface, idx))
        end
      end
    end
    buf = buf:match("([^\n]*)$")
  end)
  function w.close() util.close_proc(w) end
  return w
end

-- Settings of a running service a reload can't change (they size the maps
-- or say where the program runs), with lb.new's defaults.
M.FIXED = {
  { "service", "lb" }, { "interface" }, { "netns" }, { "xdp_mode", "auto" }, { "pin", true },
  { "ring_size", 65537 }, { "max_vips", 16 }, { "max_backends", 1024 }, { "flows", 65536 },
  { "flow_table", "lru" }, { "ct_mark" }, { "ct_fastpath", false },
}

--- What a reload from old to new would change that it can't: a message
-- naming each ("'interface' changed (eth0 -> eth1)"), or nil.
function M.fixed_changes(old, new)
  local diffs = {}
  for _, s in ipairs(M.FIXED) do
    local k, def = s[1], s[2]
    local a, b = old[k], new[k]
    if a == nil then a = def end
    if b == nil then b = def end
    if a ~= b then
      diffs[#diffs + 1] = ("'%s' changed (%s -> %s)"):format(k, tostring(a), tostring(b))
    end
  end
  if #diffs == 0 then return nil end
  return ("%s: restart the service to change %s"):format(table.concat(diffs, ", "), #diffs == 1 and "it" or "them")
end

--- Remove a stopped service's pinned state (`luabpf lb stop NAME` when no
-- process runs it): detach its pinned links, remove DIR. A summary, or nil,
-- message, hint (a process still runs it: the lock says which).
function M.destroy(name, root)
  local dir = (root or "/sys/fs/bpf/luabpf/lb") .. "/" .. name
  if not uv.fs_stat(dir) then return nil end
  local fd, err = M.lock(dir, name)
  if not fd then
    return nil, err .. " without a control socket", "stop that process (SIGTERM), then run this again"
  end
  local detached = {}
  for _, f in ipairs({ "link", "link_xdp" }) do
    local path = dir .. "/" .. f
    local link = uv.fs_stat(path) and bpf.link_from_pin(path)
    if link then
      local info = link:info() or {}
      -- The index only: its name is the service's namespace's, not ours.
      local on = info.ifindex == 0 and "severed" or ("ifindex " .. tostring(info.ifindex))
      link:detach()
      detached[#detached + 1] = ("%s (%s)"):format(info.prog_name or f, on)
      if info.prog_name == "tc_lb" then
        detached[#detached] = detached[#detached] .. ("; the conntrack table's nftables table stays: "
          .. "nft delete table inet luabpf_lb_%s"):format((name:gsub("-", "_")))
      end
    end
    os.remove(path)
  end
  local ok, rerr = rm_dir(dir)
  M.unlock(fd)
  if not ok then return nil, ("can't remove %s: %s"):format(dir, tostring(rerr)), "rm -r " .. dir end
  os.remove(dir:match("^(.*)/[^/]+$")) -- the parent too when nothing else lives there
  return ("service '%s' was not running: detached %s, %s removed"):format(name,
    #detached > 0 and table.concat(detached, ", ") or "nothing", dir)
end

--- What a stop without --destroy leaves, in one line for the log.
function M.stop_line(svc)
  local what = svc.flow_table == "conntrack" and "tc program" or "XDP"
  local info = svc.link and svc.link:info()
  if info and info.ifindex == 0 then
    return ("service '%s': its %s link is severed (%s went away), state in %s; the next start attaches "
      .. "anew, 'luabpf lb stop %s' removes it"):format(svc.name, what, tostring(svc.interface), svc.dir, svc.name)
  end
  return ("service '%s': %s left attached on %s, state in %s; 'luabpf lb stop %s' removes it")
    :format(svc.name, what, tostring(svc.interface), svc.dir, svc.name)
end

return M
