#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# kima demo. Until the agent and verifier exist (see README, Status), this
# shows the measurement-list core on real lists: replaying IMA lists from a
# real vTPM boot to the PCR 10 values that TPM reported, attributing a real
# k3s node's pod-aware entries to their pod and containers, and catching a
# tampered list. Installs missing Debian packages and builds first.
set -euo pipefail
cd "$(dirname "$0")"
tests/tools/install-deps.sh
if [ ! -f build/build.ninja ]; then
    meson setup build >/dev/null
fi
meson compile -C build >/dev/null
K=build/cli/kimactl
F=tests/fixtures/ima
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "A real IMA list (362 ima-sig entries, one boot of a vTPM; ibmtss fixture), first lines:"
$K ima dump "$F/ibmtss/sha256.log" >"$tmp"
head -4 "$tmp" | cut -c1-150

say "Replaying it: every template digest checked, every bank extended (Linux >= 5.8 rule)"
$K ima replay "$F/ibmtss/sha256.log"

say "What the vTPM itself reported for PCR 10 (sha1, sha256, sha384, sha512):"
sed 's/ //g; s/PCR10:/10 /' "$F/ibmtss/imakvtpcr10.txt"

say "Checking the list against those values (the same list in its four per-bank forms):"
pcr() { sed -n "$1p" "$F/ibmtss/imakvtpcr10.txt" | sed 's/.*://; s/ //g'; }
for n in 1 256 384 512; do
    printf '  sha%-3s list: ' "$n"
    $K ima check --pcr "sha1:10=$(pcr 1)" --pcr "sha256:10=$(pcr 2)" --pcr "sha384:10=$(pcr 3)" \
        --pcr "sha512:10=$(pcr 4)" "$F/ibmtss/sha$n.log"
done

say "Pod attribution: a k3s node with the ima-cgpath template (CIMA fixture, sha384)"
$K ima dump "$F/cima/DERIVED-ima-cgpath-binary_runtime_measurements_sha384" >"$tmp"
sed -n 3p "$tmp" | cut -c1-220
$K ima pods "$F/cima/DERIVED-ima-cgpath-binary_runtime_measurements_sha384"

say "Tampering: one bit of one file digest flipped in entry 5"
cp "$F/ibmtss/sha1.log" "$tmp"
off=$($K ima dump --json "$tmp" | python3 -c 'import json,sys; print(json.load(sys.stdin)[5]["offset"])')
pos=$((off + 4 + 20 + 4 + 7 + 4 + 4 + 8 + 5))
byte=$(od -An -tu1 -j"$pos" -N1 "$tmp")
printf "$(printf '\\x%02x' $((byte ^ 1)))" | dd of="$tmp" bs=1 seek="$pos" conv=notrunc 2>/dev/null
set +e
$K ima check --digest-size 20 --pcr "sha1:10=$(pcr 1)" "$tmp"
echo "  kimactl exit code: $? (2 = malformed list or a digest that does not verify)"
set -e

say "Done. Run ./test.sh for the whole test suite."
