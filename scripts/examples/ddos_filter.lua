-- SPDX-License-Identifier: MIT
-- The XDP DDoS filter as a service:
--   luabpf run scripts/examples/ddos_filter.lua --iface IF [CONFIG]
--
-- CONFIG is a Lua file that sets (or returns a table with) any of:
--   default = "pass"                          -- or "drop": only allowed traffic passes
--   allow = { "10.0.0.0/8", "22/tcp" }       -- allow wins over everything else
--   deny = { "192.0.2.0/24", "23/tcp", "gre", { src = "fd00:bad::/32", name = "lab" } }
--   rate_limit = { pps = 10000, bytes_per_sec = 10e6, prefix4 = 32, prefix6 = 64 }
--   protect = { ports = { 80, 443 }, threshold = 1000 }   -- SYN cookies from XDP
--   auto_ban = { pps = 20000, seconds = 60 }
--   sample = 100                              -- report 1 in N packets to Lua
--   metrics = "127.0.0.1:9435"                -- Prometheus metrics; `luabpf top NAME` watches them
-- Bans and unbans print as they happen; --interval N prints the counters and
-- the top talkers every N seconds, SIGUSR1 at once. SIGHUP re-reads CONFIG
-- and applies the difference to the lists and the metrics endpoint (a CONFIG
-- with an error is refused and the running one stays). NAME is the control
-- socket's (--name, default ddos_filter). docs/filter.md has the details.
local uv = require("luv")
local args = require("luabpf.args")
local filter = require("luabpf.filter")
local config = require("luabpf.config")
local metrics = require("luabpf.metrics")
local fmt = require("luabpf.fmt")

local opt = args.parse(arg, {
  name = "ddos_filter.lua",
  summary = "An XDP DDoS filter: allow/deny lists, per-source rate limits, SYN cookies, auto-ban.",
  positional = { { "config" } },
  options = {
    { "iface", required = true, help = "interface to filter on" },
    { "mode", default = "auto", choices = { "auto", "native", "generic" }, help = "XDP mode" },
    { "interval", type = "number", default = 0, help = "print stats every N seconds (0: never)" },
    { "top", type = "number", default = 5, help = "top talkers to print" },
  },
})

-- The config runs in its own environment; what it sets (or returns) is the
-- config. luabpf.config validates it by the filter's own rules first (what
-- `luabpf check` runs) and logs its warnings: returns it, or nil and
-- "file:line: message". No CONFIG: an empty one.
local function read_config(path)
  if not path then return {} end
  return config.read(path, "filter")
end

local cfg, cerr = read_config(opt.config)
if not cfg then args.fatal(cerr) end
-- The metrics endpoint first: a port in use fails the start before anything
-- is attached. Registered under the control socket's name (luabpf top NAME).
local sock = require("luabpf._service").path()
local reg = metrics.registry()
local endpoint = metrics.endpoint(reg, sock and sock:match("([^/]+)%.sock$") or "ddos_filter")
local mok, merr, mhint = endpoint:set(cfg.metrics)
if not mok then args.fatal(("config %s: %s"):format(opt.config, merr), mhint) end

local function on_event(ev)
  if ev.type == "ban" then
    print(("%s %s%s (%s)"):format(ev.renewed and "ban renewed" or "ban", ev.src,
      ev.seconds and ev.seconds > 0 and (" for %g s"):format(ev.seconds) or "", ev.reason))
  elseif ev.type == "unban" then
    print(("unban %s (%s)"):format(ev.src, ev.reason))
  end
  io.stdout:flush()
end

local ok, f, ferr = pcall(filter.new, {
  name = opt.iface, interface = opt.iface, xdp_mode = opt.mode, default = cfg.default,
  sample = cfg.sample, window = cfg.window, syn_threshold = cfg.syn_threshold,
  rate_limit = cfg.rate_limit, protect = cfg.protect, auto_ban = cfg.auto_ban, on_event = on_event,
})
if not ok then endpoint:close() args.fatal(("config %s: %s"):format(opt.config or "-", f)) end
if not f then
  endpoint:close()
  args.fatal(ferr, ferr:find("EOPNOTSUPP") and "try --mode=generic" or nil)
