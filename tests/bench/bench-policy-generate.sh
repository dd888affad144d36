#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# How fast `kimactl policy generate` reads a big image, against two limits
# (docs/policies.md, "Benchmark"):
#   1. sha256sum over the same files unpacked on disk, on all cores
#      (find | xargs -0 -P NCPU sha256sum);
#   2. the parallel hashing limit: `openssl speed -evp sha256 -bytes 16384`
#      throughput of one core times the number of cores.
# The image: FILES files of about SIZE bytes in all (default 50,000 and
# 1 GiB), every other one a copy of an ELF file from /usr/lib, the others
# random data, spread over 4
# layers, written as an OCI layout with the same layers gzip-compressed (tag
# gzip) and uncompressed (tag tar). Prints the figures, the ratios and
# kimactl's peak RSS (/usr/bin/time -v, else getrusage).
#
# Not part of the test suite: run it by hand on an idle machine, or with
# `meson test -C build --benchmark --suite bench bench-policy-generate`.
# Usage: bench-policy-generate.sh [--kimactl PATH] [--files N] [--size BYTES|NM|NG]
#            [--workdir DIR] [--keep]
# A small check of the script: --files 2000 --size 50M.
set -euo pipefail
K=kimactl FILES=50000 SIZE=1G WORK= KEEP=0
while [ $# -gt 0 ]; do
    case $1 in
    --kimactl) K=$2; shift 2 ;;
    --files) FILES=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --workdir) WORK=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) sed -n '3,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-policy-generate: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
BYTES=$(numfmt --from=iec "$SIZE")
NCPU=$(nproc)
if [ -z "$WORK" ]; then
    WORK=$(mktemp -d)
fi
mkdir -p "$WORK"
[ "$KEEP" = 1 ] || trap 'rm -rf "$WORK"' EXIT
ROOT=$WORK/rootfs L=$WORK/layout
echo "bench-policy-generate: $FILES files, $(numfmt --to=iec "$BYTES")B, 4 layers, $NCPU cores, in $WORK"

# The files: layer k holds /data/k/DDD/fNNNNN; ELF copies are executable.
t0=$(date +%s%N)
python3 - "$ROOT" "$FILES" "$BYTES" <<'PY'
import os, random, sys
root, nfiles, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(13)
elves = []
for d, _, names in os.walk("/usr/lib"):
    for n in names:
        p = os.path.join(d, n)
        try:
            if os.path.islink(p) or not (4096 <= os.path.getsize(p) <= 1 << 20):
                continue
            with open(p, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    elves.append(p)
        except OSError:
            pass
    if len(elves) >= 2000:
        break
if not elves:
    sys.exit("no ELF files under /usr/lib")
elves.sort(key=os.path.getsize)
sizes = [os.path.getsize(p) for p in elves]
written, elf_next = 0, 0
for i in range(nfiles):
    d = os.path.join(root, "data", str(i % 4), "%03d" % (i // 4 // 1000))
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, "f%05d" % i)
    budget = max(0, total - written) // (nfiles - i)
    # Every other file an ELF copy no bigger than three times the share
    # left per file, the rest random data of about that share.
    fits = [k for k in range(len(elves)) if sizes[k] <= 3 * budget]
    if i % 2 and fits:
        data = open(elves[fits[elf_next % len(fits)]], "rb").read()
        elf_next += 7
        mode = 0o755
    else:
        data = rng.randbytes(int(budget * rng.uniform(0.5, 1.5)))
        mode = 0o644
    with open(p, "wb") as f:
        f.write(data)
    os.chmod(p, mode)
    written += len(data)
open(os.path.join(root, "..", "bytes"), "w").write(str(written))
print(f"  files written: {written} bytes")
PY
echo "  generated in $((($(date +%s%N) - t0) / 1000000)) ms"
BYTES=$(cat "$WORK/bytes")

# The layout: one tar a layer, stored as is (tag tar) and gzip -1 (tag gzip).
t0=$(date +%s%N)
mkdir -p "$L/blobs/sha256"
for k in 0 1 2 3; do
    tar -C "$ROOT" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf "$WORK/layer$k.tar" \
        "data/$k"
    gzip -1 -c "$WORK/layer$k.tar" >"$WORK/layer$k.tar.gz" &
done
wait
python3 - "$WORK" "$L" <<'PY'
import hashlib, json, os, sys
work, L = sys.argv[1], sys.argv[2]
def put(path_or_bytes):
    if isinstance(path_or_bytes, bytes):
        data = path_or_bytes
        h = hashlib.sha256(data).hexdigest()
        open(os.path.join(L, "blobs/sha256", h), "wb").write(data)
        return "sha256:" + h, len(data)
    h = hashlib.sha256()
    with open(path_or_bytes, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    dst = os.path.join(L, "blobs/sha256", h.hexdigest())
    os.replace(path_or_bytes, dst)
    return "sha256:" + h.hexdigest(), os.path.getsize(dst)
diff_ids = []
tars, gzs = [], []
for k in range(4):
    d, n = put(os.path.join(work, f"layer{k}.tar"))
    diff_ids.append(d)
    tars.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n})
    d, n = put(os.path.join(work, f"layer{k}.tar.gz"))
    gzs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n})
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                     "rootfs": {"type": "layers", "diff_ids": diff_ids}}, sort_keys=True).encode()
cd, cn = put(config)
index = {"schemaVersion": 2, "manifests": []}
for tag, layers in (("tar", tars), ("gzip", gzs)):
    m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": cd, "size": cn}, "layers": layers}).encode()
    md, mn = put(m)
    index["manifests"].append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "digest": md, "size": mn,
                               "annotations": {"org.opencontainers.image.ref.name": tag}})
