#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# kima's docker:// source against a real registry (Debian's docker-registry
# with TLS and htpasswd auth, registry.sh): an image built with umoci and
# pushed with skopeo is read back by tests/helpers/registry-tool; its
# manifest digest must be the one skopeo sees, every blob must verify, and
# a wrong password, no credentials, no CA and a missing tag must each fail
# with their sentence.
# kimactl policy generate reads the same image from the registry and from
# its OCI layout: the two policies must be the same files and digests, those
# of the files put in the image.
# Usage: test-registry.sh REGISTRY_TOOL KIMACTL
set -u
RT=$1
K=$2
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/kima-registry.XXXXXX")
. "$HERE/helpers.sh"
. "$HERE/registry.sh"
cleanup() {
    registry_stop
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
registry_tools

# No auth file of the machine's user may change what is tested.
export HOME=$T/home XDG_RUNTIME_DIR=
unset REGISTRY_AUTH_FILE
mkdir -p "$HOME"

# An image of a few files, two tags.
mkdir -p "$T/src/usr/bin" "$T/src/etc"
cp /bin/true "$T/src/usr/bin/true"
printf 'hello\n' >"$T/src/etc/motd"
# Incompressible, so that its layer streams through many reads (HTTP/2).
head -c 3000000 /dev/urandom >"$T/src/usr/bin/big"
ln -s usr/bin "$T/src/bin"
registry_image "$T/oci" v1 "$T/src" || { echo "umoci failed"; exit 1; }

registry_start "$T/reg" || exit 1
registry_push "$T/oci" v1 demo/app:v1 || { echo "skopeo push failed"; exit 1; }
registry_authfile "$T/auth.json"
registry_authfile "$T/wrong.json" "$REGISTRY_USER:not-the-password"

# The manifest as the registry serves it, per skopeo.
want=sha256:$(registry_skopeo inspect --raw --creds "$REGISTRY_USER:$REGISTRY_PASS" \
    --cert-dir "$REGISTRY_CERTS" "docker://$REGISTRY_HOST/demo/app:v1" | sha256sum | cut -d' ' -f1)
layers=$(registry_skopeo inspect --raw --creds "$REGISTRY_USER:$REGISTRY_PASS" \
    --cert-dir "$REGISTRY_CERTS" "docker://$REGISTRY_HOST/demo/app:v1" |
    python3 -c 'import json, sys; print(len(json.load(sys.stdin)["layers"]))')

# Read whole, by tag and by digest.
expect 0 "$RT" --authfile "$T/auth.json" --cacert "$REGISTRY_CA" "$REGISTRY_HOST" demo/app v1
has "$T/out" "manifest $want application/vnd.oci.image.manifest.v1+json" "by tag"
n=$(grep -c '^blob .* ok$' "$T/out")
[ "$n" -eq $((layers + 1)) ] && ok || bad "by tag: $n blobs verified, wanted $((layers + 1))"
expect 0 "$RT" --authfile "$T/auth.json" --cacert "$REGISTRY_CA" "$REGISTRY_HOST" demo/app "$want"
has "$T/out" "manifest $want" "by digest"

# The auth file from $REGISTRY_AUTH_FILE when none is given.
REGISTRY_AUTH_FILE=$T/auth.json expect 0 "$RT" --cacert "$REGISTRY_CA" "$REGISTRY_HOST" demo/app v1

# Refusals, each with its sentence.
expect 1 "$RT" --authfile "$T/wrong.json" --cacert "$REGISTRY_CA" "$REGISTRY_HOST" demo/app v1
has "$T/err" "authentication failed: check --authfile" "wrong password"
has "$T/err" "docker://$REGISTRY_HOST/demo/app:v1" "wrong password names the image"
expect 1 "$RT" --cacert "$REGISTRY_CA" "$REGISTRY_HOST" demo/app v1
has "$T/err" "authentication failed: check --authfile" "no auth file"
expect 1 "$RT" --authfile "$T/auth.json" "$REGISTRY_HOST" demo/app v1
has "$T/err" "TLS with the registry failed" "no CA"
expect 1 "$RT" --authfile "$T/auth.json" --cacert "$REGISTRY_CA" "$REGISTRY_HOST" demo/app v2
has "$T/err" "manifest \"v2\" not found in demo/app" "missing tag"
expect 1 "$RT" --authfile "$T/auth.json" --cacert "$REGISTRY_CA" "$REGISTRY_HOST" demo/app \
    sha256:0000000000000000000000000000000000000000000000000000000000000000
has "$T/err" "not found in demo/app" "missing digest"
# Credentials are not leaked into the sentences.
if grep -q "$REGISTRY_PASS\|$(printf '%s' "$REGISTRY_USER:$REGISTRY_PASS" | base64 -w0)" \
    "$T/err" "$T/out"; then
    bad "a credential in the output"
else
    ok
fi

# kimactl policy generate over the registry: the same policy as from the
# layout, with the digest of the file put in.
expect 0 "$K" policy generate --name app --namespace demo --authfile "$T/auth.json" \
    --cacert "$REGISTRY_CA" "docker://$REGISTRY_HOST/demo/app:v1"
cp "$T/out" "$T/from-registry.json"
expect 0 "$K" policy generate --name app --namespace demo "oci:$T/oci:v1"
cp "$T/out" "$T/from-layout.json"
python3 - "$T/from-registry.json" "$T/from-layout.json" "$T/src" <<'PY' && ok || bad "registry and layout policies differ"
import hashlib, json, os, sys
reg, lay = (json.load(open(p)) for p in sys.argv[1:3])
assert reg["digests"] == lay["digests"], (reg["digests"], lay["digests"])
want = "sha256:" + hashlib.sha256(open(os.path.join(sys.argv[3], "usr/bin/true"), "rb").read()).hexdigest()
assert reg["digests"]["/usr/bin/true"] == [want], reg["digests"]
# Pinned: the manifest digest the registry serves is among match.images.
assert any(i.startswith("sha256:") for i in reg["match"]["images"])
PY
grep -q "$want" "$T/from-registry.json" && ok || bad "the manifest digest $want is not in match.images"
# A wrong password: exit 69 (unavailable), no policy written.
expect 69 "$K" policy generate -o "$T/p.json" --namespace demo --authfile "$T/wrong.json" --cacert "$REGISTRY_CA" \
    "docker://$REGISTRY_HOST/demo/app:v1"
[ ! -e "$T/p.json" ] && ok || bad "a policy was written after an auth failure"
has "$T/err" "authentication failed: check --authfile" "kimactl: wrong password"
[ "$(grep -o "docker://$REGISTRY_HOST/demo/app:v1" "$T/err" | wc -l)" -eq 1 ] && ok ||
    bad "the image is named more than once: $(cat "$T/err")"

echo "registry: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
