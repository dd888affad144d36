#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Install the Debian 12 packages kima builds and tests with, if any is missing.
# Usage: install-deps.sh [extra packages...]
set -euo pipefail
pkgs=(gcc libc6-dev pkg-config meson ninja-build python3 libssl-dev libcmocka-dev
      clang-format ima-evm-utils libtss2-dev swtpm swtpm-tools tpm2-tools openssl libjansson-dev libsqlite3-dev
      libmicrohttpd-dev libgnutls28-dev libcurl4-openssl-dev libyaml-dev curl
      libarchive-dev umoci skopeo "$@")
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
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
