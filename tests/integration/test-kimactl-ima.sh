#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# kimactl ima end to end: real fixtures in, golden text and exit codes out.
# Usage: test-kimactl-ima.sh KIMACTL FIXTURES_DIR
set -u
K=$1
F=$2/ima
G=$F/golden
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/helpers.sh"

# --- dump is byte-identical to the kernel's ASCII list (goldens from an independent reader)
expect 0 "$K" ima dump "$F/ibmtss/imatest.log"; same "$T/out" "$G/imatest.log.ascii" "dump imatest.log"
for n in 1 256 384 512; do
    expect 0 "$K" ima dump "$F/ibmtss/sha$n.log"; same "$T/out" "$G/sha$n.log.ascii" "dump sha$n.log"
    expect 0 "$K" ima replay "$F/ibmtss/sha$n.log"; same "$T/out" "$G/sha$n.log.replay" "replay sha$n.log"
done
expect 0 "$K" ima dump "$F/cima/DERIVED-ima-cgpath-binary_runtime_measurements_sha384"
same "$T/out" "$G/cima.ascii" "dump cima (from the event text)"
expect 0 "$K" ima dump "$F/tpm2-tss/sml-ima-sha1-invalidated.bin"
same "$T/out" "$G/sml-ima-sha1-invalidated.bin.ascii" "dump ima violation"
expect 0 "$K" ima dump "$F/tpm2-tss/sml-ima-sig-sha256-invalidated.bin"
same "$T/out" "$G/sml-ima-sig-sha256-invalidated.bin.ascii" "dump ima-sig violation"
# stdin, and a forced width
expect 0 "$K" ima dump --digest-size 32 - <"$F/ibmtss/sha256.log"; same "$T/out" "$G/sha256.log.ascii" "dump stdin"

# --- replay: one bank, ascending PCR indexes, JSON
expect 0 "$K" ima replay --bank sha256 "$F/ibmtss/sha1.log"
same "$T/out" <(grep sha256 "$G/sha1.log.replay") "replay --bank sha256"
expect 0 "$K" ima replay --bank sha1 --bank sha512 "$F/ibmtss/sha384.log"
same "$T/out" <(grep -E 'sha1:|sha512:' "$G/sha1.log.replay") "replay two banks"
expect 0 "$K" ima replay --json "$F/ibmtss/sha1.log"; json "$T/out" "replay --json"
has "$T/out" '"entries":362' "replay --json entries"
expect 64 "$K" ima replay --bank md5 "$F/ibmtss/sha1.log"

# --- check against the PCR 10 values the vTPM reported
pcr() { sed -n "$1p" "$F/ibmtss/imakvtpcr10.txt" | sed 's/.*://; s/ //g'; }
P1=$(pcr 1) P256=$(pcr 2) P384=$(pcr 3) P512=$(pcr 4)
for n in 1 256 384 512; do
    expect 0 "$K" ima check --pcr "sha1:10=$P1" --pcr "sha256:10=$P256" --pcr "sha384:10=$P384" \
        --pcr "sha512:10=$P512" "$F/ibmtss/sha$n.log"
    has "$T/out" "match: the first 362 of 362 entries" "check sha$n.log"
done
expect 1 "$K" ima check --pcr "sha256:10=${P256/7f/00}" "$F/ibmtss/sha1.log"
has "$T/out" "no match" "check wrong value"
has "$T/out" "10 sha256:$P256" "check reports what the list gives"
expect 1 "$K" ima check --pcr "sha256:11=$P256" "$F/ibmtss/sha1.log"
# a prefix: the PCR after the first 100 entries (the quote lags the list)
"$K" ima dump --json "$F/ibmtss/sha256.log" >"$T/dump.json"
off=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[100]["offset"])' "$T/dump.json")
head -c "$off" "$F/ibmtss/sha256.log" >"$T/first100_sha256"
V=$("$K" ima replay --bank sha256 "$T/first100_sha256" | sed 's/.*://')
expect 0 "$K" ima check --pcr "sha256:10=$V" "$F/ibmtss/sha256.log"
has "$T/out" "match: the first 100 of 362 entries" "check prefix"
expect 0 "$K" ima check --json --pcr "sha256:10=$V" "$F/ibmtss/sha256.log"; json "$T/out" "check --json"
has "$T/out" '"entries_matched":100' "check --json prefix"
expect 0 "$K" ima check --pcr "sha256:10=$(printf '0%.0s' $(seq 64))" "$F/ibmtss/sha1.log"
has "$T/out" "match: the first 0 of 362" "check empty prefix"
expect 2 "$K" ima check --pcr "sha256:10=$P256" "$F/tpm2-tss/sml-ima-sha1.bin"
expect 64 "$K" ima check "$F/ibmtss/sha1.log"
expect 64 "$K" ima check --pcr "sha256:10=abcd" "$F/ibmtss/sha1.log"
expect 64 "$K" ima check --pcr "sha256:24=$P256" "$F/ibmtss/sha1.log"

