#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# One audit chain per verifier replica, checked together: three real
# kima-verifier replicas (--replica kima-verifier-0,1,2, each its own audit
# log, key and store, as each pod of the StatefulSet has its own volume)
# write their chains; kimactl audit verify --deployment / --chain reports
# each chain and the deployment: intact; a record deleted in the middle (the
# gap named with its seq); a chain passed off as another replica's; one
# replica twice; an expected replica missing; a cut tail, also against the
# replica's signed head; a rotated file missing.
# Usage: test-audit-replicas.sh KIMA_VERIFIER KIMACTL
set -u
V=$1
K=$2
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
. "$HERE/helpers.sh"
VPID=
cleanup() {
    [ -n "$VPID" ] && kill -9 "$VPID" 2>/dev/null
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
need_tools python3 curl openssl

D=$T/deploy
# run_replica NAME DIR [ARGS...]: start the replica on its own volume DIR,
# stop it with SIGTERM (a drain: drain-start, drain-end, a checkpoint).
starts=0
run_replica() {
    local name=$1 dir=$2
    shift 2
    mkdir -p "$dir"
    starts=$((starts + 1))
    verifier_start "$T/verifier.log" "$starts" --insecure-plain-http --replica "$name" \
        --db "$dir/kima.db" --audit-log "$dir/audit.log" --audit-key "$dir/audit.key" "$@"
    URL=${URL/https:/http:}
    if [ -n "${SAVE_HEAD:-}" ]; then
        curl -s -o "$SAVE_HEAD" "$URL/v1/audit/head"
    fi
    kill -TERM "$VPID"
    wait "$VPID"
    VPID=
}
records() { wc -l <"$1" | tr -d ' '; }

# --- three replicas, replica 0 restarted until its log rotates (4 KiB)
for r in 0 1 2; do
    for _ in 1 2 3; do run_replica "kima-verifier-$r" "$D/kima-verifier-$r"; done
done
for _ in 1 2 3 4 5; do
    run_replica kima-verifier-0 "$D/kima-verifier-0" --audit-max-bytes 4096
done
ls "$D"/kima-verifier-0/audit.log.* >/dev/null 2>&1 && ok || bad "replica 0's log did not rotate"
run_replica kima-verifier-0 "$D/kima-verifier-0" # records in the live file too
rm -f "$D"/*/kima.db* # the operator copies logs and public keys (the private keys stay here for the restarts below)
has "$D/kima-verifier-1/audit.log" '"type":"replica","details":{"replica":"kima-verifier-1"' \
    "the chain starts with its replica's name"

# --- intact: the directory form, the --chain form, and the old single form
expect 0 "$K" audit verify --deployment "$D" --expect-replicas kima-verifier-0,kima-verifier-1,kima-verifier-2
has "$T/out" "deployment intact: 3 chains," "three intact chains"
has "$T/out" "chain kima-verifier-2 [$D/kima-verifier-2]: key sha256:" "a chain's line"
grep -q "^chain kima-verifier-0 .* 2 files, .*seq 1-.*: intact$" "$T/out" && ok ||
    bad "replica 0's chain (rotated and live file): $(head -3 "$T/out")"
expect 0 "$K" audit verify --deployment "$D" --expect-replicas 3
C1=$D/kima-verifier-1
C2=$D/kima-verifier-2
C0FILES=$(ls "$D"/kima-verifier-0/audit.log.* | sort | tr '\n' ,)$D/kima-verifier-0/audit.log
expect 0 "$K" audit verify --chain "$D/kima-verifier-0/audit.key.pub:$C0FILES" \
    --chain "$C1/audit.key.pub:$C1/audit.log" --chain "$C2/audit.key.pub:$C2/audit.log"
has "$T/out" "deployment intact: 3 chains," "the --chain form"
expect 0 "$K" audit verify --key "$C1/audit.key.pub" "$C1/audit.log"
has "$T/out" "intact: " "one chain alone, the single-chain form"

# --- a log written before replicas had names (v1 checkpoints, no replica
# record), made here with the audit key and openssl: it verifies as before,
# alone and in a deployment, as replica "-"
mkdir -p "$T/old/kima-verifier-0"
openssl genpkey -algorithm ed25519 -out "$T/old.key" 2>/dev/null
openssl pkey -in "$T/old.key" -pubout -out "$T/old/kima-verifier-0/audit.key.pub"
python3 - "$T/old.key" "$T/old/kima-verifier-0/audit.log" <<'PY' || bad "make an old log"
import base64, hashlib, json, subprocess, sys
prev, out = "0" * 64, []
def add(seq, typ, details):
    global prev
    body = json.dumps({"seq": seq, "time": "2026-01-01T00:00:0%d.000Z" % seq, "type": typ,
                       "details": details, "prev": prev}, separators=(",", ":"))
    prev = hashlib.sha256(body.encode()).hexdigest()
    out.append(body[:-1] + ',"hash":"%s"}' % prev)
add(1, "registration", {"node": "n"})
add(2, "state-change", {"state": "trusted"})
msg = "kima-audit-checkpoint-v1\n3\n" + prev
open(sys.argv[2] + ".msg", "w").write(msg)
sig = subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", sys.argv[1], "-in",
                      sys.argv[2] + ".msg"], capture_output=True, check=True).stdout
add(3, "checkpoint", {"signature": base64.b64encode(sig).decode()})
open(sys.argv[2], "w").write("\n".join(out) + "\n")
PY
rm -f "$T/old/kima-verifier-0/audit.log.msg"
expect 0 "$K" audit verify --key "$T/old/kima-verifier-0/audit.key.pub" "$T/old/kima-verifier-0/audit.log"
has "$T/out" "intact: 3 records, 1 signed checkpoints" "an old log alone"
expect 0 "$K" audit verify --deployment "$T/old"
has "$T/out" "chain - [$T/old/kima-verifier-0]: key sha256:" "an old log names no replica"
has "$T/out" "deployment intact: 1 chains, 3 records" "an old log in a deployment"
expect 1 "$K" audit verify --deployment "$T/old" --expect-replicas kima-verifier-0
has "$T/out" "PROBLEM replica \"kima-verifier-0\" is expected but has no chain" \
    "an unnamed chain is no expected replica"

# copy NAME: a fresh copy of the deployment in $T/NAME
copy() { rm -rf "${T:?}/$1" && cp -r "$D" "$T/$1"; }

# --- a record deleted in the middle: the gap named with its seq
copy del
python3 - "$T/del/kima-verifier-1/audit.log" <<'PY' || bad "delete a record"
import sys
lines = open(sys.argv[1]).readlines()
del lines[3]  # seq 4
open(sys.argv[1], "w").writelines(lines)
PY
expect 1 "$K" audit verify --deployment "$T/del"
has "$T/out" "  GAP $T/del/kima-verifier-1/audit.log:4 (seq 5): sequence jumps from 3: seq 4-4 missing" \
    "the deleted record's seq"
has "$T/out" "deployment NOT intact: 1 problems in 1 of 3 chains" "the summary names one chain"

# --- a rotated file missing between the first and the live one
copy rot
rm "$(ls "$T"/rot/kima-verifier-0/audit.log.* | sort | head -1)"
expect 1 "$K" audit verify --deployment "$T/rot"
grep -q "GAP $T/rot/kima-verifier-0/audit.log:1 (seq [0-9]*): sequence jumps from 0: seq 1-" "$T/out" && ok ||
    bad "the first rotated file missing: $(cat "$T/out")"
# ... and all of them, after a rotation left the live file empty
copy rot
: >"$T/rot/kima-verifier-0/audit.log"
rm "$T"/rot/kima-verifier-0/audit.log.*
expect 1 "$K" audit verify --deployment "$T/rot"
has "$T/out" "PROBLEM no records" "an empty chain"

# --- replica 2's chain passed off as replica 1's: its name edited in every
# record and the chain re-hashed, without the key
copy ren
rm -rf "$T/ren/kima-verifier-1"
mv "$T/ren/kima-verifier-2" "$T/ren/kima-verifier-1"
python3 - "$T/ren/kima-verifier-1/audit.log" <<'PY' || bad "rename"
import hashlib, sys
prev, out = "0" * 64, []
for line in open(sys.argv[1]).read().splitlines():
    line = line.replace('"kima-verifier-2"', '"kima-verifier-1"')
    i = line.index('"prev":"') + 8
    line = line[:i] + prev + line[i + 64:]
    body = line[:line.rindex(',"hash":"')] + "}"
    prev = hashlib.sha256(body.encode()).hexdigest()
    out.append(body[:-1] + ',"hash":"%s"}' % prev)
open(sys.argv[1], "w").write("\n".join(out) + "\n")
PY
expect 1 "$K" audit verify --deployment "$T/ren" --expect-replicas 3
has "$T/out" "checkpoint signature does not verify" "the renamed chain's signatures"
has "$T/out" "deployment NOT intact" "the renamed chain"

# --- the same replica twice: a fourth verifier started as kima-verifier-0
run_replica kima-verifier-0 "$T/twin"
expect 1 "$K" audit verify --chain "$T/twin/audit.key.pub:$T/twin/audit.log" \
    --chain "$C1/audit.key.pub:$C1/audit.log"  --chain "$D/kima-verifier-0/audit.key.pub:$C0FILES"
has "$T/out" "PROBLEM two chains claim replica \"kima-verifier-0\": --chain 1 and --chain 3" \
    "one replica twice"
# ... and one chain copied under another name: its name and its key twice
copy dup
cp -r "$T/dup/kima-verifier-1" "$T/dup/kima-verifier-3"
expect 1 "$K" audit verify --deployment "$T/dup"
has "$T/out" "PROBLEM two chains use the same key sha256:" "one key twice"
has "$T/out" "the directory is named \"kima-verifier-3\" but its chain is replica \"kima-verifier-1\"" \
    "a directory holding another replica's chain"

# --- an expected replica without a chain
copy miss
rm -rf "$T/miss/kima-verifier-2"
expect 1 "$K" audit verify --deployment "$T/miss" --expect-replicas 3
has "$T/out" "PROBLEM expected 3 replicas, found 2 chains" "a replica missing (count)"
expect 1 "$K" audit verify --deployment "$T/miss" \
    --expect-replicas kima-verifier-0,kima-verifier-1,kima-verifier-2
has "$T/out" "PROBLEM replica \"kima-verifier-2\" is expected but has no chain" \
    "a replica missing (names)"

# --- a cut tail: unsigned offline, truncated against the replica's head
SAVE_HEAD=$D/kima-verifier-2/audit.head.json run_replica kima-verifier-2 "$D/kima-verifier-2"
json "$D/kima-verifier-2/audit.head.json" "the saved head"
expect 0 "$K" audit verify --deployment "$D"
grep -q "^chain kima-verifier-2 .*(with its signed head): intact$" "$T/out" && ok ||
    bad "the chain with its head: $(grep kima-verifier-2 "$T/out")"
copy cut
HEADSEQ=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seq"])' \
    "$D/kima-verifier-2/audit.head.json")
head -n $((HEADSEQ - 1)) "$D/kima-verifier-2/audit.log" >"$T/cut/kima-verifier-2/audit.log"
expect 1 "$K" audit verify --deployment "$T/cut"
has "$T/out" "GAP truncated: the files end at seq $((HEADSEQ - 1)), the replica's signed head is seq $HEADSEQ" \
    "cut before the head"
has "$T/out" "GAP unsigned tail: seq " "the cut copy's unsigned tail"
rm "$T/cut/kima-verifier-2/audit.head.json"
expect 1 "$K" audit verify --deployment "$T/cut"
grep -q "^  GAP unsigned tail: seq [0-9]*-$((HEADSEQ - 1)) (" "$T/out" && ok ||
    bad "unsigned tail without the head: $(cat "$T/out")"
expect 0 "$K" audit verify --deployment "$T/cut" --allow-unsigned-tail
has "$T/out" "NOTE unsigned tail" "an accepted tail"
# a head of another replica: not signed by this chain's key
cp "$D/kima-verifier-2/audit.head.json" "$T/cut/kima-verifier-1/audit.head.json"
expect 1 "$K" audit verify --deployment "$T/cut" --allow-unsigned-tail
has "$T/out" "audit.head.json is not signed by" "another replica's head"

# --- usage and unreadable input
expect 64 "$K" audit verify --chain "nocolon"
expect 64 "$K" audit verify --chain "$C1/audit.key.pub:$C1/audit.log" --key "$C1/audit.key.pub"
expect 64 "$K" audit verify --deployment "$D" --expect-replicas Kima_0
has "$T/err" "uppercase" "a bad expected name says why"
expect 66 "$K" audit verify --chain "$C1/audit.key.pub:$C1/nothing.log"
expect 66 "$K" audit verify --deployment "$T/nothing"
"$K" audit --help | grep -q -- "--deployment DIR" && ok || bad "--help names --deployment"

# --- the verifier's --replica
"$V" --replica Bad_Name >/dev/null 2>"$T/err"
[ $? -eq 64 ] && ok || bad "--replica Bad_Name must be a usage error"
has "$T/err" "uppercase letter" "--replica says what is wrong"
"$V" --replica "$(printf 'a%.0s' $(seq 64))" >/dev/null 2>"$T/err"
[ $? -eq 64 ] && ok || bad "a 64-character --replica must be a usage error"
# another replica's volume is refused
"$V" --listen 127.0.0.1:0 --insecure-plain-http --replica kima-verifier-1 --db "$T/x.db" \
    --audit-log "$T/twin/audit.log" --audit-key "$T/twin/audit.key" >"$T/wrong.log" 2>&1
[ $? -eq 1 ] && ok || bad "a replica on another replica's audit log must not start"
has "$T/wrong.log" 'belongs to replica \"kima-verifier-0\"' "the wrong volume is named"
# without --replica (the host name's), a log that names its replica keeps it
timeout -s TERM 4 "$V" --listen 127.0.0.1:0 --insecure-plain-http --db "$T/x.db" \
    --audit-log "$T/twin/audit.log" --audit-key "$T/twin/audit.key" >"$T/host.log" 2>&1
has "$T/host.log" 'goes on as replica \"kima-verifier-0\"' "a defaulted name keeps the log's"
grep -q "belongs to replica" "$T/host.log" && bad "a defaulted name must not refuse the log" || ok

summary
