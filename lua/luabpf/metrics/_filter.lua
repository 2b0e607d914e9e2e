-- SPDX-License-Identifier: MIT
-- Ready-made families for the DDoS filter (lua/luabpf/filter/): reg:filter(f)
-- exports f:stats() (one call per scrape) the way reg:lb exports a balancer.
-- Part of luabpf.metrics.
local K = require("luabpf.metrics._common")

local Registry = K.Registry
local sorted_keys = require("luabpf._util").sorted_keys

--- Export a filter's f:stats(): packets and bytes per reason (with the
-- verdict: pass or drop), per list rule, per protected port; the bans in
-- force; the samples the ring buffer lost. Names start with
-- luabpf_filter_ (o.prefix changes that); every series has filter="NAME".
function Registry:filter(f, o)
  local p = K.exporter_prefix("metrics.filter", f, o, "a DDoS filter (filter.new())", "luabpf_filter",
    { "stats", "rules" })
  local name = f.name or "filter"
  local REASONS = require("luabpf.filter").REASONS
  local DROPS = require("luabpf.filter._common").DROPS
  local stats = self:_per_scrape(function() return f:stats() end)
  local function sorted(t) -- keys of mixed types (ports, names) as text
    return sorted_keys(t, function(a, b) return tostring(a) < tostring(b) end)
  end
  local function verdict(r)
    if DROPS[r] then return "drop" end
    if r == "syn_cookie" then return "syn_cookie" end -- answered with a cookie from XDP
    return "pass"
  end
  local function per_reason(what, help)
    self:counter { name = p .. "_" .. what .. "_total", help = help, labels = { "filter", "reason", "verdict" },
      collect = function(emit)
        local s = stats()
        for _, r in ipairs(REASONS) do
          local c = s.reasons[r]
          if c then emit(c[what], { name, r, verdict(r) }) end
        end
      end }
  end
  per_reason("packets", "Packets the filter saw, by reason (verdict: pass, drop, or syn_cookie: answered from XDP)")
  per_reason("bytes", "Bytes the filter saw, by reason (verdict: pass, drop, or syn_cookie: answered from XDP)")
  local function per_rule(what, help)
    self:counter { name = p .. "_rule_" .. what .. "_total", help = help, labels = { "filter", "rule", "action" },
      collect = function(emit)
        for _, r in ipairs(f:rules()) do emit(r[what], { name, r.name, r.action }) end
      end }
  end
  per_rule("packets", "Packets that matched an allow or deny list entry")
  per_rule("bytes", "Bytes that matched an allow or deny list entry")
  self:counter { name = p .. "_protected_packets_total", help = "SYN packets to a protected port (SYN cookies)",
    labels = { "filter", "port" },
    collect = function(emit)
      local s = stats()
      for _, port in ipairs(sorted(s.protected)) do emit(s.protected[port].packets, { name, port }) end
    end }
  self:gauge { name = p .. "_bans", help = "Sources banned now (auto bans and bans from Lua)", labels = { "filter" },
    collect = function(emit)
      local n = 0
      for _ in pairs(stats().bans) do n = n + 1 end
      emit(n, { name })
    end }
  self:counter { name = p .. "_lost_samples_total", help = "Sampled packets the ring buffer had no room for",
    labels = { "filter" },
    collect = function(emit) emit(stats().lost_samples or 0, { name }) end }
  return self
end

return true
