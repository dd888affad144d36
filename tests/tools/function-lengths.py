#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""List C functions longer than a limit (lines from the signature's last
line to the closing brace), as clang-format lays them out: a definition ends
its signature with " {" at column 0 and closes with "}" at column 0.
Usage: function-lengths.py [--max N] [--top K] DIR...
Exit 1 when a function in the given directories is longer than N (default
100: about two screens); --top lists the K longest whatever their length."""
import argparse
import os
import re
import sys

NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(")


def functions(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    start = name = None
    for i, line in enumerate(lines):
        if start is None and line.endswith(") {"):
            # The signature starts at the last line at column 0.
            k = i
            while k > 0 and (not lines[k][:1].strip() or lines[k][0] in "#/*"):
                k -= 1
            sig = " ".join(lines[k : i + 1])
            head = sig.split("(")[0]
            if "=" in head or head.startswith(("if", "for", "while", "switch")) or ";" in sig:
                continue
            m = NAME.search(sig)
            start, name = i, m.group(1) if m else "?"
        elif start is not None and line == "}":
            yield name, start + 1, i - start + 1
            start = None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--max", type=int, default=100)
    ap.add_argument("--top", type=int, default=0)
    ap.add_argument("dirs", nargs="+")
    a = ap.parse_args()
    found = []
    for d in a.dirs:
        for root, _, files in os.walk(d):
            for fn in sorted(files):
                if fn.endswith(".c"):
                    p = os.path.join(root, fn)
                    found += [(n, p, line, length) for n, line, length in functions(p)]
    found.sort(key=lambda f: -f[3])
    for n, p, line, length in found[: a.top]:
        print("%5d  %s:%d %s" % (length, p, line, n))
    long = [f for f in found if f[3] > a.max]
    for n, p, line, length in long:
        print("too long: %s:%d %s is %d lines (at most %d)" % (p, line, n, length, a.max))
    print("%d functions, %d longer than %d lines" % (len(found), len(long), a.max))
    return 1 if long else 0


if __name__ == "__main__":
    sys.exit(main())
