#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A registry that misbehaves on request, for the tests of kima's docker://
source (policies/image-registry.c). It serves one image over the OCI
distribution API (GET /v2/REPO/manifests/REF, /v2/REPO/blobs/DIGEST): the
image of an OCI layout directory (--layout), or without one a small image
it makes itself (a gzip layer with bin/hello and etc/motd, an uncompressed
one of about 1 MiB with bin/big, its config, its manifest tagged "v1", and
an index tagged "multi").

How it misbehaves is named by the repository's first component, modes joined
by "-": REPO = "MODE[-MODE...]/NAME", e.g. "bearer-redirother/app".
  ok           behaves
  bearer       401 with a Bearer challenge; tokens from /token (any
               client); requests must carry one it issued for the scope
               "repository:REPO:pull" (as a real token server, a token
               is good for the scope it was asked for only)
  bearerpriv   the same, but only tokens issued to --user/--password
  accesstoken  the token endpoint answers {"access_token": ...} only
  hugetoken    the token endpoint answers a 20 KB token
  hugetokenbody  the token endpoint answers 100 KB
  realmhttp    the realm is on the plain http listener
  realmother   the realm is https://localhost:OTHER/token (another host)
  realmotherport  the realm is https://127.0.0.1:OTHER/token (the same
               host name, another port)
  scopeother   the challenge's scope asks for push on another repository
               ("repository:victim/private:pull,push")
  basic        401 with a Basic challenge; needs --user/--password
  rate         429 (Retry-After: 1) always
  rateonce     429 (Retry-After: 1) for the first request of each path
  fail         500
  forbidden    403
  redirhttp    blobs redirect (307) to the plain http listener
  redirother   blobs redirect to https://localhost:OTHER, which answers 400
               to a request carrying an Authorization header
  redirloop    blobs redirect to themselves
  stall        blobs send half their body, then nothing (for up to 30 s)
  stallhead    manifests send nothing (for up to 30 s)
  cllong       blobs announce a Content-Length 10 bytes over their size
  clshort      blobs announce one 10 bytes under their size
  truncate     blobs announce the right length and close half way
  extra        blobs without a Content-Length, with 10 bytes too many
  badblob      blobs of the right size with one byte changed
  hugemanifest manifests of 5 MiB (an honest Content-Length)
  hugenocl     manifests of 5 MiB without a Content-Length
  baddigest    a manifest asked by digest comes back with other bytes
  dcdwrong     a wrong Docker-Content-Digest header
Three listeners: the registry (TLS), OTHER (TLS, same certificate) and
PLAIN (http, the registry again). --info FILE gets, once all listen:
{"port", "other_port", "plain_port", "tags": {tag: digest},
 "blobs": [{"digest", "size"}], "manifest": digest of "v1"}.
It exits by itself after --timeout seconds (default 300).
Usage: fake-registry.py --cert PEM --key PEM --info FILE [--layout DIR]
       [--user U --password P] [--timeout S]
"""
import argparse
import base64
import gzip
import hashlib
import io
import json
import os
import secrets
import ssl
import sys
import tarfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARGS = None
BLOBS = {}      # digest -> bytes
MANIFESTS = {}  # digest -> (media type, bytes)
TAGS = {}       # tag -> digest
TOKENS = {}     # token -> (user ("" anonymous), scope it was issued for)
COUNTS = {}     # path -> requests seen (rateonce)
PORTS = {}
LOCK = threading.Lock()

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
HUGE = 5 << 20


def sha256(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def add_blob(b):
    d = sha256(b)
    BLOBS[d] = b
    return {"digest": d, "size": len(b)}


def noise(n):
    """n bytes that do not compress, the same every run."""
    out, block = bytearray(), b"kima"
    while len(out) < n:
        block = hashlib.sha512(block).digest()
        out += block
    return bytes(out[:n])


def make_image():
    """A two-layer image and an index over it, in memory."""
    big = io.BytesIO()
    with tarfile.open(fileobj=big, mode="w", format=tarfile.PAX_FORMAT) as t:
        ti = tarfile.TarInfo("bin/big")
        ti.size, ti.mode, ti.mtime = 1 << 20, 0o755, 0
        t.addfile(ti, io.BytesIO(noise(1 << 20)))
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data, mode in (("bin/hello", b"\x7fELF" + b"\x02\x01\x01" + b"\0" * 57 +
                                  b"hello from the fake registry\n" * 40, 0o755),
                                 ("etc/motd", b"welcome\n", 0o644)):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), mode, 0
            t.addfile(ti, io.BytesIO(data))
    layer = add_blob(gzip.compress(raw.getvalue(), mtime=0))
    layer["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
    layer2 = add_blob(big.getvalue())
    layer2["mediaType"] = "application/vnd.oci.image.layer.v1.tar"
    config = add_blob(json.dumps({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers",
                   "diff_ids": [sha256(raw.getvalue()), sha256(big.getvalue())]}},
        sort_keys=True).encode())
    config["mediaType"] = "application/vnd.oci.image.config.v1+json"
    man = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
                      "layers": [layer, layer2]}, sort_keys=True).encode()
    MANIFESTS[sha256(man)] = (OCI_MANIFEST, man)
    TAGS["v1"] = sha256(man)
    idx = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sha256(man), "size": len(man),
         "platform": {"architecture": "amd64", "os": "linux"}}]}, sort_keys=True).encode()
    MANIFESTS[sha256(idx)] = (OCI_INDEX, idx)
    TAGS["multi"] = sha256(idx)


def load_layout(d):
    """Every blob of an OCI layout; manifests are the JSON blobs with a
    manifest or index media type; tags from index.json's ref names."""
    for alg in os.listdir(os.path.join(d, "blobs")):
        for h in os.listdir(os.path.join(d, "blobs", alg)):
            with open(os.path.join(d, "blobs", alg, h), "rb") as f:
                b = f.read()
            BLOBS[alg + ":" + h] = b
            try:
                mt = json.loads(b).get("mediaType", "")
            except (ValueError, AttributeError):
                continue
            if mt in (OCI_MANIFEST, OCI_INDEX):
                MANIFESTS[alg + ":" + h] = (mt, b)
    with open(os.path.join(d, "index.json")) as f:
        for m in json.load(f)["manifests"]:
            tag = m.get("annotations", {}).get("org.opencontainers.image.ref.name")
            if tag:
                TAGS[tag] = m["digest"]


