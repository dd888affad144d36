# SPDX-License-Identifier: Apache-2.0
# Shared helpers for the integration tests (sourced): the tests start swtpm,
# the verifier and the agent on loopback through these and no other way
# (docs/design.md section 11).

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

# wait_until TIMEOUT_S CMD...: run CMD until it succeeds, every $WAIT_STEP
# seconds (default 0.1); 0 as soon as it does, 1 when TIMEOUT_S (whole
# seconds) pass first. The one place the suites wait: for a condition, never
# for a fixed time.
wait_until() {
    local timeout=$1 now end
    shift
    now=${EPOCHREALTIME/[.,]/}
    end=$((now + timeout * 1000000))
    while :; do
        "$@" && return 0
        now=${EPOCHREALTIME/[.,]/}
        [ "$now" -lt "$end" ] || return 1
        sleep "${WAIT_STEP:-0.1}"
    done
}

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
    # The socket files exist before swtpm listens on them: wait until both
    # take a connection.
    WAIT_STEP=0.01 wait_until 5 swtpm_listening "$dir" && return 0
    echo "swtpm did not start"
    return 1
}
swtpm_listening() {
    python3 -c 'import socket, sys
for p in sys.argv[1:]:
    s = socket.socket(socket.AF_UNIX)
    s.connect(p)
    s.close()' "$1/sock.ctrl" "$1/sock" 2>/dev/null
}
swtpm_stop() {
    [ -n "${SWTPM_PID:-}" ] && kill "$SWTPM_PID" 2>/dev/null && wait "$SWTPM_PID" 2>/dev/null
    SWTPM_PID=
}

# verifier_start LOG N ARGS...: start kima-verifier ($V) on a free loopback
# port with ARGS, logging to LOG; wait for its Nth "listening" line (N counts
# restarts with the same LOG); set VPID and URL.
verifier_start() {
    local log=$1 n=$2
    shift 2
    "$V" --listen 127.0.0.1:0 "$@" >>"$log" 2>&1 &
    VPID=$!
    WAIT_STEP=0.05 wait_until 10 verifier_listening "$log" "$n" && return 0
    echo "verifier did not start: $(tail -5 "$log")"
    exit 1
}
# verifier_listening LOG N: LOG holds N "listening" lines; URL from the last.
verifier_listening() {
    local lines
    # One snapshot: the Nth start's line and its port.
    lines=$(grep "listening on port" "$1" 2>/dev/null) || return 1
    [ "$(printf '%s\n' "$lines" | wc -l)" -eq "$2" ] || return 1
    URL=https://127.0.0.1:$(printf '%s\n' "$lines" | tail -1 | sed 's/.*port \([0-9]*\).*/\1/')
}

# agent_start [ARGS...]: kima-agent ($AG) for node $AGENT_NODE (default
# node-1) against $URL, with the swtpm ($SWTPM_TCTI), the securityfs
# stand-in $T/sfs, the node's certificate from $P (make-certs.sh), state in
# $T/state, the boot id in $T/boot_id, a round every 500 ms; ARGS added;
# logs to $T/agent.log. Sets APID.
agent_start() {
    local node=${AGENT_NODE:-node-1}
    "$AG" --verifier "$URL" --node "$node" --tcti "$SWTPM_TCTI" --securityfs "$T/sfs" \
        --cert "$P/agent-$node.pem" --key "$P/agent-$node.key" --cacert "$P/ca.pem" \
        --state-dir "$T/state" --boot-id-file "$T/boot_id" --interval-ms 500 \
        --min-interval-ms 100 "$@" >>"$T/agent.log" 2>&1 &
    APID=$!
}

# measure UID PATH DIGEST [OPTION...]: the kernel stand-in ima-writer ($W)
# appends a measurement of PATH by a process of pod UID (OPTIONs: --layout,
# --qos, --runtime, ...) to $T/sfs and extends PCR 10 of $SWTPM_TCTI; UID
# "host" for a process of the node itself. A failure counts.
measure() {
    local uid=$1 path=$2 digest=$3
    shift 3
    if [ "$uid" = host ]; then
        "$W" --securityfs "$T/sfs" --tcti "$SWTPM_TCTI" host "$path" "$digest" "$@" ||
            bad "measure $path on the host"
    else
        "$W" --securityfs "$T/sfs" --tcti "$SWTPM_TCTI" pod "$uid" "$path" "$digest" "$@" ||
            bad "measure $path in pod $uid"
    fi
}

# caught_up NODE KIMACTL_ARGS...: the verifier has read node NODE's whole
# list ($T/sfs/ima/runtime_measurements_count entries): every entry so far
# is judged or waits for its pod. KIMACTL_ARGS reach the operator API.
caught_up() {
    local node=$1 want next
    shift
    want=$(cat "$T/sfs/ima/runtime_measurements_count" 2>/dev/null) || return 1
    next=$("$@" nodes --json 2>/dev/null | python3 -c '
import json, sys
print([n["ima_next_index"] for n in json.load(sys.stdin)["nodes"] if n["name"] == sys.argv[1]][0])' \
        "$node" 2>/dev/null) || return 1
    [ "$next" = "$want" ]
}

summary() {
    echo "$pass passed, $fail failed"
    [ "$fail" -eq 0 ]
}

# The fake Kubernetes API server (tests/helpers/fake-kube-api.py) at $API,
# its CA $P/ca.pem: fake_kubeconfig FILE [USER] writes a kubeconfig for it
# (USER the user's YAML, default token "sekret"; the CA as pki/ca.pem beside
# FILE); fake PATH [DATA] calls one of
# its test controls (/_fake/PATH, a POST with DATA); fake_count NAME reads a
# counter of /_fake/state (lists, watches...).
fake_kubeconfig() {
    cat >"$1" <<YAML
apiVersion: v1
kind: Config
current-context: test
clusters:
- name: fake
  cluster:
    server: $API
    certificate-authority: pki/ca.pem
contexts:
- name: test
  context: {cluster: fake, user: kima}
users:
- name: kima
  user: ${2:-"{token: sekret}"}
YAML
}
fake() { curl -sS --cacert "$P/ca.pem" "$API/_fake/$1" ${2:+-d "$2"}; }
fake_count() { fake state | python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
