#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Agents authenticated by projected ServiceAccount tokens (--agent-auth,
# docs/kubernetes.md "Agent identity"): kima-verifier reviews each token
# with the fake Kubernetes API server's TokenReview
# (tests/helpers/fake-kube-api.py); kima-agent sends its --token-file with
# no client certificate, against swtpm. Each refusal has its status: 401 a
# token that is not valid (expired, another audience, none at all), 403 a
# valid one that is not an agent's of this node, 503 when the API cannot
# tell (never 200); reviews are cached; a rotated token file is picked up;
# a token never opens an operator endpoint; made-up tokens from one address
# are bounded (429).
# Usage: test-kube-token.sh KIMA_VERIFIER KIMA_AGENT IMA_WRITER
set -u
V=$1
AG=$2
W=$3
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
. "$HERE/helpers.sh"
VPID= APID= FPID=
cleanup() {
    for p in $APID $VPID $FPID; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    swtpm_stop
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
need_tools swtpm curl openssl python3
P=$T/pki
bash "$HERE/make-certs.sh" "$P" node-1 >/dev/null || exit 1
mkdir -p "$T/policies" "$T/state" "$T/var"
echo "boot-$$" >"$T/boot_id"
echo '{"kind": "PodList", "items": []}' >"$T/pods.json"

python3 "$HERE/../helpers/fake-kube-api.py" --cert "$P/server.pem" --key "$P/server.key" \
    --token sekret --pods "$T/pods.json" --port-file "$T/api.port" >"$T/api.log" 2>&1 &
FPID=$!
wait_until 10 test -s "$T/api.port" || { echo "the fake API server did not start: $(cat "$T/api.log")"; exit 1; }
API=https://127.0.0.1:$(cat "$T/api.port")
fake_kubeconfig "$T/kubeconfig"

SA=system:serviceaccount:kima-system:kima-agent
# token NAME USER AUDIENCE NODE [EXPIRED]: a token the fake API knows ("null": no node claim)
token() {
    local node=\"$4\"
    [ "$4" = null ] && node=null
    fake tokens "{\"token\": \"$1\", \"username\": \"$2\", \"audiences\": [\"$3\"], \"node\": $node, \"expired\": ${5:-false}}" >/dev/null
}
token tok-node-1 "$SA" kima node-1
token tok-expired "$SA" kima node-1 true
token tok-audience "$SA" https://kubernetes.default.svc node-1
token tok-other-sa system:serviceaccount:default:default kima node-1
token tok-no-node "$SA" kima null
token tok-node-2 "$SA" kima node-2
fake tokens '{"token": "tok-two-nodes", "username": "'"$SA"'", "audiences": ["kima"], "nodes": ["node-1", "node-2"]}' >/dev/null

# The fake API's TokenReview answers as the API server does: 201 either
# way, authenticated with the user and the node claim, or an error.
review() { # TOKEN [AUTH]: the answer's status object, or the HTTP status
    curl -sS --cacert "$P/ca.pem" -H "Authorization: Bearer ${2:-sekret}" \
        -H 'Content-Type: application/json' -w '\n%{http_code}' \
        -d "{\"apiVersion\": \"authentication.k8s.io/v1\", \"kind\": \"TokenReview\", \"spec\": {\"token\": \"$1\", \"audiences\": [\"kima\"]}}" \
        "$API/apis/authentication.k8s.io/v1/tokenreviews"
}
review tok-node-1 | python3 -c '
import json, sys
body, code = sys.stdin.read().rsplit("\n", 1)
st = json.loads(body)["status"]
assert code == "201" and st["authenticated"] and st["audiences"] == ["kima"], (code, st)
assert st["user"]["username"] == sys.argv[1], st
assert st["user"]["extra"]["authentication.kubernetes.io/node-name"] == ["node-1"], st' "$SA" &&
    ok || bad "the fake's review of a valid token"
review tok-expired | python3 -c '
import json, sys
body, code = sys.stdin.read().rsplit("\n", 1)
st = json.loads(body)["status"]
assert code == "201" and not st.get("authenticated") and "expired" in st["error"], (code, st)' &&
    ok || bad "the fake's review of an expired token"
[ "$(review tok-node-1 wrong | tail -1)" = 401 ] && ok || bad "the fake's TokenReview without credentials"

# Without the API there is nothing to review tokens with: a start-up error.
"$V" --listen 127.0.0.1:0 --tls-cert "$P/server.pem" --tls-key "$P/server.key" \
    --client-ca "$P/ca.pem" --db "$T/var/none.db" --audit-log "$T/var/none.log" \
    --audit-key "$T/var/none.key" --pods-file "$T/pods.json" --agent-auth token >"$T/err" 2>&1
[ $? -eq 1 ] && grep -q "needs the Kubernetes API" "$T/err" && ok ||
    bad "--agent-auth token without the API must not start: $(tail -2 "$T/err")"
"$V" --agent-auth tokens >"$T/err" 2>&1
[ $? -eq 64 ] && grep -q "cert, token or either" "$T/err" && ok || bad "--agent-auth tokens is a usage error"

swtpm_start "$T/tpm" || exit 1
"$W" --securityfs "$T/sfs" --tcti "$SWTPM_TCTI" init || bad "ima-writer init"
verifier_start "$T/verifier.log" 1 --tls-cert "$P/server.pem" --tls-key "$P/server.key" \
    --client-ca "$P/ca.pem" --db "$T/var/kima.db" --audit-log "$T/var/audit.log" \
    --audit-key "$T/var/audit.key" --policies "$T/policies" --kubeconfig "$T/kubeconfig" \
    --interval-ms 500 --min-challenge-ms 0 --drain-timeout-ms 0 --agent-auth token

# call PATH TOKEN [CURL ARGS...]: POST {} to PATH with the bearer TOKEN ("" for
# none), no client certificate; the status on stdout, the body in $T/body.
call() {
    local path=$1 tok=$2
    shift 2
    curl -sS --cacert "$P/ca.pem" -o "$T/body" -w '%{http_code}' -X POST -d '{}' \
        -H 'Content-Type: application/json' ${tok:+-H "Authorization: Bearer $tok"} "$@" \
        "$URL$path"
}
# refused STATUS PATH TOKEN WHAT [WORD]: the call answers STATUS (with WORD in its detail).
refused() {
    local got
    got=$(call "$2" "$3")
    if [ "$got" = "$1" ] && { [ -z "${5:-}" ] || grep -qF -- "$5" "$T/body"; }; then ok; else
        bad "$4: $got, wanted $1 ${5:+with \"$5\"} ($(head -c 300 "$T/body"))"
    fi
    case "$3" in tok-*) ! grep -qF -- "$3" "$T/body" || bad "$4: the answer echoes the token" ;; esac
}
reviews() { fake_count reviews; }

