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

return M
