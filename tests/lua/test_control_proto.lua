-- SPDX-License-Identifier: MIT
-- The control socket's frame decoder (luabpf._repl_proto): frames split at
-- every byte boundary decode to what was sent; bad headers are refused; a
-- large frame costs time linear in its size (it used to join the buffer on
-- every read: a 10 MB frame held the service's loop for seconds).
local t = require("t")
local P = require("luabpf._repl_proto")

math.randomseed(7)
for trial = 1, 300 do
  local msgs, stream = {}, {}
  for i = 1, math.random(1, 6) do
    local k = ({ "run", "hello", "eval", "x" })[math.random(4)]
    local pl = string.rep(string.char(97 + i), math.random(0, 300))
    msgs[#msgs + 1] = { k, pl }
    stream[#stream + 1] = P.frame(k, pl)
  end
  stream = table.concat(stream)
  local d, got, pos = P.decoder(), {}, 1
  while pos <= #stream do
    local n = math.random(1, 50)
    local f = assert(d(stream:sub(pos, pos + n - 1)))
    for _, x in ipairs(f) do got[#got + 1] = x end
    pos = pos + n
  end
  t.eq(#got, #msgs, "trial " .. trial .. ": frames decoded")
  for i = 1, #msgs do
    t.eq(got[i][1], msgs[i][1], "trial " .. trial .. ": kind")
    t.eq(got[i][2], msgs[i][2], "trial " .. trial .. ": payload")
  end
end

local r, e = P.decoder()(string.rep("x", 65))
t.eq(r, nil, "a 65-byte line without a newline")
t.eq(e, "a frame header longer than 64 bytes", "its reason")
r, e = P.decoder()("BAD 3\nabc")
t.eq(e, 'not a frame header: "BAD 3"', "a header that is not kind and length")
r, e = P.decoder()(("run %d\n"):format(P.MAX_FRAME + 1))
t.eq(e, ("a frame of %d bytes (at most %d)"):format(P.MAX_FRAME + 1, P.MAX_FRAME), "an oversized frame")

-- Linear: 8 MB costs about 8x what 1 MB does (CPU time of this process, so a
-- busy machine scales both); joining on every 64 KB read made it ~64x.
local function cost(size)
  local frame = P.frame("run", string.rep("y", size))
  local chunks = {}
  for i = 1, #frame, 65536 do chunks[#chunks + 1] = frame:sub(i, i + 65535) end
  local best = math.huge
  for _ = 1, 3 do
    local d, got = P.decoder(), nil
    local c0 = os.clock()
    for _, c in ipairs(chunks) do
      local f = d(c)
      if f[1] then got = f[1] end
    end
    best = math.min(best, os.clock() - c0)
    t.eq(got and #got[2], size, ("a %d-byte frame decoded whole"):format(size))
  end
  return best
end
local small, large = cost(1e6), cost(8e6)
print(("decode: 1 MB %.2f ms, 8 MB %.2f ms (x%.1f)"):format(small * 1e3, large * 1e3, large / small))
t.ok(large < 24 * math.max(small, 1e-4), ("8 MB costs %.1fx what 1 MB does (linear: ~8x)"):format(large / small))
print("ok")