# The agent with its token and no certificate: registered, attested, trusted.
printf 'tok-node-1\n' >"$T/token"
run_once() { # NODE: one round of the agent, its exit code
    "$AG" --verifier "$URL" --node "$1" --tcti "$SWTPM_TCTI" --securityfs "$T/sfs" \
        --cacert "$P/ca.pem" --token-file "$T/token" --state-dir "$T/state" \
        --boot-id-file "$T/boot_id" --once >>"$T/agent.log" 2>&1
}
run_once node-1
rc=$?
[ $rc -eq 0 ] && ok || bad "the agent with a token must attest (exit $rc): $(tail -3 "$T/agent.log")"
[ "$(reviews)" -ge 1 ] && ok || bad "no TokenReview was made"
grep -q "Authorization\|tok-node-1" "$T/verifier.log" && bad "the verifier logged the token" || ok

# node-1's token cannot act as node-2: register, challenge or send evidence.
run_once node-2
rc=$?
[ $rc -eq 2 ] && ok || bad "node-1's token as node-2 must fail the round (exit $rc)"
for action in registration activation challenges evidence; do
    refused 403 /v1/nodes/node-2/$action tok-node-1 "node-1's token on node-2's $action" "bound to node node-1"
done

refused 401 /v1/nodes/node-1/challenges tok-expired "an expired token" "has expired"
refused 401 /v1/nodes/node-1/challenges tok-audience "a token of another audience" "not valid"
refused 401 /v1/nodes/node-1/challenges tok-unknown "a token the API does not know" "not valid"
refused 403 /v1/nodes/node-1/challenges tok-other-sa "another ServiceAccount's token" "default:default"
refused 403 /v1/nodes/node-1/challenges tok-no-node "a token without the node claim" "bound to no node"
refused 403 /v1/nodes/node-1/challenges tok-node-2 "node-2's token on node-1" "bound to node node-2"
refused 403 /v1/nodes/node-1/challenges tok-two-nodes "a token naming two nodes" "not one node name"
refused 401 /v1/nodes/node-1/challenges "" "neither a token nor a certificate" "bearer token"
refused 401 /v1/nodes/node-1/challenges 'not a token!' "garbage after Bearer"
# Two Authorization headers are refused whatever they hold: which one a
# proxy in front would have read is not known (review R17-3).
for second in tok-node-1 junk; do
    got=$(call /v1/nodes/node-1/challenges tok-node-1 -H "Authorization: Bearer $second")
    [ "$got" = 401 ] && grep -q "more than one Authorization" "$T/body" && ok ||
        bad "two Authorization headers (the second $second): $got, wanted 401 ($(cat "$T/body"))"
