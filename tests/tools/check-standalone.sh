#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The repository stands on its own: no tracked file may send the reader to
# a design, style or reference document, or fixtures, that live outside it
# (docs/ holds the design and the formats). Fixture data and fuzz corpora
# are not read; the fixtures' own notes and scripts are.
# Usage: check-standalone.sh SOURCE_ROOT   (exit 77, "skipped", outside a git checkout)
set -u
root=$1
command -v git >/dev/null || { echo "git not installed"; exit 77; }
git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1 ||
    { echo "$root is not a git checkout"; exit 77; }
cd "$root" || exit 1

# Written in pieces so that this file does not match itself.
notes='(DESIGN|STYLE)[.]md|IMA''-FORMAT'
outside='shared/(reference|fixtures)|[.][.]/shared'
pattern="$notes|$outside"

n=0
hits=0
while IFS= read -r -d '' f; do
    case "$f" in
    tests/fuzz/corpus/*) continue ;;
    tests/fixtures/*.md | tests/fixtures/*.sh) ;;
    tests/fixtures/*) continue ;;
    esac
    [ -f "$f" ] || continue
    n=$((n + 1))
    if found=$(grep -I -n -E "$pattern" -- "$f"); then
        printf '%s\n' "$found" | sed "s|^|$f:|"
        hits=$((hits + 1))
    fi
done < <(git ls-files -z)
echo "$n tracked files checked, $hits point outside the repository"
[ "$hits" -eq 0 ] && [ "$n" -gt 0 ]
