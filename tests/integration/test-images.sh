#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The demo's and the tests' images (tests/tools/build-images.sh): built from
# real Debian packages into an OCI layout that skopeo reads, the three
# functions with their three layers over one shared base, their archives;
# and the reference policy tool (tests/tools/image-digests.sh: umoci unpack,
# find, sha256sum) agrees with a second, plain route (tar over each layer
# with whiteouts, find, sha256sum) and with the .deb files themselves.
# kimactl policy generate must give the reference's policy (files, digests
# and match.images) for every image, tag and source kind.
# The images are cached in OUTDIR (the build folder's images/), built once.
# Usage: test-images.sh SOURCE_ROOT OUTDIR KIMACTL
set -u
SRC=$1
OUT=$2
K=$3
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
. "$HERE/helpers.sh"
trap 'rm -rf "$T"' EXIT
need_tools umoci skopeo python3 dpkg-deb
[ "$(id -u)" -eq 0 ] || { echo "build-images.sh runs as root"; exit 77; }
L=$OUT/layout
D=$SRC/tests/tools/image-digests.sh

"$SRC/tests/tools/build-images.sh" "$OUT" >"$T/build.log" 2>&1
rc=$?
if [ $rc -eq 77 ]; then
    cat "$T/build.log"
    exit 77
fi
[ $rc -eq 0 ] && ok || { bad "build-images.sh failed: $(tail -5 "$T/build.log")"; summary; exit 1; }
expect 0 "$SRC/tests/tools/build-images.sh" "$OUT"
has "$T/out" "is up to date" "a second build uses the cache"