done
# In --agent-auth token mode the agent certificate counts for nothing.
got=$(call /v1/nodes/node-1/challenges "" --cert "$P/agent-node-1.pem" --key "$P/agent-node-1.key")
[ "$got" = 401 ] && ok || bad "an agent certificate with --agent-auth token: $got, wanted 401"

# A token never opens an operator endpoint.
for path in /v1/nodes /v1/nodes/node-1 /v1/pods /v1/policies /metrics; do
    got=$(curl -sS --cacert "$P/ca.pem" -o "$T/body" -w '%{http_code}' \
        -H "Authorization: Bearer tok-node-1" "$URL$path")
    [ "$got" = 401 ] && ok || bad "GET $path with an agent's token: $got, wanted 401"
done
got=$(curl -sS --cacert "$P/ca.pem" -o "$T/body" -w '%{http_code}' -X DELETE \
    -H "Authorization: Bearer tok-node-1" "$URL/v1/nodes/node-1")
[ "$got" = 401 ] && ok || bad "DELETE /v1/nodes/node-1 with its agent's token: $got, wanted 401"
got=$(curl -sS --cacert "$P/ca.pem" -o "$T/body" -w '%{http_code}' --cert "$P/operator.pem" \
    --key "$P/operator.key" "$URL/v1/nodes")
[ "$got" = 200 ] && ok || bad "the operator certificate still works: $got"

# The cache: a token reviewed once is not reviewed again within the TTL;
# a refusal is remembered briefly too.
token tok-cache "$SA" kima node-1
n=$(reviews)
[ "$(call /v1/nodes/node-1/challenges tok-cache)" = 200 ] && ok || bad "tok-cache: $(cat "$T/body")"
[ "$(call /v1/nodes/node-1/challenges tok-cache)" = 200 ] && ok || bad "tok-cache again: $(cat "$T/body")"
[ "$(reviews)" -eq $((n + 1)) ] && ok || bad "two requests within the TTL made $(($(reviews) - n)) reviews, wanted 1"

# Made-up tokens: each refused one costs a TokenReview, so one address
# has 10 refused per 10 s, then 429 (Retry-After) without a review; an
# agent token already in the cache still works from it, and other addresses
# are not affected (review R17-2). The flood comes from 127.0.0.2.
from2=(--interface 127.0.0.2)
token tok-flood "$SA" kima node-1
token tok-flood-new "$SA" kima node-1
[ "$(call /v1/nodes/node-1/challenges tok-flood "${from2[@]}")" = 200 ] && ok ||
    bad "tok-flood from 127.0.0.2: $(cat "$T/body")"
