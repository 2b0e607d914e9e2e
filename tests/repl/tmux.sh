# SPDX-License-Identifier: MIT
# Drive a program as a person would: in a terminal of tmux's own server
# (a private socket, removed on exit), keys in, the screen out.
source "$LUABPF_SOURCE_DIR/tests/lib.sh"
TMUX_SOCK="lbt$T_ID"
export LUABPF_HISTORY
LUABPF_HISTORY=$(mktemp)
tmux_cleanup() {
  tmux -L "$TMUX_SOCK" kill-server 2>/dev/null || true
  rm -f "$LUABPF_HISTORY"
  t_cleanup
}
trap tmux_cleanup EXIT

# term_start CMD: run CMD (a shell command line) in a 120x40 terminal (the
# pane then stays 60 s, for the screen to be read after CMD exits).
term_start() {
  tmux -L "$TMUX_SOCK" new-session -d -s t -x 120 -y 40 "$1; echo EXIT=\$?; sleep 60"
}
# keys KEY...: tmux key names (Enter, Tab, C-c, Up).
keys() { tmux -L "$TMUX_SOCK" send-keys -t t "$@"; }
# type TEXT: literal text, then Enter.
type_line() { tmux -L "$TMUX_SOCK" send-keys -t t -l "$1"; tmux -L "$TMUX_SOCK" send-keys -t t Enter; }
screen() { tmux -L "$TMUX_SOCK" capture-pane -p -t t -S -200; }
# wait_screen TEXT [SECONDS]: until the screen shows TEXT.
wait_screen() {
  local n=$(( ${2:-10} * 10 ))
  while ! screen | grep -qF -- "$1"; do
    n=$((n - 1))
    if [ "$n" -le 0 ]; then
      t_fail "the screen never showed '$1':"$'\n'"$(screen)"
      return 1
    fi
    sleep 0.1
  done
}
# screen_after TEXT: the screen's lines after the last one that contains TEXT
# (fails while no line contains it).
screen_after() {
  screen | awk -v s="$1" 'index($0, s) { seen = 1; buf = ""; next } { buf = buf $0 "\n" } END { printf "%s", buf; exit !seen }'
}
# wait_until WHAT SECONDS CMD...: until CMD (a function may read the screen)
# succeeds; a failure that names WHAT and shows the screen after SECONDS.
wait_until() {
  local what=$1 secs=$2
  shift 2
  t_wait "$secs" "$@" && return 0
  t_fail "$what: not within $secs s:"$'\n'"$(screen)"
  return 1
}
