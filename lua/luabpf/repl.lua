-- SPDX-License-Identifier: MIT
-- The REPL: compile what was typed (an expression, or statements, or the
-- start of a block that continues on the next line), run it in a script's
-- environment so that it can be interrupted, print its results with
-- luabpf.pretty, and complete names. `luabpf repl` runs it on a local prompt;
-- the control socket (luabpf._service) runs the same eval for `luabpf attach`.
local pretty = require("luabpf.pretty")
local sys = bpf._sys

local M = {}

M.PROMPT, M.PROMPT2 = "luabpf> ", "   ...> "

M.HELP = [[
Type Lua: an expression prints its value (`counters`, `m:lookup(1)`), statements
run (`x = m:lookup(1)`; top-level names stay for the next lines). An unfinished
block (`function f()`, `for k, v in m:pairs() do`) continues on the next line.
Maps print their first entries decoded by BTF; 64-bit counters print exactly.
  Tab            complete globals, fields, methods (`obj:ma<Tab>`) and map or
                 program names (`obj:map("co<Tab>`)
  Up/Down        history (~/.luabpf_history, or $LUABPF_HISTORY)
  Ctrl-C         drop the line being typed; interrupt a running command
  Ctrl-D, :quit  leave
  :help          this text
The loop keeps running while the prompt waits: timers and handlers fire.]]

local unpack = unpack or table.unpack

local function pack(...)
  return { n = select("#", ...), ... }
end

--- Compile src: returns fn, or nil, message, incomplete (true when more
--- lines would finish it). An expression compiles as `return expr`.
function M.compile(src, chunkname)
  chunkname = chunkname or "=input"
  src = src:gsub("^%s*=", "return ", 1) -- the stand-alone interpreter's `=expr`
  -- Not `return expr`: that tail-calls, and error() would lose its position.
  local fn = loadstring("return select(1, " .. src .. "\n)", chunkname)
  if fn then return fn end
  local err
  fn, err = loadstring(src, chunkname)
  if fn then return fn end
  if err:find("near '<eof>'$") or err:find("near <eof>$") then return nil, err, true end
  return nil, err, false
end

