# SPDX-License-Identifier: MIT
# `luabpf repl SCRIPT` in a terminal, as a person types: an expression, Tab
# completion of a global and of a map name, a live map's value (the loop keeps
# running while the prompt waits), a multi-line block, history, Ctrl-C on a
# runaway command and on a half-typed line, :help, Ctrl-D.
source "$LUABPF_SOURCE_DIR/tests/repl/tmux.sh"
SVC="$LUABPF_SOURCE_DIR/tests/repl/svc.lua"

term_start "'$LUABPF' repl '$SVC'"
wait_screen "luabpf>" || t_done
type_line "1 + 2"
wait_screen "3" && t_pass "an expression prints its value"

keys -l "cou"; keys Tab
wait_screen "luabpf> counts" && t_pass "Tab completes the global 'counts'"
keys Enter
wait_screen "luabpf.map 'counts' (hash, 4->8 bytes, 64 max)" && t_pass "a map prints its description"
n1=$(screen | grep -oE '^  1 => [0-9]+' | tail -1 | awk '{print $3}')
[ "${n1:-0}" -gt 0 ] && t_pass "a map prints its live entries (1 => $n1)" || t_fail "no entry in: $(screen)"

sleep 1
keys -l 'obj:map("co'; keys Tab
wait_screen 'luabpf> obj:map("counts' && t_pass "Tab completes a map name"
keys -l '"):lookup(1)'; keys Enter
sleep 0.5
n2=$(screen | grep -E '^[0-9]+ *$' | tail -1 | tr -d ' ')
[ "${n2:-0}" -gt "${n1:-0}" ] && t_pass "the timer ran while the prompt waited ($n1 -> $n2)" ||
  t_fail "the count did not move while the prompt waited ($n1 -> ${n2:-none})"

type_line "for i = 1, 2 do"
wait_screen "   ...>" && t_pass "an unfinished block continues"
type_line "print('line' .. i)"
type_line "end"
wait_screen "line2" && t_pass "the block ran"

type_line "'history' .. '!'"
wait_screen '"history!"'
keys Up; keys Enter
sleep 0.3
[ "$(screen | grep -c '"history!"')" -ge 2 ] && t_pass "Up recalls the last line" || t_fail "history: $(screen)"

type_line "while true do os.date() end"
sleep 0.5
keys C-c
wait_screen "error: input:1: interrupted" && t_pass "Ctrl-C interrupts a running command"
keys -l "this line is dropped"; keys C-c
sleep 0.3
type_line "ticks > 0"
wait_screen "true" && t_pass "the prompt works after Ctrl-C"
screen | grep -q "this line is droppedticks" && t_fail "Ctrl-C left the typed line: $(screen)" || t_pass "Ctrl-C drops a typed line"

type_line ":help"
wait_screen "Tab            complete globals" && t_pass ":help"
screen | grep -qE '^luabpf> count=' && t_fail "the script's print landed on the prompt line" ||
  t_pass "what handlers print goes above the prompt"
keys C-d
wait_screen "EXIT=0" && t_pass "Ctrl-D leaves with status 0"
grep -qF 'for\040i\040=\0401,\0402\040do' "$LUABPF_HISTORY" && t_pass "history is saved" || t_fail "history file: $(cat "$LUABPF_HISTORY")"

# Not a terminal: one chunk, its results, exit status.
out=$(echo 'return 6 * 7, counts ~= nil' | "$LUABPF" repl "$SVC" 2>&1) && rc=0 || rc=$?
t_eq "$rc" 0 "piped repl: exit status"
t_eq "$out" $'42\ttrue' "piped repl: output"
out=$(echo 'error("nope")' | "$LUABPF" repl 2>&1) && rc=0 || rc=$?
t_eq "$rc" 1 "piped repl, an error: exit status"
t_contains "$out" "ERROR: input:1: nope" "piped repl: the error"
t_done
