# SPDX-License-Identifier: Apache-2.0
# Shared helpers for the integration tests (sourced). STYLE.md rule 19.

pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# expect CODE CMD...: run it, keep stdout in $T/out and stderr in $T/err.
expect() {
    local want=$1
    shift
    "$@" >"$T/out" 2>"$T/err"
    local got=$?
    if [ "$got" -eq "$want" ]; then ok; else bad "exit $got, wanted $want: $* ($(head -c 300 "$T/err"))"; fi
}
same() { if cmp -s "$1" "$2"; then ok; else bad "$3: output differs"; diff "$1" "$2" | head -5; fi; }
has() { if grep -qF -- "$2" "$1"; then ok; else bad "$3: no \"$2\" in $(head -c 300 "$1")"; fi; }
json() { if python3 -m json.tool "$1" >/dev/null 2>&1; then ok; else bad "$2: not JSON"; fi; }

# need_tools TOOL...: skip the test (exit 77) when one is not installed.
need_tools() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null || { echo "$t not installed"; exit 77; }
    done
}

# swtpm_start DIR: a fresh swtpm (all four PCR banks) on a Unix socket in DIR,
# a child of this shell; sets SWTPM_PID and SWTPM_TCTI. swtpm_stop ends it.
swtpm_start() {
    local dir=$1
    mkdir -p "$dir/state"
    swtpm socket --tpm2 --server "type=unixio,path=$dir/sock" \
        --ctrl "type=unixio,path=$dir/sock.ctrl" --tpmstate "dir=$dir/state" \
        --flags not-need-init,startup-clear >"$dir/swtpm.log" 2>&1 &
    SWTPM_PID=$!
    SWTPM_TCTI="swtpm:path=$dir/sock"
    for _ in $(seq 500); do
        [ -S "$dir/sock" ] && [ -S "$dir/sock.ctrl" ] && return 0
        sleep 0.01
    done
    echo "swtpm did not start"
    return 1
}
swtpm_stop() {
    [ -n "${SWTPM_PID:-}" ] && kill "$SWTPM_PID" 2>/dev/null && wait "$SWTPM_PID" 2>/dev/null
    SWTPM_PID=
}

# verifier_start LOG N ARGS...: start kima-verifier ($V) on a free loopback
# port with ARGS, logging to LOG; wait for its Nth "listening" line (N counts
# restarts with the same LOG); set VPID and URL.
verifier_start() {
    local log=$1 n=$2 lines
    shift 2
    "$V" --listen 127.0.0.1:0 "$@" >>"$log" 2>&1 &
    VPID=$!
    for _ in $(seq 200); do
        # One snapshot: the Nth start's line and its port.
        lines=$(grep "listening on port" "$log")
        if [ -n "$lines" ] && [ "$(printf '%s\n' "$lines" | wc -l)" -eq "$n" ]; then
            URL=https://127.0.0.1:$(printf '%s\n' "$lines" | tail -1 | sed 's/.*port \([0-9]*\).*/\1/')
            return 0
        fi
        sleep 0.05
    done
    echo "verifier did not start: $(tail -5 "$log")"
    exit 1
}

summary() {
    echo "$pass passed, $fail failed"
    [ "$fail" -eq 0 ]
}
