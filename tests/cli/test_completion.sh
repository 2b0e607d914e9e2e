# SPDX-License-Identifier: MIT
# The bash completion the .deb installs (packaging/completion/luabpf), driven
# as bash drives it: COMP_WORDS/COMP_CWORD set, _luabpf called, COMPREPLY
# read. Commands, options, ls kinds and selectors, names of maps loaded in
# the kernel (bpftool loads them here), running services, namespaces.
source "$LUABPF_SOURCE_DIR/tests/lib.sh"
WORK=$(mktemp -d)
DIR=/sys/fs/bpf/luabpf-test-comp$T_ID
cleanup() { rm -rf "$DIR"; t_cleanup; rm -rf "$WORK"; }
trap cleanup EXIT
set +u # the completion runs in the user's shell, not under set -u
source "$LUABPF_SOURCE_DIR/packaging/completion/luabpf"
complete -p luabpf | grep -q -- "-F _luabpf" && t_pass "complete -F _luabpf luabpf" || t_fail "not registered"

# comp WORD...: the completions of the last word (may be "") after the others.
comp() {
  COMP_WORDS=("$LUABPF" "$@")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  _luabpf
  printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//'
}

t_eq "$(comp "")" "attach cc check dump help lb ls repl run top version" "commands"
t_eq "$(comp l)" "lb ls" "commands starting with l"
t_eq "$(comp -v --watchdog 5 l)" "lb ls" "after global options"
t_eq "$(comp ls "")" "links maps pins progs" "ls kinds"
t_eq "$(comp ls m)" "maps" "ls m"
t_eq "$(comp ls maps "")" "id name pinned tag" "selectors"
t_eq "$(comp ls --j)" "--json" "ls options"
t_eq "$(comp help d)" "dump" "help COMMAND"
t_eq "$(comp check --kind "")" "filter lb script" "check --kind"
t_eq "$(comp cc --c)" "--cflags" "cc options"
t_eq "$(comp lb "")" "add drain enable list remove show stop weight" "lb commands"

# Map names from the kernel.
mkdir -p "$DIR"
bpftool prog loadall "$LUABPF_TEST_BPF_DIR/maps.bpf.o" "$DIR/p" pinmaps "$DIR/m"
t_contains " $(comp dump pc_) " " pc_hash " "dump completes map names"
t_contains " $(comp dump pc_) " " pc_small " "dump completes map names (all that match)"
t_eq "$(comp ls maps name pc_h)" "pc_hash" "ls maps name completes map names"
id=$(bpftool -j map show pinned "$DIR/m/pc_hash" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
t_contains " $(comp dump id "$id") " " $id " "dump id completes map ids"
t_contains "$(comp dump pinned "$DIR/m/pc_h")" "$DIR/m/pc_hash" "dump pinned completes pin paths"

# Services: a running one, by its control socket.
export LUABPF_RUN_DIR=$WORK/run
svc=comp$T_ID
"$LUABPF" --name "$svc" -e 'local t = require("luv").new_timer() t:start(60000, 0, function() t:close() end)' &
T_PIDS+=($!)
t_wait 10 test -S "$LUABPF_RUN_DIR/$svc.sock" || t_fail "the service's control socket never appeared"
t_eq "$(comp attach "")" "$svc" "attach completes running services"
t_eq "$(comp top c)" "$svc" "top completes running services"

# Namespaces for --netns.
t_netns N
t_contains " $(comp --netns "") " " $N " "--netns completes namespaces"
t_eq "$(comp --netns "$N" d)" "dump" "command after --netns NAME"
t_done
