#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# image-digests.sh: a golden policy for container images, computed WITHOUT
# kima's code: the reference the tests compare `kimactl policy generate`
# with, and what the demo falls back to when kimactl lacks the command.
# Another route to the same answer: umoci unpacks the image (layers,
# whiteouts, hard links as umoci applies them), find lists its regular
# files, Python picks those that are ELF or have an execute bit, sha256sum
# (or sha384sum, ...) hashes them. Paths are where the files really are in
# the unpacked tree, so a file reached through a directory symlink (/bin ->
# usr/bin) is listed once, under its real path (/usr/bin/dash).
#
# Usage: image-digests.sh [--name N] [--namespace NS] [--label K=V]...
#            [--node] [--all] [--hash sha256|sha384|sha512|sha1] [-o FILE] SOURCE...
# SOURCE: oci:DIR[:TAG]       an OCI layout (TAG defaults to the only image,
#                             else "latest")
#         oci-archive:FILE[:TAG], docker-archive:FILE
#         docker://HOST[:PORT]/REPO[:TAG|@DIGEST]  (skopeo copy; SKOPEO_OPTS
#                             adds its options, e.g. --src-creds U:P
#                             --src-cert-dir DIR --src-tls-verify=false)
#         rootfs:DIR          a root file system (no image digests)
# Writes the kima.dev/v1 PodPolicy (NodePolicy with --node) that kimactl
# policy generate writes: keys sorted, 2-space indent; "digests" maps each
# path to its sorted digests (the union over SOURCEs); "match.images" holds
# the images' digests (the index if any, the manifest, the config; a
# docker-archive has only a config); --name defaults to the first tag.
# Exit 0, or 2 with a message on any error. Needs umoci, skopeo, python3.
set -euo pipefail
NAME= NS= NODE=0 ALL=0 HASH=sha256 OUTFILE=
LABELS=()
die() {
    echo "image-digests: $*" >&2
    exit 2
}
while [ $# -gt 0 ]; do
    case $1 in
    --name) NAME=$2; shift 2 ;;
    --namespace) NS=$2; shift 2 ;;
    --label) LABELS+=("$2"); shift 2 ;;
    --node) NODE=1; shift ;;
    --all) ALL=1; shift ;;
    --hash) HASH=$2; shift 2 ;;
    -o) OUTFILE=$2; shift 2 ;;
    -h | --help) sed -n '3,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    --) shift; break ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) break ;;
    esac
done
[ $# -gt 0 ] || die "no SOURCE (see --help)"
case $HASH in sha1 | sha256 | sha384 | sha512) ;; *) die "--hash $HASH: not sha1, sha256, sha384 or sha512" ;; esac
for tool in umoci skopeo python3 "${HASH}sum"; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
ROOTLESS=()
[ "$(id -u)" -eq 0 ] || ROOTLESS=(--rootless)
# shellcheck disable=SC2206 # options are words
SKOPEO_ARGS=(${SKOPEO_OPTS:-})

