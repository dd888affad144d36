#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The 5G overlay's golden policies, generated from the images your Open5GS
# deployment runs: policies/open5gs-{amf,smf,upf}.json next to this script,
# which the kustomization's configMapGenerator turns into the ConfigMap
# kima-policies. Run it where your images are built (CI), review the change
# with `kimactl policy diff OLD NEW`, commit, `kubectl apply -k`
# (docs/policies.md, "Workflow").
#
# Usage: generate-policies.sh [--registry HOST[:PORT]] [--tag TAG]
#            [--demo IMAGES_DIR] [--generator CMD] [-- GENERATOR OPTIONS...]
#   --registry, --tag  each function's image is docker://REGISTRY/open5gs/NAME:TAG
#                      (default registry docker.io, tag latest); override one
#                      with AMF_IMAGE, SMF_IMAGE or UPF_IMAGE (any source
#                      kimactl policy generate reads, e.g.
#                      UPF_IMAGE=docker://docker.io/gradiant/open5gs:2.7.2 for
#                      an image that holds every function)
#   --demo DIR         the demo's images instead (oci:DIR/layout:NAME, built by
#                      tests/tools/build-images.sh DIR): how the committed
#                      example policies were made
#   --generator CMD    default "kimactl policy generate"
#   after --            options for the generator: --authfile FILE, --cacert FILE, ...
# Each policy matches namespace open5gs and label app.kubernetes.io/name=NAME
# and is pinned to its image's digests (match.images): a pod running another
# image is not judged by it (unknown, not trusted).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REGISTRY=docker.io TAG=latest DEMO= GEN="kimactl policy generate"
while [ $# -gt 0 ]; do
    case $1 in
    --registry) REGISTRY=$2; shift 2 ;;
    --tag) TAG=$2; shift 2 ;;
    --demo) DEMO=$2; shift 2 ;;
    --generator) GEN=$2; shift 2 ;;
    --) shift; break ;;
    -h | --help) sed -n '3,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "generate-policies: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
declare -A IMAGE=([amf]=${AMF_IMAGE:-} [smf]=${SMF_IMAGE:-} [upf]=${UPF_IMAGE:-})
mkdir -p "$HERE/policies"
for f in amf smf upf; do
    src=${IMAGE[$f]}
    if [ -z "$src" ] && [ -n "$DEMO" ]; then
        src=oci:$DEMO/layout:$f
    elif [ -z "$src" ]; then
        src=docker://$REGISTRY/open5gs/$f:$TAG
    fi
    # shellcheck disable=SC2086 # GEN is a command line
    $GEN --name "open5gs-$f" --namespace open5gs --label "app.kubernetes.io/name=$f" \
        -o "$HERE/policies/open5gs-$f.json" "$@" "$src"
    echo "policies/open5gs-$f.json from $src"
done