end
reg:filter(f)
reg:programs(f.obj)

-- The lists as "action text" -> spec, to apply the difference on reload.
local function wanted(c)
  local out, order = {}, {}
  for _, action in ipairs({ "allow", "deny" }) do
    for _, spec in ipairs(c[action] or {}) do
      local r = filter.parse_rule(spec)
      local key = action .. " " .. r.name
      out[key] = { action = action, spec = spec, name = r.name }
      order[#order + 1] = key
    end
  end
  return out, order
end

local current = {}
local function apply(c)
  local want, order = wanted(c)
  for key, r in pairs(current) do
    if not want[key] then f:remove(r.name) current[key] = nil end
  end
  -- Allow entries first: a deny inside an allow is refused, not the other way.
  for _, key in ipairs(order) do
    if not current[key] then
      local r = want[key]
      f[r.action](f, r.spec)
      current[key] = r
    end
  end
end

local aok, aerr = pcall(apply, cfg)
if not aok then
  f:close()
  endpoint:close()
  args.fatal(("config %s: %s"):format(opt.config, aerr))
end
ddos_filter = f -- for luabpf attach

local function report()
  local s = f:stats()
  local parts = {}
  for _, r in ipairs(filter.REASONS) do
    local c = s.reasons[r]
    if c.packets > 0 then parts[#parts + 1] = ("%s=%d"):format(r, c.packets) end
  end
  -- Counts for people (luabpf.fmt); reason=N stays a plain number to grep.
  print(("passed %s, dropped %s: %s"):format(fmt.count(s.passed), fmt.count(s.dropped), table.concat(parts, " ")))
  for _, r in ipairs(f:rules()) do
    print(("  %-5s %-24s %12s pkts %10s"):format(r.action, r.name, fmt.count(r.packets), fmt.bytes(r.bytes)))
  end
  for i, t in ipairs(f:top(opt.top)) do
    print(("  top %d: %-20s %10s %12s  %s dropped"):format(i, t.src, fmt.pps(t.pps), fmt.bits(t.bytes_per_sec),
      fmt.pps(t.dropped_pps)))
  end
  io.stdout:flush()
end

local hup = uv.new_signal()
hup:start("sighup", function()
  local new, err = read_config(opt.config)
  if new then
    local ok2, e = pcall(function()
      wanted(new) -- every rule parses, or nothing changes
      -- The endpoint next: if it can't move, the previous one stays.
      local eok, eerr = endpoint:set(new.metrics)
      if not eok then error(eerr, 0) end
      apply(new)
      if new.rate_limit ~= nil or cfg.rate_limit ~= nil then f:rate_limit(new.rate_limit or false) end
      f:auto_ban(new.auto_ban or false)
    end)
    if not ok2 then err = ("config %s: %s"):format(opt.config, e) end
  end
  if err then
    bpf.log("error", err .. " (reload refused: the running lists stay)")
  else
    cfg = new
    bpf.log("info", ("reloaded %s"):format(opt.config))
  end
end)
hup:unref()
local usr1 = uv.new_signal()
usr1:start("sigusr1", report)
usr1:unref()
if opt.interval > 0 then
  local timer = uv.new_timer()
  timer:start(opt.interval * 1000, opt.interval * 1000, report)
  timer:unref()
end
bpf.on_shutdown(function() report() end)

local n = 0
for _ in pairs(current) do n = n + 1 end
print(("filter on %s: %d list entries, default %s%s%s"):format(opt.iface, n, f.default,
  f.rate and (", rate limit %s, %s per /%d"):format(f.rate.pps and fmt.pps(f.rate.pps) or "- pps",
    f.rate.bytes_per_sec and fmt.bits(f.rate.bytes_per_sec) or "- bit/s", f.rate.prefix4) or "",
  next(f.protected) and ", SYN cookies on protected ports" or ""))
io.stdout:flush()
