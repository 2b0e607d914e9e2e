-- SPDX-License-Identifier: MIT
-- Numbers for people: rates to 3 significant digits with an SI prefix and
-- a unit (1.98 pps, 12.3 kpps, 4.56 Mbit/s), counts with thousands
-- separators (1,234,567), byte sizes (1.50 MB). One formatter for every text
-- a person reads (luabpf lb show, luabpf top, svc:report(), the examples'
-- output); tables and JSON keep the raw numbers.
--
--   local fmt = require("luabpf.fmt")
--   fmt.rate(12345, "pps")      --> "12.3 kpps"
--   fmt.bits(570000)            --> "4.56 Mbit/s"  (bytes/s in, bits/s out)
--   fmt.count(1234567)          --> "1,234,567"
local M = {}

local PREFIXES = { "", "k", "M", "G", "T", "P", "E" }

-- Not a number a person can read: nil, NaN, infinities.
local function absent(x)
  return type(x) ~= "number" or x ~= x or x == math.huge or x == -math.huge
end

--- x to 3 significant digits with an SI prefix: "0", "0.5", "1.98", "456",
--- "12.3k", "4.56M"; "-" for nil or NaN. Returns the number and the prefix
--- apart as a second and third value.
function M.si(x)
  if absent(x) then return "-", "-", "" end
  if x == 0 then return "0", "0", "" end
  local i = 1
  -- 999.6 would print as "1.00e+03" at this step: it is 1.00k.
  while math.abs(x) >= 999.5 and i < #PREFIXES do
    x, i = x / 1000, i + 1
  end
  local num
  if math.abs(x) < 0.9995 then
    -- Below one, no padded zeros: 0.5, 0.0198.
    num = ("%.3g"):format(x)
  else
    num = ("%#.3g"):format(x):gsub("%.$", "")
  end
  return num .. PREFIXES[i], num, PREFIXES[i]
end

--- A rate (or any quantity) with its unit: fmt.rate(12345, "pps") is
--- "12.3 kpps", fmt.rate(0.5, "pps") "0.5 pps", fmt.rate(nil, "pps") "- pps".
function M.rate(x, unit)
  local _, num, pre = M.si(x)
  if unit == nil or unit == "" then return num .. pre end
  return num .. " " .. pre .. unit
end

--- Packets per second: "1.98 pps", "12.3 kpps".
function M.pps(x) return M.rate(x, "pps") end

--- A byte rate shown as bits: fmt.bits(570000) is "4.56 Mbit/s".
function M.bits(bytes_per_sec)
  return M.rate(not absent(bytes_per_sec) and bytes_per_sec * 8 or nil, "bit/s")
end

--- A count of bytes: "512 B", "1.50 kB", "4.56 MB" (SI, as the rates).
function M.bytes(n)
  if not absent(n) and math.abs(n) < 1000 and n == math.floor(n) then return ("%d B"):format(n) end
  return M.rate(n, "B")
end

--- 1234567 -> "1,234,567"; "-" for nil. Fractions keep 3 significant digits.
function M.count(n)
  if absent(n) then return "-" end
  if n ~= math.floor(n) then return (M.si(n)) end
  local s = ("%d"):format(n)
  local neg, digits = s:match("^(%-?)(%d+)$")
  digits = digits:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", "")
  return neg .. digits
end

--- Seconds for people: "850 ms", "12.5 s", "3 min 20 s", "2 h 05 min".
function M.duration(s)
  if absent(s) then return "-" end
  if math.abs(s) < 1 then return M.rate(s * 1000, "ms") end
  if s < 60 then return M.rate(s, "s") end
  if s < 3600 then return ("%d min %02d s"):format(math.floor(s / 60), math.floor(s % 60)) end
  return ("%d h %02d min"):format(math.floor(s / 3600), math.floor(s % 3600 / 60))
end

return M
