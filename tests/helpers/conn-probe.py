#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""What kept-alive agent connections cost kima-verifier, and whether it holds
them: opens N mTLS connections with agent certificates (node-1 ... node-K of a
make-certs.sh PKI, at most --per-cert connections each, as the verifier allows),
from many loopback source addresses (127.A.B.C) or all from one (--sources 1,
nodes behind one SNAT address), sends one agent request on each (POST
/v1/nodes/NODE/challenges: 404 for a node not registered, answered as that
node), keeps them all open and idle, and reads the verifier's RSS and open
files from /proc before and after.

Then, with --resume M, M connections are closed and opened again offering
their TLS session: how many the verifier resumed, and the handshake times of
full and resumed handshakes (figures, not checked). With --handshake-cost N,
first: the verifier's CPU time (from /proc) per connection for N connections
with a full handshake and N resuming a session, one after the other.

Prints one line of figures; exits 0 when every connection was answered as its
node and stayed open, 1 otherwise. Bounded: at most --connections (<= 20000)
connections, each step within --timeout seconds.

Usage: conn-probe.py --port PORT --pki DIR --pid VERIFIER_PID --nodes K
                     [--connections N] [--per-cert 8] [--sources S]
                     [--threads T] [--resume M] [--timeout 60] [--hold S]
                     [--handshake-cost N]
Python standard library only.
"""
import argparse
import resource
import socket
import ssl
import sys
import threading
import time

HOST = "127.0.0.1"
CONNECTIONS_MAX = 20000


def proc_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError("no %s" % key)


def cpu_seconds(pid):
    """The verifier's user + system CPU time so far."""
    import os
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_files(pid):
    import os
    return len(os.listdir("/proc/%d/fd" % pid))


