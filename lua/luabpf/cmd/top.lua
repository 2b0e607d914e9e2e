-- SPDX-License-Identifier: MIT
-- `luabpf top [URL|NAME|HOST:PORT]`: a live view of a metrics endpoint.
-- For a load balancer (luabpf_lb_* metrics): per VIP and backend, packets/s,
-- bytes/s, new flows/s, state and health. For anything else: every counter's
-- rate. Refreshes in place on a terminal (keys: q quits, s cycles the sort,
-- p/b/f/n pick it); plain lines, one block per refresh, when stdout is not one.
local uv = require("luv")
local args = require("luabpf.args")
local metrics = require("luabpf.metrics")
local http = require("luabpf._http")
local fmt = require("luabpf.fmt")

local SORTS = { "packets", "bytes", "flows", "name" }
local SORT_KEYS = { p = "packets", b = "bytes", f = "flows", n = "name" }

-- The metrics URL a running service serves, asked over its control socket
-- (the `metrics` setting of lb.lua and ddos_filter.lua, or metrics.serve in
-- any script). nil, message, hint when there is no such service or it serves
-- none.
local function ask_service(name)
  local P = require("luabpf._repl_proto")
  local path = P.socket_path(name)
  local c, err, code = P.connect(path)
  if not c then
    if code == P.ENOENT then return nil end
    if code == P.EACCES then
      return nil, ("can't reach %s: %s"):format(path, err), "only root and the service's own user may ask it"
    end
    return nil, ("service '%s' is not running (%s: %s)"):format(name, path, err)
  end
  local kind, payload = c:recv()
  if kind ~= "hello" then
    c:close()
    return nil, ("service '%s' did not answer: %s"):format(name, tostring(payload or kind))
  end
  c:send("hello", ("pid=%d tty=false client=top"):format((bpf._sys.ids())))
  c:send("eval", "io.write(table.concat(require('luabpf.metrics').urls(), '\\n'))")
  local out = {}
  while true do
    kind, payload = c:recv()
    if kind == "out" then out[#out + 1] = payload
    elseif kind ~= "start" then break end
  end
  c:close()
  local url = table.concat(out):match("^[^\n]+")
  if url then return url end
  return nil, ("service '%s' runs but serves no metrics"):format(name),
    "set metrics = \"127.0.0.1:9435\" in its config (lb.lua, ddos_filter.lua) and reload it, or serve them with "
      .. "metrics.serve(reg, {name = '" .. name .. "'})"
end

local function resolve(target)
  if not target then
    -- One registered service: that one; else the default port.
    local names = {}
    local req = uv.fs_scandir(metrics.RUN_DIR)
    while req do
      local n = uv.fs_scandir_next(req)
      if not n then break end
      names[#names + 1] = n
    end
    if #names == 1 then return metrics.lookup(names[1]) end
    return ("http://127.0.0.1:%d/metrics"):format(metrics.DEFAULT_PORT)
  end
  if target:match("^https?://") then
    if target:match("^https://") then return nil, "https is not supported: use http://" end
    return target:match("^http://[^/]+$") and target .. "/metrics" or target
  end
  if target:match("^%d+$") then return ("http://127.0.0.1:%s/metrics"):format(target) end
  if target:match("^[%w.%-]+:%d+$") or target:match("^%[.+%]:%d+$") then return "http://" .. target .. "/metrics" end
  -- A service by name: what its control socket says it serves, else the
  -- URL it registered in RUN_DIR.
  local url, err, hint = ask_service(target)
  if url then return url end
  if err then return nil, err, hint end
  url = metrics.lookup(target)
  if url then return url end
  return nil, ("no service named '%s' (no control socket %s, no %s/%s)"):format(target,
    require("luabpf._repl_proto").socket_path(target), metrics.RUN_DIR, target),
    "running services: luabpf attach; or give the endpoint's URL (luabpf top http://127.0.0.1:9435/metrics)"
end

local function human(n, unit)
  if n == nil then return "-" end
  if unit then return fmt.rate(n, unit) end
  if n == math.floor(n) and math.abs(n) < 1e6 then return fmt.count(n) end
  return (fmt.si(n))
end

-- label set -> stable text id
local function lid(labels)
  local k = {}
  for n in pairs(labels) do k[#k + 1] = n end
  table.sort(k)
  for i, n in ipairs(k) do k[i] = n .. "=" .. labels[n] end
  return table.concat(k, ",")
end

-- Values of a family's samples by label id.
local function by_id(fams, name)
  local out = {}
  local f = fams[name]
  if not f then return out end
  for _, s in ipairs(f.samples) do out[lid(s.labels)] = s end
  return out
end

return function(...)
  local opt = args.parse({ ... }, {
    name = "top", command = true,
    summary = "A live view of a metrics endpoint: a URL, HOST:PORT, a port on 127.0.0.1, or the NAME\n"
      .. "a service registered with metrics.serve(reg, {name = NAME}). Keys: q quit, s next sort,\n"
      .. "p/b/f/n sort by packets/bytes/flows/name.",
    positional = { { "target" } },
    options = {
      { "interval", type = "number", default = 1, help = "seconds between refreshes" },
      { "sort", default = "packets", choices = SORTS, help = "order of rows" },
      { "count", type = "number", help = "stop after this many refreshes" },
      { "plain", type = "flag", help = "plain lines even on a terminal" },
    },
  })
  local url, err, hint = resolve(opt.target)
  if not url then args.fatal(err, hint) end
  if opt.interval <= 0 then args.fatal("--interval must be positive") end

  local tty = not opt.plain and uv.guess_handle(1) == "tty"
  local out = tty and uv.new_tty(1, false)
  local input = tty and uv.guess_handle(0) == "tty" and uv.new_tty(0, true)
  local sort = opt.sort
  -- prev: the latest fetch's values; base/base_dt: the fetch before the one
  -- shown and the time between them, kept for redraws after a key press.
  local prev, prev_t, last_fams, last_err, refreshes = nil, nil, nil, nil, 0
  local base, base_dt
  local timer = uv.new_timer()
  local finished = false

  local function quit(code)
    if finished then return end
    finished = true
    timer:stop()
    if not timer:is_closing() then timer:close() end
    if input then input:read_stop() input:set_mode(0) input:close() end
    if out then out:write("\27[?25h\n") uv.tty_reset_mode() out:close() end
    bpf.stop(code or 0)
  end

  local function write(s)
    if out then out:write(s) else io.stdout:write(s) io.stdout:flush() end
  end

  -- Rate of a counter sample between the previous fetch and this one.
  local function rate(name, s)
    local dt = base_dt
    if not base or not dt then return nil end
    local p = base[name] and base[name][lid(s.labels)]
    if not p then return nil end
    local d = s.value - p.value
    if d < 0 then return nil end -- a restart reset the counter
    return d / dt
  end

  local function lb_rows(fams)
    local rows = {}
    local vp, vb, vf = by_id(fams, "luabpf_lb_vip_packets_total"), by_id(fams, "luabpf_lb_vip_bytes_total"),
      by_id(fams, "luabpf_lb_vip_new_flows_total")
    local bb, bf = by_id(fams, "luabpf_lb_backend_bytes_total"), by_id(fams, "luabpf_lb_backend_new_flows_total")
    local bw, bh = by_id(fams, "luabpf_lb_backend_weight"), by_id(fams, "luabpf_lb_backend_healthy")
    -- State sets: the label whose sample is 1, by the backend's other labels.
    local function stateset(name, label)
      local out = {}
      for _, s in ipairs((fams[name] or { samples = {} }).samples) do
        if s.value == 1 then
          local l = {}
          for k, v in pairs(s.labels) do if k ~= label then l[k] = v end end
          out[lid(l)] = s.labels[label]
        end
      end
      return out
    end
    local states = stateset("luabpf_lb_backend_state", "state")
    local healths = stateset("luabpf_lb_backend_health", "health")
    local vips, order = {}, {}
    for id, s in pairs(vp) do
      local l = s.labels
      local key = l.service .. "/" .. l.vip
      vips[key] = {
        name = ("%s/%s"):format(l.service, l.vip), what = ("%s %s:%s %s"):format(l.proto or "", l.addr or "", l.port or "", l.mode or ""),
        pps = rate("luabpf_lb_vip_packets_total", s), packets = s.value,
        bps = vb[id] and rate("luabpf_lb_vip_bytes_total", vb[id]),
        fps = vf[id] and rate("luabpf_lb_vip_new_flows_total", vf[id]), backends = {},
      }
      order[#order + 1] = key
    end
    for id, s in pairs(by_id(fams, "luabpf_lb_backend_packets_total")) do
      local l = s.labels
      local v = vips[l.service .. "/" .. l.vip]
      if v then
        local h = bh[id]
        v.backends[#v.backends + 1] = {
          name = l.backend, what = l.addr or "", packets = s.value,
          pps = rate("luabpf_lb_backend_packets_total", s),
          bps = bb[id] and rate("luabpf_lb_backend_bytes_total", bb[id]),
          fps = bf[id] and rate("luabpf_lb_backend_new_flows_total", bf[id]),
          weight = bw[id] and bw[id].value, state = states[id] or "",
          health = healths[id] or h and (h.value == 1 and "up" or "down") or "-",
        }
      end
    end
    local function less(a, b)
      if sort == "name" then return a.name < b.name end
      local f = sort == "packets" and "pps" or sort == "bytes" and "bps" or "fps"
      local x, y = a[f] or -1, b[f] or -1
      if x ~= y then return x > y end
      return a.name < b.name
    end
    local list = {}
    for _, k in ipairs(order) do list[#list + 1] = vips[k] end
    table.sort(list, less)
    -- Rates carry their unit (luabpf.fmt): 40.0 pps, 35.2 kbit/s, 1.00 flow/s.
    local F = "%-28s %-10s %-9s %6s %10s %12s %12s %14s"
    local lines = { F:format("VIP / BACKEND", "STATE", "HEALTH", "WEIGHT", "PACKETS/S", "BITS/S", "FLOWS/S",
      "PACKETS") }
    for _, v in ipairs(list) do
      lines[#lines + 1] = ("%-28s %-27s %10s %12s %12s %14s"):format(v.name, v.what, human(v.pps, "pps"),
        human(v.bps and v.bps * 8, "bit/s"), human(v.fps, "flow/s"), human(v.packets))
      table.sort(v.backends, less)
      for _, b in ipairs(v.backends) do
        lines[#lines + 1] = ("  %-26s" .. F:sub(6)):format(b.name, b.state, b.health,
          b.weight and human(b.weight) or "-", human(b.pps, "pps"), human(b.bps and b.bps * 8, "bit/s"),
          human(b.fps, "flow/s"), human(b.packets))
      end
    end
    return lines
  end

  -- A DDoS filter (luabpf_filter_* metrics): per reason, then per rule,
  -- packets/s and bits/s, busiest first; the bans in force.
  local function filter_rows(fams)
    local rows, bans = {}, {}
    local bytes = by_id(fams, "luabpf_filter_bytes_total")
    for id, s in pairs(by_id(fams, "luabpf_filter_packets_total")) do
      local l = s.labels
      rows[#rows + 1] = { filter = l.filter, name = l.reason, what = l.verdict, packets = s.value,
        pps = rate("luabpf_filter_packets_total", s), bps = bytes[id] and rate("luabpf_filter_bytes_total", bytes[id]) }
    end
    local rules = {}
    local rbytes = by_id(fams, "luabpf_filter_rule_bytes_total")
    for id, s in pairs(by_id(fams, "luabpf_filter_rule_packets_total")) do
      local l = s.labels
      rules[#rules + 1] = { filter = l.filter, name = l.rule, what = l.action, packets = s.value,
        pps = rate("luabpf_filter_rule_packets_total", s),
        bps = rbytes[id] and rate("luabpf_filter_rule_bytes_total", rbytes[id]) }
    end
    for _, s in ipairs((fams.luabpf_filter_bans or { samples = {} }).samples) do bans[s.labels.filter] = s.value end
    local function less(a, b)
      if sort ~= "name" then
        local f = sort == "bytes" and "bps" or "pps"
        local x, y = a[f] or -1, b[f] or -1
        if x ~= y then return x > y end
        if a.packets ~= b.packets then return a.packets > b.packets end
      end
      return a.name < b.name
    end
    table.sort(rows, less)
    table.sort(rules, less)
    local F = "%-28s %-10s %12s %12s %14s"
    local lines = { F:format("FILTER / REASON", "VERDICT", "PACKETS/S", "BITS/S", "PACKETS") }
    local names = {}
    for n in pairs(bans) do names[#names + 1] = n end
    for _, r in ipairs(rows) do if not bans[r.filter] then bans[r.filter] = 0 names[#names + 1] = r.filter end end
    table.sort(names)
    for _, n in ipairs(names) do
      lines[#lines + 1] = ("%s  (%s banned now)"):format(n, fmt.count(bans[n]))
      for _, r in ipairs(rows) do
        if r.filter == n and (r.packets > 0 or sort == "name") then
          lines[#lines + 1] = ("  %-26s" .. F:sub(6)):format(r.name, r.what, human(r.pps, "pps"),
            human(r.bps and r.bps * 8, "bit/s"), human(r.packets))
        end
      end
      local first = true
      for _, r in ipairs(rules) do
        if r.filter == n then
          if first then lines[#lines + 1] = ("  %-26s %s"):format("RULE", "ACTION") first = false end
          lines[#lines + 1] = ("  %-26s" .. F:sub(6)):format(r.name, r.what, human(r.pps, "pps"),
            human(r.bps and r.bps * 8, "bit/s"), human(r.packets))
        end
      end
    end
    return lines
  end

  -- Anything else: every counter's rate, busiest first.
  local function generic_rows(fams)
    local rows = {}
    for name, f in pairs(fams) do
      if f.type == "counter" then
        for _, s in ipairs(f.samples) do
          local ls = {}
          for k, v in pairs(s.labels) do ls[#ls + 1] = k .. "=" .. v end
          table.sort(ls)
          rows[#rows + 1] = { name = name .. (#ls > 0 and "{" .. table.concat(ls, ",") .. "}" or ""),
            r = rate(name, s), value = s.value }
        end
      end
    end
    table.sort(rows, function(a, b)
      if sort ~= "name" and (a.r or -1) ~= (b.r or -1) then return (a.r or -1) > (b.r or -1) end
      return a.name < b.name
    end)
    local lines = { ("%-70s %12s %14s"):format("COUNTER", "RATE", "VALUE") }
    for _, r in ipairs(rows) do lines[#lines + 1] = ("%-70s %12s %14s"):format(r.name, human(r.r, "/s"), human(r.value)) end
    return lines
  end

  local function draw(fams)
    local head = ("luabpf top  %s  every %gs  sort: %s%s"):format(url, opt.interval, sort,
      tty and "   (q quit, s sort, p/b/f/n)" or "")
    local lines = { head }
    if last_err then lines[#lines + 1] = "ERROR: " .. last_err end
    if fams then
      local body = fams.luabpf_lb_vip_packets_total and lb_rows(fams)
        or fams.luabpf_filter_packets_total and filter_rows(fams) or generic_rows(fams)
      for _, l in ipairs(body) do lines[#lines + 1] = l end
    end
    if tty then
      local w, h = out:get_winsize()
      w, h = w or 120, h or 40
      local buf = { "\27[?25l\27[H" }
      for i = 1, math.min(#lines, h - 1) do buf[#buf + 1] = lines[i]:sub(1, w) .. "\27[K\r\n" end
      if #lines > h - 1 then buf[#buf + 1] = ("... %d more rows\27[K\r\n"):format(#lines - h + 1) end
      buf[#buf + 1] = "\27[J"
      write(table.concat(buf))
    else
      lines[1] = os.date("%H:%M:%S ") .. lines[1]
      write(table.concat(lines, "\n") .. "\n\n")
    end
  end

  local function fetch()
    http.get(url, function(res, gerr)
      if finished then return end
      local now = uv.hrtime()
      if not res or res.status ~= 200 then
        last_err = gerr or ("%s: HTTP %d"):format(url, res.status)
        if not tty and refreshes == 0 then
          io.stderr:write("ERROR: can't read ", last_err, "\n")
          return quit(1)
        end
        draw(last_fams)
      else
        last_err = nil
        local fams = metrics.parse(res.body)
        local dt = prev_t and (now - prev_t) / 1e9
        -- The first fetch only primes the rates, unless it is the only one.
        base, base_dt = prev, dt
        if prev or tty then draw(fams) end
        if prev then refreshes = refreshes + 1 end
        local vals = {}
        for name in pairs(fams) do vals[name] = by_id(fams, name) end
        prev, prev_t, last_fams = vals, now, fams
      end
      if opt.count and refreshes >= opt.count then quit(0) end
    end, { timeout = math.max(2000, opt.interval * 1000) })
  end

  if input then
    input:set_mode(1)
    input:read_start(function(_, data)
      if not data then return end
      for c in data:gmatch(".") do
        if c == "q" or c == "\3" or c == "\27" then return quit(0) end
        if c == "s" then
          for i, s in ipairs(SORTS) do if s == sort then sort = SORTS[i % #SORTS + 1] break end end
          draw(last_fams)
        elseif SORT_KEYS[c] then
          sort = SORT_KEYS[c]
          draw(last_fams)
        end
      end
    end)
  end
  if tty then write("\27[2J") end
  fetch()
  timer:start(opt.interval * 1000, opt.interval * 1000, fetch)
  bpf.on_shutdown(function() quit(0) end)
end
