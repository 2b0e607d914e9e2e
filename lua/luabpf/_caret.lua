-- SPDX-License-Identifier: MIT
-- `luabpf check`'s pointers into a file, as bpftrace and clang print them:
-- the offending line and a caret under what the message is about. And the
-- one check that asks this machine: does the config's interface exist.
local uv = require("luv")

local M = {}

local function plain_find(line, word)
  if not word or word == "" then return nil end
  if word:match("^[%a_][%w_]*$") then -- a name: whole words only
    local s, e = line:find("%f[%w_]" .. word .. "%f[^%w_]")
    if s then return s, e end
  end
  return line:find(word, 1, true)
end

--- Where on line the message points: (first, last) columns of the token.
function M.column(line, msg)
  -- Lua's syntax errors: "... near 'end'", "near '='"; <eof> has no column.
  local near = msg:match("near '(.-)'$") or msg:match("near '(.-)'")
  local s, e = plain_find(line, near)
  if s then return s, e end
  -- What was given instead: "... got 70000".
  s, e = plain_find(line, msg:match("got ([%w_%.:%-]+)%)?$"))
  if s then return s, e end
  -- The setting the message is about: "port must be 1-65535".
  s, e = plain_find(line, msg:match("([%a_][%w_]*) must "))
  if s then return s, e end
  -- Quoted values in the message: 'eth9', "10.0.0.300".
  for q in msg:gmatch("'([^']+)'") do
    s, e = plain_find(line, q)
    if s then return s, e end
  end
  for q in msg:gmatch('"([^"]+)"') do
    s, e = plain_find(line, q)
    if s then return s, e end
  end
  -- A field path first in the message: vips[1].backends[2].port: ...
  local path = msg:match("^([%w_%.%[%]]+):") or msg:match("^([%w_%.%[%]]+) ")
  if path then
    local last = path:match("([%a_][%w_]*)[%[%]%d]*$")
    s, e = plain_find(line, last)
    if s then return s, e end
  end
  s = line:find("%S")
  return s or 1, s or 1
end

--- The lines that show where e (an error or warning with .line, .msg) points:
-- "   12 |     port = 70000," and "      |            ^~~~~"; nil without a line.
function M.render(lines, e)
  local text = e.line and lines[e.line]
  if not text then return nil end
  text = text:gsub("%s+$", "")
  local s, last = M.column(text, e.msg or "")
  -- Keep the line's tabs under the caret, so it lines up in any tab width.
  local pad = text:sub(1, s - 1):gsub("[^\t]", " ")
  local mark = "^" .. string.rep("~", math.max(0, math.min(last, #text) - s))
  local gutter = ("%5d | "):format(e.line)
  return gutter .. text .. "\n" .. string.rep(" ", #gutter - 2) .. "| " .. pad .. mark
end

--- The file's lines (a list), or {} when it can't be read.
function M.lines(path)
  local t = {}
  local f = io.open(path, "r")
  if not f then return t end
  for l in f:lines() do t[#t + 1] = l end
  f:close()
  return t
end

--- A warning's text when the config names an interface this machine lacks
-- (in its netns, when it sets one), else nil. Not an error: a config may be
-- checked on another machine than the one it runs on.
function M.missing_interface(c)
  local ifname = type(c) == "table" and c.interface
  if type(ifname) ~= "string" or ifname == "" or ifname:find("[/%s]") then return nil end
  if type(c.netns) == "string" and c.netns ~= "" then
    if not uv.fs_stat("/run/netns/" .. c.netns) and not c.netns:find("/", 1, true) then
      return ("netns '%s' does not exist on this machine (ip netns list), so interface '%s' can't be looked for")
        :format(c.netns, ifname)
    end
    local ok = os.execute(("ip -n '%s' link show dev '%s' >/dev/null 2>&1"):format(
      c.netns:gsub("'", ""), ifname:gsub("'", "")))
    if ok == 0 or ok == true then return nil end
    return ("interface '%s' does not exist in netns '%s' on this machine (ip -n %s link lists them)")
      :format(ifname, c.netns, c.netns)
  end
  if uv.fs_stat("/sys/class/net/" .. ifname) then return nil end
  local names = {}
  local dir = uv.fs_scandir("/sys/class/net")
  while dir do
    local n = uv.fs_scandir_next(dir)
    if not n then break end
    names[#names + 1] = n
  end
  table.sort(names)
  return ("interface '%s' does not exist on this machine (it has %s)"):format(ifname,
    #names > 0 and table.concat(names, ", ") or "none")
end

return M
