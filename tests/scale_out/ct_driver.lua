-- SPDX-License-Identifier: MIT
-- tests/lb/lb_ct.lua's driver (commands on stdin, one answer line each) with
-- ct_sync = true on the conntrack flow table: tests/scale_out/test_ct_sync_lab.sh
-- runs the conntrack lab's checks against the entries the kernel makes.
--   ct_driver.lua SERVICE conntrack|fast
local lb = require("luabpf.lb")
local new = lb.new
lb.new = function(o)
  o.ct_sync = true
  return new(o)
end
local src = assert(os.getenv("LUABPF_SOURCE_DIR"), "LUABPF_SOURCE_DIR is not set")
local chunk = assert(loadfile(src .. "/tests/lb/lb_ct.lua"))
setfenv(chunk, getfenv(1))
chunk()
