-- SPDX-License-Identifier: MIT
-- Small helpers the stdlib modules share, so that an option table is checked,
-- and an unknown option reported, the same way everywhere (and a pin
-- directory made the same way).
local M = {}

--- The keys of a table, sorted by cmp (default <: all strings or all numbers).
function M.sorted_keys(t, cmp)
  local n = {}
  for k in pairs(t) do n[#n + 1] = k end
  table.sort(n, cmp)
  return n
end

--- The keys of a set, sorted and joined with ", " (for "valid: ..." lists).
function M.names(set)
  return table.concat(M.sorted_keys(set), ", ")
end

--- Raises "<what>: unknown option 'k' (valid: a, b)" for a key of t that is
-- not in the set known. level is error()'s, counted from check_keys's caller:
-- 1 (the default) blames that caller, 2 its caller.
function M.check_keys(what, t, known, level)
  for k in pairs(t) do
    if not known[k] then
      error(("%s: unknown option '%s' (valid: %s)"):format(what, tostring(k), M.names(known)),
        (level or 1) + 1)
    end
  end
end

--- check_keys, after raising "<what>: expects a table of options, got T" when
-- t is not a table. level as for check_keys.
function M.check_opts(what, t, known, level)
  level = (level or 1) + 1
  if type(t) ~= "table" then
    error(("%s: expects a table of options, got %s"):format(what, type(t)), level)
  end
  M.check_keys(what, t, known, level)
end

--- mkdir -p with mode 0700 for each directory it makes (bpffs pin
-- directories); a directory that exists already is fine.
function M.mkdir_p(path)
  local uv = require("luv")
  local cur = ""
  for part in path:gmatch("[^/]+") do
    cur = cur .. "/" .. part
    uv.fs_mkdir(cur, 448) -- 0700; EEXIST is fine
  end
end

--- A whole file's contents, or nil when it can't be opened (/proc files
--- of a process that is gone, a BTF blob).
function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

--- A set from a list: set_of { "a", "b" } is { a = true, b = true }.
function M.set_of(list)
  local s = {}
  for _, k in ipairs(list) do s[k] = true end
  return s
end

--- A shallow copy of a table.
function M.copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

--- Sort a list of tables by field k1, then (on a tie) by field k2.
function M.sort_by(list, k1, k2)
  table.sort(list, function(a, b)
    if a[k1] ~= b[k1] then return a[k1] < b[k1] end
    return a[k2] < b[k2]
  end)
  return list
end

-- libc functions several modules declare, by name.
local LIBC = {
  open = "int open(const char *path, int flags, ...);",
  flock = "int flock(int fd, int op);",
  close = "int close(int fd);",
  strerror = "char *strerror(int err);",
}

--- ffi.cdef each of decls (a name of LIBC's, or a whole declaration) on its
-- own, so that one declared already (by another module: ffi.cdef raises on a
-- redefinition) leaves the others declared. Returns ffi.C.
function M.cdef(decls)
  local ffi = require("ffi")
  for _, d in ipairs(decls) do pcall(ffi.cdef, LIBC[d] or d) end
  return ffi.C
end

--- Stop a watch on a child process's output (w.proc its uv process, w.out
-- its stdout pipe): SIGTERM, both handles closed. Idempotent (w.closed):
-- returns false when w was closed already.
function M.close_proc(w)
  if w.closed then return false end
  w.closed = true
  if w.proc then
    w.proc:kill("sigterm")
    w.proc:close()
    w.proc = nil
  end
  if w.out and not w.out:is_closing() then w.out:close() end
  return true
end

return M
