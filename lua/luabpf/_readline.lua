-- SPDX-License-Identifier: MIT
-- Line editing for the REPL: libedit (Debian's libedit2) through LuaJIT's FFI,
-- in readline's callback mode driven by a luv poll on stdin, so the loop keeps
-- running (timers, ring buffers, health checks) while the prompt waits.
local ffi = require("ffi")
local uv = require("luv")

ffi.cdef [[
typedef void rl_vcpfunc_t(char *);
typedef char **rl_completion_func_t(const char *, int, int);
void rl_callback_read_char(void);
void rl_callback_handler_install(const char *, rl_vcpfunc_t *);
void rl_callback_handler_remove(void);
void rl_replace_line(const char *, int);
int rl_initialize(void);
extern int rl_catch_signals;
extern int rl_catch_sigwinch;
extern char *rl_line_buffer;
extern int rl_point, rl_end;
extern const char *rl_readline_name;
extern rl_completion_func_t *rl_attempted_completion_function;
extern int rl_attempted_completion_over;
extern int rl_completion_append_character;
extern char *rl_completer_word_break_characters;
extern int rl_completion_query_items;
int add_history(const char *);
int read_history(const char *);
int write_history(const char *);
void stifle_history(int);
void *malloc(size_t);
char *strdup(const char *);
void free(void *);
int isatty(int);
]]

local M = {}

-- Where a word to complete starts: these characters end the one before it.
-- `.` and `:` are not among them, so `obj:ma` completes as one word.
M.WORD_BREAKS = " \t\n\"\\'`@$><=;|&{(,)[]+-*/%^~#"

local lib
local function load()
  if lib then return lib end
  local ok, l = pcall(ffi.load, "edit.so.2")
  if not ok then ok, l = pcall(ffi.load, "edit") end
  if not ok then
    return nil, "libedit not found (apt-get install libedit2): line editing is off"
  end
  lib = l
  return lib
end

function M.available()
  return load() ~= nil
end

function M.isatty(fd)
  return ffi.C.isatty(fd) == 1
end

-- A NULL-terminated char *[] that libedit frees: common prefix, matches...
local function match_array(matches)
  local arr = ffi.cast("char **", ffi.C.malloc(ffi.sizeof("char *") * (#matches + 2)))
  local common = matches[1]
  for i = 2, #matches do
    local m, j = matches[i], 0
    while j < #common and j < #m and common:byte(j + 1) == m:byte(j + 1) do j = j + 1 end
    common = common:sub(1, j)
  end
  arr[0] = ffi.C.strdup(common)
  for i, m in ipairs(matches) do arr[i] = ffi.C.strdup(m) end
  arr[#matches + 1] = nil
  return arr
end

--[[
Start a prompt. opts:
  prompt    text of the prompt (editor:set_prompt changes it)
  on_line   fn(line): a line was entered (nil: end of input, Ctrl-D)
  complete  fn(line_before_cursor) -> list of replacements of the word before the cursor
  history   path of the history file (read now, written after each line)
Returns the editor: editor:set_prompt(p), editor:reset() (drop the line being
typed: Ctrl-C), editor:print(text) (print above the prompt), editor:close().
]]
function M.new(opts)
  local l, err = load()
  if not l then return nil, err end
  local ed = { prompt = opts.prompt or "> ", active = false }
  l.rl_readline_name = "luabpf"
  -- Signals stay with the host: libedit must not re-raise SIGINT itself.
  l.rl_catch_signals = 0
  l.rl_catch_sigwinch = 1
  l.rl_initialize()
  ed.breaks = ffi.C.strdup(M.WORD_BREAKS) -- libedit keeps the pointer: never freed
  l.rl_completer_word_break_characters = ed.breaks
  l.rl_completion_append_character = 0
  l.rl_completion_query_items = 200
  if opts.history then
    l.stifle_history(1000)
    l.read_history(opts.history)
  end

  local on_line = ffi.cast("rl_vcpfunc_t *", function(cline)
    local line = cline ~= nil and ffi.string(cline) or nil
    if cline ~= nil then ffi.C.free(cline) end
    if line and line:find("%S") then
      l.add_history(line)
      if opts.history then l.write_history(opts.history) end
    end
    -- The prompt comes back after the command; output goes below the line.
    l.rl_callback_handler_remove()
    ed.active = false
    local ok, e = pcall(opts.on_line, line)
    if not ok then io.stderr:write("repl: ", tostring(e), "\n") end
    if not ed.closed and not ed.active then ed:show() end
  end)
  ed.on_line_cb = on_line

  if opts.complete then
    ed.complete_cb = ffi.cast("rl_completion_func_t *", function(text, start, finish)
      l.rl_attempted_completion_over = 1
      local line = ffi.string(l.rl_line_buffer, l.rl_point)
      local ok, matches = pcall(opts.complete, line)
      if not ok or type(matches) ~= "table" or #matches == 0 then return nil end
      return match_array(matches)
    end)
    l.rl_attempted_completion_function = ed.complete_cb
  end

  function ed:show()
    if self.closed then return end
    l.rl_callback_handler_install(self.prompt, on_line)
    self.active = true
    self.fresh = true -- libedit's rl_line_buffer is stale until the next key
  end

  function ed:set_prompt(p)
    self.prompt = p
  end

  -- Ctrl-C at the prompt: forget the line, show a fresh prompt.
  function ed:reset()
    if not self.active then return end
    io.stdout:write("\n")
    l.rl_replace_line("", 0)
    l.rl_callback_handler_remove()
    self.active = false
    self:show()
  end

  -- Print text (ending in a newline) above the prompt and the line being
  -- typed. libedit's own redisplay can't be forced from callback mode (its
  -- rl_redisplay queues ^R, an incremental search), so the prompt and line are
  -- redrawn here exactly where libedit believes they are: one row lower.
  function ed:print(text)
    if not self.active then
      io.stdout:write(text)
      return
    end
    local line = (not self.fresh and l.rl_line_buffer ~= nil) and ffi.string(l.rl_line_buffer, l.rl_end) or ""
    local back = self.fresh and 0 or #line - l.rl_point
    io.stdout:write("\r\27[K", text, self.prompt, line, back > 0 and ("\27[" .. back .. "D") or "")
    io.stdout:flush()
  end

  function ed:close()
    if self.closed then return end
    self.closed = true
    if self.active then l.rl_callback_handler_remove() end
    self.active = false
    if self.poll and not self.poll:is_closing() then self.poll:close() end
    if opts.history then l.write_history(opts.history) end
  end

  -- Compiled code must not call into C that calls back into Lua.
  local read_char = function() l.rl_callback_read_char() end
  jit.off(read_char)
  ed.poll = uv.new_poll(0)
  ed.poll:start("r", function()
    if ed.active then
      ed.fresh = false
      read_char()
    end
    -- libedit puts the terminal back in raw mode after on_line: undo it.
    if ed.closed then l.rl_callback_handler_remove() end
  end)
  ed:show()
  return ed
end

-- The history file: $LUABPF_HISTORY, else ~/.luabpf_history.
function M.history_path()
  local p = os.getenv("LUABPF_HISTORY")
  if p then return p ~= "" and p or nil end
  local home = os.getenv("HOME")
  return home and home .. "/.luabpf_history" or nil
end

return M