n=$(reviews)
codes=
for i in $(seq 1 10); do codes+="$(call /v1/nodes/node-1/challenges "junk-$i" "${from2[@]}") "; done
[ "$codes" = "$(printf '401 %.0s' $(seq 1 10))" ] && ok || bad "10 made-up tokens: $codes, wanted 401 each"
got=$(call /v1/nodes/node-1/challenges junk-11 "${from2[@]}" -D "$T/headers")
[ "$got" = 429 ] && grep -q "refused in the last" "$T/body" && grep -qi "^Retry-After: 10" "$T/headers" &&
    ok || bad "the 11th made-up token from one address: $got, wanted 429 ($(cat "$T/body"))"
[ "$(call /v1/nodes/node-1/challenges tok-flood-new "${from2[@]}")" = 429 ] && ok ||
    bad "a valid token not in the cache from the throttled address: $(cat "$T/body")"
[ "$(reviews)" -eq $((n + 10)) ] && ok || bad "the flood made $(($(reviews) - n)) reviews, wanted 10"
[ "$(call /v1/nodes/node-1/challenges tok-flood "${from2[@]}")" = 200 ] && ok ||
    bad "a cached agent token from the throttled address: $(cat "$T/body")"
refused 401 /v1/nodes/node-1/challenges junk-12 "a made-up token from another address" "not valid"
[ "$(reviews)" -eq $((n + 11)) ] && ok || bad "another address's token was not reviewed"

# The API down: 503 for a token not in the cache, never 200.
token tok-fresh "$SA" kima node-1
fake down '{"seconds": 30}' >/dev/null
refused 503 /v1/nodes/node-1/challenges tok-fresh "a new token while the API is down" "answered 503"
# A cached positive review past its token's exp is not used: with the API
# down that is a 503 too. The token is a JWT whose exp is 2 s away.
fake down '{"seconds": 0}' >/dev/null
exp=$(($(date +%s) + 2))
b64url() { printf '%s' "$1" | base64 -w0 | tr '+/' '-_' | tr -d '='; }
JWT="$(b64url '{"alg":"none"}').$(b64url "{\"exp\":$exp,\"sub\":\"$SA\"}").c2ln"
token "$JWT" "$SA" kima node-1
[ "$(call /v1/nodes/node-1/challenges "$JWT")" = 200 ] && ok || bad "the JWT token: $(cat "$T/body")"
past_exp() { [ "$(date +%s)" -gt "$exp" ]; }
wait_until 10 past_exp || bad "the clock did not pass exp"
fake down '{"seconds": 30}' >/dev/null
refused 503 /v1/nodes/node-1/challenges "$JWT" "a cached review past the token's exp, the API down"
# Injected 429 and 500 answers: 503 as well.
fake down '{"seconds": 0}' >/dev/null
token tok-throttled "$SA" kima node-1
for st in 429 500; do
    fake fail "{\"method\": \"POST\", \"status\": $st, \"count\": 1, \"path\": \"tokenreviews\"}" >/dev/null
    refused 503 /v1/nodes/node-1/challenges tok-throttled "the API answering $st"
done
[ "$(call /v1/nodes/node-1/challenges tok-throttled)" = 200 ] && ok ||
    bad "after the API recovered: $(cat "$T/body")"
# A slow API (every answer 7 s late, past the review's 5 s): 503, never 200.
token tok-slow "$SA" kima node-1
fake slow '{"seconds": 30, "delay": 7}' >/dev/null
refused 503 /v1/nodes/node-1/challenges tok-slow "a review slower than its timeout"
fake slow '{"seconds": 0, "delay": 0}' >/dev/null

# Rotation: the running agent picks up a new token file, swapped as the
# kubelet swaps it (a new folder, the ..data symlink renamed over).
token tok-rotated "$SA" kima node-1
mkdir -p "$T/sa/..v1" "$T/sa/..v2"
printf 'tok-node-1' >"$T/sa/..v1/token"
ln -s ..v1 "$T/sa/..data"
ln -s ..data/token "$T/sa/token"
"$AG" --verifier "$URL" --node node-1 --tcti "$SWTPM_TCTI" --securityfs "$T/sfs" \
    --cacert "$P/ca.pem" --token-file "$T/sa/token" --state-dir "$T/state" \
    --boot-id-file "$T/boot_id" --interval-ms 500 --min-interval-ms 100 --log-level debug \
    >>"$T/agent.log" 2>&1 &
