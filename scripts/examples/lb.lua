-- SPDX-License-Identifier: MIT
-- The XDP load balancer as a service: luabpf run scripts/examples/lb.lua CONFIG
--
-- CONFIG is a Lua file that sets (or returns a table with) `service`,
-- `interface` and `vips`; see scripts/examples/lb.conf.lua and docs/lb.md.
-- It prints the spread per backend every `--interval` seconds, and runs until
-- stopped. SIGHUP re-reads CONFIG and applies the difference (backends added,
-- removed, reweighted; VIPs added or removed) without touching flows that
-- stay; a CONFIG with an error is refused and the running one stays.
-- `metrics = "127.0.0.1:9435"` in CONFIG serves its Prometheus metrics
-- there, which `luabpf top SERVICE` watches (docs/metrics.md).
-- Backends with a `check` (per VIP or per backend, docs/health.md) leave
-- the pool when their check fails and rejoin when it passes again.
local uv = require("luv")
local args = require("luabpf.args")
local lb = require("luabpf.lb")
local config = require("luabpf.config")
local metrics = require("luabpf.metrics")
local report -- prints the stats; defined once the service runs

local opt = args.parse(arg, {
  name = "lb.lua",
  summary = "An XDP L4 load balancer with Maglev hashing, NAT or DSR, configured in Lua.",
  positional = { { "config", required = true } },
  options = {
    { "interval", type = "number", default = 0, help = "print stats every N seconds (0: never)" },
    { "destroy", type = "flag", help = "at exit, detach and remove the pinned state" },
  },
})

-- The config runs in its own environment; what it sets (or returns) is the
-- config. luabpf.config validates it by the service's own rules first (what
-- `luabpf check` runs) and logs its warnings: returns it, or nil and
-- "file:line: message".
local cfg, cerr = config.read(opt.config, "lb")
if not cfg then args.fatal(cerr) end
-- CONFIG metrics = "127.0.0.1:9435": the service's Prometheus metrics, what
-- `luabpf top NAME` watches (docs/metrics.md). Bound before anything is
-- attached: a port in use fails the start and leaves nothing behind.
local reg = metrics.registry()
local endpoint = metrics.endpoint(reg, cfg.service or "lb")
local mok, merr, mhint = endpoint:set(cfg.metrics)
if not mok then args.fatal(("config %s: %s"):format(opt.config, merr), mhint) end
local svc, err, hint = lb.new({
  name = cfg.service or "lb", interface = cfg.interface, netns = cfg.netns,
  xdp_mode = cfg.xdp_mode, pin = cfg.pin, ring_size = cfg.ring_size, max_vips = cfg.max_vips,
  max_backends = cfg.max_backends, flows = cfg.flows, flow_sample = cfg.flow_sample,
  drop_sample = cfg.drop_sample, flow_table = cfg.flow_table, ct_mark = cfg.ct_mark,
  ct_fastpath = cfg.ct_fastpath, ct_sync = cfg.ct_sync, bgp = cfg.bgp,
})
if not svc then args.fatal(err, hint) end
reg:lb(svc)
reg:programs(svc.obj)
-- `luabpf attach SERVICE` reaches this process (unless --name chose a name).
local renamed, rerr = require("luabpf._service").rename(svc.name)
if not renamed then bpf.log("warn", "control socket: " .. rerr) end
local ok, e = pcall(svc.apply, svc, cfg.vips)
if not ok then
  -- A start that fails undoes what it made: a service it made goes again.
  svc:close({ destroy = not svc.pinned or svc.fresh })
  args.fatal(("config %s: %s"):format(opt.config, e))
end
local pruned = svc:prune()
if pruned > 0 then bpf.log("info", ("removed %d VIP(s) the config no longer has"):format(pruned)) end
lb_service = svc -- for luabpf attach and on_shutdown hooks

local hup = uv.new_signal()
hup:start("sighup", function()
  local new, err = config.read(opt.config, "lb")
  -- Settings that size the maps or place the program need a restart: the
  -- whole reload is refused, the running service stays as it was.
  local fixed = new and require("luabpf.lb._life").fixed_changes(cfg, new)
  if fixed then
    bpf.log("error", ("service '%s': reload refused: %s (the running configuration stays)"):format(svc.name, fixed))
    return
  end
  if new then
    -- The metrics endpoint moves first: if it can't, nothing changes.
    local mok2, merr2 = endpoint:set(new.metrics)
    if not mok2 then
      err = ("config %s: %s"):format(opt.config, merr2)
    else
      local applied, aerr = pcall(svc.apply, svc, new.vips)
      if not applied then
        err = ("config %s: %s"):format(opt.config, aerr)
        endpoint:set(cfg.metrics)
      end
    end
  end
  if err then
    bpf.log("error", err .. " (reload refused: the running configuration stays)")
  else
    svc.obj:set("flow_sample", new.flow_sample or 0)
    svc.obj:set("drop_sample", new.drop_sample or 1)
    cfg = new
    bpf.log("info", ("reloaded %s"):format(opt.config))
  end
end)
hup:unref() -- a signal handler alone does not keep the service running
-- SIGUSR1 prints the stats now, as HAProxy's stats socket would show them.
local usr1 = uv.new_signal()
usr1:start("sigusr1", function() report() end)
usr1:unref()

-- Counts with separators, rates in units (svc:report(), luabpf.fmt).
report = function()
  print(svc:report())
  io.stdout:flush()
end

bpf.log("info", ("service '%s' on %s: %d VIP(s), state in %s"):format(svc.name, cfg.interface,
  #cfg.vips, svc.dir))
if opt.interval > 0 then
  uv.new_timer():start(opt.interval * 1000, opt.interval * 1000, report)
end
-- Keep running until stopped: the ring buffer's poll handle holds the loop.
bpf.on_shutdown(function()
  hup:close()
  usr1:close()
  report()
  if opt.destroy then
    svc:close({ destroy = true })
  elseif svc.obj and svc.pinned and svc.link then
    bpf.log("info", require("luabpf.lb._life").stop_line(svc))
  end
end)
