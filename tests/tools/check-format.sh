#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Every C source and header is as .clang-format lays it out (docs/design.md section 11).
# Usage: check-format.sh SOURCE_ROOT   (exit 77, "skipped", without clang-format)
set -u
root=$1
command -v clang-format >/dev/null || { echo "clang-format not installed"; exit 77; }
cd "$root" || exit 1
bad=0
n=0
while IFS= read -r f; do
    n=$((n + 1))
    if ! clang-format --style=file --dry-run --Werror "$f" >/dev/null 2>&1; then
        echo "not formatted: $f (clang-format -i $f)"
        bad=$((bad + 1))
    fi
done < <(find common ima tpm audit cli agent verifier tests -name '*.[ch]' 2>/dev/null | sort)
echo "$n files checked, $bad not formatted"
[ "$bad" -eq 0 ] && [ "$n" -gt 0 ]