-- The traceback without the REPL's own frames (everything below the chunk).
local function trim_traceback(msg)
  local out = {}
  for line in (msg .. "\n"):gmatch("(.-)\n") do
    if line:find("in function 'run'", 1, true) or line:find("luabpf/repl.lua", 1, true)
      or line:find("luabpf/_service.lua", 1, true) then
      break
    end
    out[#out + 1] = line
  end
  -- Nothing but "stack traceback:" and the chunk itself says nothing more.
  if #out <= 3 and out[2] == "stack traceback:" and (out[3] or ""):find("in main chunk") then
    return out[1]
  end
  return table.concat(out, "\n")
end

--[[
Run src in env. opts:
  token    interrupt token for bpf._sys.run (default -1: Ctrl-C in this process)
  capture  collect what print and io.write write (result.out) instead of writing it
  width    for the printer
Returns { ok = bool, values = {texts...}, out = "...", err = "msg\ntraceback",
more = true (src is unfinished) }.
]]
function M.eval(src, env, opts)
  opts = opts or {}
  local fn, err, more = M.compile(src, opts.chunkname)
  if not fn then
    return { ok = false, more = more, err = (err:gsub("^%[string \"[^\"]*\"%]", "input")) }
  end
  setfenv(fn, env)
  -- Interpreted, the command always sees the interrupt hook; compiled loops
  -- would not (LuaJIT's traces ignore hooks).
  jit.off(fn, true)
  local res = { ok = true, values = {} }
  local restore
  if opts.capture then
    local buf, oprint, owrite = {}, print, io.write
    _G.print = function(...)
      local t = {}
      for i = 1, select("#", ...) do t[i] = tostring((select(i, ...))) end
      buf[#buf + 1] = table.concat(t, "\t") .. "\n"
    end
    io.write = function(...)
      for i = 1, select("#", ...) do buf[#buf + 1] = tostring((select(i, ...))) end
      return io.stdout
    end
    restore = function()
      _G.print, io.write = oprint, owrite
      res.out = table.concat(buf)
    end
  end
  local r = pack(sys.run(opts.token or -1, fn))
  if restore then restore() end
  if not r[1] then
    res.ok, res.err = false, trim_traceback(tostring(r[2]))
    return res
  end
  for i = 2, r.n do
    local ok, text = pcall(pretty.result, r[i], { width = opts.width })
    res.values[#res.values + 1] = ok and text or ("<can't print: " .. tostring(text) .. ">")
  end
  return res
end

--- The text of a result's values, as the prompt prints them ("" for none).
function M.values_text(res)
  return table.concat(res.values or {}, "\t")
end

-- Completion -------------------------------------------------------------

local function env_get(env, k)
  local v = rawget(env, k)
  if v == nil then v = rawget(_G, k) end
  return v
end

-- v[k] without running __index functions or tripping strict mode.
local function peek(v, k, depth)
  depth = depth or 0
  if depth > 8 then return nil end
  if type(v) == "table" then
    local x = rawget(v, k)
    if x ~= nil then return x end
  end
  local mt = debug.getmetatable(v)
  local idx = mt and rawget(mt, "__index")
  if type(idx) == "table" then return peek(idx, k, depth + 1) end
  return nil
end

local function names_of(v, out, seen)
  if seen[v] then return end
  seen[v] = true
  if type(v) == "table" then
    for k, x in pairs(v) do
      if pretty.is_ident(k) and out[k] == nil then out[k] = x end
    end
  end
  local mt = debug.getmetatable(v)
  local idx = mt and rawget(mt, "__index")
  if type(idx) == "table" then names_of(idx, out, seen) end
end

local BREAKS = "[^" .. require("luabpf._readline").WORD_BREAKS:gsub("%W", "%%%0") .. "]*$"

-- What a method taking a name can be completed with: obj:map("co<Tab>.
local NAME_ARGS = { map = "maps", program = "programs" }

local function resolve(env, path)
  local v
  for part in path:gmatch("[^.:]+") do
    if not pretty.is_ident(part) then return nil end
    if v == nil then v = env_get(env, part) else v = peek(v, part) end
    if v == nil then return nil end
  end
  return v
end

--- Replacements for the word before the cursor (line is the text up to it).
function M.complete(env, line)
  local word = line:match(BREAKS) or ""
  local found = {}

  local obj_path, method = line:match("([%w_%.:]+):([%a_]+)%(%s*[\"'][%w_%.%-]*$")
  if obj_path and NAME_ARGS[method] then
    local obj = resolve(env, obj_path)
    local list_fn = obj ~= nil and peek(obj, NAME_ARGS[method])
    if type(list_fn) == "function" then
      local ok, names = pcall(list_fn, obj)
      if ok and type(names) == "table" then
        for _, n in ipairs(names) do
          if n:sub(1, #word) == word then found[#found + 1] = n end
        end
      end
    end
    table.sort(found)
    return found
  end

  local head, sep, last = word:match("^(.*)([%.:])([%w_]*)$")
  local names = {}
  if not head then
    if not word:match("^[%a_]?[%w_]*$") then return {} end
    head, sep, last = "", "", word
    names_of(env, names, {})
    names_of(_G, names, {})
    for k in pairs(pretty.keywords) do names[k] = names[k] or true end
  else
    local v = resolve(env, head)
    if v == nil then return {} end
    names_of(v, names, {})
  end
  for k, x in pairs(names) do
    local private = k:sub(1, 2) == "__" or (head ~= "" and k:sub(1, 1) == "_")
    if k:sub(1, #last) == last and (last:sub(1, 1) == "_" or not private)
      and (sep ~= ":" or type(x) == "function") then
      found[#found + 1] = head .. sep .. k
    end
  end
  table.sort(found)
  return found
end

-- The local prompt -----------------------------------------------------------

local function write_result(res, out, err)
  if res.out and res.out ~= "" then out(res.out) end
  if res.ok then
    local text = M.values_text(res)
    if text ~= "" then out(text .. "\n") end
  else
    err(res.err .. "\n")
  end
end

--- Evaluate all of src (stdin that is not a terminal) and print the results.
--- Returns true, or false after printing the error.
function M.batch(src, env)
  local res = M.eval(src, env)
  write_result(res, function(s) io.stdout:write(s) end, function(s) io.stderr:write("ERROR: ", s) end)
  io.stdout:flush()
  return res.ok
end

--[[
The line handling this prompt and `luabpf attach`'s share: :quit (:q,
:exit), :help (:h), an unknown :command, blank lines, continuation lines.
o: { help = text, prompt = p, prompt2 = p for a continuation line,
editor = fn() -> the line editor, leave = fn() (Ctrl-D, :quit),
run = fn(src) -> "more" (src is incomplete: the next line continues it),
true (done), or nil (it left: leave the prompt alone) }.
Returns { on_line = fn(line), reset = fn() (forget a pending chunk: Ctrl-C) }.
]]
function M.line_handler(o)
  local pending
  local h = {}
  function h.on_line(line)
    if line == nil then return o.leave() end
    local cmd = not pending and line:match("^%s*:(%a+)%s*$")
    if cmd == "quit" or cmd == "q" or cmd == "exit" then return o.leave() end
    if cmd == "help" or cmd == "h" then
      io.stdout:write(o.help, "\n")
      return
    end
    if cmd then
      io.stdout:write("unknown command ':", cmd, "' (:help, :quit)\n")
      return
    end
    local src = pending and (pending .. "\n" .. line) or line
    if not src:find("%S") then return end
    local r = o.run(src)
    if r == "more" then
      pending = src
      o.editor():set_prompt(o.prompt2)
    elseif r then
      pending = nil
      o.editor():set_prompt(o.prompt)
    end
  end
  function h.reset()
    pending = nil
    o.editor():set_prompt(o.prompt)
  end
  return h
end

--[[
A prompt on this terminal, with the loop running. opts:
  env       the environment commands run in
  banner    printed first
  on_exit   fn(): Ctrl-D or :quit (default: bpf.stop(0))
Returns nil, message when there is no line editor.
]]
function M.interactive(opts)
  local rl = require("luabpf._readline")
  local env, ed = opts.env, nil
  local real_print = print

  local function leave()
    if ed.closed then return end
    ed:close()
    _G.print = real_print
    sys.catch_sigint(nil)
    io.stdout:write("\n")
    if opts.on_exit then opts.on_exit() else bpf.stop(0) end
  end

  local lines = M.line_handler({
    help = M.HELP, prompt = M.PROMPT, prompt2 = M.PROMPT2, leave = leave,
    editor = function() return ed end,
    run = function(src)
      _G.print = real_print
      local res = M.eval(src, env)
      _G.print = function(...) ed:print(M.print_text(...)) end
      if res.more then return "more" end
      write_result(res, function(s) io.stdout:write(s) end, function(s) io.stdout:write("error: ", s) end)
      io.stdout:flush()
      return true
    end,
  })

  local err
  ed, err = rl.new({
    prompt = M.PROMPT,
    history = rl.history_path(),
    on_line = lines.on_line,
    complete = function(line) return M.complete(env, line) end,
  })
  if not ed then return nil, err end
  if opts.banner then ed:print(opts.banner .. "\n") end
  -- Ctrl-C: at the prompt, a fresh line; in a command, "interrupted".
  sys.catch_sigint(function()
    -- Already taken by an interrupted command: nothing left for the prompt.
    if sys.take_sigint() == 0 then return end
    lines.reset()
    ed:reset()
  end)
  -- What handlers print while the prompt waits goes above it.
  _G.print = function(...) ed:print(M.print_text(...)) end
  return ed
end

--- print's text for its arguments, newline included.
function M.print_text(...)
  local t = {}
  for i = 1, select("#", ...) do t[i] = tostring((select(i, ...))) end
  return table.concat(t, "\t") .. "\n"
end

M.unpack = unpack
return M
