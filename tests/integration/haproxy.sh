# SPDX-License-Identifier: Apache-2.0
# haproxy (Debian's) in front of verifiers, as a Kubernetes Service would
# be (sourced). TCP mode: TLS goes through untouched, so the agents' client
# certificates reach the verifiers, which still do all of mTLS. Each
# verifier is checked with GET /readyz over TLS (anonymous: the verifier
# asks for a client certificate but /readyz does not need one) every
# 500 ms, marked down after 2 failures (the sessions it had are shut, so
# their clients see the end at once), up after 2 successes; a connection
# that cannot be made is tried again on another verifier (redispatch). It
# listens on loopback only, runs in the foreground as a child of the
# calling shell (no daemon, no system service), writes its warnings
# (a server going down or up) to DIR/haproxy.log
# and answers "show stat" on DIR/admin.sock. Every wait is bounded.
#
#   haproxy_need                 exit 77 (skip) without the haproxy binary
#   haproxy_free_port            print a loopback port free at this moment
#   haproxy_start DIR PORT HOST:PORT...
#                                write DIR/haproxy.cfg (servers v1, v2, ...
#                                in the order given), start haproxy on
#                                127.0.0.1:PORT, wait until it listens; sets
#                                HAPROXY_PID, HAPROXY_URL. 1 on failure.
#   haproxy_up_count DIR         print how many servers the checks see UP
#   haproxy_wait_up DIR N [S]    wait up to S s (10) until N servers are UP
#   haproxy_stop                 stop it (SIGUSR1, soft stop; SIGKILL after
#                                5 s); nothing when none runs

haproxy_need() {
    command -v haproxy >/dev/null && return 0
    echo "haproxy is not installed: tests/tools/install-deps.sh installs it"
    exit 77
}

haproxy_free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

haproxy_config() {
    local dir=$1 port=$2 i=0 b maxconn hard
    shift 2
    # two descriptors a connection (client and server side), within the
    # hard limit haproxy may raise its own to
    hard=$(ulimit -Hn)
    [ "$hard" = unlimited ] && hard=65536
    maxconn=$(((hard - 200) / 2))
    [ "$maxconn" -le 16000 ] || maxconn=16000
    cat <<CFG
global
    maxconn $maxconn
    stats socket $dir/admin.sock mode 600 level admin

defaults
    mode tcp
    timeout connect 1s
    timeout client 90s
    timeout server 90s
    timeout check 1s
    # a connection refused or timed out is tried again, the last time on
    # another server: a verifier just killed is not yet marked down
    retries 3
    option redispatch 1

frontend kima
    bind 127.0.0.1:$port
    default_backend verifiers

backend verifiers
    balance leastconn
    option httpchk GET /readyz
    http-check expect status 200
    default-server check check-ssl verify none inter 500 fall 2 rise 2 on-marked-down shutdown-sessions
CFG
    for b in "$@"; do
        i=$((i + 1))
        echo "    server v$i $b"
    done
}

haproxy_listening() {
    python3 -c 'import socket, sys
s = socket.socket()
s.settimeout(1)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.close()' "$1" 2>/dev/null
}

haproxy_start() {
    local dir=$1 port=$2
    shift 2
    mkdir -p "$dir"
    haproxy_config "$dir" "$port" "$@" >"$dir/haproxy.cfg"
    haproxy -c -q -f "$dir/haproxy.cfg" >"$dir/haproxy.log" 2>&1 ||
        { echo "haproxy refuses its configuration: $(tail -5 "$dir/haproxy.log")"; return 1; }
    haproxy -f "$dir/haproxy.cfg" -db >>"$dir/haproxy.log" 2>&1 &
    HAPROXY_PID=$!
    HAPROXY_URL=https://127.0.0.1:$port
    WAIT_STEP=0.05 wait_until 10 haproxy_listening "$port" && return 0
    echo "haproxy did not start: $(tail -5 "$dir/haproxy.log")"
    return 1
}

# "show stat" is CSV: field 2 the server's name, field 18 its status.
haproxy_up_count() {
    python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(2)
s.connect(sys.argv[1])
s.sendall(b"show stat\n")
out = b""
while True:
    d = s.recv(65536)
    if not d or len(out) > 1 << 20:
        break
    out += d
n = 0
for line in out.decode(errors="replace").splitlines():
    f = line.split(",")
    if len(f) > 17 and f[0] == "verifiers" and f[1] not in ("BACKEND", "FRONTEND") and f[17] == "UP":
        n += 1
print(n)' "$1/admin.sock" 2>/dev/null || echo 0
}

haproxy_has_up() { [ "$(haproxy_up_count "$1")" -ge "$2" ]; }

haproxy_wait_up() {
    wait_until "${3:-10}" haproxy_has_up "$1" "$2"
}

haproxy_stop() {
    [ -n "${HAPROXY_PID:-}" ] || return 0
    kill -USR1 "$HAPROXY_PID" 2>/dev/null
    WAIT_STEP=0.1 wait_until 5 eval '! kill -0 "$HAPROXY_PID" 2>/dev/null' ||
        kill -9 "$HAPROXY_PID" 2>/dev/null
    wait "$HAPROXY_PID" 2>/dev/null
    HAPROXY_PID=
}
