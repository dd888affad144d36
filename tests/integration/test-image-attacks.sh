#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The review of issue 13's policy generator, as tests: hostile images and a
# hostile registry against kimactl policy generate. Each case asserts what
# must hold; those marked FINDING held a hole when the review found it (a
# token minted with another registry's credentials, unbounded entry
# metadata, link chains walked again per entry, a selection the recommended
# IMA policy did not match), all fixed since; the bad() texts still say
# what the hole was.
# Loopback only; every image is made here by tests/helpers/attack-image.py.
# Usage: test-image-attacks.sh KIMACTL
set -u
K=$1
HERE=$(cd "$(dirname "$0")" && pwd)
AI="python3 $HERE/../helpers/attack-image.py"
T=$(mktemp -d "${TMPDIR:-/tmp}/kima-attacks.XXXXXX")
. "$HERE/helpers.sh"
REG_PID=
cleanup() {
    [ -z "$REG_PID" ] || kill "$REG_PID" 2>/dev/null
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
need_tools python3
# No auth file of the machine's user may change what is tested.
export HOME=$T/home XDG_RUNTIME_DIR=
unset REGISTRY_AUTH_FILE
mkdir -p "$HOME"

# image NAME SPEC... -> oci:$T/NAME:v1 with one layer
image() {
    local n=$1
    shift
    $AI tar "$T/$n.tar" "$@" && $AI layout "$T/$n" "$T/$n.tar"
}
paths() { python3 -c 'import json,sys; print("\n".join(sorted(json.load(open(sys.argv[1]))["digests"])))' "$1"; }

# --- 1. FINDING (High): a registry launders the user's credentials for
# another host. The registry's Bearer challenge names a realm on a host the
# auth file has credentials for, with a push scope on that host's
# repository; kimactl asks that realm for a token with the user's
# credentials and hands the token to the registry.
python3 "$HERE/../helpers/hostile-registry.py" --info "$T/reg.json" --log "$T/reg.log" \
    --timeout 120 &
REG_PID=$!
WAIT_STEP=0.05 wait_until 10 test -s "$T/reg.json" || bad "hostile registry did not start"
EP=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["evil_port"])' "$T/reg.json")
VP=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["victim_port"])' "$T/reg.json")
printf '{"auths":{"localhost:%s":{"auth":"%s"}}}\n' "$VP" "$(printf alice:secret | base64)" \
    >"$T/auth.json"
"$K" policy generate --insecure --timeout 10 --authfile "$T/auth.json" --namespace x \
    "docker://127.0.0.1:$EP/app:v1" >"$T/out" 2>"$T/err"
touch "$T/reg.log"
if grep -q "VICTIM-TOKEN" "$T/reg.log"; then
    bad "FINDING: the registry on 127.0.0.1:$EP received a token minted with the auth file's credentials for localhost:$VP ($(tr '\n' ' ' <"$T/reg.log"))"
else ok; fi
# The token request went out without credentials (the auth file has none
# for the registry), and kimactl failed.
grep -q "victim refused: None" "$T/reg.log" && ok ||
    bad "the token request to the foreign realm was not anonymous: $(tr '\n' ' ' <"$T/reg.log")"
[ -s "$T/err" ] && ! grep -q secret "$T/err" && ok || bad "no error, or one that shows a secret"
# With credentials for the registry itself, they (and only they) go to the
# realm it names, as docker sends them; the scope asked for is pull on the
# repository read, never the challenge's push on the victim's repository.
: >"$T/reg.log"
printf '{"auths":{"127.0.0.1:%s":{"auth":"%s"},"localhost:%s":{"auth":"%s"}}}\n' \
    "$EP" "$(printf alice:secret | base64)" "$VP" "$(printf mallory:x | base64)" >"$T/auth2.json"
"$K" policy generate --insecure --timeout 10 --authfile "$T/auth2.json" --namespace x \
    "docker://127.0.0.1:$EP/app:v1" >"$T/out" 2>"$T/err"
if grep -q "victim issued for repository:app:pull$" "$T/reg.log" &&
    ! grep -q "push\|victim/private" "$T/reg.log"; then ok; else
    bad "the token request did not ask for repository:app:pull alone: $(tr '\n' ' ' <"$T/reg.log")"
fi
kill "$REG_PID" 2>/dev/null
wait "$REG_PID" 2>/dev/null
REG_PID=

# The same with the realm on the registry's host name, another port: that
# is another host, and its auth file entry is not sent either.
rm -f "$T/reg.json" "$T/reg.log"
python3 "$HERE/../helpers/hostile-registry.py" --info "$T/reg.json" --log "$T/reg.log" \
    --realm-same-host --timeout 120 &
