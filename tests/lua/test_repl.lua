-- SPDX-License-Identifier: MIT
-- The REPL's parts without a terminal: the printer, compiling what was
-- typed (unfinished input continues), eval with captured output and errors,
-- completion against a live object, and the control socket's framing.
local t = require("t")
local pretty = require("luabpf.pretty")
local repl = require("luabpf.repl")
local P = require("luabpf._repl_proto")

-- Printer
t.eq(pretty.format({ 1, 2, x = "a\n\0", ["a b"] = true }), '{ 1, 2, ["a b"] = true, x = "a\\n\\x00" }', "table")
t.eq(pretty.format(bpf.u64 and 18446744073709551615ULL or 0ULL), "18446744073709551615", "uint64 cdata")
t.eq(pretty.format(-5LL), "-5", "int64 cdata")
t.eq(pretty.format(2 ^ 40), "1099511627776", "integral double")
t.eq(pretty.format(0.5), "0.5", "fraction")
local cyc = {} cyc.me = cyc
t.eq(pretty.format(cyc), "{ me = <cycle> }", "cycle")
local long = pretty.format({ a = ("x"):rep(50), b = ("y"):rep(50) }, { width = 60 })
t.eq(long, '{\n  a = "' .. ("x"):rep(50) .. '",\n  b = "' .. ("y"):rep(50) .. '"\n}', "breaks lines past width")

-- Compile: expressions, statements, unfinished blocks
t.ok(repl.compile("1 + 1"), "expression")
t.ok(repl.compile("x = 1"), "statement")
local fn, err, more = repl.compile("for i = 1, 3 do")
t.eq(fn, nil, "unfinished block") t.eq(more, true, "unfinished block continues")
fn, err, more = repl.compile("x = = 1")
t.eq(more, false, "a syntax error does not continue")
t.ok(err:find("unexpected symbol", 1, true), "syntax error message: " .. err)

-- Eval in a strict environment, output captured
local env = bpf._sys.new_env("test")
local obj = assert(bpf.load(t.object("maps"), { max_entries = { counts = 16 } }))
rawset(env, "obj", obj)
rawset(env, "counts", obj:map("counts"))
local r = repl.eval("counts:update(7, 70) print('hi', 1) io.write('w') return counts:lookup(7), 'x'", env, { capture = true })
t.ok(r.ok, "eval ok") t.eq(r.out, "hi\t1\nw", "captured output") t.same(r.values, { "70", '"x"' }, "values")
r = repl.eval("y = 5", env) t.ok(r.ok, "top-level assignment") t.eq(rawget(env, "y"), 5, "declares a global")
r = repl.eval("local function f() zz = 1 end f()", env)
t.eq(r.ok, false, "strict mode inside a function")
t.ok(r.err:find("undeclared global 'zz'", 1, true), "strict message: " .. r.err)
t.ok(r.err:find("stack traceback:", 1, true) and r.err:find("in function 'f'", 1, true), "traceback: " .. r.err)
t.eq(r.err:find("repl.lua", 1, true), nil, "the REPL's own frames are trimmed: " .. r.err)
r = repl.eval("counts", env)
t.eq(r.values[1], "luabpf.map 'counts' (hash, 4->8 bytes, 16 max)\n  7 => 70", "a map prints its entries")
r = repl.eval("if true then", env) t.eq(r.more, true, "eval: unfinished")

-- Completion
t.same(repl.complete(env, "cou"), { "counts" }, "a global")
t.same(repl.complete(env, "x = counts:lookup_"), { "counts:lookup_and_delete", "counts:lookup_batch", "counts:lookup_sum" }, "methods")
t.same(repl.complete(env, 'obj:map("co'), { "counts" }, "a map name")
t.same(repl.complete(env, "bpf.ver"), { "bpf.version" }, "a module field")
t.same(repl.complete(env, "string.up"), { "string.upper" }, "a library field")
t.same(repl.complete(env, "nosuch.x"), {}, "nothing for an unknown name")
t.same(repl.complete(env, "whi"), { "while" }, "a keyword")

-- Framing
local d = P.decoder()
t.same(d("eval 3\nab"), {}, "partial frame waits")
t.same(d("c"), { { "eval", "abc" } }, "frame completes")
t.same(d("a 0\nb 1\nz"), { { "a", "" }, { "b", "z" } }, "two frames")
local bad, why = P.decoder()("GARBAGE\n")
t.eq(bad, nil, "garbage refused") t.ok(why:find("not a frame header", 1, true), why)
bad, why = P.decoder()(("x"):rep(100))
t.eq(bad, nil, "endless header refused")
bad, why = P.decoder()("eval 999999999999\n")
t.eq(bad, nil, "huge frame refused") t.ok(why:find("at most", 1, true), why)
obj:close()
print("ok")
