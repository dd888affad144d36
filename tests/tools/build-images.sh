#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# build-images.sh OUTDIR: the demo's and the tests' container images, built
# from real Debian 12 packages without a container engine and without any
# network but Debian's apt mirror (docs/policies.md, "Demo images").
#
# Debian 12 has no Open5GS, so three small images stand in for the 5G core's
# functions, each a real Debian package set whose main binary is also copied
# to the name the Open5GS images use (the demo's policies and measurements
# keep the Open5GS paths, with real content):
#   amf: netcat-openbsd          /usr/bin/open5gs-amfd = /usr/bin/nc.openbsd
#   smf: openssl                 /usr/bin/open5gs-smfd = /usr/bin/openssl
#   upf: iptables (+ its libs)   /usr/bin/open5gs-upfd = /usr/sbin/xtables-nft-multi
# Each image has three gzip layers: the shared base (base-files, libc6,
# libgcc-s1, gcc-12-base, dash, and Debian 12's usrmerge symlinks /bin ->
# usr/bin, /lib -> usr/lib, /lib64 -> usr/lib64, /sbin -> usr/sbin), the
# function's packages, and the function itself (the open5gs-*d copy, a
# config file; the upf's also deletes /usr/sbin/iptables-apply, a whiteout).
#
# OUTDIR receives:
#   layout/            an OCI image layout (umoci) with tags base, amf, smf,
#                      upf, upf-zstd (upf with zstd layers, skopeo) and
#                      upf-index (an image index: a decoy linux/arm64 entry,
#                      the amf's manifest, then the upf for linux/amd64)
#   NAME.oci.tar       each function as an oci-archive (tag NAME)
#   NAME.docker.tar    and as a docker-archive (open5gs/NAME:demo)
#   bundles/NAME/      each function unpacked by umoci (rootfs/ inside)
#   packages.txt       the package versions each image holds
#   debs/              .deb files fetched with `apt-get download` (those in
#                      /var/cache/apt/archives are used in place)
# A finished OUTDIR is kept: a second run with the same script returns at
# once. Concurrent runs on one OUTDIR wait for each other (flock).
#
# Reproducible: files keep their packages' mtimes clamped to
# SOURCE_DATE_EPOCH (default 2024-01-01), the configs' creation time is that
# date, and so are the history entries': the same package versions give the same digests.
# A Debian point release changes the versions (packages.txt), so the digests.
#
# Exits 0 when built or cached, 77 when a package can be neither found in
# the apt cache nor downloaded (no apt lists and no network), 1 on any other
# failure. Runs as root (umoci keeps file owners); needs umoci, skopeo, dpkg.
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
SELF=$(readlink -f "$0")
EPOCH=${SOURCE_DATE_EPOCH:-1704067200}
CREATED=$(date -u -d "@$EPOCH" +%Y-%m-%dT%H:%M:%SZ)
L=$OUT/layout
DEBS=$OUT/debs
FUNCS=(amf smf upf)
BASE_PKGS=(base-files libc6 libgcc-s1 gcc-12-base dash)
declare -A PKGS=(
    [amf]="netcat-openbsd libbsd0 libmd0"
    [smf]="openssl libssl3"
    [upf]="iptables libip4tc2 libip6tc2 libxtables12 libmnl0 libnetfilter-conntrack3 libnfnetlink0 libnftnl11 netbase"
)
declare -A MAIN=([amf]=/usr/bin/nc.openbsd [smf]=/usr/bin/openssl [upf]=/usr/sbin/xtables-nft-multi)
declare -A REMOVE=([upf]=/usr/sbin/iptables-apply)

for tool in umoci skopeo dpkg-deb apt-get flock; do
    command -v "$tool" >/dev/null || { echo "build-images: $tool is not installed" >&2; exit 1; }
done
if [ "$(id -u)" -ne 0 ]; then
    echo "build-images: run as root (umoci keeps the packages' file owners)" >&2
    exit 1
fi

