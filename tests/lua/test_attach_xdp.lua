-- SPDX-License-Identifier: MIT
-- XDP attach in namespaces this test makes: native, generic and auto modes
-- as `ip -d link show` reports them, real traffic dropped and let through,
-- atomic program swap, busy interfaces and their hints, detach.
local t = require("t")

local A, B = t.unique("lbtxa"), t.unique("lbtxb")

local function link_show() return t.run("ip -n " .. B .. " -d link show vb") end

local function main()
  local ping, obj, pass, drop = t.progs_pair(A, B, "10.78.0", "xdp_pass", "xdp_drop")

  -- native: `ip -d link` says "xdp" (not xdpgeneric) with our program id.
  local link = assert(pass:attach_xdp("vb", { netns = B, mode = "native" }))
  local shown = link_show()
  t.ok(shown:find("prog/xdp id " .. pass:info().id, 1, true), "native: our program on vb:\n" .. shown)
  t.ok(shown:find(" xdp ", 1, true) and not shown:find("xdpgeneric", 1, true), "native mode shown:\n" .. shown)
  t.eq(link:description(), "xdp on vb in netns '" .. B .. "' (native)", "description")
  local info = link:info()
  t.eq(info.type, "xdp", "link info type")
  t.eq(info.prog_id, pass:info().id, "link info prog_id")
  t.eq(info.prog_name, "xdp_pass", "link info prog_name")
  t.eq(info.ifindex, tonumber(shown:match("^(%d+):")), "link info ifindex")
  t.ok(tostring(link):find("luabpf.link " .. info.id .. ": xdp on vb", 1, true), "tostring: " .. tostring(link))
  t.eq(#bpf.links(), 1, "one live link")
  t.eq(bpf.links()[1], link, "bpf.links() has it")

  -- Attaching again: EBUSY, and the hint says who holds the interface.
  local ok, err, code = drop:attach_xdp("vb", { netns = B, mode = "native" })
  t.eq(ok, nil, "second attach fails")
  t.eq(code, "EBUSY", "second attach errno")
  t.ok(err:find("can't attach XDP program 'xdp_drop' to 'vb' in netns '" .. B .. "' (native): EBUSY", 1, true),
    "busy message: " .. err)
  t.ok(err:find("HINT: 'vb' in netns '" .. B .. "' already runs XDP program 'xdp_pass' (id " .. info.prog_id
    .. ", native) through bpf_link " .. info.id .. ", held by pid " .. require("luv").os_getpid(), 1, true),
    "busy hint names the program, link and pid: " .. err)
  -- generic on top of native is refused too (the kernel says EEXIST).
  ok, err, code = drop:attach_xdp("vb", { netns = B, mode = "generic" })
  t.eq(ok, nil, "generic on top of native fails: " .. tostring(err))

  -- update: traffic stops, the link and the mode stay, the program id changes.
  t.ok(ping(), "xdp_pass lets ping through")
  assert(link:update(drop))
  shown = link_show()
  t.ok(shown:find("prog/xdp id " .. drop:info().id, 1, true), "after update: xdp_drop on vb:\n" .. shown)
  t.eq(link:info().id, info.id, "same link after update")
  t.eq(link:info().prog_name, "xdp_drop", "link now runs xdp_drop")
  t.ok(not ping(), "xdp_drop drops ping")
  t.raises(function() link:update(obj) end, "update expects a loaded program, got userdata")
  ok, err, code = link:update(obj:program("tc_pass"))
  t.eq(code, "EINVAL", "update to another program type: " .. tostring(err))

  -- detach: gone from the interface, idempotent, then methods raise.
  assert(link:detach())
  t.ok(not link_show():find("prog/xdp", 1, true), "detach removes the program")
  t.ok(ping(), "ping works after detach")
  link:detach()
  t.raises(function() link:info() end, "detached link")
  t.raises(function() link:update(pass) end, "detached link")
  t.eq(#bpf.links(), 0, "no live links after detach")
  t.eq(tostring(link), "luabpf.link 'xdp on vb in netns '" .. B .. "' (native)' (detached)", "tostring detached")

  -- generic, by ifindex.
  local ifindex = t.run("ip -n " .. B .. " -o link show vb"):match("^(%d+):")
  link = assert(pass:attach_xdp(tonumber(ifindex), { netns = B, mode = "generic" }))
  shown = link_show()
  t.ok(shown:find("xdpgeneric", 1, true) and shown:find("prog/xdp id " .. pass:info().id, 1, true),
    "generic mode shown:\n" .. shown)
  t.eq(link:description(), "xdp on " .. ifindex .. " in netns '" .. B .. "' (generic)", "generic description")
  assert(link:detach())
  t.ok(not link_show():find("xdpgeneric", 1, true), "generic detached")

  -- auto: veth has native XDP, so native it is.
  link = assert(pass:attach_xdp("vb", { netns = B }))
  t.ok(link:description():find("(native)", 1, true), "auto picks native on veth: " .. link:description())
  t.ok(not link_show():find("xdpgeneric", 1, true), "auto: not generic")
  assert(link:detach())

  -- A program attached by netlink (ip link set xdp) is not a link:
  -- EBUSY says so, replace=true takes it over.
  local pin = "/sys/fs/bpf/" .. t.unique("lbtxdp")
  assert(drop:pin(pin))
  local ok2, perr = pcall(function()
    -- nsenter, not `ip -n`: that remounts /sys and hides our bpffs pin.
    t.run("nsenter --net=/run/netns/" .. B .. " ip link set dev vb xdpdrv pinned " .. pin)
    ok, err, code = pass:attach_xdp("vb", { netns = B })
    t.eq(code, "EBUSY", "netlink program: EBUSY: " .. tostring(err))
    t.ok(err:find("attached by netlink (ip link set ... xdp): pass replace=true", 1, true),
      "netlink hint: " .. tostring(err))
    link = assert(pass:attach_xdp("vb", { netns = B, replace = true }))
    t.ok(link_show():find("prog/xdp id " .. pass:info().id, 1, true), "replace=true took over")
    t.ok(ping(), "ping passes with xdp_pass")
    assert(link:detach())
    t.ok(not link_show():find("prog/xdp", 1, true), "nothing left after replace + detach")
  end)
  drop:unpin()
  t.ok(ok2, perr)
  obj:close()
end

t.main(main, "ip netns del " .. A, "ip netns del " .. B)