APID=$!
reviewed() { fake state | python3 -c 'import json,sys; print(json.load(sys.stdin)["reviewed"].get(sys.argv[1], 0))' "$1"; }
accepted_after() { [ "$(grep -c 'round: trusted' "$T/agent.log")" -gt "$1" ]; }
wait_until 20 accepted_after 0 || bad "the running agent does not attest: $(tail -3 "$T/agent.log")"
printf 'tok-rotated\n' >"$T/sa/..v2/token"
ln -s ..v2 "$T/sa/..data_tmp" && mv -T "$T/sa/..data_tmp" "$T/sa/..data"
is_reviewed() { [ "$(reviewed tok-rotated)" -ge 1 ]; }
wait_until 20 is_reviewed && ok || bad "the rotated token was never sent"
# The old token revoked: the agent goes on with the new one.
token tok-node-1 "$SA" kima node-1 true
n=$(grep -c 'round: trusted' "$T/agent.log")
wait_until 30 accepted_after "$((n + 2))" && ok || bad "the agent stopped attesting after the rotation: $(tail -3 "$T/agent.log")"
grep -q "a new token" "$T/agent.log" && ok || bad "the agent did not say it read a new token"
kill "$APID"
wait "$APID"
APID=

# A token file that turns to garbage: refused by the agent, nothing sent.
printf 'tok rotated\n' >"$T/token"
run_once node-1
rc=$?
[ $rc -eq 2 ] && grep -q "not one a bearer token has" "$T/agent.log" && ok ||
    bad "a garbage token file must fail the round with a clear error (exit $rc)"

# --agent-auth either: an agent certificate as before; with a token too,
# both must name the node.
kill "$VPID"
wait "$VPID"
verifier_start "$T/verifier.log" 2 --tls-cert "$P/server.pem" --tls-key "$P/server.key" \
    --client-ca "$P/ca.pem" --db "$T/var/kima.db" --audit-log "$T/var/audit.log" \
    --audit-key "$T/var/audit.key" --policies "$T/policies" --kubeconfig "$T/kubeconfig" \
    --interval-ms 500 --min-challenge-ms 0 --drain-timeout-ms 0 --agent-auth either
cert=(--cert "$P/agent-node-1.pem" --key "$P/agent-node-1.key")
got=$(call /v1/nodes/node-1/challenges "" "${cert[@]}")
[ "$got" = 200 ] && ok || bad "either: the agent certificate alone: $got ($(cat "$T/body"))"
got=$(call /v1/nodes/node-1/challenges tok-node-2 "${cert[@]}")
[ "$got" = 403 ] && ok || bad "either: node-1's certificate with node-2's token: $got, wanted 403"
got=$(call /v1/nodes/node-1/challenges tok-rotated "${cert[@]}")
[ "$got" = 200 ] && ok || bad "either: certificate and token of node-1: $got ($(cat "$T/body"))"
got=$(call /v1/nodes/node-1/challenges tok-rotated)
[ "$got" = 200 ] && ok || bad "either: the token alone: $got ($(cat "$T/body"))"
refused 401 /v1/nodes/node-1/challenges "" "either: neither" "client certificate"
# The API gone altogether (connection refused): 503 for a token, and an
# agent certificate still works.
token tok-late "$SA" kima node-1
kill "$FPID"
wait "$FPID" 2>/dev/null
FPID=
refused 503 /v1/nodes/node-1/challenges tok-late "the API unreachable" "cannot be reached"
got=$(call /v1/nodes/node-1/challenges "" "${cert[@]}")
[ "$got" = 200 ] && ok || bad "either, the API unreachable: the agent certificate alone: $got"
summary