# layout_images DIR TAG FLAG: the digests an OCI layout holds for TAG
# (index, platform manifest for linux/amd64, config), one a line; FLAG
# holds "zstd" when a layer is zstd-compressed.
layout_images() {
    python3 - "$1" "$2" "$3" <<'PY'
import json, sys, os
d, tag, flag = sys.argv[1:4]
def blob(dg):
    return json.load(open(os.path.join(d, "blobs", *dg.split(":", 1))))
idx = json.load(open(os.path.join(d, "index.json")))
descs = [m for m in idx["manifests"]
         if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
if not descs and tag == "" and len(idx["manifests"]) == 1:
    descs = idx["manifests"]
if len(descs) != 1:
    sys.exit(f"{d}: no single image tagged {tag!r}")
out = []
desc = descs[0]
while desc["mediaType"].endswith("index.v1+json") or "manifest.list" in desc["mediaType"]:
    out.append(desc["digest"])
    ms = [m for m in blob(desc["digest"])["manifests"]
          if m.get("platform", {}).get("os") == "linux"
          and m.get("platform", {}).get("architecture") == "amd64"]
    if not ms:
        sys.exit(f"{d}: {tag}: no linux/amd64 image in the index")
    desc = ms[0]
out.append(desc["digest"])
manifest = blob(desc["digest"])
out.append(manifest["config"]["digest"])
zstd = any(l["mediaType"].endswith("+zstd") for l in manifest["layers"])
open(flag, "w").write("zstd" if zstd else "")
print("\n".join(out))
PY
}

# unpack_layout DIR TAG BUNDLE [FLAG MANIFEST]: umoci unpacks TAG, or the
# MANIFEST an index resolved to (through a view of the layout that tags it);
# layers umoci 0.4 cannot read (zstd, FLAG) are first recompressed to gzip
# by skopeo.
unpack_layout() {
    local d=$1 tag=$2 b=$3 flag=${4:-/dev/null} manifest=${5:-}
    if [ -n "$manifest" ]; then
        mkdir -p "$b.view"
        ln -s "$(cd "$d" && pwd)/blobs" "$b.view/blobs"
        cp "$d/oci-layout" "$b.view/"
        printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"img"}}]}' \
            "$manifest" "$(stat -c %s "$d/blobs/sha256/${manifest#sha256:}")" >"$b.view/index.json"
        d=$b.view tag=img
    fi
    if [ "$(cat "$flag")" = zstd ]; then
        skopeo copy -q --dest-compress --dest-compress-format gzip "oci:$d:$tag" "oci:$b.layout:img" ||
            die "skopeo cannot copy oci:$d:$tag"
        d=$b.layout tag=img
    fi
    umoci unpack "${ROOTLESS[@]}" --image "$d:$tag" "$b" >/dev/null 2>"$T/umoci.err" ||
        die "umoci cannot unpack $d:$tag: $(tail -1 "$T/umoci.err")"
}

