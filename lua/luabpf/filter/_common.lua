-- SPDX-License-Identifier: MIT
-- What every part of luabpf.filter shares: the numbers of bpf/filter/filter.h,
-- the Filter class (methods in init.lua and _policy.lua), the failure helpers.
-- Private to lua/luabpf/filter/.
local util = require("luabpf._util")

local M = {}

-- enum filter_reason, in order (bpf/filter/filter.h).
M.REASONS = {
  "pass", "pass_non_ip", "allow", "deny_src", "deny_port", "deny_proto", "banned", "rate_pps",
  "rate_bps", "default_drop", "malformed", "syn_cookie", "syn_cookie_ok", "syn_cookie_bad",
}
-- Reasons whose packets are dropped.
M.DROPS = {
  deny_src = true, deny_port = true, deny_proto = true, banned = true, rate_pps = true,
  rate_bps = true, default_drop = true, malformed = true, syn_cookie_bad = true,
}

local PROTOS = {
  icmp = 1, igmp = 2, tcp = 6, udp = 17, gre = 47, esp = 50, ah = 51, icmpv6 = 58,
  ["ipv6-icmp"] = 58, sctp = 132, udplite = 136,
}
local PROTO_NAMES = {}
for n, v in pairs(PROTOS) do
  if not PROTO_NAMES[v] or #n < #PROTO_NAMES[v] then PROTO_NAMES[v] = n end
end
PROTO_NAMES[58] = "icmpv6"
local FA_ALLOW, FA_DENY = 1, 2
local NO_RULE = 0xffffffff
local V4_PREFIX = string.rep("\0", 10) .. "\255\255"
local ZERO16 = string.rep("\0", 16)

local Filter = {}
Filter.__index = Filter

local function fail(level, fmt, ...)
  error(fmt:format(...), level + 1)
end

local check_opts = util.check_opts

local function number_opt(what, v, lo, hi, level)
  if type(v) ~= "number" or v ~= v or v < lo or (hi and v > hi) then
    fail(level + 1, "%s must be a number %s, got %s", what,
      hi and ("from %s to %s"):format(lo, hi) or (">= " .. lo), tostring(v))
  end
  return v
end

M.PROTOS, M.PROTO_NAMES, M.FA_ALLOW, M.FA_DENY, M.NO_RULE = PROTOS, PROTO_NAMES, FA_ALLOW, FA_DENY, NO_RULE
M.V4_PREFIX, M.ZERO16, M.Filter, M.fail, M.check_opts, M.number_opt = V4_PREFIX, ZERO16, Filter, fail, check_opts,
  number_opt
return M
