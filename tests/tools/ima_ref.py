#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Independent reference reader of binary IMA measurement lists, used only to
generate the golden files in tests/fixtures/ima/golden/ (see the README
there). It shares no code with kima: a second implementation of the kernel's
ascii_runtime_measurements rendering and of PCR replay (Linux >= 5.8).

  ima_ref.py dump   FILE DIGEST_LEN     ASCII list on stdout
  ima_ref.py replay FILE DIGEST_LEN     "<pcr> <bank>:<hex>" lines
"""
import hashlib
import struct
import sys

BUILTIN = {
    "ima": "d|n", "ima-ng": "d-ng|n-ng", "ima-ngv2": "d-ngv2|n-ng",
    "ima-sig": "d-ng|n-ng|sig", "ima-sigv2": "d-ngv2|n-ng|sig",
    "ima-buf": "d-ng|n-ng|buf", "ima-modsig": "d-ng|n-ng|sig|d-modsig|modsig",
    "evm-sig": "d-ng|n-ng|evmsig|xattrnames|xattrlengths|xattrvalues|iuid|igid|imode",
    "ima-cgpath": "dep|cg-path|d-ng|n-ng", "ima-dep-cgn": "dep|cgn|d-ng|n-ng",
}
STRING = {"n", "n-ng", "xattrnames", "dep", "cg-path", "cgn"}
DIGEST_ALGO = {"d-ng", "d-ngv2", "d-modsig"}
UINT = {"iuid", "igid", "imode"}
BANKS = ["sha1", "sha256", "sha384", "sha512"]


def entries(data, dlen):
    off = 0
    while off < len(data):
        pcr, = struct.unpack_from("<I", data, off)
        digest = data[off + 4:off + 4 + dlen]
        nlen, = struct.unpack_from("<I", data, off + 4 + dlen)
        p = off + 8 + dlen
        name = data[p:p + nlen].decode()
        p += nlen
        if name == "ima":
            d = data[p:p + 20]
            n_len, = struct.unpack_from("<I", data, p + 20)
            n = data[p + 24:p + 24 + n_len]
            fields = [("d", d), ("n", n)]
            hashed = d + n + b"\0" * (256 - len(n))
            p += 24 + n_len
        else:
            tlen, = struct.unpack_from("<I", data, p)
            tdata = data[p + 4:p + 4 + tlen]
            ids = BUILTIN.get(name, name).split("|")
            fields, q = [], 0
            for fid in ids:
                flen, = struct.unpack_from("<I", tdata, q)
                fields.append((fid, tdata[q + 4:q + 4 + flen]))
                q += 4 + flen
            assert q == tlen, "field lengths do not add up"
            hashed = tdata
            p += 4 + tlen
        yield pcr, digest, name, fields, hashed
        off = p


def show(fid, val, legacy):
    if fid in STRING:
        if legacy:
            return val.decode("latin-1")
        return val.split(b"\0", 1)[0].decode("latin-1")
    if fid in DIGEST_ALGO:
        if not val:
            return ""
        prefix, rest = val.split(b"\0", 1)
        return prefix.decode() + rest.hex()
    if fid in UINT:
        if len(val) in (1, 2, 4, 8):
            return str(int.from_bytes(val, "little"))
        return ""
    return val.hex()


def main():
    cmd, path, dlen = sys.argv[1], sys.argv[2], int(sys.argv[3])
    data = open(path, "rb").read()
    pcrs = {}
    out = sys.stdout
    for pcr, digest, name, fields, hashed in entries(data, dlen):
        violation = digest == b"\0" * dlen
        if not violation:
            assert hashlib.new(BANKS[[20, 32, 48, 64].index(dlen)], hashed).digest() == digest
        if cmd == "dump":
            line = "%2d %s %s" % (pcr, digest.hex(), name)
            for fid, val in fields:
                line += " " + show(fid, val, name == "ima")
            out.write(line + "\n")
        for bank in BANKS:
            size = hashlib.new(bank).digest_size
            cur = pcrs.setdefault((pcr, bank), b"\0" * size)
            x = b"\xff" * size if violation else hashlib.new(bank, hashed).digest()
            pcrs[(pcr, bank)] = hashlib.new(bank, cur + x).digest()
    if cmd == "replay":
        for (pcr, bank) in sorted(pcrs, key=lambda k: (k[0], BANKS.index(k[1]))):
            out.write("%d %s:%s\n" % (pcr, bank, pcrs[(pcr, bank)].hex()))


if __name__ == "__main__":
    main()
