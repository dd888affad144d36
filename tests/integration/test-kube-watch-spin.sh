#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Review finding R15-3: a watch the API server (or a proxy in front of it)
# answers 200 and ends at once, with no event, must not be retried at once
# for ever: that is a loop of HTTPS requests as fast as the verifier can make
# them, against the API server, with nothing in the log. Against the fake
# API server (tests/helpers/fake-kube-api.py, "end_at_once"), the watches
# made in 3 s are counted: the backoff (0.5 s, doubling) allows a handful;
# the loop made hundreds. No TPM: the verifier only watches here.
# Usage: test-kube-watch-spin.sh KIMA_VERIFIER
set -u
V=$1
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
. "$HERE/helpers.sh"
VPID= FPID=
cleanup() {
    for p in $VPID $FPID; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
need_tools curl openssl python3
P=$T/pki
bash "$HERE/make-certs.sh" "$P" node-1 >/dev/null || exit 1
mkdir -p "$T/policies" "$T/var"
echo '{"kind": "PodList", "items": []}' >"$T/pods.json"
python3 "$HERE/../helpers/fake-kube-api.py" --cert "$P/server.pem" --key "$P/server.key" \
    --token sekret --pods "$T/pods.json" --port-file "$T/api.port" >"$T/api.log" 2>&1 &
FPID=$!
wait_until 10 test -s "$T/api.port" || { echo "the fake API server did not start: $(cat "$T/api.log")"; exit 1; }
API=https://127.0.0.1:$(cat "$T/api.port")
fake_kubeconfig "$T/kubeconfig"
verifier_start "$T/verifier.log" 1 --tls-cert "$P/server.pem" --tls-key "$P/server.key" \
    --client-ca "$P/ca.pem" --db "$T/var/kima.db" --audit-log "$T/var/audit.log" \
    --audit-key "$T/var/audit.key" --policies "$T/policies" --kubeconfig "$T/kubeconfig"
watching() { [ "$(fake_count watches)" -ge 1 ]; }
wait_until 15 watching && ok || bad "the verifier does not watch"
fake watch '{"end_at_once": true, "close": true}' >/dev/null
sleep 0.5
W0=$(fake_count watches)
sleep 3
W1=$(fake_count watches)
echo "    watches in 3 s while every watch ends at once: $((W1 - W0))"
[ $((W1 - W0)) -le 20 ] && ok || bad "$((W1 - W0)) watches in 3 s: the verifier retries an empty watch at once"
kill -0 "$VPID" && ok || bad "the verifier died"
# Watches that last again: the verifier goes back to one, and a pod made
# now is sent to it.
fake watch '{"end_at_once": false}' >/dev/null
fake pods '{"uid": "dddddddd-0000-4000-8000-000000000001", "namespace": "apps", "name": "app-1", "nodeName": "node-1"}' >/dev/null
more() { [ "$(fake_count sent_rv)" != 0 ]; }
wait_until 40 more && ok || bad "the verifier stopped watching"
summary
