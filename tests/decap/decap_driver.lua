-- SPDX-License-Identifier: MIT
-- The decapsulator (bpf/decap/decap.bpf.c) not attached, frames through
-- test_run, driven by tests/decap/decap_packets.py over a pipe: one command a
-- line, one answer a line ("@@ ok ..." / "@@ err MESSAGE").
--   new ADDR,ADDR,... GUE_PORT     the decapsulator (luabpf.decap, attach = false)
--   run HEX                        -> ok VERDICT MOVED HEXOUT (MOVED: reason:delta,... or -)
--   remove ADDR | close
local decap = require("luabpf.decap")
local d

local function hex(s) return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end
local function unhex(h) return (h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end)) end

local cmds = {}
function cmds.new(addrs, port)
  local list = {}
  for a in addrs:gmatch("[^,]+") do list[#list + 1] = a end
  local err
  d, err = decap.new{ attach = false, addrs = list, gue_port = tonumber(port) }
  if not d then error(err) end
  return ""
end
function cmds.run(h)
  local before = d:stats()
  local r, err = d.prog:test_run(unhex(h))
  if not r then error("test_run: " .. tostring(err)) end
  local after, moved = d:stats(), {}
  for _, name in ipairs(decap.REASONS) do
    local n = after[name].packets - before[name].packets
    if n ~= 0 then moved[#moved + 1] = ("%s:%d"):format(name, n) end
  end
  return ("%s %s %s"):format(r.verdict or r.retval, #moved > 0 and table.concat(moved, ",") or "-",
    #r.data > 0 and hex(r.data) or "-")
end
function cmds.remove(a) d:remove_addr(a) return "" end
function cmds.close() d:close() d = nil return "" end

for line in io.stdin:lines() do
  local w = {}
  for x in line:gmatch("%S+") do w[#w + 1] = x end
  local fn = cmds[w[1] or ""]
  local ok, res
  if fn then ok, res = pcall(fn, unpack(w, 2)) else ok, res = false, "unknown command " .. tostring(w[1]) end
  io.stdout:write(ok and ("@@ ok " .. res) or ("@@ err " .. tostring(res):gsub("\n", " | ")), "\n")
  io.stdout:flush()
  if w[1] == "close" then break end
end
if d then d:close() end
