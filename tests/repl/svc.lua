-- SPDX-License-Identifier: MIT
-- A small service for the REPL tests: a timer bumps key 1 of a BPF hash map
-- every 50 ms and another prints it ("count=N") every 200 ms (with print:
-- at a prompt, that goes above the line being typed).
local uv = require("luv")
obj = assert(bpf.load(os.getenv("LUABPF_TEST_BPF_DIR") .. "/maps.bpf.o", { max_entries = { counts = 64 } }))
counts = obj:map("counts")
ticks = 0
local bump = uv.new_timer()
bump:start(50, 50, function()
  ticks = ticks + 1
  counts:update(1, (counts:lookup(1) or 0) + 1)
end)
local report = uv.new_timer()
report:start(200, 200, function()
  print(("count=%d"):format(counts:lookup(1) or 0))
  io.stdout:flush()
end)
function stats()
  return { ticks = ticks, count = counts:lookup(1) }
end
