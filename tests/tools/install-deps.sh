#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Install the Debian 12 packages kima builds and tests with, if any is missing.
# Usage: install-deps.sh [extra packages...]
set -euo pipefail
pkgs=(gcc libc6-dev pkg-config meson ninja-build python3 libssl-dev libcmocka-dev
      clang-format ima-evm-utils libtss2-dev swtpm swtpm-tools tpm2-tools openssl libjansson-dev libsqlite3-dev
      libmicrohttpd-dev libgnutls28-dev libcurl4-openssl-dev libyaml-dev curl
      libarchive-dev docker-registry skopeo umoci apache2-utils zstd xz-utils
      postgresql-15 libpq-dev haproxy prometheus python3-yaml "$@")
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "Installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# The tests start their own PostgreSQL (tests/integration/pg.sh) and never
# the system's: when postgresql-15 comes in now, a policy-rc.d that refuses
# service starts keeps its postinst from starting the "15/main" cluster, and
# the service it enables is disabled again (the guard holds for the other
# packages of the same run too). A policy-rc.d already in place
# (containers have one) is left alone.
pg_new=""
# (haproxy's too: the tests start their own, tests/integration/haproxy.sh)
case " ${missing[*]} " in *" postgresql-15 "* | *" haproxy "*) pg_new=1 ;; esac
rcd=/usr/sbin/policy-rc.d
rcd_ours=""
if [ -n "$pg_new" ] && [ ! -e "$rcd" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$rcd" >/dev/null
    $sudo chmod 755 "$rcd"
    rcd_ours=1
    trap '$sudo rm -f "$rcd"' EXIT
fi
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if [ -n "$pg_new" ] && command -v systemctl >/dev/null; then
    $sudo systemctl disable --quiet postgresql.service 2>/dev/null || true
    $sudo systemctl disable --quiet haproxy.service 2>/dev/null || true
fi
[ -z "$rcd_ours" ] || { $sudo rm -f "$rcd"; trap - EXIT; }
