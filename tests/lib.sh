# SPDX-License-Identifier: MIT
# Shared by the shell tests: unique names, namespaces that are always removed,
# waiting, and assertions that say what they expected.
set -euo pipefail

: "${LUABPF:?run through ctest, or set LUABPF to the luabpf binary}"
PY=/usr/bin/python3 # Debian's interpreter: python3-scapy loads under it

T_ID="$(( $$ % 100000 ))$RANDOM"
T_NETNS=()
T_PIDS=()
T_DIRS=()
T_FAILS=0

t_cleanup() {
  set +e # a cleanup step that fails must not skip the ones after it
  local p ns
  for p in "${T_PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for p in "${T_PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  for ns in "${T_NETNS[@]:-}"; do [ -n "$ns" ] && ip netns del "$ns" 2>/dev/null || true; done
  for p in "${T_DIRS[@]:-}"; do [ -n "$p" ] && rm -rf "$p"; done
}
trap t_cleanup EXIT

# t_netns VAR: make a namespace with a unique name, store its name in VAR.
t_netns() {
  local name="lbt${1}${T_ID}"
  ip netns add "$name"
  T_NETNS+=("$name")
  ip -n "$name" link set lo up
  printf -v "$1" '%s' "$name"
}

# t_veth NS1 IF1 ADDR1 NS2 IF2 ADDR2: a veth pair between two namespaces.
t_veth() {
  ip link add "$2" netns "$1" type veth peer name "$5" netns "$4"
  ip -n "$1" addr add "$3" dev "$2"
  ip -n "$4" addr add "$6" dev "$5"
  ip -n "$1" link set "$2" up
  ip -n "$4" link set "$5" up
}

# t_as_nobody CMD...: run CMD as uid/gid 65534 (nobody), no groups. setpriv
# execs with root's capabilities and CMD's own loads run without them: run
# the program through sh when its libraries must be reached as nobody.
t_as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

# t_nobody_luabpf: NLUABPF is a luabpf that uid 65534 can run: this build's,
# or where a directory on its way is closed to it (a build tree in /root,
# 0700 on Debian 12) an install of this build in a directory it can reach,
# removed on exit (it must reach the Lua library too: attach --help loads
# it). Fails the test (and ends it) when even that can't run.
t_nobody_luabpf() {
  local d out
  NLUABPF=$LUABPF
  t_as_nobody sh -c '"$0" attach --help' "$NLUABPF" >/dev/null 2>&1 && return 0
  d=$(mktemp -d /tmp/luabpf-nobody.XXXXXX) && chmod 0755 "$d"
  T_DIRS+=("$d")
  cmake --install "$LUABPF_BUILD_DIR" --prefix "$d" >/dev/null
  NLUABPF=$d/bin/luabpf
  echo "note: uid 65534 can't run $LUABPF (a directory on its way is closed to it): it runs $NLUABPF"
  out=$(t_as_nobody sh -c '"$0" attach --help' "$NLUABPF" 2>&1) ||
    { t_fail "uid 65534 can't run luabpf installed in $d either: $out"; t_done; }
}

# t_wait SECONDS CMD...: retry CMD every 0.1 s until it succeeds.
t_wait() {
  local n=$(( $1 * 10 )); shift
  while ! "$@" >/dev/null 2>&1; do
    n=$((n - 1))
    [ "$n" -gt 0 ] || return 1
    sleep 0.1
  done
}

t_fail() { echo "FAIL: $*" >&2; T_FAILS=$((T_FAILS + 1)); }
t_pass() { echo "ok: $*"; }

# t_eq GOT WANT WHAT
t_eq() {
  if [ "$1" == "$2" ]; then t_pass "$3 = $2"; else t_fail "$3: got '$1', want '$2'"; fi
}

# t_contains TEXT PATTERN WHAT
t_contains() {
  if grep -qF -- "$2" <<<"$1"; then t_pass "$3"; else t_fail "$3: output lacks '$2':"$'\n'"$1"; fi
}

t_done() {
  if [ "$T_FAILS" -gt 0 ]; then echo "$T_FAILS check(s) failed" >&2; exit 1; fi
  echo "all checks passed"
}