class Handler(BaseHTTPRequestHandler):
    server_version = "fake-registry"
    listener = "main"

    def log_message(self, fmt, *args):
        pass

    def send(self, code, body=b"", ctype="application/json", headers=(), length=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass

    def send_chunked(self, body, ctype, headers=()):
        """A body without a Content-Length: HTTP/1.1 chunks, so that its end
        is the last chunk, not a close that could lose the tail."""
        self.protocol_version = "HTTP/1.1"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        try:
            for i in range(0, len(body), 65536):
                part = body[i:i + 65536]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass
        self.close_connection = True

    def error(self, code, what, headers=()):
        body = json.dumps({"errors": [{"code": what, "message": what.lower()}]}).encode()
        self.send(code, body, headers=headers)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/token":
            return self.token()
        if path == "/v2/":
            return self.send(200, b"{}")
        parts = path.split("/")
        # /v2/MODE/NAME/{manifests,blobs}/REF
        if len(parts) != 6 or parts[0] != "" or parts[1] != "v2":
            return self.error(404, "NAME_UNKNOWN")
        modes = set(parts[2].split("-"))
        repo = parts[2] + "/" + parts[3]
        if self.listener == "other":
            if self.headers.get("Authorization"):
                return self.error(400, "AUTHORIZATION_FORWARDED")
            return self.blob(modes - {"redirother"}, parts[5])
        if not self.admitted(modes, repo):
            return
        if "rate" in modes or ("rateonce" in modes and self.count(path) == 1):
            return self.error(429, "TOOMANYREQUESTS", [("Retry-After", "1")])
        if "fail" in modes:
            return self.error(500, "INTERNAL")
        if "forbidden" in modes:
            return self.error(403, "DENIED")
        if parts[4] == "manifests":
            return self.manifest(modes, parts[5])
        if parts[4] == "blobs":
            return self.blob(modes, parts[5])
        return self.error(404, "NAME_UNKNOWN")

    def count(self, path):
        with LOCK:
            COUNTS[path] = COUNTS.get(path, 0) + 1
            return COUNTS[path]

    def creds_ok(self, header):
        want = base64.b64encode(f"{ARGS.user}:{ARGS.password}".encode()).decode()
        return ARGS.user is not None and header == "Basic " + want

    def admitted(self, modes, repo):
        got = self.headers.get("Authorization", "")
        if "basic" in modes and not self.creds_ok(got):
            self.error(401, "UNAUTHORIZED", [("WWW-Authenticate", 'Basic realm="fake"')])
            return False
        if "bearer" in modes or "bearerpriv" in modes:
            tok = got[7:] if got.startswith("Bearer ") else None
            with LOCK:
                user, scope = TOKENS.get(tok, (None, None))
            if (user is None or scope != f"repository:{repo}:pull" or
                    ("bearerpriv" in modes and user != ARGS.user)):
                if "realmhttp" in modes:
                    realm = f"http://127.0.0.1:{PORTS['plain']}/token"
                elif "realmother" in modes:
                    realm = f"https://localhost:{PORTS['other']}/token"
                elif "realmotherport" in modes:
                    realm = f"https://127.0.0.1:{PORTS['other']}/token"
                else:
                    realm = f"https://127.0.0.1:{PORTS['main']}/token"
                extra = ",".join(sorted(modes & {"accesstoken", "hugetoken", "hugetokenbody"}))
                want = ("victim/private:pull,push" if "scopeother" in modes else
                        f"{repo}:pull")
                ch = (f'Bearer realm="{realm}",service="fake{"-" + extra if extra else ""}",'
                      f'scope="repository:{want}"')
                self.error(401, "UNAUTHORIZED", [("WWW-Authenticate", ch)])
                return False
        return True

    def token(self):
        q = dict(p.split("=", 1) for p in self.path.split("?", 1)[-1].split("&") if "=" in p)
        got = self.headers.get("Authorization", "")
        if got and not self.creds_ok(got):
            return self.error(401, "UNAUTHORIZED")
        if not q.get("scope", "").startswith("repository%3A"):
            return self.error(400, "NO_SCOPE")
        tok = secrets.token_hex(16)
        with LOCK:
            TOKENS[tok] = (ARGS.user if got else "", urllib.parse.unquote(q["scope"]))
        svc = q.get("service", "")
        if "hugetokenbody" in svc:
            return self.send(200, json.dumps({"token": tok, "pad": "x" * 100000}).encode())
        if "hugetoken" in svc:
            return self.send(200, json.dumps({"token": "x" * 20000}).encode())
        key = "access_token" if "accesstoken" in svc else "token"
        self.send(200, json.dumps({key: tok, "expires_in": 300}).encode())

    def manifest(self, modes, ref):
        if ref in TAGS:
            digest = TAGS[ref]
        elif ref in MANIFESTS:
            digest = ref
        else:
            return self.error(404, "MANIFEST_UNKNOWN")
        mt, body = MANIFESTS[digest]
        said = digest
        if "stallhead" in modes:
            time.sleep(30)
            return None
        if "baddigest" in modes and ref == digest:
            body = body + b"\n"
            said = sha256(body)
        if "dcdwrong" in modes:
            said = sha256(b"something else")
        if "hugemanifest" in modes or "hugenocl" in modes:
            body = b"{" + b" " * HUGE + b"}"
            said = sha256(body)
        headers = [("Docker-Content-Digest", said)]
        if "hugenocl" in modes:
            return self.send_chunked(body, mt, headers)
        return self.send(200, body, mt, headers)

    def blob(self, modes, digest):
        body = BLOBS.get(digest)
        if body is None:
            return self.error(404, "BLOB_UNKNOWN")
        here = f"/v2/ok/app/blobs/{digest}"
        if "redirhttp" in modes:
            return self.send(307, headers=[("Location", f"http://127.0.0.1:{PORTS['plain']}{here}")])
        if "redirother" in modes:
            return self.send(307, headers=[("Location", f"https://localhost:{PORTS['other']}{here}")])
        if "redirloop" in modes:
            return self.send(307, headers=[("Location", self.path)])
        ct = "application/octet-stream"
        if "badblob" in modes:
            body = bytes([body[0] ^ 1]) + body[1:]
        if "cllong" in modes:
            return self.send(200, body, ct, length=len(body) + 10)
        if "clshort" in modes:
            return self.send(200, body, ct, length=len(body) - 10)
        if "extra" in modes:
            return self.send_chunked(body + b"0123456789", ct)
        if "truncate" in modes or "stall" in modes:
            self.send_response(200)
            self.send_header("Content-Type", ct)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            if "stall" in modes:
                time.sleep(30)
            return None
        return self.send(200, body, ct)


class OtherHandler(Handler):
    listener = "other"


def serve(handler, tls):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(ARGS.cert, ARGS.key)
        # The handshake happens in the handler's thread, so that a client
        # that never finishes one blocks nobody else.
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv.server_address[1]


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--info", required=True)
    p.add_argument("--layout")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--timeout", type=float, default=300)
    ARGS = p.parse_args()
    if ARGS.layout:
        load_layout(ARGS.layout)
    else:
        make_image()
    PORTS["main"] = serve(Handler, True)
    PORTS["other"] = serve(OtherHandler, True)
    PORTS["plain"] = serve(Handler, False)
    info = {"port": PORTS["main"], "other_port": PORTS["other"], "plain_port": PORTS["plain"],
            "tags": TAGS, "manifest": TAGS.get("v1", ""),
            "blobs": [{"digest": d, "size": len(b)} for d, b in sorted(BLOBS.items())]}
    tmp = ARGS.info + ".tmp"
    with open(tmp, "w") as f:
        json.dump(info, f)
    os.rename(tmp, ARGS.info)
    print(PORTS["main"], flush=True)
    time.sleep(ARGS.timeout)
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
