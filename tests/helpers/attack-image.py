#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Hostile images for tests/integration/test-image-attacks.sh, made with
Python's tarfile (no network, no root).

  attack-image.py layout OUTDIR LAYER...   an OCI layout tagged "v1" whose
      layers are the given files (gzip detected from their bytes)
  attack-image.py tar OUT SPEC...          a pax tar; SPEC is
      f:PATH:MODE:TEXT (TEXT with \\n, \\xNN escapes), d:PATH,
      l:PATH:TARGET (symlink), h:PATH:TARGET (hard link)
  attack-image.py longpaths OUT.gz N LEN   N empty 0644 files, each with a
      distinct path of about LEN bytes (pax), gzip level 1
  attack-image.py linkwalk OUT.gz N        two chains of 40 symbolic links,
      each target 320 times "a/../" then the next link, and N empty files
      whose parents alternate between the chains' first links (each entry's
      parent is 25,640 components to walk, and never the one before)
  attack-image.py docker-archive OUT VARIANT  a docker-archive whose
      manifest.json misbehaves: dotdot (a layer "../../etc/passwd"),
      symout (a layer reached through a member symlink to /etc), dup (the
      layer member twice)
"""
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile


def blob(out, b):
    d = hashlib.sha256(b).hexdigest()
    with open(os.path.join(out, "blobs", "sha256", d), "wb") as f:
        f.write(b)
    return "sha256:" + d, len(b)


def layout(out, paths):
    os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)
    layers, diffs = [], []
    for p in paths:
        with open(p, "rb") as f:
            b = f.read()
        gz = b[:2] == b"\x1f\x8b"
        raw = gzip.decompress(b) if gz else b
        d, n = blob(out, b)
        mt = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gz else "")
        layers.append({"mediaType": mt, "digest": d, "size": n})
        diffs.append("sha256:" + hashlib.sha256(raw).hexdigest())
    cfg = {"architecture": "amd64", "os": "linux", "config": {},
           "rootfs": {"type": "layers", "diff_ids": diffs}}
    cd, cn = blob(out, json.dumps(cfg).encode())
    man = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                      "digest": cd, "size": cn},
           "layers": layers}
    md, mn = blob(out, json.dumps(man).encode())
    idx = {"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md,
         "size": mn, "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(idx, f)
    with open(os.path.join(out, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')


def unescape(s):
    return s.encode().decode("unicode_escape").encode("latin-1")


def add(t, kind, rest):
    ti = tarfile.TarInfo()
    if kind == "f":
        p, mode, text = rest.split(":", 2)
        data = unescape(text)
        ti.name = unescape(p).decode("utf-8", "surrogateescape")
        ti.mode, ti.size = int(mode, 8), len(data)
        t.addfile(ti, io.BytesIO(data))
        return
    if kind == "d":
        ti.name, ti.type, ti.mode = rest, tarfile.DIRTYPE, 0o755
    elif kind == "l":
        p, tg = rest.split(":", 1)
        ti.name, ti.type, ti.linkname = p, tarfile.SYMTYPE, tg
    elif kind == "h":
        p, tg = rest.split(":", 1)
        ti.name, ti.type, ti.linkname, ti.mode = p, tarfile.LNKTYPE, tg, 0o755
    else:
        raise SystemExit("unknown SPEC kind " + kind)
    t.addfile(ti)


def make_tar(out, specs):
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT, encoding="utf-8",
                      errors="surrogateescape") as t:
        for s in specs:
            kind, rest = s.split(":", 1)
            add(t, kind, rest)


def longpaths(out, n, plen):
    base = ("d" * 200 + "/") * (plen // 201)
    with gzip.open(out, "wb", compresslevel=1) as g:
        with tarfile.open(fileobj=g, mode="w", format=tarfile.PAX_FORMAT) as t:
            for i in range(n):
                ti = tarfile.TarInfo(base + "f%08d" % i)
                ti.mode = 0o644
                t.addfile(ti)


def linkwalk(out, n):
    climb = "a/../" * 320
    with gzip.open(out, "wb", compresslevel=1) as g:
        with tarfile.open(fileobj=g, mode="w", format=tarfile.PAX_FORMAT) as t:
            ti = tarfile.TarInfo("a")
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            t.addfile(ti)
            for c in "xy":
                for i in range(40):
                    ti = tarfile.TarInfo("%s%02d" % (c, i))
                    ti.type = tarfile.SYMTYPE
                    ti.linkname = climb + ("%s%02d" % (c, i + 1) if i < 39 else "a")
                    t.addfile(ti)
            for i in range(n):
                ti = tarfile.TarInfo("%s00/f%06d" % ("xy"[i % 2], i))
                ti.mode = 0o644
                t.addfile(ti)


def member(t, name, data=None, link=None):
    ti = tarfile.TarInfo(name)
    if link is not None:
        ti.type, ti.linkname = tarfile.SYMTYPE, link
        t.addfile(ti)
        return
    ti.size = len(data)
    t.addfile(ti, io.BytesIO(data))


def docker_archive(out, variant):
    lay = io.BytesIO()
    with tarfile.open(fileobj=lay, mode="w") as l:
        member(l, "bin/x", b"\x7fELFx")
    lay = lay.getvalue()
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(lay).hexdigest()]}}).encode()
    ch = hashlib.sha256(cfg).hexdigest() + ".json"
    layer = {"dotdot": "../../etc/passwd", "symout": "l/layer.tar", "dup": "l.tar"}[variant]
    with tarfile.open(out, "w") as t:
        member(t, ch, cfg)
        if variant == "symout":
            member(t, "l", link="/etc")
            member(t, "l/layer.tar", link="../../../etc/passwd")
        elif variant == "dup":
            member(t, "l.tar", lay)
            member(t, "l.tar", b"junk" * 100)
        man = [{"Config": ch, "RepoTags": ["a:b"], "Layers": [layer]}]
        member(t, "manifest.json", json.dumps(man).encode())


def main():
    cmd, out = sys.argv[1], sys.argv[2]
    if cmd == "layout":
        layout(out, sys.argv[3:])
    elif cmd == "tar":
        make_tar(out, sys.argv[3:])
    elif cmd == "longpaths":
        longpaths(out, int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "linkwalk":
        linkwalk(out, int(sys.argv[3]))
    elif cmd == "docker-archive":
        docker_archive(out, sys.argv[3])
    else:
        raise SystemExit("unknown command " + cmd)


if __name__ == "__main__":
    main()
