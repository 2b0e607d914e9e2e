-- SPDX-License-Identifier: MIT
-- luabpf.fmt: the numbers people read. Rates to 3 significant digits with an
-- SI prefix and a unit, counts with separators, absent values as "-".
local t = require("t")
local fmt = require("luabpf.fmt")

-- Rates: the issue's float 1.9828521645771251 and the examples of the brief.
t.eq(fmt.pps(1.9828521645771251), "1.98 pps", "pps below 10")
t.eq(fmt.pps(12345), "12.3 kpps", "kpps")
t.eq(fmt.bits(570000), "4.56 Mbit/s", "bytes/s shown as bits/s")
t.eq(fmt.rate(456, "pps"), "456 pps", "3 digits, no point")
t.eq(fmt.rate(45.6, "pps"), "45.6 pps", "one decimal")
t.eq(fmt.rate(5, "pps"), "5.00 pps", "3 significant digits kept")
t.eq(fmt.rate(0, "pps"), "0 pps", "zero")
t.eq(fmt.rate(0.5, "pps"), "0.5 pps", "below one: no padding")
t.eq(fmt.rate(0.0198, "pps"), "0.0198 pps", "small rates keep 3 digits")
t.eq(fmt.rate(999.4, "pps"), "999 pps", "999.4 stays")
t.eq(fmt.rate(999.6, "pps"), "1.00 kpps", "999.6 rounds up into the next prefix")
t.eq(fmt.rate(999999, "pps"), "1.00 Mpps", "999,999 is 1.00M")
t.eq(fmt.rate(1.5e9, "bit/s"), "1.50 Gbit/s", "G")
t.eq(fmt.rate(2.5e12, "bit/s"), "2.50 Tbit/s", "T")
t.eq(fmt.rate(-1234, "pps"), "-1.23 kpps", "negative")
t.eq(fmt.rate(nil, "pps"), "- pps", "absent")
t.eq(fmt.rate(0 / 0, "pps"), "- pps", "NaN is absent")
t.eq(fmt.rate(math.huge, "pps"), "- pps", "inf is absent")
t.eq(fmt.rate(12345), "12.3k", "no unit")
t.eq(fmt.si(12345), "12.3k", "si")
t.eq(fmt.si(nil), "-", "si absent")
t.eq(fmt.bits(nil), "- bit/s", "bits absent")
t.eq(fmt.bits(0), "0 bit/s", "bits zero")
-- Counts.
t.eq(fmt.count(0), "0", "count 0")
t.eq(fmt.count(999), "999", "count 999")
t.eq(fmt.count(1000), "1,000", "count 1,000")
t.eq(fmt.count(1234567), "1,234,567", "count")
t.eq(fmt.count(-1234567), "-1,234,567", "negative count")
t.eq(fmt.count(2 ^ 53), "9,007,199,254,740,992", "2^53 exact")
t.eq(fmt.count(nil), "-", "count absent")
t.eq(fmt.count(1.5), "1.50", "a fraction keeps 3 digits")
-- Sizes and durations.
t.eq(fmt.bytes(512), "512 B", "bytes")
t.eq(fmt.bytes(1500), "1.50 kB", "kB")
t.eq(fmt.bytes(4.56e6), "4.56 MB", "MB")
t.eq(fmt.duration(0.85), "850 ms", "ms")
t.eq(fmt.duration(12.5), "12.5 s", "s")
t.eq(fmt.duration(200), "3 min 20 s", "min")
t.eq(fmt.duration(7500), "2 h 05 min", "h")
-- Every rate from 1e-3 to 1e15 prints at most 4 characters of number and
-- reads back within 0.5% (3 significant digits).
local PRE = { [""] = 1, k = 1e3, M = 1e6, G = 1e9, T = 1e12, P = 1e15 }
local x, worst = 0.001, 0
while x < 1e15 do
  local s = fmt.rate(x, "pps")
  local num, pre = s:match("^([%d%.]+) (%a?)pps$")
  t.ok(num and PRE[pre], "parses: " .. s)
  if x >= 1 then t.ok(#num <= 4, "at most 4 characters: " .. s) end
  local back = tonumber(num) * PRE[pre]
  worst = math.max(worst, math.abs(back - x) / x)
  x = x * 1.37
end
t.ok(worst <= 0.005, ("read back within 0.5%% (worst %.4f%%)"):format(worst * 100))
print("fmt ok")