json.dump(index, open(os.path.join(L, "index.json"), "w"))
json.dump({"imageLayoutVersion": "1.0.0"}, open(os.path.join(L, "oci-layout"), "w"))
PY
echo "  layout written in $((($(date +%s%N) - t0) / 1000000)) ms ($(du -sh "$L" | cut -f1))"

# run_timed OUT CMD...: wall seconds and peak RSS (KiB) of CMD in OUT.
run_timed() {
    local out=$1
    shift
    if [ -x /usr/bin/time ]; then
        local t0 t1
        t0=$(date +%s%N)
        /usr/bin/time -v -o "$out.time" "$@" >"$out.stdout" 2>"$out.stderr" || return 1
        t1=$(date +%s%N)
        echo "$(((t1 - t0) / 1000000)) $(sed -n 's/.*Maximum resident set size (kbytes): //p' "$out.time")" >"$out"
    else
        python3 -c 'import resource, subprocess, sys, time
t = time.monotonic()
r = subprocess.run(sys.argv[2:], stdout=open(sys.argv[1] + ".stdout", "w"))
ms = int((time.monotonic() - t) * 1000)
open(sys.argv[1], "w").write("%d %d\n" % (ms, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(r.returncode)' "$out" "$@"
    fi
}

# 1. sha256sum over the unpacked files on all cores (their bytes, no tar).
run_timed "$WORK/sum" sh -c "cd '$ROOT' && find . -type f -print0 | xargs -0 -P $NCPU -n 256 sha256sum" ||
    { echo "sha256sum failed"; exit 1; }
read -r sum_ms _ <"$WORK/sum"
[ "$(wc -l <"$WORK/sum.stdout")" -eq "$FILES" ] || { echo "sha256sum hashed $(wc -l <"$WORK/sum.stdout") files"; exit 1; }

# 2. The parallel hashing limit.
openssl speed -evp sha256 -bytes 16384 -seconds 3 >"$WORK/speed" 2>/dev/null
kbps=$(awk '/^sha256/ {v = $NF} END {sub(/k$/, "", v); print v}' "$WORK/speed")
limit_ms=$(echo "$BYTES / ($kbps * $NCPU)" | bc -l)

# 3. kimactl policy generate --all, each layout tag.
printf '\n%-44s %10s %10s\n' "" "seconds" "MB/s"
fig() { printf '%-44s %10.2f %10.0f\n' "$1" "$(echo "$2 / 1000" | bc -l)" "$(echo "$BYTES / 1000 / ($2 + 0.001)" | bc -l)"; }
fig "openssl sha256 x $NCPU cores (the limit)" "$limit_ms"
fig "find | xargs -P $NCPU sha256sum (unpacked)" "$sum_ms"
if ! "$K" policy generate --help >/dev/null 2>&1; then
    echo "$K has no policy generate: only the limits measured"
    exit 0
fi
for tag in tar gzip; do
    run_timed "$WORK/gen-$tag" "$K" policy generate --all --name bench --node -o "$WORK/policy-$tag.json" "oci:$L:$tag" ||
        { echo "kimactl policy generate failed on oci:$L:$tag: $(tail -3 "$WORK/gen-$tag.stderr" 2>/dev/null)"; exit 1; }
    read -r ms rss <"$WORK/gen-$tag"
    n=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["digests"]))' "$WORK/policy-$tag.json")
    [ "$n" -eq "$FILES" ] || { echo "oci:$L:$tag: $n paths in the policy, $FILES files in the image"; exit 1; }
    fig "kimactl policy generate --all ($tag layers)" "$ms"
    # Checking every blob against its digest hashes the layers' own bytes
    # too: a verified read hashes the file bytes plus the blob bytes.
    blobs=$(python3 -c 'import json, sys, os
L, tag = sys.argv[1:]
idx = json.load(open(os.path.join(L, "index.json")))
d = [m["digest"] for m in idx["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == tag][0]
m = json.load(open(os.path.join(L, "blobs", *d.split(":"))))
print(sum(l["size"] for l in m["layers"]) + m["config"]["size"])' "$L" "$tag")
    vlimit_ms=$(echo "($BYTES + $blobs) / ($kbps * $NCPU)" | bc -l)
    printf '  %s: %.1f %% of the hashing limit (%.1f %% of the limit of a verified read: %s MB of\n' \
        "$tag" "$(echo "100 * $limit_ms / ($ms + 0.001)" | bc -l)" \
        "$(echo "100 * $vlimit_ms / ($ms + 0.001)" | bc -l)" "$(((BYTES + blobs) / 1000000))"
    printf '     files and blobs hashed), %.2fx sha256sum, peak RSS %s MiB\n' \
        "$(echo "$sum_ms / ($ms + 0.001)" | bc -l)" "$((rss / 1024))"
done
