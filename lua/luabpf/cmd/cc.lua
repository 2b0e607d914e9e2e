-- SPDX-License-Identifier: MIT
-- luabpf cc FILE.bpf.c [-o FILE.bpf.o]: compile a BPF program of your own the
-- way luabpf's own objects are built (libbpf-bootstrap's flags), against the
-- running kernel's vmlinux.h (made by bpftool from /sys/kernel/btf/vmlinux,
-- cached by the BTF's hash) and luabpf's headers (luabpf.h: ipv4_t, ...).
-- clang's messages reach the terminal as clang prints them.
local uv = require("luv")

local USAGE = [[
usage: luabpf cc FILE.bpf.c [-o OUT.bpf.o] [-v] [-- CLANG_ARGS...]
       luabpf cc --cflags
       luabpf cc --vmlinux

Compiles FILE.bpf.c into an object `bpf.load()` takes:
  clang -g -O2 -Wall -target bpf -D__TARGET_ARCH_<arch>
        -I<cache>/vmlinux/<btf hash> -I<luabpf headers> -I<FILE's dir>
with vmlinux.h generated from this machine's /sys/kernel/btf/vmlinux by
bpftool once per kernel and cached (LUABPF_CACHE_DIR, else $XDG_CACHE_HOME/luabpf,
else /var/cache/luabpf for root, ~/.cache/luabpf for others).
OUT defaults to FILE.bpf.o beside FILE.bpf.c. Arguments after -- go to clang.
  --cflags   print the flags (for a Makefile), after making vmlinux.h
  --vmlinux  print the path of the cached vmlinux.h, after making it
  -v         print the clang command line before running it
Exit codes: 0 compiled, 1 clang reported errors (printed as clang prints
them), 2 bad command line, 3 can't compile on this machine (no clang or
bpftool, no kernel BTF, cache not writable).
]]

local BTF = os.getenv("LUABPF_VMLINUX_BTF") or "/sys/kernel/btf/vmlinux"

local function die(code, msg, hint)
  io.stderr:write("ERROR: cc: ", msg, "\n")
  if hint then io.stderr:write("HINT: ", hint, "\n") end
  os.exit(code)
end

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function exists(p) return uv.fs_stat(p) ~= nil end

-- os.execute's status: LuaJIT without 5.2 compat returns the raw wait status.
local function run(cmd)
  local a, _, c = os.execute(cmd)
  if type(a) == "number" then return a == 0, a >= 256 and math.floor(a / 256) or a end
  return a == true or a == 0, c or 1
end

-- A program on PATH, or in the sbin directories a non-root PATH may lack.
local function which(name)
  local path = (os.getenv("PATH") or "/usr/bin:/bin") .. ":/usr/sbin:/sbin:/usr/local/sbin"
  for dir in path:gmatch("[^:]+") do
    local p = dir .. "/" .. name
    local st = uv.fs_stat(p)
    if st and st.type == "file" and uv.fs_access(p, "X") then return p end
  end
end

local function first_line(cmd)
  local f = io.popen(cmd .. " 2>/dev/null")
  local s = f and f:read("*l")
  if f then f:close() end
  return s
end

local function cache_dir()
  local d = os.getenv("LUABPF_CACHE_DIR")
  if d and d ~= "" then return d end
  d = os.getenv("XDG_CACHE_HOME")
  if d and d ~= "" then return d .. "/luabpf" end
  local uid = first_line("id -u")
  if uid == "0" then return "/var/cache/luabpf" end
  return (os.getenv("HOME") or "/tmp") .. "/.cache/luabpf"
end

local function mkdir_p(path)
  local cur = path:sub(1, 1) == "/" and "" or "."
  for part in path:gmatch("[^/]+") do
    cur = cur .. "/" .. part
    uv.fs_mkdir(cur, 493) -- 0755; EEXIST is fine
  end
  local st = uv.fs_stat(path)
  return st and st.type == "directory"
end

--- The directory holding vmlinux.h for the running kernel, made if missing.
local function vmlinux_dir()
  if not exists(BTF) then
    die(3, ("no kernel BTF at %s: vmlinux.h can't be made"):format(BTF),
      "luabpf needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (Debian's is)")
  end
  local sum = first_line("sha256sum " .. q(BTF))
  local hash = sum and sum:match("^(%x+)")
  if not hash then die(3, ("can't hash %s (sha256sum)"):format(BTF)) end
  local dir = ("%s/vmlinux/%s"):format(cache_dir(), hash:sub(1, 16))
  local h = dir .. "/vmlinux.h"
  if exists(h) then return dir end
  local bpftool = which("bpftool")
  if not bpftool then
    die(3, "bpftool not found: it makes vmlinux.h from the kernel's BTF", "apt-get install bpftool")
  end
  if not mkdir_p(dir) then
    die(3, ("can't make the cache directory %s"):format(dir),
      "set LUABPF_CACHE_DIR to a writable directory")
  end
  local tmp = ("%s.%d.tmp"):format(h, uv.os_getpid())
  local ok = run(("%s btf dump file %s format c > %s"):format(q(bpftool), q(BTF), q(tmp)))
  if not ok or not os.rename(tmp, h) then
    os.remove(tmp)
    die(3, ("bpftool could not write %s"):format(h), "set LUABPF_CACHE_DIR to a writable directory")
  end
  return dir
