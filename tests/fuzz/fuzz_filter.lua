-- SPDX-License-Identifier: MIT
-- The DDoS filter (bpf/filter/filter.bpf.c) for tests/fuzz/fuzz.py, under
-- test_run, through the protocol of tests/lb/lb_packets_driver.lua. Extra
-- commands: "listen PORT" (a TCP listener on every address, so SYNs to it
-- get cookies) and "rules" (the lists fuzz.py's frames meet).
local here = debug.getinfo(1, "S").source:match("^@(.*)/") or "."
package.path = here .. "/../lb/?.lua;" .. package.path
local ffi = require("ffi")
local uv = require("luv")
local filter = require("luabpf.filter")

local function xdp_ctx(pkt, ifindex)
  return ffi.string(ffi.new("uint32_t[6]", 0, #pkt, 0, ifindex, 0, 0), 24)
end

local listeners = {}

require("lb_packets_driver"){
  ctx = xdp_ctx,
  reasons = filter.REASONS,
  service = function(o)
    return filter.new({ name = o.name, attach = false, sample = 0 })
  end,
  commands = {
    listen = function(_, port)
      for _, host in ipairs({ "0.0.0.0", "::" }) do
        local s = uv.new_tcp()
        assert(s:bind(host, tonumber(port), { ipv6only = host == "::" }))
        assert(s:listen(16, function() end))
        listeners[#listeners + 1] = s
      end
      return ""
    end,
    rules = function(f)
      f:allow("22/tcp")
      f:deny("192.0.2.0/24")
      f:deny("23/tcp")
      f:deny("gre")
      f:protect({ ports = { 80 }, threshold = 0 })
      return ""
    end,
  },
}
for _, s in ipairs(listeners) do s:close() end
