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

# The service's timer moves the count while the prompt waits (its report,
# printed above the prompt, shows it), then a lookup reads the new value.
count_past() { [ "$(screen | grep -oE '^count=[0-9]+' | tail -1 | cut -d= -f2)" -gt "${n1:-0}" ]; }
wait_until "a count above $n1 printed while the prompt waits" 10 count_past
keys -l 'obj:map("co'; keys Tab
wait_screen 'luabpf> obj:map("counts' && t_pass "Tab completes a map name"
keys -l '"):lookup(1)'; keys Enter
looked_up() { screen_after 'lookup(1)' | grep -qE '^[0-9]+ *$'; }
wait_until "the lookup's value" 10 looked_up
n2=$(screen_after 'lookup(1)' | grep -E '^[0-9]+ *$' | head -1 | tr -d ' ')
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
recalled() { [ "$(screen | grep -c '"history!"')" -ge 2 ]; }
wait_until "Up recalls the last line" 10 recalled && t_pass "Up recalls the last line"

# The command says when it runs: a Ctrl-C before that would reach the prompt.
type_line 'io.stderr:write("spin" .. "ning\n") while true do os.date() end'
wait_screen "spinning"
keys C-c
wait_screen "error: input:1: interrupted" && t_pass "Ctrl-C interrupts a running command"
keys -l "this line is dropped"; keys C-c
# Dropped: a fresh prompt under it (what is typed next goes there).
fresh_prompt() { screen_after "this line is dropped" | grep -qxE 'luabpf> ?'; }
wait_until "a fresh prompt after Ctrl-C on a typed line" 10 fresh_prompt
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