# inspect_json FILE EXPR: print the Python expression EXPR over JSON j.
inspect_json() { python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"; }

# The layout: every tag is an image skopeo reads; the functions share the
# base layer and add two; the entrypoint is the function's binary.
skopeo inspect "oci:$L:base" >"$T/base.json" && ok || bad "skopeo cannot read oci:$L:base"
base_layer=$(inspect_json "$T/base.json" 'j["Layers"][0]')
for f in amf smf upf; do
    skopeo inspect "oci:$L:$f" >"$T/$f.json" 2>"$T/err" && ok || bad "skopeo inspect oci:$L:$f: $(cat "$T/err")"
    [ "$(inspect_json "$T/$f.json" 'len(j["Layers"])')" = 3 ] && ok || bad "$f has not 3 layers"
    [ "$(inspect_json "$T/$f.json" 'j["Layers"][0]')" = "$base_layer" ] && ok ||
        bad "$f's first layer is not the base layer"
    skopeo inspect --config "oci:$L:$f" >"$T/$f.config" && ok || bad "no config for $f"
    [ "$(inspect_json "$T/$f.config" 'j["config"]["Entrypoint"]')" = "['/usr/bin/open5gs-${f}d']" ] &&
        ok || bad "$f's entrypoint is not /usr/bin/open5gs-${f}d"
    skopeo inspect "oci-archive:$OUT/$f.oci.tar:$f" >"$T/$f.ociarc" && ok || bad "bad $f.oci.tar"
    [ "$(inspect_json "$T/$f.ociarc" 'j["Layers"]')" = "$(inspect_json "$T/$f.json" 'j["Layers"]')" ] &&
        ok || bad "$f.oci.tar holds other layers than the layout"
    skopeo inspect "docker-archive:$OUT/$f.docker.tar" >"$T/$f.dockarc" && ok || bad "bad $f.docker.tar"
    [ "$(inspect_json "$T/$f.dockarc" 'len(j["Layers"])')" = 3 ] && ok || bad "$f.docker.tar: not 3 layers"
done
skopeo inspect --raw "oci:$L:upf-zstd" >"$T/zstd.json"
[ "$(inspect_json "$T/zstd.json" 'sorted(set(l["mediaType"] for l in j["layers"]))')" = \
    "['application/vnd.oci.image.layer.v1.tar+zstd']" ] && ok || bad "upf-zstd's layers are not zstd"
grep -q "^iptables " "$OUT/packages.txt" && grep -q "^libc6 " "$OUT/packages.txt" && ok ||
    bad "packages.txt does not list the packages"

# The reference policy of the upf.
expect 0 "$D" --namespace open5gs --label app=upf -o "$T/upf.policy" "oci:$L:upf"
json "$T/upf.policy" "image-digests.sh output"
inspect_json "$T/upf.policy" '"\n".join(p + " " + d for p, ds in j["digests"].items() for d in ds)' |
    sort >"$T/ref.txt"
present() { grep -q "^$1 sha256:[0-9a-f]\{64\}$" "$T/ref.txt" && ok || bad "the policy lacks $1"; }
absent() { grep -q "^$1 " "$T/ref.txt" && bad "the policy lists $1 ($2)" || ok; }
present /usr/bin/dash
present /usr/bin/open5gs-upfd
present /usr/sbin/xtables-nft-multi
present /usr/lib/x86_64-linux-gnu/libc.so.6
present /usr/lib/x86_64-linux-gnu/libxtables.so.12.7.0
present /usr/lib/x86_64-linux-gnu/xtables/libxt_conntrack.so
present /etc/update-motd.d/10-uname # a shell script with an execute bit
absent /bin/dash "a path through the /bin symlink"
absent /usr/sbin/iptables-apply "deleted by the upf's third layer (a whiteout)"
absent /etc/open5gs/upf.yaml "not executable"
absent /usr/sbin/iptables "a symlink"
[ "$(wc -l <"$T/ref.txt")" -gt 300 ] && ok || bad "the upf policy has only $(wc -l <"$T/ref.txt") files"
# match pins the image: its manifest and config digests.
manifest=$(inspect_json "$T/upf.json" 'j["Digest"]')
config=$(inspect_json "$L/blobs/sha256/${manifest#sha256:}" 'j["config"]["digest"]')
[ "$(inspect_json "$T/upf.policy" 'j["match"]')" = \
    "{'images': $(python3 -c 'import sys; print(sorted(sys.argv[1:]))' "$manifest" "$config"), 'namespace': 'open5gs', 'podLabels': {'app': 'upf'}}" ] &&
    ok || bad "match: $(inspect_json "$T/upf.policy" 'j["match"]')"

# The binaries' digests are those of the files in the .deb.
deb=$(ls "$OUT"/debs/iptables_*.deb /var/cache/apt/archives/iptables_*.deb 2>/dev/null | head -1)
want=sha256:$(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/sbin/xtables-nft-multi | sha256sum | cut -d' ' -f1)
for p in /usr/sbin/xtables-nft-multi /usr/bin/open5gs-upfd; do
    grep -qx "$p $want" "$T/ref.txt" && ok || bad "$p's digest is not xtables-nft-multi's from $deb"
done

# A second route: each layer's tar extracted in order with its whiteouts
# applied, the files chosen in shell (an execute bit or the ELF magic).
tar_unpack() { # LAYOUT TAG ROOT
    local layer e name dir
    mkdir -p "$3"
    for layer in $(python3 -c '
import json, sys
d, tag = sys.argv[1], sys.argv[2]
m = [m for m in json.load(open(d + "/index.json"))["manifests"]
     if m["annotations"]["org.opencontainers.image.ref.name"] == tag][0]
for l in json.load(open(d + "/blobs/sha256/" + m["digest"][7:]))["layers"]:
    print(d + "/blobs/sha256/" + l["digest"][7:])' "$1" "$2"); do
        tar -tf "$layer" >"$T/entries" || return 1
        while IFS= read -r e; do
            name=${e##*/} dir=.
            [[ $e == */* ]] && dir=${e%/*}
            case $name in
            .wh..wh..opq) find "$3/$dir" -mindepth 1 -maxdepth 1 -exec rm -rf {} + ;;
            .wh.*) rm -rf "${3:?}/$dir/${name#.wh.}" ;;
            esac
        done <"$T/entries"
        tar -xf "$layer" -C "$3" --exclude='.wh.*' || return 1
    done
}
tar_digests() { # ROOT
    (cd "$1" && find . -type f -print0) | while IFS= read -r -d '' f; do
        if [ -n "$(find "$1/$f" -perm /111)" ] ||
            [ "$(head -c 4 "$1/$f" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
            echo "${f#.} sha256:$(sha256sum <"$1/$f" | cut -d' ' -f1)"
        fi
    done | LC_ALL=C sort
}
tar_unpack "$L" upf "$T/rootfs" && ok || bad "tar cannot unpack the upf's layers"
tar_digests "$T/rootfs" >"$T/tar.txt"
LC_ALL=C sort "$T/ref.txt" >"$T/ref.sorted"
same "$T/ref.sorted" "$T/tar.txt" "image-digests.sh (umoci) and tar + sha256sum"
# The comparison can fail: one changed digest is a difference.
sed '1s/sha256:./sha256:x/' "$T/tar.txt" >"$T/tar.bad"
cmp -s "$T/ref.sorted" "$T/tar.bad" && bad "a changed digest went unnoticed" || ok

# Every source kind of the same image gives the same digests.
for src in "oci:$L:upf-zstd" "oci-archive:$OUT/upf.oci.tar:upf" "docker-archive:$OUT/upf.docker.tar"; do
    expect 0 "$D" -o "$T/other.policy" "$src"
    [ "$(inspect_json "$T/other.policy" 'j["digests"]')" = "$(inspect_json "$T/upf.policy" 'j["digests"]')" ] &&
        ok || bad "$src gives other digests than oci:$L:upf"
done
# An index: the linux/amd64 image (the upf), not the decoy first entry (the
# amf), and the index's digest pinned too.
expect 0 "$D" -o "$T/index.policy" "oci:$L:upf-index"
[ "$(inspect_json "$T/index.policy" 'j["digests"]')" = "$(inspect_json "$T/upf.policy" 'j["digests"]')" ] &&
    ok || bad "oci:$L:upf-index is not read as the upf"
index=$(python3 -c 'import json, sys
print([m["digest"] for m in json.load(open(sys.argv[1]))["manifests"]
       if m["annotations"]["org.opencontainers.image.ref.name"] == "upf-index"][0])' "$L/index.json")
[ "$(inspect_json "$T/index.policy" 'j["match"]["images"]')" = \
    "$(python3 -c 'import sys; print(sorted(sys.argv[1:]))' "$index" "$manifest" "$config")" ] &&
    ok || bad "upf-index: match.images $(inspect_json "$T/index.policy" 'j["match"]["images"]')"
# Several images make one policy: the union.
expect 0 "$D" --name core -o "$T/core.policy" "oci:$L:amf" "oci:$L:upf"
for p in /usr/bin/open5gs-amfd /usr/bin/open5gs-upfd /usr/bin/dash; do
    [ "$(inspect_json "$T/core.policy" "'$p' in j['digests']")" = True ] && ok || bad "the union lacks $p"
done
[ "$(inspect_json "$T/core.policy" 'len(j["match"]["images"])')" = 4 ] && ok ||
    bad "the union does not pin both images (manifest and config each)"
expect 2 "$D" "oci:$L:nosuchtag"
expect 2 "$D" "ftp://example/x"

# kimactl policy generate against the reference, source by source: the same
# JSON (digests and match), for each function, the zstd and index tags, the
# archives and the unpacked rootfs.
for src in "oci:$L:amf" "oci:$L:smf" "oci:$L:upf" "oci:$L:upf-zstd" "oci:$L:upf-index" \
    "oci-archive:$OUT/upf.oci.tar:upf" "docker-archive:$OUT/upf.docker.tar"; do
    expect 0 "$D" --name x --namespace open5gs -o "$T/ref.json" "$src"
    expect 0 "$K" policy generate --name x --namespace open5gs -o "$T/gen.json" "$src"
    python3 - "$T/ref.json" "$T/gen.json" <<'PY' && ok || bad "kimactl and the reference differ on $src"
import json, sys
ref, gen = (json.load(open(p)) for p in sys.argv[1:])
missing = sorted(set(ref["digests"]) - set(gen["digests"]))
extra = sorted(set(gen["digests"]) - set(ref["digests"]))
wrong = sorted(p for p in ref["digests"] if p in gen["digests"] and ref["digests"][p] != gen["digests"][p])
if missing or extra or wrong or ref["match"] != gen["match"]:
    print("missing", missing[:5], "extra", extra[:5], "wrong", wrong[:5], ref["match"], gen["match"])
    sys.exit(1)
PY
done
summary
