-- SPDX-License-Identifier: MIT
-- One command line of the test drivers' protocol (tests/lb/lb_ct.lua,
-- lb_packets_driver.lua): its first word names a function of cmds, called
-- with the other words. Returns the answer line, "@@ ok RESULT" or "@@ err
-- MESSAGE" (on one line: an error message may span several), and the
-- command's name.
return function(cmds, line)
  local words = {}
  for w in line:gmatch("%S+") do words[#words + 1] = w end
  local cmd = cmds[words[1] or ""]
  local ok, res
  if cmd then
    ok, res = pcall(cmd, unpack(words, 2))
  else
    ok, res = false, ("unknown command '%s'"):format(tostring(words[1]))
  end
  return ok and ("@@ ok " .. res) or ("@@ err " .. tostring(res):gsub("\n", " | ")), words[1]
end
