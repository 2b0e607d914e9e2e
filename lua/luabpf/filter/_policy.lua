-- SPDX-License-Identifier: MIT
-- The filter's policy on the loop: bans (by hand or by auto_ban) and their
-- expiry, the sampled packets from the ring, and the top talkers estimated
-- from them every window. Part of luabpf.filter (init.lua).
local ffi = require("ffi")
local bit = require("bit")
local uv = require("luv")
local K = require("luabpf.filter._common")
local P = require("luabpf.filter._parse")

local Filter, PROTO_NAMES, fail, check_opts, number_opt = K.Filter, K.PROTO_NAMES, K.fail, K.check_opts, K.number_opt
local REASONS, DROPS, V4_PREFIX = K.REASONS, K.DROPS, K.V4_PREFIX
local mask, contains = P._mask, P.contains

--- Ban a source prefix for `seconds` (nil or 0: until unban). Banning again
-- moves the expiry. `why` goes into the ban event.
function Filter:ban(prefix, seconds, why, level)
  level = level or 2
  self:_check_open(level)
  local ok, net, plen, text = pcall(P.parse_prefix, prefix, 1)
  if not ok then fail(level, "ban: %s", net) end
  if seconds ~= nil then number_opt("ban: seconds", seconds, 0, nil, level) end
  for _, e in pairs(self.src.allow) do
    if contains(e.net, e.plen, net, plen) then
      fail(level, "ban %s: inside allow %s (rule '%s'): allow wins, so the ban would never match",
        text, e.text, e.name)
    end
  end
  local b = self.banned[text]
  if not b then
    b = { prefix = text, net = net, plen = plen, id = self:_new_id(level) }
  end
  b.expires = (seconds and seconds > 0) and math.floor(uv.hrtime() + seconds * 1e9) or nil
  b.why = why
  local ok2, err = self.m.bans:update({ prefixlen = plen, addr = net },
    { expires_ns = b.expires or 0, id = b.id })
  if not ok2 then
    if not self.banned[text] then table.insert(self.free_ids, b.id) end
    return nil, err
  end
  local fresh = not self.banned[text]
  self.banned[text] = b
  -- An auto ban watches its own drop counter: while the source floods on,
  -- the ban is extended at expiry instead of lifted (_tick).
  b.auto = type(why) == "string" and why:find("^auto:") ~= nil
  if b.auto then
    local c = self.m.rule_stats:lookup_sum(b.id)
    b.mark = { tonumber(c.packets), tonumber(c.bytes), uv.hrtime() }
  end
  self:_emit({ type = "ban", src = text, seconds = seconds, reason = why or "manual", renewed = not fresh })
  return true
end

-- What an auto ban dropped per second since it began or was last extended
-- (its own exact counter: a whole ban period, so a short lull in a flood that
-- goes on does not lift it).
function Filter:_ban_rate(b, now)
  local c = self.m.rule_stats:lookup_sum(b.id)
  local p, by, secs = tonumber(c.packets), tonumber(c.bytes), (now - b.mark[3]) / 1e9
  if secs <= 0 then return nil end
  local r = { pps = (p - b.mark[1]) / secs, bytes_per_sec = (by - b.mark[2]) / secs }
  b.mark = { p, by, now }
  return r
end

