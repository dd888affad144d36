#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# TLS session resumption at the verifier (verifier/http-tls.c), with
# `openssl s_client -sess_out/-sess_in`, TLS 1.3 and 1.2: a session made with
# node-1's agent certificate is resumed ("Reused") with no certificate given,
# and a request on it is answered as node-1 (its own route: 404 "unknown
# node", not registered; node-2's route: 403), while the same request
# without a session or certificate is 401. The certificate a resumed session
# carries is still checked on every request: once node-1's certificate is
# revoked (kimactl certs revoke, picked up from --crl without a restart),
# its resumed sessions get 401 "revoked", and so does a connection it kept
# alive across the revocation, while node-2 still gets in. After a
# restart (a new ticket key) a session of the run before is not resumed.
# Usage: test-tls-resume.sh KIMA_VERIFIER KIMACTL
set -u
V=$1
K=$2
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
. "$HERE/helpers.sh"
VPID=
cleanup() {
    [ -n "$VPID" ] && kill "$VPID" 2>/dev/null && wait "$VPID"
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
need_tools openssl timeout
P=$T/pki
LOG=$T/verifier.log
expect 0 "$K" certs init --out "$P" --server-name 127.0.0.1 --node node-1 --node node-2
mkdir -p "$T/var"
VARGS=(--tls-cert "$P/verifier/tls.crt" --tls-key "$P/verifier/tls.key" --client-ca "$P/ca.crt"
    --db "$T/var/kima.db" --audit-log "$T/var/audit.log" --audit-key "$T/var/audit.key"
    --crl "$P/crl.pem")
verifier_start "$LOG" 1 "${VARGS[@]}"

# req VERSION NODE [S_CLIENT ARGS...]: one POST /v1/nodes/NODE/challenges
# through openssl s_client (-tls1_3 or -tls1_2); its output in $T/out.
req() {
    local v=$1 node=$2
    shift 2
    printf 'POST /v1/nodes/%s/challenges HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}' \
        "$node" | timeout 10 openssl s_client "$v" -connect "${URL#https://}" \
        -CAfile "$P/ca.crt" -ign_eof "$@" >"$T/out" 2>&1
}
cert() { # NODE: s_client's certificate arguments for NODE's agent certificate
    echo -cert "$P/agents/$1/tls.crt" -key "$P/agents/$1/tls.key"
}

for v in -tls1_3 -tls1_2; do
    # shellcheck disable=SC2046
    req "$v" node-1 $(cert node-1) -sess_out "$T/node-1$v.sess"
    has "$T/out" "New, TLSv1.${v#-tls1_}" "$v: a full handshake first"
    has "$T/out" '"error":"unknown node"' "$v: node-1 with its certificate"
    [ -s "$T/node-1$v.sess" ] && ok || bad "$v: no session saved"
    # shellcheck disable=SC2046
    req "$v" node-2 $(cert node-2) -sess_out "$T/node-2$v.sess"

    req "$v" node-1 -sess_in "$T/node-1$v.sess"
    has "$T/out" "Reused, TLSv1.${v#-tls1_}" "$v: the session is resumed"
    has "$T/out" '"error":"unknown node"' "$v: a resumed session is answered as node-1"
    req "$v" node-2 -sess_in "$T/node-1$v.sess"
    has "$T/out" "Reused, TLSv1.${v#-tls1_}" "$v: resumed for another node's route"
    has "$T/out" "HTTP/1.1 403" "$v: node-1's resumed session on node-2's route"
    req "$v" node-1
    has "$T/out" "HTTP/1.1 401" "$v: no session and no certificate"
done

# A kept-alive connection of node-1 open across the revocation: its
# certificate's verdict is kept for the connection (http.c
# peer_role_cached()), and a new CRL must void it. Two requests, the second
# once $T/revoked exists; prints both statuses.
python3 - "${URL##*:}" "$P" "$T/revoked" >"$T/kept.out" 2>&1 <<'PY' &
import os, socket, ssl, sys, time
port, pki, flag = int(sys.argv[1]), sys.argv[2], sys.argv[3]
c = ssl.create_default_context(cafile=pki + "/ca.crt")
c.load_cert_chain(pki + "/agents/node-1/tls.crt", pki + "/agents/node-1/tls.key")
s = c.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=20),
                  server_hostname="127.0.0.1")
req = b"POST /v1/nodes/node-1/challenges HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}"
def status():
    s.sendall(req)
    b = b""
    while b"}" not in b:
        d = s.recv(65536)
        if not d:
            return "closed"
        b += d
    return b.split(b"\r\n", 1)[0].decode() + " " + b.rsplit(b"\r\n", 1)[-1].decode()
print("before:", status(), flush=True)
for _ in range(200):
    if os.path.exists(flag):
        break
    time.sleep(0.1)
print("after:", status(), flush=True)
PY
KEPT=$!
kept_first() { grep -q "^before:" "$T/kept.out"; }
wait_until 10 kept_first || bad "the kept-alive connection did not start: $(cat "$T/kept.out")"

# Revoked while its sessions live: every request on them is refused.
expect 0 "$K" certs revoke --out "$P" --node node-1
logged() { grep -qF -- "$1" "$LOG"; }
wait_until 10 logged "revokes 1 certificates" && ok || bad "the CRL was not loaded: $(tail -3 "$LOG")"
touch "$T/revoked"
wait "$KEPT"
has "$T/kept.out" 'before: HTTP/1.1 404 Not Found {"error":"unknown node"' "kept-alive node-1 before"
has "$T/kept.out" 'after: HTTP/1.1 401' "a kept-alive connection of a certificate revoked since is refused"
has "$T/kept.out" 'the client certificate is revoked' "and told why"
for v in -tls1_3 -tls1_2; do
    req "$v" node-1 -sess_in "$T/node-1$v.sess"
    has "$T/out" "Reused, TLSv1.${v#-tls1_}" "$v: the revoked certificate's session still resumes"
    has "$T/out" "HTTP/1.1 401" "$v: a request on it is refused"
    has "$T/out" "the client certificate is revoked" "$v: and says why"
    req "$v" node-2 -sess_in "$T/node-2$v.sess"
    has "$T/out" "Reused, TLSv1.${v#-tls1_}" "$v: node-2 resumes"
    has "$T/out" '"error":"unknown node"' "$v: node-2 is still answered"
done

# A restart makes a new ticket key: the sessions of the run before are not
# resumed, and without a certificate the request is 401.
kill "$VPID"
wait "$VPID"
verifier_start "$LOG" 2 "${VARGS[@]}"
for v in -tls1_3 -tls1_2; do
    req "$v" node-2 -sess_in "$T/node-2$v.sess"
    has "$T/out" "New, TLSv1.${v#-tls1_}" "$v: no resumption after a restart"
    has "$T/out" "HTTP/1.1 401" "$v: a stale session gives no identity"
done
summary