exec 9>"$OUT/.lock"
flock 9
STAMP="script $(sha256sum <"$SELF" | cut -d' ' -f1) epoch $EPOCH"
if [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$STAMP" ]; then
    echo "build-images: $OUT is up to date"
    exit 0
fi
rm -rf "$L" "$OUT/bundles" "$OUT"/*.tar "$OUT/packages.txt" "$OUT/.stamp" "$OUT/work"
mkdir -p "$DEBS" "$OUT/work"
W=$OUT/work
trap 'rm -rf "$W"' EXIT

# fetch_deb PKG: print the path of PKG's .deb, the candidate version from
# the apt cache, OUTDIR/debs or `apt-get download`; without apt lists or
# network, the newest cached file of PKG. Exit 77 when there is none.
fetch_deb() {
    local pkg=$1 show ver arch name f
    show=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null) || show=
    ver=$(sed -n 's/^Version: //p' <<<"$show" | head -1)
    arch=$(sed -n 's/^Architecture: //p' <<<"$show" | head -1)
    if [ -n "$ver" ]; then
        name="${pkg}_${ver/:/%3a}_${arch}.deb"
        for f in "/var/cache/apt/archives/$name" "$DEBS/$name"; do
            [ -s "$f" ] && { echo "$f"; return 0; }
        done
        if (cd "$DEBS" && apt-get download -q "$pkg=$ver") >"$W/apt.log" 2>&1 && [ -s "$DEBS/$name" ]; then
            echo "$DEBS/$name"
            return 0
        fi
    fi
    f=$(ls -1 /var/cache/apt/archives/"${pkg}"_*.deb "$DEBS/${pkg}"_*.deb 2>/dev/null |
        awk -F/ '{print $NF "\t" $0}' | sort -V | tail -1 | cut -f2)
    if [ -n "$f" ]; then
        echo "$f"
        return 0
    fi
    echo "build-images: cannot get the Debian package $pkg (not in the apt cache;" \
        "apt-get download said: $(tail -1 "$W/apt.log" 2>/dev/null))" >&2
    exit 77
}

# unpack_debs ROOTFS LIST PKG...: extract the packages into ROOTFS through
# its usrmerge symlinks, and note "PKG VERSION" in LIST.
unpack_debs() {
    local root=$1 list=$2 pkg deb
    shift 2
    for pkg in "$@"; do
        deb=$(fetch_deb "$pkg") || exit $?
        dpkg-deb --fsys-tarfile "$deb" | tar -x --keep-directory-symlink -C "$root"
        echo "$pkg $(dpkg-deb -f "$deb" Version)" >>"$list"
    done
}

# clamp ROOTFS: no mtime after SOURCE_DATE_EPOCH, so that a rebuild gives
# the same layers and a later layer holds only what changed.
clamp() {
    find "$1" -newermt "@$EPOCH" -exec touch -h -d "@$EPOCH" {} +
}

# repack BUNDLE TAG WHAT: the bundle's changes as a new layer of TAG (its
# history entry says WHAT), and the bundle's metadata refreshed for the
# next layer.
repack() {
    clamp "$1/rootfs"
    umoci repack --refresh-bundle --history.created "$CREATED" --history.created_by "$3" \
        --image "$L:$2" "$1"
}

build_base() {
    local b=$W/base
    umoci init --layout "$L"
    umoci new --image "$L:base"
    umoci unpack --image "$L:base" "$b" >/dev/null
    mkdir -p "$b"/rootfs/usr/{bin,sbin,lib,lib64} "$b/rootfs/tmp"
    chmod 1777 "$b/rootfs/tmp"
    for d in bin sbin lib lib64; do ln -s "usr/$d" "$b/rootfs/$d"; done
    echo "# base" >>"$OUT/packages.txt"
    unpack_debs "$b/rootfs" "$OUT/packages.txt" "${BASE_PKGS[@]}"
    repack "$b" base "base: ${BASE_PKGS[*]}, usrmerge"
    umoci config --no-history --image "$L:base" --created "$CREATED" --os linux \
        --architecture amd64 --config.entrypoint /usr/bin/dash
}

# build_function NAME: base + the function's packages + the function.
build_function() {
    local f=$1 b=$W/$1 bin=/usr/bin/open5gs-$1d
    umoci unpack --image "$L:base" "$b" >/dev/null
    echo "# $f (and base)" >>"$OUT/packages.txt"
    # shellcheck disable=SC2086 # the package lists are words
    unpack_debs "$b/rootfs" "$OUT/packages.txt" ${PKGS[$f]}
    # umoci repack adds to the image the bundle came from, under its tag.
    umoci tag --image "$L:base" "$f"
    repack "$b" "$f" "$f: ${PKGS[$f]}"
    cp "$b/rootfs${MAIN[$f]}" "$b/rootfs$bin"
    chmod 0755 "$b/rootfs$bin"
    mkdir -p "$b/rootfs/etc/open5gs"
    printf 'logger:\n  level: info\n# %s stands in for the Open5GS %s: a copy of %s\n' \
        "$bin" "$f" "${MAIN[$f]}" >"$b/rootfs/etc/open5gs/$f.yaml"
    if [ -n "${REMOVE[$f]:-}" ]; then
        rm "$b/rootfs${REMOVE[$f]}"
    fi
    repack "$b" "$f" "$f: $bin, /etc/open5gs/$f.yaml${REMOVE[$f]:+, without ${REMOVE[$f]}}"
    umoci config --no-history --image "$L:$f" --created "$CREATED" --os linux \
        --architecture amd64 --config.entrypoint "$bin" \
        --config.label "org.opencontainers.image.title=open5gs-$f (kima demo)"
}

build_base
for f in "${FUNCS[@]}"; do
    build_function "$f"
done
umoci gc --layout "$L"
# Each function unpacked as a container runtime would (the demo's kernel
# stand-in measures these files).
for f in "${FUNCS[@]}"; do
    umoci unpack --image "$L:$f" "$OUT/bundles/$f" >/dev/null
done

# The same images through skopeo: an archive of each kind, and the upf
# with zstd layers.
for f in "${FUNCS[@]}"; do
    skopeo copy -q "oci:$L:$f" "oci-archive:$OUT/$f.oci.tar:$f"
    skopeo copy -q "oci:$L:$f" "docker-archive:$OUT/$f.docker.tar:open5gs/$f:demo"
done
# (Through another layout: into the same one skopeo would reuse the gzip layers.)
skopeo copy -q --dest-compress --dest-compress-format zstd "oci:$L:upf" "oci:$W/zstd:upf-zstd"
skopeo copy -q "oci:$W/zstd:upf-zstd" "oci:$L:upf-zstd"

# upf-index: an OCI image index over the upf (linux/amd64), whose first
# entry is a decoy, the amf's manifest labelled linux/arm64: a reader that
# ignores the platform reads the wrong image.
python3 - "$L" <<'PY'
import hashlib, json, sys
L = sys.argv[1]
idx = json.load(open(L + "/index.json"))
tagged = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in idx["manifests"]}
def entry(tag, arch):
    m = tagged[tag]
    return {"mediaType": m["mediaType"], "digest": m["digest"], "size": m["size"],
            "platform": {"architecture": arch, "os": "linux"}}
blob = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": [entry("amf", "arm64"), entry("upf", "amd64")]}).encode()
h = hashlib.sha256(blob).hexdigest()
open(f"{L}/blobs/sha256/{h}", "wb").write(blob)
idx["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json",
                         "digest": "sha256:" + h, "size": len(blob),
                         "annotations": {"org.opencontainers.image.ref.name": "upf-index"}})
json.dump(idx, open(L + "/index.json", "w"), separators=(",", ":"))
PY

echo "$STAMP" >"$OUT/.stamp"
echo "build-images: built $L (tags base ${FUNCS[*]} upf-zstd upf-index) and archives in $OUT"
