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
#         docker://HOST[:PORT]/REPO[:TAG]  (skopeo; SKOPEO_OPTS adds options
#                             such as --src-creds U:P --src-cert-dir DIR)
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

# unpack_layout DIR TAG BUNDLE [FLAG]: umoci unpacks TAG; layers umoci 0.4
# cannot read (zstd, FLAG) are first recompressed to gzip by skopeo.
unpack_layout() {
    local d=$1 tag=$2 b=$3 flag=${4:-/dev/null}
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
        layout_images "$d" "$tag" "$dir/flag" >>"$T/images" || die "$src: cannot read the layout"
        if [ -z "$tag" ]; then
            tag=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0].get("annotations",{}).get("org.opencontainers.image.ref.name","latest"))' "$d/index.json")
        fi
        FIRST_TAG=${FIRST_TAG:-$tag}
        unpack_layout "$d" "$tag" "$dir/bundle" "$dir/flag"
        ROOT=$dir/bundle/rootfs
        ;;
    docker-archive:* | docker://*)
        image_digests_remote "$src" "$dir" >>"$T/images"
        skopeo copy -q "${SKOPEO_ARGS[@]}" --dest-compress --dest-compress-format gzip "$src" \
            "oci:$dir/layout:img" 2>"$T/skopeo.err" || die "$src: $(tail -1 "$T/skopeo.err")"
        tag=${src##*/}
        tag=${tag%%[:@]*}
        FIRST_TAG=${FIRST_TAG:-${tag%%.*}}
        unpack_layout "$dir/layout" img "$dir/bundle"
        ROOT=$dir/bundle/rootfs
        ;;
    *) die "$src: not oci:, oci-archive:, docker-archive:, docker:// or rootfs:" ;;
    esac
}

# image_digests_remote SOURCE DIR: a docker-archive's config digest; a
# registry's manifest (or index and linux/amd64 manifest) and config digests.
image_digests_remote() {
    local src=$1 dir=$2
    if [[ $src == docker-archive:* ]]; then
        mkdir -p "$dir/darc"
        tar -xf "${src#docker-archive:}" -C "$dir/darc" manifest.json || die "$src: no manifest.json"
        python3 - "$dir/darc/manifest.json" <<'PY' >"$dir/config.name" || die "$src: bad manifest.json"
import json, sys
m = json.load(open(sys.argv[1]))
assert len(m) == 1, "one image per archive"
print(m[0]["Config"])
PY
        tar -xf "${src#docker-archive:}" -C "$dir/darc" "$(cat "$dir/config.name")"
        echo "sha256:$(sha256sum <"$dir/darc/$(cat "$dir/config.name")" | cut -d' ' -f1)"
        return 0
    fi
    skopeo inspect --raw "${SKOPEO_ARGS[@]}" "$src" >"$dir/top.json" 2>"$T/skopeo.err" ||
        die "$src: $(tail -1 "$T/skopeo.err")"
    echo "sha256:$(sha256sum <"$dir/top.json" | cut -d' ' -f1)"
    local plat
    plat=$(python3 -c '
import json, sys
m = json.load(open(sys.argv[1]))
for d in m.get("manifests", []):
    p = d.get("platform", {})
    if p.get("os") == "linux" and p.get("architecture") == "amd64":
        print(d["digest"]); break' "$dir/top.json")
    if [ -n "$plat" ]; then
        echo "$plat"
    fi
    skopeo inspect --config --raw "${SKOPEO_ARGS[@]}" "$src" >"$dir/config.json" ||
        die "$src: cannot read the config"
    echo "sha256:$(sha256sum <"$dir/config.json" | cut -d' ' -f1)"
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