# From the skopeo-style source name, the rootfs in $ROOT, the image digests
# appended to $T/images, the default name in $FIRST_TAG.
open_source() {
    local src=$1 dir=$2 d tag
    case $src in
    rootfs:*)
        ROOT=${src#rootfs:}
        [ -d "$ROOT" ] || die "$src: not a directory"
        ;;
    oci:* | oci-archive:*)
        d=${src#*:} tag=
        if [[ $d =~ ^(.*):([^/:]+)$ ]]; then d=${BASH_REMATCH[1]} tag=${BASH_REMATCH[2]}; fi
        if [[ $src == oci-archive:* ]]; then
            mkdir -p "$dir/layout"
            tar -xf "$d" -C "$dir/layout" || die "$src: not a tar archive"
            d=$dir/layout
        fi
        [ -f "$d/index.json" ] || die "$src: no index.json (not an OCI layout)"
        layout_images "$d" "$tag" "$dir/flag" >"$dir/images" || die "$src: cannot read the layout"
        cat "$dir/images" >>"$T/images"
        if [ -z "$tag" ]; then
            tag=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0].get("annotations",{}).get("org.opencontainers.image.ref.name","latest"))' "$d/index.json")
        fi
        FIRST_TAG=${FIRST_TAG:-$tag}
        unpack_layout "$d" "$tag" "$dir/bundle" "$dir/flag" "$(tail -2 "$dir/images" | head -1)"
        ROOT=$dir/bundle/rootfs
        ;;
    docker-archive:* | docker://*)
        # skopeo's dir: keeps the manifests' bytes (their digests); --all
        # keeps a registry's index too.
        local all=()
        [[ $src == docker://* ]] && all=(--all)
        skopeo copy -q "${all[@]}" "${SKOPEO_ARGS[@]}" "$src" "dir:$dir/dir" 2>"$T/skopeo.err" ||
            die "$src: $(tail -1 "$T/skopeo.err")"
        dir_images "$src" "$dir/dir" >>"$T/images" || die "$src: cannot read its manifest"
        skopeo copy -q --dest-compress --dest-compress-format gzip "dir:$dir/dir" "oci:$dir/layout:img" \
            2>"$T/skopeo.err" || die "$src: $(tail -1 "$T/skopeo.err")"
        tag=${src##*/}
        tag=${tag%%[:@]*}
        FIRST_TAG=${FIRST_TAG:-${tag%%.*}}
        unpack_layout "$dir/layout" img "$dir/bundle"
        ROOT=$dir/bundle/rootfs
        ;;
    *) die "$src: not oci:, oci-archive:, docker-archive:, docker:// or rootfs:" ;;
    esac
}

# dir_images SOURCE DIR: from skopeo's dir: copy, a registry image's
# digests (its index if any, the linux/amd64 manifest, the config); a
# docker-archive has no manifest of its own, only its config's digest.
dir_images() {
    python3 - "$1" "$2" <<'PY'
import hashlib, json, os, sys
src, d = sys.argv[1], sys.argv[2]
raw = open(os.path.join(d, "manifest.json"), "rb").read()
m = json.loads(raw)
out = []
if "manifests" in m:
    out.append("sha256:" + hashlib.sha256(raw).hexdigest())
    plat = [x["digest"] for x in m["manifests"]
            if x.get("platform", {}).get("os") == "linux"
            and x.get("platform", {}).get("architecture") == "amd64"]
    if not plat:
        sys.exit(f"{src}: no linux/amd64 image in the index")
    out.append(plat[0])
    m = json.load(open(os.path.join(d, plat[0].split(":", 1)[1] + ".manifest.json")))
elif not src.startswith("docker-archive:"):
    out.append("sha256:" + hashlib.sha256(raw).hexdigest())
out.append(m["config"]["digest"])
print("\n".join(out))
PY
}

# hash_tree ROOT: "<digest>  <path>" NUL-terminated for each chosen file;
# the path is ROOT-relative with a leading /.
hash_tree() {
    local root=$1
    (cd "$root" && find . -type f -print0) | python3 -c '
import os, stat, sys
root, everything = sys.argv[1], sys.argv[2] == "1"
out = sys.stdout.buffer
for rel in sys.stdin.buffer.read().split(b"\0"):
    if not rel:
        continue
    p = os.path.join(root.encode(), rel)
    st = os.lstat(p)
    ok = everything or st.st_mode & 0o111
    if not ok:
        with open(p, "rb") as f:
            ok = f.read(4) == b"\x7fELF"
    if ok:
        out.write(rel + b"\0")' "$root" "$ALL" | (cd "$root" && xargs -0 -r "${HASH}sum" -z --)
}

FIRST_TAG=
: >"$T/images"
: >"$T/digests"
n=0
for src in "$@"; do
    n=$((n + 1))
    mkdir -p "$T/$n"
    open_source "$src" "$T/$n"
    hash_tree "$ROOT" >>"$T/digests"
done
label_args=()
for l in "${LABELS[@]}"; do
    [[ $l == *=* ]] || die "--label $l: not KEY=VALUE"
    label_args+=("$l")
done
python3 - "$T/digests" "$T/images" "${NAME:-${FIRST_TAG:-policy}}" "$NS" "$NODE" "$HASH" \
    "${label_args[@]}" >"$T/policy.json" <<'PY'
import json, os, sys
digests_file, images_file, name, ns, node, alg = sys.argv[1:7]
digests = {}
for rec in open(digests_file, "rb").read().split(b"\0"):
    if not rec:
        continue
    hexd, rel = rec.split(b"  ", 1)
    path = os.fsdecode(rel[1:] if rel.startswith(b".") else rel)
    digests.setdefault(path, set()).add(f"{alg}:{hexd.decode()}")
policy = {"apiVersion": "kima.dev/v1", "kind": "NodePolicy" if node == "1" else "PodPolicy",
          "name": name, "digests": {p: sorted(d) for p, d in digests.items()}}
if node != "1":
    match = {}
    images = sorted(set(open(images_file).read().split()))
    if images:
        match["images"] = images
    if ns:
        match["namespace"] = ns
    labels = dict(l.split("=", 1) for l in sys.argv[7:])
    if labels:
        match["podLabels"] = labels
    policy["match"] = match
sys.stdout.write(json.dumps(policy, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
PY
if [ -n "$OUTFILE" ]; then
    cp "$T/policy.json" "$OUTFILE.tmp.$$" && mv "$OUTFILE.tmp.$$" "$OUTFILE"
else
    cat "$T/policy.json"
fi
