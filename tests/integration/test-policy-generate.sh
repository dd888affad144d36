#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# kimactl policy generate, merge and diff on images built here with umoci
# and copied with skopeo (oci:, oci-archive:, docker-archive:). The digests
# generated must equal sha256sum over an independent unpack (umoci unpack)
# of the same image; -o is atomic (an error leaves no file and no temporary
# one); every failure exits with its documented code.
#
# The generation itself needs the layer reader (policies/image-layer.c and
# image-tree.c): while those are stand-ins ("not built yet"), the checks
# that need no layer run and the rest is skipped (exit 77).
# Usage: test-policy-generate.sh KIMACTL
set -u
K=$1
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
. "$HERE/helpers.sh"
cleanup() { [ -n "${KEEP:-}" ] || rm -rf "$T"; }
trap cleanup EXIT
need_tools umoci skopeo python3 sha256sum

# --- images: v1 and v2 (hello changed), built with umoci
build_image() { # LAYOUT TAG HELLO_TEXT
    local b=$T/bundle-$2
    umoci init --layout "$1" 2>/dev/null
    umoci new --image "$1:$2" >/dev/null 2>&1
    umoci unpack --rootless --image "$1:$2" "$b" >/dev/null 2>&1
    mkdir -p "$b/rootfs/usr/bin" "$b/rootfs/usr/lib" "$b/rootfs/etc"
    printf '#!/bin/sh\necho %s\n' "$3" >"$b/rootfs/usr/bin/hello"
    chmod 755 "$b/rootfs/usr/bin/hello"
    cp /usr/bin/true "$b/rootfs/usr/bin/true"
    cp /usr/bin/true "$b/rootfs/usr/lib/libnotexec.so"
    chmod 644 "$b/rootfs/usr/lib/libnotexec.so" # ELF, no x bit: still measured
    echo "setting=1" >"$b/rootfs/etc/app.conf"
    ln -s usr/bin "$b/rootfs/bin"
    umoci repack --image "$1:$2" "$b" >/dev/null 2>&1
}
build_image "$T/L" v1 hi
build_image "$T/L" v2 hello
skopeo copy -q "oci:$T/L:v1" "oci-archive:$T/a.tar:v1" || bad "skopeo oci-archive"
skopeo copy -q "oci:$T/L:v1" "docker-archive:$T/d.tar:demo/app:v1" || bad "skopeo docker-archive"

