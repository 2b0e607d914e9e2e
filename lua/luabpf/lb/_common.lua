-- SPDX-License-Identifier: MIT
-- What every part of luabpf.lb shares: the data plane's numbers (bpf/lb/lb.h),
-- the Service class (its methods live in init.lua and the _*.lua parts), and
-- option checking. Private to lua/luabpf/lb/.
local addr = require("luabpf._addr")

local C = {}

C.MODES = { nat = 0, dsr = 1, ipip = 2, gue = 3 }
C.MODE_NAMES = { [0] = "nat", [1] = "dsr", [2] = "ipip", [3] = "gue" }
C.GUE_PORT = 6080 -- the outer UDP port of mode "gue" unless a VIP gives gue_port
C.PROTOS = { tcp = 6, udp = 17 }
C.PROTO_NAMES = { [6] = "tcp", [17] = "udp" }
C.ACTIVE, C.DRAINING, C.REMOVED = 0, 1, 2
C.STATE_NAMES = { [0] = "active", [1] = "draining", [2] = "removed" }
C.NO_BACKEND = 0xffffffff
C.VIP_ADDR, C.SNAT_ADDR = 1, 2

-- enum lb_reason, in order (bpf/lb/lb.h).
C.REASONS = {
  "forwarded", "reply", "pass_not_vip", "pass_other_port", "pass_non_l4", "pass_runt",
  "drop_bad_ip", "drop_ip_options", "drop_fragment", "drop_bad_l4", "drop_no_backend",
  "drop_no_neigh", "drop_fib", "drop_fwd_disabled", "drop_nat_ports",
  -- flow_table = "conntrack" only:
  "drop_ct_error", "drop_ct_full", "drop_ct_nat", "drop_ct_insert", "ct_race", "pass_ct_foreign",
  -- flow_table = "conntrack", ct_fastpath = true: established packets sent from XDP
  "ct_fast", "ct_fast_reply",
  "pass_no_neigh", "drop_tcp_offset", "drop_udp_length", "drop_ip_checksum",
  -- mode = "ipip" | "gue" (bpf/lb/lb_encap.h):
  "icmp_too_big", "drop_encap",
}

local Service = {}
Service.__index = Service
C.Service = Service

function C.vip_key(v)
  return { addr = addr.mapped(v.addr), port = v.port, proto = v.proto }
end

local function fail(fmt, ...)
  error(fmt:format(...), 3)
end

local function check_opts(what, t, known)
  if type(t) ~= "table" then fail("%s: expects a table of options, got %s", what, type(t)) end
  for k in pairs(t) do
    if not known[k] then
      local names = {}
      for n in pairs(known) do names[#names + 1] = n end
      table.sort(names)
      fail("%s: unknown option '%s' (valid: %s)", what, tostring(k), table.concat(names, ", "))
    end
  end
end

C.fail, C.check_opts = fail, check_opts

function C.same_service(a, b)
  return addr.mapped(a.addr) == addr.mapped(b.addr) and a.port == b.port and a.proto == b.proto
end

return C
