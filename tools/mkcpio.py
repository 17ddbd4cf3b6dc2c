#!/usr/bin/env python3
"""mkcpio.py OUT FILE... - a cpio "newc" archive (what Linux and this
kernel's initrd reader take, platform/cpio.h) of the FILEs, each stored
under its base name, as regular files, then the TRAILER!!! member.

Options, for the tests of the kernel's refusals (ci/part-matrix.sh):
  --name=NAME   store the next FILE under NAME instead of its base name
  --truncate=N  cut the finished archive to N bytes (negative: drop N)
"""
import os
import sys


def member(name, data, mode, ino):
    raw = name.encode() + b"\0"
    fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(raw), 0]
    hdr = b"070701" + b"".join(b"%08x" % f for f in fields)
    out = hdr + raw
    out += b"\0" * (-len(out) % 4)
    out += data
    out += b"\0" * (-len(out) % 4)
    return out


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    out_path, args = argv[0], argv[1:]
    blob, ino, name, cut = b"", 1, None, None
    for a in args:
        if a.startswith("--name="):
            name = a[len("--name="):]
            continue
        if a.startswith("--truncate="):
            cut = int(a[len("--truncate="):])
            continue
        with open(a, "rb") as f:
            data = f.read()
        blob += member(name or os.path.basename(a), data, 0o100644, ino)
        name = None
        ino += 1
    blob += member("TRAILER!!!", b"", 0, 0)
    if cut is not None:
        blob = blob[:cut]
    with open(out_path, "wb") as f:
        f.write(blob)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
