#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Unpack an OCI image layout's images the way containerd's overlayfs
snapshotter lays them out: one directory per layer, shared by every image
that has that layer, whiteouts turned into what overlayfs reads.

Usage: unpack-layers.py LAYOUT OUTDIR TAG...

OUTDIR/layers/HEX/      the layer's files (HEX: the compressed blob's digest)
OUTDIR/layers/HEX.opaque  the layer's opaque directories, one a line (the
                        guest sets trusted.overlay.opaque=y on them: an
                        initramfs cannot carry extended attributes)
OUTDIR/images/TAG       "MANIFEST CONFIG" on the first line, then the layer
                        digests' HEX, lowest first

A `.wh.NAME` entry becomes a character device 0/0 NAME (an overlayfs
whiteout); `.wh..wh..opq` marks its directory opaque. Entries are checked:
no absolute or `..` path, no write through a link out of the layer, at most
MAX_ENTRIES entries and MAX_BYTES bytes per layer. Exits 1 with a sentence
naming the image, layer and entry on any malformed input.
"""
import gzip
import json
import os
import stat
import sys
import tarfile

MAX_ENTRIES = 200000
MAX_BYTES = 2 << 30
MAX_JSON = 4 << 20
GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
TAR = "application/vnd.oci.image.layer.v1.tar"


class Bad(Exception):
    pass


def blob(layout, digest, limit=None):
    alg, _, hexd = digest.partition(":")
    if alg != "sha256" or len(hexd) != 64 or not all(c in "0123456789abcdef" for c in hexd):
        raise Bad(f"digest {digest!r} is not sha256:<64 hex>")
    path = os.path.join(layout, "blobs", "sha256", hexd)
    if limit is not None:
        if os.path.getsize(path) > limit:
            raise Bad(f"blob {digest} is larger than {limit} bytes")
        with open(path, "rb") as f:
            return json.load(f)
    return path


def resolve(layout, tag):
    with open(os.path.join(layout, "index.json"), "rb") as f:
        index = json.loads(f.read(MAX_JSON))
    for m in index.get("manifests", []):
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            manifest = blob(layout, m["digest"], MAX_JSON)
            if "layers" not in manifest:
                raise Bad(f"image {tag}: {m['digest']} is not an image manifest")
            return m["digest"], manifest
    raise Bad(f"image {tag}: no such tag in {layout}/index.json")


def inside(root, path):
    """True when path, its links resolved, stays in root."""
    real = os.path.realpath(path)
    return real == root or real.startswith(root + os.sep)


def extract(tf, member, root, dest):
    parent = os.path.dirname(dest)
    if not inside(root, parent):
        raise Bad("its parent directory is a link out of the layer")
    os.makedirs(parent, exist_ok=True)  # a layer need not list the parents a lower one has
    if os.path.lexists(dest) and not (member.isdir() and os.path.isdir(dest)):
        if os.path.isdir(dest) and not os.path.islink(dest):
            raise Bad("it replaces a directory")
        os.unlink(dest)
    if member.isdir():
        os.makedirs(dest, exist_ok=True)
    elif member.isfile():
        with tf.extractfile(member) as src, open(dest, "wb") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
    elif member.issym():
        os.symlink(member.linkname, dest)
        return
    elif member.islnk():
        target = os.path.join(root, os.path.normpath(member.linkname).lstrip("/"))
        if not inside(root, target) or not os.path.isfile(target):
            raise Bad(f"hard link to {member.linkname!r} is not a file of the layer")
        os.link(target, dest)
        return
    elif member.ischr() or member.isblk() or member.isfifo():
        kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK if member.isblk() else stat.S_IFIFO
        os.mknod(dest, kind | member.mode, os.makedev(member.devmajor, member.devminor))
    else:
        raise Bad(f"entry type {member.type!r} is not supported")
    os.chown(dest, member.uid, member.gid)
    os.chmod(dest, member.mode)
    os.utime(dest, (member.mtime, member.mtime))


def unpack_layer(path, media, root):
    opaque = []
    entries = size = 0
    opener = gzip.open if media == GZIP else open
    dirs = []
    with opener(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tf:
        for member in tf:
            entries += 1
            size += member.size
            if entries > MAX_ENTRIES or size > MAX_BYTES:
                raise Bad(f"more than {MAX_ENTRIES} entries or {MAX_BYTES} bytes")
            name = os.path.normpath(member.name)
            if name.startswith("/") or name == ".." or name.startswith("../"):
                raise Bad(f"entry {member.name!r}: path leaves the layer")
            if name == ".":
                continue
            base = os.path.basename(name)
            try:
                if base == ".wh..wh..opq":
                    opaque.append("/" + os.path.dirname(name))
                    os.makedirs(os.path.join(root, os.path.dirname(name)), exist_ok=True)
                elif base.startswith(".wh."):
                    dest = os.path.join(root, os.path.dirname(name), base[4:])
                    if not inside(root, os.path.dirname(dest)):
                        raise Bad("its parent directory is a link out of the layer")
                    os.makedirs(os.path.dirname(dest), exist_ok=True)
                    os.mknod(dest, stat.S_IFCHR | 0o000, os.makedev(0, 0))
                else:
                    extract(tf, member, root, os.path.join(root, name))
                    if member.isdir():
                        dirs.append(member)
            except Bad as e:
                raise Bad(f"entry {member.name!r}: {e}") from None
    for member in dirs:  # a directory's time after its files are written
        os.utime(os.path.join(root, os.path.normpath(member.name)), (member.mtime, member.mtime))
    return opaque


def main():
    if len(sys.argv) < 4:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    layout, out, tags = sys.argv[1], sys.argv[2], sys.argv[3:]
    os.makedirs(os.path.join(out, "layers"), exist_ok=True)
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    for tag in tags:
        try:
            mdigest, manifest = resolve(layout, tag)
            hexes = []
            for layer in manifest["layers"]:
                digest, media = layer["digest"], layer["mediaType"]
                if media not in (GZIP, TAR):
                    raise Bad(f"layer {digest}: media type {media} is not supported here")
                hexd = digest.split(":", 1)[1]
                root = os.path.realpath(os.path.join(out, "layers", hexd))
                hexes.append(hexd)
                if os.path.exists(root + ".opaque"):  # unpacked for another image
                    continue
                os.makedirs(root, exist_ok=True)
                try:
                    opaque = unpack_layer(blob(layout, digest), media, root)
                except (Bad, OSError, tarfile.TarError, EOFError) as e:
                    raise Bad(f"layer {digest}: {e}") from None
                with open(root + ".opaque", "w") as f:
                    f.writelines(d + "\n" for d in opaque)
            with open(os.path.join(out, "images", tag), "w") as f:
                f.write(f"{mdigest} {manifest['config']['digest']}\n")
                f.writelines(h + "\n" for h in hexes)
        except (Bad, OSError, KeyError, TypeError, ValueError) as e:
            print(f"unpack-layers: image {tag}: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