-- The source of an expiring auto ban still floods (what it dropped over the
-- ban is over auto_ban's threshold): the ban goes on, logged.
function Filter:_extend(b, seconds, r)
  b.expires = math.floor(uv.hrtime() + seconds * 1e9)
  self.m.bans:update({ prefixlen = b.plen, addr = b.net }, { expires_ns = b.expires, id = b.id })
  self:_emit({ type = "ban", src = b.prefix, seconds = seconds, renewed = true,
    reason = ("auto: still %.0f pkt/s while banned, extended %g s"):format(r.pps, seconds) })
end

--- Lift a ban now.
function Filter:unban(prefix)
  self:_check_open()
  local ok, _, _, text = pcall(P.parse_prefix, prefix, 1)
  local b = ok and self.banned[text]
  if not b then fail(2, "unban: %s is not banned", tostring(prefix)) end
  self:_lift(b, "removed")
  return true
end

function Filter:_lift(b, why)
  self.m.bans:delete({ prefixlen = b.plen, addr = b.net })
  self.banned[b.prefix] = nil
  self.free_ids[#self.free_ids + 1] = b.id
  self:_emit({ type = "unban", src = b.prefix, reason = why })
end

--- The bans: { [prefix] = { seconds_left, reason, packets } }.
function Filter:bans()
  self:_check_open()
  local now, out = uv.hrtime(), {}
  for text, b in pairs(self.banned) do
    local c = self.m.rule_stats:lookup_sum(b.id)
    out[text] = { seconds_left = b.expires and math.max(0, (b.expires - now) / 1e9) or nil,
      reason = b.why, packets = tonumber(c.packets), bytes = tonumber(c.bytes) }
  end
  return out
end

--- Ban sources whose sampled rate is over a threshold, for a time:
-- { pps=, bytes_per_sec=, seconds = 60, prefix4 = 32, prefix6 = 128 }; false: off.
function Filter:auto_ban(o)
  self:_check_open()
  if o == false or o == nil then self.autoban = nil return true end
  check_opts("auto_ban", o, { pps = true, bytes_per_sec = true, seconds = true, prefix4 = true,
    prefix6 = true }, 2)
  if not o.pps and not o.bytes_per_sec then fail(2, "auto_ban: give pps, bytes_per_sec or both") end
  if self.sample == 0 then fail(2, "auto_ban: needs sampled packets, but sample = 0") end
  self.autoban = {
    pps = o.pps and number_opt("auto_ban: pps", o.pps, 0, nil, 2),
    bytes_per_sec = o.bytes_per_sec and number_opt("auto_ban: bytes_per_sec", o.bytes_per_sec, 0, nil, 2),
    seconds = number_opt("auto_ban: seconds", o.seconds or 60, 0, nil, 2),
    prefix4 = number_opt("auto_ban: prefix4", o.prefix4 or 32, 0, 32, 2),
    prefix6 = number_opt("auto_ban: prefix6", o.prefix6 or 128, 0, 128, 2),
  }
  return true
end


function Filter:_emit(ev)
  if self.on_event then
    self.on_event(ev)
  elseif ev.type == "ban" or ev.type == "unban" then
    bpf.log("info", ("filter '%s': %s %s (%s)"):format(self.name, ev.type, ev.src, ev.reason or ""))
  end
end

local bswap16 = function(x) return bit.bor(bit.rshift(x, 8), bit.band(bit.lshift(x, 8), 0xff00)) end

-- A sampled packet from the ring (a cdata pointer, valid during the call).
function Filter:_sample(ev)
  local reason = REASONS[ev.reason + 1]
  local src = ffi.string(ev.src, 16)
  if self.on_sample then
    self.on_sample({ reason = reason, proto = PROTO_NAMES[ev.proto] or ev.proto, len = ev.len,
      src = P._ntop(src), dst = P._ntop(ffi.string(ev.dst, 16)), sport = bswap16(ev.sport),
      dport = bswap16(ev.dport), dropped = DROPS[reason] or false })
  end
  -- Allowed sources are never banned; banned ones already are.
  if reason == "allow" or reason == "banned" then return end
  local ab = self.autoban
  local v4 = src:sub(1, 12) == V4_PREFIX
  local plen = ab and (v4 and 96 + ab.prefix4 or ab.prefix6) or 128
  if plen < 128 then src = mask(src, plen) end
  local s = self.seen[src]
  if not s then
    s = { packets = 0, bytes = 0, drops = 0, plen = plen }
    self.seen[src] = s
  end
  s.packets = s.packets + 1
  s.bytes = s.bytes + ev.len
  if DROPS[reason] then s.drops = s.drops + 1 end
end

-- Every 100 ms: bans that expired go; at the end of each window, the top
-- talkers are estimated from the samples and auto-ban runs.
function Filter:_tick()
  local now = uv.hrtime()
  local ab = self.autoban
  for _, b in pairs(self.banned) do
    if b.expires and b.expires <= now then
      local r = b.auto and self:_ban_rate(b, now)
      if b.auto and ab and r and ((ab.pps and r.pps > ab.pps) or (ab.bytes_per_sec and r.bytes_per_sec > ab.bytes_per_sec)) then
        self:_extend(b, ab.seconds, r)
      else
        self:_lift(b, "expired")
      end
    end
  end
  if now < self.next_window then return end
  local dt = self.window + (now - self.next_window) / 1e9
  self.next_window = now + self.window * 1e9
  local list, n = {}, self.sample
  for src, s in pairs(self.seen) do
    local v4 = src:sub(1, 12) == V4_PREFIX
    local text = s.plen < 128 and ("%s/%d"):format(P._ntop(src), v4 and s.plen - 96 or s.plen)
      or P._ntop(src)
    list[#list + 1] = { src = text, pps = s.packets * n / dt, bytes_per_sec = s.bytes * n / dt,
      dropped_pps = s.drops * n / dt, samples = s.packets }
  end
  self.seen = {}
  table.sort(list, function(a, b) return a.pps > b.pps end)
  self.top_list = list
  if not ab then return end
  for _, t in ipairs(list) do
    if (ab.pps and t.pps > ab.pps) or (ab.bytes_per_sec and t.bytes_per_sec > ab.bytes_per_sec) then
      local why = ("auto: %.0f pkt/s, %.0f bytes/s"):format(t.pps, t.bytes_per_sec)
      local ok, err = pcall(self.ban, self, t.src, ab.seconds, why, 1)
      if not ok then bpf.log("warn", ("filter '%s': can't ban %s: %s"):format(self.name, t.src, err)) end
    end
  end
end

--- The top talkers of the last window, estimated from the samples:
-- { {src, pps, bytes_per_sec, dropped_pps, samples}, ... }, busiest first.
function Filter:top(n)
  self:_check_open()
  local out = {}
  for i = 1, math.min(n or 10, #self.top_list) do out[i] = self.top_list[i] end
  return out
end

return true