# "path digest" lines, sorted, of a policy's digests.
digests() {
    python3 -c 'import json,sys
d=json.load(open(sys.argv[1]))["digests"]
for p in sorted(d):
    for x in d[p]: print(p, x)' "$1"
}
# The same from an independent unpack: regular files with an x bit or
# the ELF magic, under their path in the image.
expected() { # TAG [all]
    local r=$T/check-$1
    rm -rf "$r"
    umoci unpack --rootless --image "$T/L:$1" "$r" >/dev/null 2>&1
    (cd "$r/rootfs" && find . -type f | sort | while read -r f; do
        if [ "${2:-}" = all ] || [ -x "$f" ] || [ "$(head -c 4 "$f" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
            echo "${f#.} sha256:$(sha256sum "$f" | cut -d' ' -f1)"
        fi
    done)
}

# --- what needs no layer: usage, unreadable and malformed inputs
expect 64 "$K" policy generate "oci:$T/L:v1"
has "$T/err" "a PodPolicy needs --namespace or --label" "no match"
expect 64 "$K" policy generate --node --namespace x "oci:$T/L:v1"
expect 64 "$K" policy generate --namespace ns "$T/L"
has "$T/err" "starts with oci:" "a SOURCE without its kind"
expect 64 "$K" policy generate --namespace ns --platform linux "oci:$T/L:v1"
expect 64 "$K" policy generate --namespace ns --hash md5 "oci:$T/L:v1"
expect 64 "$K" policy generate --namespace ns --include '(' "oci:$T/L:v1"
expect 64 "$K" policy generate --namespace ns --label noequals "oci:$T/L:v1"
expect 0 "$K" policy --help
has "$T/out" "kimactl policy generate" "policy --help"
expect 66 "$K" policy generate --namespace ns "oci:$T/nowhere:v1"
expect 66 "$K" policy generate --namespace ns "oci-archive:$T/nowhere.tar"
expect 66 "$K" policy generate --namespace ns "oci:$T/L:v9"
has "$T/err" 'no image "v9"' "an unknown tag"
cp -r "$T/L" "$T/Lbad"
echo '{"schemaVersion":2,"manifests":[' >"$T/Lbad/index.json"
expect 2 "$K" policy generate --namespace ns "oci:$T/Lbad:v1"
has "$T/err" "index.json" "a malformed index.json"
gzip -c "$T/a.tar" >"$T/a.tar.gz"
expect 2 "$K" policy generate --namespace ns "oci-archive:$T/a.tar.gz"
has "$T/err" "compressed" "a compressed oci-archive"
expect 2 "$K" policy generate --namespace ns --max-manifest 4096 "oci-archive:$T/L/index.json"
has "$T/err" "not a readable tar" "not a tar"

# merge and diff on written policies
mkpol() { # FILE NS DIGEST_OF_HELLO
    printf '{"apiVersion":"kima.dev/v1","kind":"PodPolicy","name":"app","match":{"namespace":"%s"},"digests":{"/usr/bin/hello":["sha256:%064d"]}}' "$2" "$3" >"$1"
}
mkpol "$T/m1.json" ns 1
mkpol "$T/m2.json" ns 2
mkpol "$T/m3.json" other 3
expect 0 "$K" policy diff "$T/m1.json" "$T/m1.json"
expect 1 "$K" policy diff "$T/m1.json" "$T/m2.json"
has "$T/out" "- /usr/bin/hello sha256:$(printf '%064d' 1)" "diff: removed"
has "$T/out" "+ /usr/bin/hello sha256:$(printf '%064d' 2)" "diff: added"
expect 0 "$K" policy merge -o "$T/merged.json" "$T/m1.json" "$T/m2.json"
[ "$(digests "$T/merged.json" | wc -l)" -eq 2 ] && ok || bad "merge: two digests"
expect 2 "$K" policy merge "$T/m1.json" "$T/m3.json"
has "$T/err" '"match.namespace" differs' "merge names the field"
echo '{' >"$T/broken.json"
expect 2 "$K" policy diff "$T/m1.json" "$T/broken.json"
expect 2 "$K" policy diff "$T/m1.json" "$T/none.json"
expect 64 "$K" policy merge "$T/m1.json"

# --- generation (needs the layer reader)
"$K" policy generate --namespace ns "oci:$T/L:v1" >"$T/out" 2>"$T/err"
if grep -Eq "not built yet|Function not implemented" "$T/err"; then
    echo "the layer reader is not built in yet: generation checks skipped"
    summary || exit 1
    exit 77
fi

expect 0 "$K" policy generate --namespace ns --label app=demo -o "$T/p1.json" "oci:$T/L:v1"
json "$T/p1.json" "p1"
expected v1 >"$T/want1"
digests "$T/p1.json" >"$T/got1"
same "$T/got1" "$T/want1" "oci: the digests of an independent unpack"
has "$T/got1" "/usr/lib/libnotexec.so" "an ELF file without x bit"
grep -q "/etc/app.conf" "$T/got1" && bad "a plain file selected by default" || ok
grep -q "^/bin/" "$T/got1" && bad "a path through the /bin link" || ok
mdigest=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$T/L/index.json")
has "$T/p1.json" "$mdigest" "match.images: the manifest digest"
has "$T/p1.json" '"name": "L"' "the default name"
for src in "oci-archive:$T/a.tar:v1" "docker-archive:$T/d.tar"; do
    expect 0 "$K" policy generate --namespace ns -o "$T/p.json" "$src"
    digests "$T/p.json" >"$T/got"
    same "$T/got" "$T/want1" "$src: the same digests"
done
has "$T/p.json" '"name": "app"' "docker-archive: the repository name"
expect 0 "$K" policy generate --namespace ns --all "oci:$T/L:v1"
cp "$T/out" "$T/pall.json"
digests "$T/pall.json" >"$T/gotall"
expected v1 all >"$T/wantall"
same "$T/gotall" "$T/wantall" "--all"
expect 0 "$K" policy generate --namespace ns --include '^/etc/' --exclude '/true$' "oci:$T/L:v1"
cp "$T/out" "$T/pinc.json"
has "$T/pinc.json" "/etc/app.conf" "--include adds a plain file"
has "$T/pinc.json" "/usr/bin/hello" "--include keeps the measured files"
grep -q "/usr/bin/true" "$T/pinc.json" && bad "--exclude" || ok
expect 0 "$K" policy generate --namespace ns --hash sha512 "oci:$T/L:v1"
has "$T/out" "sha512:" "--hash sha512"

# Two images in one policy; deterministic output.
expect 0 "$K" policy generate --namespace ns -o "$T/p12.json" "oci:$T/L:v1" "oci:$T/L:v2"
expect 0 "$K" policy generate --namespace ns -o "$T/p21.json" "oci:$T/L:v1" "oci:$T/L:v2"
same "$T/p12.json" "$T/p21.json" "the same output twice"
[ "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["digests"]["/usr/bin/hello"]))' "$T/p12.json")" = 2 ] && ok || bad "two images: both hello digests"

# Rollout: v1 to v2.
expect 0 "$K" policy generate --namespace ns -o "$T/p2.json" --name L "oci:$T/L:v2"
expect 1 "$K" policy diff "$T/p1.json" "$T/p2.json"
has "$T/out" "- /usr/bin/hello sha256:" "diff: the old hello"
has "$T/out" "+ /usr/bin/hello sha256:" "diff: the new hello"
expect 2 "$K" policy merge "$T/p1.json" "$T/p2.json"
has "$T/err" "podLabels" "merge: labels differ"
expect 0 "$K" policy merge --name app "$T/p12.json" "$T/p.json"

# A tampered layer: exit 2 naming the image and the layer; -o leaves the
# old file as it was and no temporary file.
cp -r "$T/L" "$T/Ltamper"
layer=$(python3 -c 'import json,sys
m=json.load(open(sys.argv[1]+"/blobs/sha256/"+sys.argv[2].split(":")[1]))
print(m["layers"][0]["digest"].split(":")[1])' "$T/Ltamper" "$mdigest")
f=$T/Ltamper/blobs/sha256/$layer
chmod u+w "$f"
printf 'X' | dd of="$f" bs=1 seek=100 conv=notrunc 2>/dev/null
echo "old" >"$T/keep.json"
expect 2 "$K" policy generate --namespace ns -o "$T/keep.json" "oci:$T/Ltamper:v1"
has "$T/err" "oci:$T/Ltamper:v1" "the error names the image"
has "$T/err" "layer 1/1 sha256:" "the error names the layer"
[ "$(cat "$T/keep.json")" = old ] && ok || bad "-o replaced on error"
ls -a "$T" | grep -q '^\.keep\.json\.' && bad "a temporary file left" || ok
expect 2 "$K" policy generate --namespace ns -o "$T/new.json" "oci:$T/Ltamper:v1"
[ -e "$T/new.json" ] && bad "-o created on error" || ok
summary