def source(i, sources):
    """The i-th source address of `sources` (127.1.0.1 on; 1: 127.0.0.9)."""
    if sources == 1:
        return "127.0.0.9"
    k = i % sources
    return "127.1.%d.%d" % (k // 250, k % 250 + 1)


def read_answer(s, deadline):
    """(status, body) of one answer with a Content-Length; None if closed."""
    buf = b""
    while b"\r\n\r\n" not in buf or len(buf) < need(buf):
        s.settimeout(max(0.01, deadline - time.monotonic()))
        d = s.recv(65536)
        if not d:
            return None
        buf += d
    head, body = buf.split(b"\r\n\r\n", 1)
    return int(head.split()[1]), body


def need(buf):
    head = buf.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            return len(head) + 4 + int(v)
    return len(head) + 4


def request(node):
    return ("POST /v1/nodes/%s/challenges HTTP/1.1\r\nHost: %s\r\n"
            "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}" % (node, HOST)).encode()


class Probe:
    def __init__(self, args):
        self.args = args
        self.contexts = {}
        self.lock = threading.Lock()
        self.conns = {}  # index -> (sslsocket, node)
        self.errors = []

    def context(self, node):
        with self.lock:
            if node not in self.contexts:
                c = ssl.create_default_context(cafile="%s/ca.pem" % self.args.pki)
                c.load_cert_chain("%s/agent-%s.pem" % (self.args.pki, node),
                                  "%s/agent-%s.key" % (self.args.pki, node))
                self.contexts[node] = c
            return self.contexts[node]

    def node(self, i):
        return "node-%d" % (i // self.args.per_cert + 1)

    def connect(self, i, session=None):
        """A connection as node(i), one request answered on it. Returns
        (socket, handshake seconds)."""
        node = self.node(i)
        deadline = time.monotonic() + self.args.timeout
        raw = socket.create_connection((HOST, self.args.port), timeout=self.args.timeout,
                                       source_address=(source(i, self.args.sources), 0))
        try:
            t0 = time.monotonic()
            s = self.context(node).wrap_socket(raw, server_hostname=HOST, session=session)
            took = time.monotonic() - t0
            s.sendall(request(node))
            a = read_answer(s, deadline)
        except BaseException:
            raw.close()
            raise
        # 404 "unknown node": answered as that node (another node's route
        # would be 403, no certificate 401).
        if a is None or a[0] != 404 or b"unknown node" not in a[1]:
            s.close()
            raise RuntimeError("connection %d (%s): %s" % (i, node, a))
        return s, took

    def open_range(self, indices):
        for i in indices:
            try:
                s, _ = self.connect(i)
                with self.lock:
                    self.conns[i] = (s, self.node(i))
            except Exception as e:  # noqa: BLE001 - every failure is reported
                with self.lock:
                    self.errors.append("connection %d: %s" % (i, e))

    def open_all(self, n, threads):
        # A node's connections from one thread, one after the other: the
        # verifier takes one request body of a node at a time (an agent has
        # one connection), and would answer a concurrent one 429.
        per = self.args.per_cert
        parts = [[i for i in range(n) if (i // per) % threads == t] for t in range(threads)]
        ts = [threading.Thread(target=self.open_range, args=(p,)) for p in parts]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    def still_open(self):
        """Connections that still answer as their node."""
        alive = 0
        for i, (s, node) in sorted(self.conns.items()):
            try:
                s.sendall(request(node))
                a = read_answer(s, time.monotonic() + self.args.timeout)
                if a is not None and a[0] == 404:
                    alive += 1
                    continue
            except (OSError, ssl.SSLError):
                pass
            self.errors.append("connection %d (%s) was closed while idle" % (i, node))
        return alive

    def reconnect(self, i, session=None):
        """connect(), again while the verifier has not yet seen the close of
        the connection it replaces (429 at the per-certificate cap); at
        most 40 tries, 50 ms apart."""
        for _ in range(39):
            try:
                return self.connect(i, session)
            except RuntimeError as e:
                if "(429," not in str(e):
                    raise
            time.sleep(0.05)
        return self.connect(i, session)

    def resume(self, m):
        """Close m connections and reconnect them offering their session."""
        full, resumed, reused = [], [], 0
        for i in sorted(self.conns)[:m]:
            s, node = self.conns[i]
            sess = s.session
            s.close()
            # One new connection without the session (a full handshake) ...
            f, took = self.reconnect(i)
            full.append(took)
            f.close()
            # ... and one offering it.
            r, took = self.reconnect(i, session=sess)
            resumed.append(took)
            reused += 1 if r.session_reused else 0
            self.conns[i] = (r, node)
        return reused, full, resumed


def handshake_cost(p, n):
    """The verifier's CPU per connection (handshake, one request, close):
    n with a full handshake, then n resuming one session. Sequential, one
    node's certificate; returns (full_us, resumed_us, resumed_count)."""
    first, _ = p.reconnect(0)
    sess = first.session
    first.close()
    t0 = cpu_seconds(p.args.pid)
    for _ in range(n):
        s, _ = p.reconnect(0)
        s.close()
    t1 = cpu_seconds(p.args.pid)
    reused = 0
    for _ in range(n):
        s, _ = p.reconnect(0, session=sess)
        reused += 1 if s.session_reused else 0
        sess = s.session
        s.close()
    t2 = cpu_seconds(p.args.pid)
    return (t1 - t0) / n * 1e6, (t2 - t1) / n * 1e6, reused


def ms(xs):
    xs = sorted(xs)
    return "%.2f ms median, %.2f ms p90" % (1000 * xs[len(xs) // 2], 1000 * xs[len(xs) * 9 // 10])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pki", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--nodes", type=int, required=True, help="agent certificates node-1..K")
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--per-cert", type=int, default=8)
    ap.add_argument("--sources", type=int, default=1000, help="source addresses (1: one)")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--resume", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--handshake-cost", type=int, default=0, metavar="N",
                    help="before the rest: the verifier's CPU for N connections with a "
                         "full handshake and N resumed (<= 2000)")
    ap.add_argument("--hold", type=float, default=0.0,
                    help="seconds to keep the connections open at the end (<= 600), "
                         "for a look from outside")
    args = ap.parse_args()
    if not 0 <= args.hold <= 600 or not 0 <= args.handshake_cost <= 2000:
        ap.error("--hold 0..600, --handshake-cost 0..2000")
    if not 1 <= args.connections <= CONNECTIONS_MAX or args.sources < 1 or args.per_cert < 1:
        ap.error("--connections 1..%d, --sources and --per-cert >= 1" % CONNECTIONS_MAX)
    if args.connections > args.nodes * args.per_cert:
        ap.error("%d connections need %d node certificates at %d each" %
                 (args.connections, -(-args.connections // args.per_cert), args.per_cert))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.connections + 64:
        ap.error("the open-file limit %d is too low for %d connections" % (hard, args.connections))

    p = Probe(args)
    if args.handshake_cost:
        try:
            full, resumed, reused = handshake_cost(p, args.handshake_cost)
            print("verifier CPU per connection (handshake, one request, close): full handshake "
                  "%.0f us, resumed %.0f us (%d of %d resumed)"
                  % (full, resumed, reused, args.handshake_cost))
        except Exception as e:  # noqa: BLE001
            p.errors.append("handshake-cost: %s" % e)
    # Warm up: one connection, so that the baseline has the TLS and request
    # paths' first allocations.
    p.open_all(1, 1)
    for s, _ in p.conns.values():
        s.close()
    p.conns.clear()
    time.sleep(0.5)
    rss0, fds0 = proc_status(args.pid, "VmRSS"), open_files(args.pid)
    t0 = time.monotonic()
    p.open_all(args.connections, args.threads)
    took = time.monotonic() - t0
    time.sleep(1.0)
    rss1, fds1 = proc_status(args.pid, "VmRSS"), open_files(args.pid)
    n = len(p.conns)
    per = (rss1 - rss0) * 1024 / n if n else 0
    print("connections: %d of %d held (opened in %.1f s, %d source addresses, %d per certificate)"
          % (n, args.connections, took, min(args.sources, args.connections), args.per_cert))
    print("verifier RSS: %d kB before, %d kB with them: %.0f bytes per connection; "
          "open files %d -> %d" % (rss0, rss1, per, fds0, fds1))
    alive = p.still_open() if n else 0
    print("after idling: %d of %d still answered as their node" % (alive, n))
    if args.resume and n:
        try:
            reused, full, resumed = p.resume(min(args.resume, n))
            print("resumption: %d of %d reconnects resumed; handshake full %s, resumed %s"
                  % (reused, len(resumed), ms(full), ms(resumed)))
        except Exception as e:  # noqa: BLE001
            p.errors.append("resume: %s" % e)
    sys.stdout.flush()
    time.sleep(args.hold)
    for s, _ in p.conns.values():
        s.close()
    for e in p.errors[:10]:
        print("error: %s" % e)
    if len(p.errors) > 10:
        print("... and %d more errors" % (len(p.errors) - 10))
    return 0 if not p.errors and n == args.connections and alive == n else 1


if __name__ == "__main__":
    sys.exit(main())
