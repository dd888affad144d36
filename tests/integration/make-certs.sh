#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Test PKI for the verifier: a CA, the server certificate (SAN 127.0.0.1,
# localhost), agent certificates (CN = node name, OU = kima-agent), an
# operator certificate (OU = kima-operator), and a second CA with an agent
# certificate that must be refused. Usage: make-certs.sh DIR NODE...
set -euo pipefail
d=$1
shift
mkdir -p "$d"
cd "$d"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() {
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days 2 -out "$1.pem" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        2>/dev/null
}
leaf() { # name subject ca usage [san]
    key "$1.key"
    openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\n' \
        "$4" >"$1.ext"
    [ -n "${5:-}" ] && printf 'subjectAltName=%s\n' "$5" >>"$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -days 2 \
        -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
ca ca "kima test CA"
ca other-ca "some other CA"
leaf server "/CN=kima-verifier" ca serverAuth "IP:127.0.0.1,DNS:localhost"
leaf operator "/OU=kima-operator/CN=alice" ca clientAuth
for n in "$@"; do
    leaf "agent-$n" "/OU=kima-agent/CN=$n" ca clientAuth
done
leaf foreign "/OU=kima-operator/CN=mallory" other-ca clientAuth
leaf server-as-client "/OU=kima-operator/CN=kima-verifier" ca serverAuth