end

--- luabpf's BPF headers: the source tree's bpf/include beside the Lua library
-- in a build tree, PREFIX/include/luabpf when installed.
local function include_dir()
  local env = os.getenv("LUABPF_INCLUDE_DIR")
  if env and env ~= "" then return env end
  local me = package.searchpath("luabpf.cmd.cc", package.path)
  local lua_dir = me and me:match("^(.*)/luabpf/cmd/cc%.lua$")
  if lua_dir and exists(lua_dir .. "/../bpf/include/luabpf.h") then
    return uv.fs_realpath(lua_dir .. "/../bpf/include")
  end
  local exe = uv.fs_readlink("/proc/self/exe")
  local bindir = exe and exe:match("^(.*)/[^/]+$")
  if bindir and exists(bindir .. "/../include/luabpf/luabpf.h") then
    return uv.fs_realpath(bindir .. "/../include/luabpf")
  end
  die(3, "luabpf's BPF headers (luabpf.h) are not installed next to this luabpf",
    "reinstall the luabpf package, or set LUABPF_INCLUDE_DIR to a directory holding luabpf.h")
end

local ARCH = { x64 = "x86", x86 = "x86", arm64 = "arm64", arm = "arm", ppc = "powerpc",
  mips = "mips", mips64 = "mips", s390x = "s390" }

local function cflags()
  local arch = ARCH[jit.arch] or jit.arch
  return { "-g", "-O2", "-Wall", "-target", "bpf", "-D__TARGET_ARCH_" .. arch,
    "-I" .. vmlinux_dir(), "-I" .. include_dir() }
end

return function(...)
  local argv = { ... }
  local src, out, verbose, extra, mode = nil, nil, false, {}, nil
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--" then
      for j = i + 1, #argv do extra[#extra + 1] = argv[j] end
      break
    elseif a == "-h" or a == "--help" then io.stdout:write(USAGE) os.exit(0)
    elseif a == "-o" then
      i = i + 1
      out = argv[i] or die(2, "-o needs a file name (OUT.bpf.o)")
    elseif a:match("^%-o.") then out = a:sub(3)
    elseif a == "-v" then verbose = true
    elseif a == "--cflags" or a == "--vmlinux" then mode = a
    elseif a:sub(1, 1) == "-" then
      io.stderr:write(("ERROR: cc: unknown option '%s' (clang's options go after --)\n"):format(a), USAGE)
      os.exit(2)
    elseif src then
      io.stderr:write(("ERROR: cc: one source file at a time ('%s' and '%s')\n"):format(src, a), USAGE)
      os.exit(2)
    else src = a
    end
    i = i + 1
  end

  if mode == "--vmlinux" then print(vmlinux_dir() .. "/vmlinux.h") return end
  if mode == "--cflags" then print(table.concat(cflags(), " ")) return end
  if not src then io.stderr:write("ERROR: cc: which FILE.bpf.c?\n", USAGE) os.exit(2) end
  local st = uv.fs_stat(src)
  if not st or st.type ~= "file" then
    die(2, ("can't read '%s': %s"):format(src, st and "not a file" or "no such file"))
  end
  if not src:match("%.c$") then
    die(2, ("'%s' is not a C file (FILE.bpf.c)"):format(src))
  end
  out = out or (src:gsub("%.c$", ".o"))
  local clang = os.getenv("LUABPF_CLANG") or which("clang")
  if not clang then die(3, "clang not found: it compiles BPF programs", "apt-get install clang") end

  local flags = cflags()
  local srcdir = src:match("^(.*)/[^/]*$") or "."
  local cmd = { q(clang) }
  for _, f in ipairs(flags) do cmd[#cmd + 1] = q(f) end
  cmd[#cmd + 1] = q("-I" .. srcdir)
  for _, f in ipairs(extra) do cmd[#cmd + 1] = q(f) end
  for _, f in ipairs({ "-c", src, "-o", out }) do cmd[#cmd + 1] = q(f) end
  local line = table.concat(cmd, " ")
  if verbose then io.stderr:write(line, "\n") end
  io.stdout:flush()
  local ok = run(line)
  if not ok then
    if not exists("/usr/include/bpf/bpf_helpers.h") then
      io.stderr:write("HINT: <bpf/bpf_helpers.h> and the other libbpf headers come with libbpf-dev\n")
    end
    io.stderr:write(("ERROR: cc: clang could not compile '%s' (its messages are above)\n"):format(src))
    os.exit(1)
  end
end