REG_PID=$!
WAIT_STEP=0.05 wait_until 10 test -s "$T/reg.json" || bad "hostile registry did not start"
EP=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["evil_port"])' "$T/reg.json")
VP=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["victim_port"])' "$T/reg.json")
printf '{"auths":{"127.0.0.1:%s":{"auth":"%s"},"127.0.0.1":{"auth":"%s"}}}\n' "$VP" \
    "$(printf alice:secret | base64)" "$(printf alice:secret | base64)" >"$T/auth.json"
"$K" policy generate --insecure --timeout 10 --authfile "$T/auth.json" --namespace x \
    "docker://127.0.0.1:$EP/app:v1" >"$T/out" 2>"$T/err"
touch "$T/reg.log"
if grep -q "VICTIM-TOKEN" "$T/reg.log"; then
    bad "the registry on 127.0.0.1:$EP received a token minted with the auth file's credentials for 127.0.0.1:$VP ($(tr '\n' ' ' <"$T/reg.log"))"
else ok; fi
kill "$REG_PID" 2>/dev/null
wait "$REG_PID" 2>/dev/null
REG_PID=

# --- 2. FINDING (Medium): metadata memory is bounded by no cap. Entries of
# long paths cost memory per byte of path whatever --max-bytes says: a
# 4 MB layer of 60,000 empty files with 4,000-byte paths. What should hold:
# either a cap refuses it (exit 2, naming the flag) or memory stays small.
$AI longpaths "$T/long.tar.gz" 60000 4000 && $AI layout "$T/long" "$T/long.tar.gz"
python3 - "$K" "$T/long" >"$T/mem" 2>&1 <<'PY'
import resource, subprocess, sys
p = subprocess.run([sys.argv[1], "policy", "generate", "--node", "--threads", "1",
                    "oci:" + sys.argv[2] + ":v1"], capture_output=True)
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
print(p.returncode, rss, p.stderr.decode(errors="replace").strip()[:300])
PY
read -r mrc mrss mrest <"$T/mem"
if [ "$mrc" = 2 ] && echo "$mrest" | grep -q -- "--max-"; then ok
elif [ "$mrc" = 0 ] && [ "$mrss" -lt 160 ]; then ok
else bad "FINDING: 60,000 long-path entries (a 4 MB layer): exit $mrc, peak RSS $mrss MiB (no cap on entry metadata): $mrest"; fi

# --- 2b. (Medium, fixed with 2) CPU: each entry's parent re-walked from
# the root through 40 links of 641 components: 6,000 entries whose parents
# alternate between two such chains are 154 million components. What must
# hold: the walk budget refuses it (exit 2, naming --max-walk), counted,
# not timed.
$AI linkwalk "$T/walk.tar.gz" 6000 && $AI layout "$T/walk" "$T/walk.tar.gz"
expect 2 "$K" policy generate --node --threads 1 "oci:$T/walk:v1"
has "$T/err" "(raise the cap with --max-walk)" "link chains walked again for every entry"
# The flags: the chains' 80 link targets of 1,604 bytes pass 64 KiB of
# metadata; a cap of 0 is a usage error; --help names both.
expect 2 "$K" policy generate --node --max-meta-bytes 65536 "oci:$T/walk:v1"
has "$T/err" "(raise the cap with --max-meta-bytes), reached at entry" "--max-meta-bytes"
expect 64 "$K" policy generate --node --max-walk 0 "oci:$T/walk:v1"
expect 0 "$K" policy --help
has "$T/out" "--max-meta-bytes N" "--help"
has "$T/out" "--max-walk N" "--help"

# --- 3. (was Medium) The IMA policy docs/kubernetes.md recommended
# measured FILE_CHECK for uid 0, so every dynamically linked program a root
# container ran made the kernel measure /etc/ld.so.cache, which the default
# selection (executables and ELF files) leaves out: the pod turned untrusted
# on its first program. What holds now: the recommended IMA policy measures
# only what runs (BPRM_CHECK, FILE_MMAP MAY_EXEC), which is what the default
# selection covers; --all covers a node that measures reads too.
image ldcache 'f:etc/ld.so.cache:644:glibc-ld.so.cache1.1\x00' 'f:usr/lib/libx.so:644:\x7fELF\x02' \
    'f:usr/bin/prog:755:#!/bin/sh'
expect 0 "$K" policy generate --node "oci:$T/ldcache:v1"
python3 - "$T/out" <<'PY' && ok || bad "the default selection is not executables and ELF files"
import json, sys
d = json.load(open(sys.argv[1]))["digests"]
sys.exit(0 if "/usr/lib/libx.so" in d and "/usr/bin/prog" in d and "/etc/ld.so.cache" not in d else 1)
PY
expect 0 "$K" policy generate --node --all "oci:$T/ldcache:v1"
has "$T/out" '"/etc/ld.so.cache"' "--all: every regular file"
DOC=$(dirname "$0")/../../docs/kubernetes.md
# The recommended policy block: exec and mmap measured, no FILE_CHECK
# measure rule (reads in containers cannot be in a golden policy).
python3 - "$DOC" <<'PY' && ok || bad "docs/kubernetes.md's IMA policy measures reads, which image policies cannot cover"
import re, sys
text = open(sys.argv[1]).read()
block = text[text.index("2. **IMA policy.**"):text.index("3. **TPM.**")]
rules = [l.split("#")[0].split() for l in block.splitlines() if re.match(r"\s*(dont_)?measure ", l)]
ok = any(r[:2] == ["measure", "func=BPRM_CHECK"] for r in rules) and \
     any(r[:2] == ["measure", "func=FILE_MMAP"] for r in rules) and \
     not any(r[0] == "measure" and "func=FILE_CHECK" in r for r in rules)
