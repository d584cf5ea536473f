"""A minimal ELF shared object written byte by byte: the header, a string table and a dynamic
section whose DT_NEEDED entries name `needed` (what a linker would write for `-lfoo`)."""

from __future__ import annotations

import struct


def shared_object(needed: list[str]) -> bytes:
    """A 64-bit little-endian aarch64 ELF `.so` needing `needed` (nothing else in it)."""
    strings = b"\0" + b"".join(name.encode() + b"\0" for name in needed)
    offsets = []
    position = 1
    for name in needed:
        offsets.append(position)
        position += len(name) + 1
    dynamic = b"".join(struct.pack("<qQ", 1, offset) for offset in offsets) + struct.pack(
        "<qQ", 0, 0
    )
    header_size, section_size = 64, 64
    strings_at = header_size
    dynamic_at = strings_at + len(strings)
    sections_at = dynamic_at + len(dynamic)
    header = (
        b"\x7fELF\x02\x01\x01"
        + b"\0" * 9
        + struct.pack(
            "<HHIQQQIHHHHHH",
            3,  # ET_DYN
            183,  # EM_AARCH64
            1,
            0,
            0,
            sections_at,
            0,
            header_size,
            0,
            0,
            section_size,
            3,
            0,
        )
    )
    null = b"\0" * section_size
    strtab = struct.pack("<IIQQQQIIQQ", 0, 3, 0, 0, strings_at, len(strings), 0, 0, 1, 0)
    dyn = struct.pack("<IIQQQQIIQQ", 0, 6, 0, 0, dynamic_at, len(dynamic), 1, 0, 8, 16)
    return header + strings + dynamic + null + strtab + dyn
