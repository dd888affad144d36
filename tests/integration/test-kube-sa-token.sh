#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The verifier's own token to the Kubernetes API is rotated (docs/kubernetes.md,
# "The verifier and the API server"): a projected service account token
# expires and the kubelet writes its successor into the same file. The
# verifier (here through a kubeconfig's tokenFile, read as the service
# account's token is) reads the file again after the API answers 401 and
# goes on with the new token: its Lease is renewed again, with no restart.
# (A file that cannot be read keeps the token in hand: test_kube_config.)
# Usage: test-kube-sa-token.sh KIMA_VERIFIER
set -u
V=$1
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
. "$HERE/helpers.sh"
FPID= VPID=
cleanup() {
    for p in $VPID $FPID; do kill -9 "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
need_tools curl openssl python3
P=$T/pki
bash "$HERE/make-certs.sh" "$P" node-1 >/dev/null || exit 1
mkdir -p "$T/policies" "$T/var"
echo '{"kind": "PodList", "items": []}' >"$T/pods.json"
python3 "$HERE/../helpers/fake-kube-api.py" --cert "$P/server.pem" --key "$P/server.key" \
    --token first-token --pods "$T/pods.json" --port-file "$T/api.port" >"$T/api.log" 2>&1 &
FPID=$!
wait_until 10 test -s "$T/api.port" || { echo "the fake API server did not start: $(cat "$T/api.log")"; exit 1; }
API=https://127.0.0.1:$(cat "$T/api.port")
ln -s "$P" "$T/pki"
echo first-token >"$T/token"
fake_kubeconfig "$T/kubeconfig" "{tokenFile: token}"
# renewals: the Lease's renewTime
renewed() {
    fake state | python3 -c '
import json, sys
ls = [l for l in json.load(sys.stdin)["leases"] if l["metadata"]["name"] == "kima-verifier"]
print(ls[0]["spec"].get("renewTime", "") if ls else "")'
}
# statuses SINCE: the statuses of the verifier's requests after the SINCE-th
statuses() {
    fake state | python3 -c '
import json, sys
rs = [r for r in json.load(sys.stdin)["requests"] if r.get("agent", "").startswith("kima-verifier")]
print(" ".join(str(r["status"]) for r in rs[int(sys.argv[1]):]))' "$1"
}
nreq() { statuses 0 | wc -w; }
POD_NAME=v1 POD_NAMESPACE=kima-system verifier_start "$T/verifier.log" 1 \
    --tls-cert "$P/server.pem" --tls-key "$P/server.key" --client-ca "$P/ca.pem" \
    --db "$T/var/kima.db" --audit-log "$T/var/audit.log" --audit-key "$T/var/audit.key" \
    --policies "$T/policies" --kubeconfig "$T/kubeconfig" --lease kima-verifier
has_lease() { [ -n "$(renewed)" ]; }
wait_until 20 has_lease && ok || bad "the verifier took no Lease: $(tail -3 "$T/verifier.log")"

renewed_since() { [ "$(renewed)" != "$1" ]; }

# Rotation: the kubelet writes the new token, the API stops taking the old.
n=$(nreq)
echo second-token >"$T/token.new" && mv "$T/token.new" "$T/token"
fake api-token '{"token": "second-token"}' >/dev/null
before=$(renewed)
wait_until 30 renewed_since "$before" && ok || bad "no renewal with the rotated token: $(statuses "$n")"
got=$(statuses "$n")
echo "the verifier's requests after the rotation: $got"
case " $got " in *" 401 "*) ok ;; *) bad "the old token was never refused (the test proves nothing): $got" ;; esac
[ "${got##* }" = 200 ] && ok || bad "the last request after the rotation was not 200: $got"
has "$T/verifier.log" "a new token read from" "the new token is logged"
grep -q "second-token\|first-token" "$T/verifier.log" && bad "a token is in the log" || ok
kill -0 "$VPID" 2>/dev/null && ok || bad "the verifier is gone"
summary
