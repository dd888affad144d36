#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# kima's whole test suite: a normal build and an address+undefined sanitizer
# build (warnings as errors), each running every unit, fixture, fuzz-corpus,
# integration and style test, then the VM suite (docs/kernel.md). Installs
# missing Debian packages and the manifest check's npm packages first: the
# tests themselves download nothing. Each build's logs stay in its folder
# (BUILD/setup.log, BUILD/compile.log, BUILD/meson-logs/).
# Ends with "N passed, N failed"; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")"
# node and npm check the Kubernetes manifests offline (Debian's, unless a
# node is there already).
extra=()
command -v node >/dev/null && command -v npm >/dev/null || extra=(nodejs npm)
tests/tools/install-deps.sh "${extra[@]}" || { echo "dependency installation failed"; exit 1; }
# The manifest check's npm packages (pinned, from the npm registry), into
# each build folder, where test-manifests.sh looks for them.
for dir in build build-san; do
    tests/tools/install-npm.sh "$dir/npm" || { echo "npm package installation failed"; exit 1; }
done

status=0
run_build() {
    local dir=$1
    shift
    mkdir -p "$dir"
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" "$@" >"$dir/setup.log" 2>&1 || { cat "$dir/setup.log"; return 1; }
    fi
    meson compile -C "$dir" >"$dir/compile.log" 2>&1 || { tail -50 "$dir/compile.log"; return 1; }
    meson test -C "$dir" --print-errorlogs --num-processes 2
}

echo "== build (gcc, debugoptimized, -Wall -Wextra and more)"
run_build build -Dwerror=true || status=1
echo "== sanitizer build (address, undefined)"
run_build build-san -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true \
    -Dbench=false -Dbuildtype=debug || status=1

# The VM suite: kima on Linux 6.1 (vm) and 6.12 (vm-6.12) with its patches
# under QEMU, pods as crun containers of the demo images (each kernel is
# built once, 4-7 minutes on 2 cores, then cached in build/vm/VERSION:
# docs/kernel.md; KIMA_SKIP_VM=1 leaves it out).
vmlog=()
if [ -z "${KIMA_SKIP_VM:-}" ]; then
    echo "== VM suite (patched Linux 6.1 and 6.12 under QEMU with a vTPM)"
    tests/tools/install-deps.sh qemu-system-x86 busybox-static cpio linux-source-6.1 \
        linux-source-6.12 bc bison flex libelf-dev xz-utils patch crun attr || status=1
    meson test -C build --suite vm --print-errorlogs --logbase vmlog || status=1
    vmlog=(build/meson-logs/vmlog.json)
fi

# One closing line over all of it, from meson's own test logs.
python3 - build/meson-logs/testlog.json build-san/meson-logs/testlog.json "${vmlog[@]}" <<'PY'
import json, sys
passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        failed += 1
        continue
    for line in lines:
        r = json.loads(line).get("result")
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:
            failed += 1
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
PY
[ $? -eq 0 ] || status=1
exit $status
