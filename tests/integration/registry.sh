# SPDX-License-Identifier: Apache-2.0
# A real registry for the tests (sourced): Debian's docker-registry (the
# CNCF distribution registry) on loopback with TLS from a test CA and
# htpasswd (bcrypt) auth, and images built with umoci and pushed with
# skopeo. Every wait is bounded; the caller's EXIT trap calls
# registry_stop. Needs helpers.sh sourced first (wait_until).
#
#   registry_start DIR       start it; sets REGISTRY_PID, REGISTRY_HOST
#                            (127.0.0.1:PORT), REGISTRY_CA (the CA's PEM),
#                            REGISTRY_CERTS (a skopeo --cert-dir),
#                            REGISTRY_USER, REGISTRY_PASS, REGISTRY_LOG
#   registry_stop            stop it (nothing when none runs)
#   registry_authfile FILE [USER:PASS]
#                            an auth.json for REGISTRY_HOST (default: the
#                            right credentials)
#   registry_image LAYOUT TAG SRCDIR
#                            an OCI layout LAYOUT:TAG whose one layer holds
#                            SRCDIR's files (umoci)
#   registry_push LAYOUT TAG REPO:TAG
#                            push it with skopeo
#   registry_skopeo ARGS...  skopeo with a policy that accepts anything

REGISTRY_PID=

registry_tools() {
    need_tools docker-registry skopeo umoci htpasswd openssl curl python3
}

# A CA and a server certificate (SAN 127.0.0.1, localhost) in DIR.
registry_certs() {
    local d=$1
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=kima registry test CA" -keyout "$d/ca.key" -out "$d/ca.pem" \
        -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null || return 1
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/CN=registry" -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null || return 1
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n%s\n%s\n' \
        "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" >"$d/server.ext"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
        -CAcreateserial -days 2 -extfile "$d/server.ext" -out "$d/server.pem" 2>/dev/null
}

registry_free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# The registry answers /v2/ (401 without credentials: it is up).
registry_up() {
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 --cacert "$REGISTRY_CA" \
        "https://$REGISTRY_HOST/v2/" 2>/dev/null)
    [ "$code" = 401 ] || [ "$code" = 200 ]
}

registry_start() {
    local d=$1 port tries
    mkdir -p "$d/storage" "$d/certs.d"
    registry_certs "$d" || { echo "registry: cannot make certificates"; return 1; }
    cp "$d/ca.pem" "$d/certs.d/ca.crt"
    REGISTRY_USER=kima
    REGISTRY_PASS=kima-test-pass
    htpasswd -Bbn "$REGISTRY_USER" "$REGISTRY_PASS" >"$d/htpasswd" 2>/dev/null || return 1
    REGISTRY_CA=$d/ca.pem
    REGISTRY_CERTS=$d/certs.d
    REGISTRY_LOG=$d/registry.log
    # The port is free when asked and taken a moment later; another
    # process may win it in between: try a few.
    for tries in 1 2 3; do
        port=$(registry_free_port)
        REGISTRY_HOST=127.0.0.1:$port
        cat >"$d/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $d/storage
http:
  addr: $REGISTRY_HOST
  tls:
    certificate: $d/server.pem
    key: $d/server.key
auth:
  htpasswd:
    realm: kima-test
    path: $d/htpasswd
EOF
        docker-registry serve "$d/config.yml" >>"$REGISTRY_LOG" 2>&1 &
        REGISTRY_PID=$!
        WAIT_STEP=0.1 wait_until 20 registry_up && return 0
        registry_stop
    done
    echo "registry did not start: $(tail -5 "$REGISTRY_LOG")"
    return 1
}

registry_stop() {
    if [ -n "${REGISTRY_PID:-}" ]; then
        kill "$REGISTRY_PID" 2>/dev/null
        wait "$REGISTRY_PID" 2>/dev/null
    fi
    REGISTRY_PID=
}

registry_authfile() {
    local file=$1 cred=${2:-$REGISTRY_USER:$REGISTRY_PASS}
    printf '{"auths": {"%s": {"auth": "%s"}}}\n' "$REGISTRY_HOST" \
        "$(printf '%s' "$cred" | base64 -w0)" >"$file"
}

registry_image() {
    local layout=$1 tag=$2 src=$3 bundle rootless=
    bundle=$(mktemp -d "${layout%/*}/bundle.XXXXXX")
    [ "$(id -u)" -eq 0 ] || rootless=--rootless
    [ -d "$layout" ] || umoci init --layout "$layout" || return 1
    umoci new --image "$layout:$tag" &&
        umoci unpack $rootless --image "$layout:$tag" "$bundle/b" >/dev/null &&
        cp -a "$src/." "$bundle/b/rootfs/" &&
        umoci repack --image "$layout:$tag" "$bundle/b" >/dev/null || return 1
    rm -rf "$bundle"
}

registry_skopeo() {
    local pol=${TMPDIR:-/tmp}/kima-skopeo-policy.$$.json
    [ -f "$pol" ] || echo '{"default": [{"type": "insecureAcceptAnything"}]}' >"$pol"
    skopeo --policy "$pol" "$@"
    local rc=$?
    rm -f "$pol"
    return $rc
}

registry_push() {
    registry_skopeo copy -q --dest-creds "$REGISTRY_USER:$REGISTRY_PASS" \
        --dest-cert-dir "$REGISTRY_CERTS" "oci:$1:$2" "docker://$REGISTRY_HOST/$3"
}
