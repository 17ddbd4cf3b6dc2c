#!/usr/bin/env python3
"""image_check.py IMAGE KERNEL_ELF - check the RISC-V boot image header.

Parses the 64-byte header of IMAGE (Linux Documentation/arch/riscv/
boot-image-header.rst) and checks every field: code0 jumps over the header
to an instruction inside the image, code1 and the reserved words are 0,
text_offset is 0x200000, image_size covers the file and the kernel's BSS
(the ELF's lowest to highest allocated address, read from KERNEL_ELF's
section headers), flags say little endian, version is 0.2, magic and
magic2. Then it damages copies of the header one field at a time and
checks that each damage is caught by the check for that field, so a
checker that accepts anything fails. Ends with "N passed, N failed".
"""
import struct
import sys

HDR = struct.Struct("<IIQQQIIQ8sII")
FIELDS = ("code0", "code1", "text_offset", "image_size", "flags", "version",
          "res1", "res2", "magic", "magic2", "res3")


def elf_alloc_span(path):
    """(lowest, highest) address of the ELF's allocated sections (SHF_ALLOC)."""
    data = open(path, "rb").read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise SystemExit("image_check: %s is not a little-endian ELF64" % path)
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    lo, hi = None, None
    for i in range(shnum):
        _, _, flags, addr, _, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        if flags & 2 and size:                      # SHF_ALLOC
            lo = addr if lo is None else min(lo, addr)
            hi = addr + size if hi is None else max(hi, addr + size)
    return lo, hi


def jal_target(insn):
    """Offset a JAL x0 instruction jumps by, or None if insn is not one."""
    if insn & 0xFFF != 0x06F:                       # opcode JAL, rd = x0
        return None
    imm = ((insn >> 31) & 1) << 20 | ((insn >> 12) & 0xFF) << 12 | \
          ((insn >> 20) & 1) << 11 | ((insn >> 21) & 0x3FF) << 1
    return imm - (1 << 21) if imm & (1 << 20) else imm


def check(img, span):
    """Names of the header fields that are wrong (empty list: all good)."""
    if len(img) < HDR.size:
        return ["length"]
    h = dict(zip(FIELDS, HDR.unpack_from(img)))
    bad = []
    off = jal_target(h["code0"])
    if off is None or off < HDR.size or off >= len(img):
        bad.append("code0")
    for f in ("code1", "res1", "res2", "res3", "flags"):
        if h[f] != 0:
            bad.append(f)
    if h["text_offset"] != 0x200000:
        bad.append("text_offset")
    lo, hi = span
    if h["image_size"] < len(img) or h["image_size"] != hi - lo or h["image_size"] % 4096:
        bad.append("image_size")
    if h["version"] != (0 << 16 | 2):
        bad.append("version")
    if h["magic"] != b"RISCV\0\0\0":
        bad.append("magic")
    if h["magic2"] != 0x05435352:                   # "RSC\x05"
        bad.append("magic2")
    return bad


def main():
    img = open(sys.argv[1], "rb").read()
    span = elf_alloc_span(sys.argv[2])
    passed = failed = 0

    def result(name, ok, why=""):
        nonlocal passed, failed
        print(("ok " if ok else "FAIL ") + name + ("" if ok else ": " + why))
        passed, failed = passed + ok, failed + (not ok)

    bad = check(img, span)
    result("image.header", not bad, "fields wrong: %s" % ", ".join(bad))
    h = dict(zip(FIELDS, HDR.unpack_from(img)))
    print("image: %d bytes in the file, image_size %d (BSS %d), entry +0x%x" %
          (len(img), h["image_size"], h["image_size"] - len(img), jal_target(h["code0"]) or 0))
    result("image.bss-covered", h["image_size"] > len(img),
           "image_size %d does not go past the file's %d bytes" % (h["image_size"], len(img)))
    # Damage one field at a time: exactly that field must be reported.
    damage = {
        "code0": (0, struct.pack("<I", 0x00000013)),          # nop, no jump
        "code1": (4, struct.pack("<I", 1)),
        "text_offset": (8, struct.pack("<Q", 0x400000)),
        "image_size": (16, struct.pack("<Q", len(img) - 8)),
        "flags": (24, struct.pack("<Q", 1)),                  # big endian
        "version": (32, struct.pack("<I", 1)),
        "magic": (48, b"RISCW\0\0\0"),
        "magic2": (56, b"RSC\x06"),
    }
    for field, (off, val) in damage.items():
        copy = bytearray(img)
        copy[off:off + len(val)] = val
        got = check(bytes(copy), span)
        result("image.reject." + field, got == [field], "damaged %s reported as %s" % (field, got))
    result("image.reject.bss-zero",
           check(img[:16] + struct.pack("<Q", 0) + img[24:], span) == ["image_size"],
           "image_size 0 accepted")
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
