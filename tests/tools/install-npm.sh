#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Install the npm packages the Kubernetes manifest check needs
# (tests/integration/test-manifests.sh, tests/tools/validate-manifests.cjs,
# tests/tools/check-admission-policy.mjs: a CEL implementation; ajv for the
# quarantines' strict schemas, @kubernetes-models/cilium for Cilium's CRDs)
# into DIR/node_modules, from the npm registry, pinned. Nothing is fetched
# when DIR holds them already: `meson test` itself never downloads.
# Usage: install-npm.sh DIR   (test.sh passes each build folder's npm/)
set -euo pipefail
mkdir -p "$1"
dir=$(cd "$1" && pwd)
pkgs=(kubernetes-models@4.5.1 yaml@2.3.4 @kubernetes-models/cert-manager@4.3.1
    @marcbachmann/cel-js@8.0.0 ajv@8.20.0 @kubernetes-models/cilium@4.0.0
    @kubernetes-models/prometheus-operator@4.0.0)

installed() { # NAME@VERSION: DIR has exactly that version
    local name=${1%@*} version=${1##*@}
    [ -f "$dir/node_modules/$name/package.json" ] &&
        node -e 'const fs = require("fs");
process.exit(JSON.parse(fs.readFileSync(process.argv[1])).version === process.argv[2] ? 0 : 1)' \
            "$dir/node_modules/$name/package.json" "$version" 2>/dev/null
}
missing=()
for p in "${pkgs[@]}"; do
    installed "$p" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "npm: installing ${missing[*]} into $dir"
npm install --prefix "$dir" --no-audit --no-fund --prefer-offline --loglevel=error "${pkgs[@]}" \
    >"$dir/npm-install.log" 2>&1 || { cat "$dir/npm-install.log"; exit 1; }
for p in "${pkgs[@]}"; do
    installed "$p" || { echo "npm: $p is not in $dir after the install"; exit 1; }
done
