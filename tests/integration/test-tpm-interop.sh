#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Interop with tpm2-tools on a real TPM 2.0 (swtpm): quotes made by
# tpm2_createak/tpm2_quote verify with `kimactl quote verify`, and quotes made
# by kima's agent code pass tpm2_checkquote.
# Usage: test-tpm-interop.sh KIMACTL TPM_QUOTE_TOOL
set -u
K=$1
QT=$2
T=$(mktemp -d)
. "$(dirname "$0")/helpers.sh"
trap 'swtpm_stop; rm -rf "$T"' EXIT
need_tools swtpm tpm2_createak tpm2_quote tpm2_checkquote
swtpm_start "$T/tpm" || exit 1
export TPM2TOOLS_TCTI=$SWTPM_TCTI
# Without a resource manager, every tool's transient objects must go.
flush() { tpm2_flushcontext -t >/dev/null 2>&1; tpm2_flushcontext -s >/dev/null 2>&1; }
NONCE=5ca1ab1e0123456789abcdef00112233445566778899aabbccddeeff01020304

# pcr_args SELECTION: "--pcr bank:i=hex" for each PCR, read with tpm2_pcrread.
pcr_args() {
    tpm2_pcrread "$1" | awk '
        /^ *sha[0-9]+:$/ { bank = $1; sub(":", "", bank); next }
        /^ *[0-9]+ *: 0x/ { idx = $1; sub(":", "", idx); val = $NF; sub("0x", "", val);
                            printf "--pcr %s:%s=%s ", bank, idx, tolower(val) }'
}

for kind in rsa:rsassa ecc:ecdsa; do
    alg=${kind%%:*} scheme=${kind##*:}
    d="$T/$alg"
    mkdir -p "$d"
    tpm2_createek -c "$d/ek.ctx" -G rsa -u "$d/ek.pub" >/dev/null 2>&1 || bad "tpm2_createek"
    flush
    tpm2_createak -C "$d/ek.ctx" -c "$d/ak.ctx" -G "$alg" -g sha256 -s "$scheme" \
        -u "$d/ak.pub" -n "$d/ak.name" >/dev/null 2>&1 || bad "tpm2_createak $alg"
    flush
    tpm2_readpublic -c "$d/ak.ctx" -f pem -o "$d/ak.pem" >/dev/null 2>&1 || bad "tpm2_readpublic"
    flush
    # Extend PCR 10 so it is not all zeros.
    tpm2_pcrextend "10:sha256=$(printf '%064d' 7)" >/dev/null 2>&1
    tpm2_quote -c "$d/ak.ctx" -l sha256:0,10+sha1:10 -q "$NONCE" -m "$d/msg" -s "$d/sig" \
        -g sha256 >/dev/null 2>&1 || bad "tpm2_quote $alg"
    flush
    PCRS=$(pcr_args sha256:0,10+sha1:10)

    # shellcheck disable=SC2086
    expect 0 "$K" quote verify --ak "$d/ak.pub" --nonce "$NONCE" --attest "$d/msg" \
        --signature "$d/sig" $PCRS
    has "$T/out" "valid: signature, nonce, PCR selection, pcrDigest and clock checks passed" \
        "tpm2-tools $alg quote"
    expect 0 "$K" quote verify --ak "$d/ak.pem" --nonce "$NONCE" --attest "$d/msg" \
        --signature "$d/sig"
    has "$T/out" "PCRs not checked" "tpm2-tools $alg quote, PEM key"
    expect 1 "$K" quote verify --ak "$d/ak.pub" --nonce "${NONCE/5ca1/dead}" --attest "$d/msg" \
        --signature "$d/sig"
    has "$T/out" "invalid: nonce:" "wrong nonce ($alg)"
    # shellcheck disable=SC2086
    expect 1 "$K" quote verify --ak "$d/ak.pub" --nonce "$NONCE" --attest "$d/msg" \
        --signature "$d/sig" $(pcr_args sha256:0,10)
    has "$T/out" "invalid: pcr-selection:" "selection differs ($alg)"
    # shellcheck disable=SC2086
    expect 1 "$K" quote verify --ak "$d/ak.pub" --nonce "$NONCE" --attest "$d/msg" \
        --signature "$d/sig" ${PCRS/=0/=1}
    has "$T/out" "invalid: pcr-digest:" "changed PCR value ($alg)"
    expect 1 "$K" quote verify --ak "$d/ek.pub" --nonce "$NONCE" --attest "$d/msg" \
        --signature "$d/sig"
    has "$T/out" "invalid: ak-attributes: AK cannot sign" "the EK is no AK ($alg)"
    cp "$d/sig" "$d/sig.bad"
    # Flip every bit of byte 20 (inside r for ECDSA, the RSA signature):
    # writing a fixed value left the signature intact when the byte held it.
    python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[20] ^= 0xff
open(sys.argv[1], "wb").write(b)' "$d/sig.bad"
    expect 1 "$K" quote verify --ak "$d/ak.pub" --nonce "$NONCE" --attest "$d/msg" \
        --signature "$d/sig.bad"
    has "$T/out" "invalid: signature" "flipped signature byte ($alg)"
    expect 0 "$K" quote show --attest "$d/msg"
    has "$T/out" "extraData: $NONCE" "quote show"
    has "$T/out" "pcrSelect: sha256:0,10+sha1:10" "quote show selection"
    expect 0 "$K" quote verify --json --ak "$d/ak.pub" --nonce "$NONCE" --attest "$d/msg" \
        --signature "$d/sig"
    json "$T/out" "quote verify --json"
    expect 2 "$K" quote show --attest "$d/ak.pub"

    # kima's quote, judged by tpm2_checkquote.
    mkdir -p "$d/kima"
    if "$QT" "$SWTPM_TCTI" "$alg" "$NONCE" sha256:0,10+sha1:10 "$d/kima" 2>"$T/err"; then
        ok
    else
        bad "kima quote ($alg): $(head -c 300 "$T/err")"
    fi
    expect 0 tpm2_checkquote -u "$d/kima/ak.pem" -m "$d/kima/attest" -s "$d/kima/sig" \
        -q "$NONCE" -g sha256 -f "$d/kima/pcrs.bin" -l sha256:0,10+sha1:10
    expect 0 tpm2_checkquote -u "$d/kima/ak.pub" -m "$d/kima/attest" -s "$d/kima/sig" \
        -q "$NONCE" -g sha256
    expect 1 tpm2_checkquote -u "$d/kima/ak.pem" -m "$d/kima/attest" -s "$d/kima/sig" \
        -q "${NONCE/5ca1/dead}" -g sha256
    # and by kimactl
    # shellcheck disable=SC2046
    expect 0 "$K" quote verify --ak "$d/kima/ak.pub" --nonce "$NONCE" --attest "$d/kima/attest" \
        --signature "$d/kima/sig" $(cat "$d/kima/pcrs.args")
done

summary