sys.exit(0 if ok else 1)
PY

# --- probes that found nothing (kept: cheap, they pin the behaviour) ---

# A whiteout in a higher layer removes the file; an opaque directory hides
# the lower files and keeps the layer's own.
$AI tar "$T/low.tar" 'f:usr/bin/gone:755:old' 'f:opt/a/y:755:y1' 'f:opt/a/z:755:z1'
$AI tar "$T/up.tar" 'f:usr/bin/.wh.gone:644:' 'f:opt/a/.wh..wh..opq:644:' 'f:opt/a/z:755:z2'
$AI layout "$T/wh" "$T/low.tar" "$T/up.tar"
expect 0 "$K" policy generate --node "oci:$T/wh:v1"
paths "$T/out" >"$T/paths"
printf '/opt/a/z\n' >"$T/want"
same "$T/paths" "$T/want" "whiteout and opaque directory"

# A hard link from a higher layer keeps a file whose first name is whited
# out in the same layer (the link is listed under its own name).
$AI tar "$T/hl1.tar" 'f:usr/bin/a:755:\x7fELFa'
$AI tar "$T/hl2.tar" 'h:usr/bin/b:usr/bin/a' 'f:usr/bin/.wh.a:644:'
$AI layout "$T/hl" "$T/hl1.tar" "$T/hl2.tar"
expect 0 "$K" policy generate --node "oci:$T/hl:v1"
paths "$T/out" >"$T/paths"
printf '/usr/bin/b\n' >"$T/want"
same "$T/paths" "$T/want" "hard link kept after its source's whiteout"

# A file reached through a symlinked parent lands at the real path; a
# group- or other-only execute bit selects a file.
image usrm 'd:usr/bin' 'l:bin:usr/bin' 'f:bin/tool:701:t' 'f:usr/bin/grp:610:g'
expect 0 "$K" policy generate --node "oci:$T/usrm:v1"
paths "$T/out" >"$T/paths"
printf '/usr/bin/grp\n/usr/bin/tool\n' >"$T/want"
same "$T/paths" "$T/want" "usrmerge and execute bits"

# Paths out of the root through a symlinked parent, hard links or
# whiteouts: exit 2 naming the entry, no output file.
image out1 'l:evil:../../etc' 'f:evil/passwd:755:x'
expect 2 "$K" policy generate --node -o "$T/p.json" "oci:$T/out1:v1"
has "$T/err" "leaves the image root" "symlinked parent out of the root"
[ ! -e "$T/p.json" ] && ok || bad "a policy was written after an error"
image out2 'h:x:../etc/passwd'
expect 2 "$K" policy generate --node "oci:$T/out2:v1"
image out3 'f:a/.wh...:644:'
expect 2 "$K" policy generate --node "oci:$T/out3:v1"

# Paths: UTF-8 kept byte for byte, a newline carried as JSON's \n; a path
# that is not UTF-8 is left out with a warning that quotes it (a JSON policy
# cannot hold it, so a measurement of it fails closed), the rest generated.
image names 'f:usr/bin/caf\xc3\xa9:755:x' 'f:usr/bin/nl\nx:755:x'
expect 0 "$K" policy generate --node "oci:$T/names:v1"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["digests"]; sys.exit(0 if "/usr/bin/caf\u00e9" in d and "/usr/bin/nl\nx" in d else 1)' "$T/out" &&
    ok || bad "UTF-8 and newline paths not carried as written"
image latin 'f:usr/bin/bad\xff:755:x' 'f:usr/bin/good:755:x'
expect 0 "$K" policy generate --node "oci:$T/latin:v1"
has "$T/err" "left out 1 file(s) whose path is not UTF-8" "a path that is not UTF-8"
has "$T/err" '"/usr/bin/bad\xff"' "the path quoted"
has "$T/out" '"/usr/bin/good"' "the other files generated"

# docker-archive members: "..", symlinks out of the archive, duplicates.
for v in dotdot symout dup; do
    $AI docker-archive "$T/da-$v.tar" "$v"
    expect 2 "$K" policy generate --node "docker-archive:$T/da-$v.tar"
done

echo "test-image-attacks: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