# --- malformed lists: exit 2, entry index and byte offset named
expect 2 "$K" ima dump "$F/tpm2-tss/sml-ima-sha1.bin"
has "$T/err" "entry 12 at byte offset 916: list ends inside an entry" "trailing byte (ima)"
expect 2 "$K" ima replay "$F/tpm2-tss/sml-ima-ng-sha1.bin"
has "$T/err" "entry 6 at byte offset 558" "trailing byte (ima-ng)"
expect 2 "$K" ima pods "$F/tpm2-tss/sml-ima-sig-sha256.bin"
has "$T/err" "entry 9 at byte offset 987: list ends inside an entry (incomplete entry: 6 bytes present" "trailing bytes (ima-sig)"
expect 2 "$K" ima dump "$F/tpm2-tss/sml-ima-ng-sha1-invalidated.bin"
has "$T/err" "entry 0 at byte offset 0" "malformed n-ng"
# one flipped bit in entry 5's file digest
cp "$F/ibmtss/sha1.log" "$T/tampered"
"$K" ima dump --json "$F/ibmtss/sha1.log" >"$T/d.json"
off5=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[5]["offset"])' "$T/d.json")
# a byte of the file digest inside d-ng: pcr, digest, name_len, "ima-sig", data_len, field len, "sha256:\0"
pos=$((off5 + 4 + 20 + 4 + 7 + 4 + 4 + 8 + 5))
printf "$(printf '\\x%02x' $(($(od -An -tu1 -j$pos -N1 "$T/tampered") ^ 1)))" | dd of="$T/tampered" bs=1 seek=$pos conv=notrunc 2>/dev/null
for cmd in dump replay pods; do
    expect 2 "$K" ima $cmd --digest-size 20 "$T/tampered"
    has "$T/err" "entry 5 at byte offset $off5: template digest does not match" "tampered $cmd"
done
expect 2 "$K" ima check --digest-size 20 --pcr "sha1:10=$P1" "$T/tampered"
expect 0 "$K" ima dump --no-verify --json --digest-size 20 "$T/tampered"
has "$T/out" '"digest_ok":false' "dump --no-verify marks the entry"
# the wrong width forced
expect 2 "$K" ima dump --digest-size 20 "$F/ibmtss/sha256.log"

# --- pods: the CIMA node's one pod and two containers
expect 0 "$K" ima pods "$F/cima/DERIVED-ima-cgpath-binary_runtime_measurements_sha384"
cat >"$T/pods.want" <<'TXT'
pod f52130f4-c5be-423e-8070-daaca055a5ad qos=guaranteed driver=systemd entries=77
  container 5bab9779a4ffb2a5acc4160dedb8571b75806c6ad25bf936387678aefd19cb9e runtime=containerd entries=2
  container 956a39cd3b6a170854269b4e98521ddc9a506f65e285bcfde3190a4c76482fb9 runtime=containerd entries=75
node entries=0
unplaced entries=0
total pods=1 entries=77
TXT
same "$T/out" "$T/pods.want" "pods cima"
expect 0 "$K" ima pods --json "$F/cima/DERIVED-ima-cgpath-binary_runtime_measurements_sha384"
json "$T/out" "pods --json"
expect 0 "$K" ima pods "$F/ibmtss/sha1.log"
has "$T/out" "node entries=362" "pods without cgroup fields"

# --- ASCII input (keylime)
expect 0 "$K" ima dump --ascii "$F/keylime/test_entries_ascii.txt"
same "$T/out" "$F/keylime/test_entries_ascii.txt" "ASCII round trip"
expect 2 "$K" ima dump --ascii "$F/keylime/negative_bad_sig_template_hash_mismatch.txt"
has "$T/err" "entry 0 at byte offset 0: template digest does not match" "keylime negative"
expect 0 "$K" ima dump --ascii --json "$F/keylime/test_entries_ascii.txt"; json "$T/out" "dump --json"
expect 0 "$K" ima replay --ascii "$G/sha256.log.ascii"; same "$T/out" "$G/sha256.log.replay" "replay from ASCII"

# --- usage and input errors
expect 64 "$K"
expect 64 "$K" nosuch
expect 64 "$K" ima
expect 64 "$K" ima frobnicate x
expect 64 "$K" ima dump
expect 64 "$K" ima dump a b
expect 64 "$K" ima dump --digest-size 16 "$F/ibmtss/sha1.log"
expect 64 "$K" ima dump --pcr sha1:10=00 "$F/ibmtss/sha1.log"
expect 66 "$K" ima dump /nonexistent/list
expect 0 "$K" ima --help; has "$T/out" "Exit codes" "ima --help"
expect 0 "$K" --help; has "$T/out" "Commands:" "--help"
expect 0 "$K" --version; has "$T/out" "kimactl " "--version"
expect 64 "$K" --log-level loud ima dump x
# errors as JSON log lines, with the untrusted path escaped
expect 66 "$K" --log-format json ima dump "$T/no\"such"
json "$T/err" "JSON log line"

summary
