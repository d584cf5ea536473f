"""The shared libraries every `.so` of a deployment needs, against what Lambda's base image
provides: a wheel linked against a system library the image lacks imports everywhere but on
AWS (LightGBM's wheel needs `libgomp.so.1` and does not ship it).

An ELF file's needs are its dynamic section's `DT_NEEDED` entries, read here without any
tool (the ELF header, the section headers, the `.dynamic` section and the string table it
links to; 32- and 64-bit, either byte order). A need is met by the base image's list
(`BASE_LIBRARIES`, kept in the repo with its source), by what the image's Dockerfile installs
with dnf (`SYSTEM_PACKAGES`), or by a library the deployment ships itself (any file of the
tree with that name: the `.libs` folders auditwheel vendors into a wheel, or another of its
`.so` files).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.cdk.config import REPO_ROOT
from infra.cdk.dockerfile import Instruction

BASE_LIBRARIES = REPO_ROOT / "layers" / "lambda-base" / "python3.13-arm64.libraries.txt"
SYSTEM_PACKAGES: dict[str, tuple[str, ...]] = {"libgomp": ("libgomp.so.1",)}
"""Amazon Linux packages a Dockerfile may install (`dnf install`) -> the sonames they add."""
_SHARED_OBJECT = re.compile(r"\.so(\.\d+)*$")
_DT_NEEDED = 1
_SHT_DYNAMIC = 6


class NotElfError(ValueError):
    """The file is not an ELF shared object this reader understands."""


def needed_libraries(path: Path) -> list[str]:
    """The `DT_NEEDED` sonames of the ELF file at `path`, in order."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or len(data) < 64:
        raise NotElfError(f"{path} is not an ELF file")
    wide = {1: False, 2: True}.get(data[4])
    order = {1: "<", 2: ">"}.get(data[5])
    if wide is None or order is None:
        raise NotElfError(f"{path}: unknown ELF class or byte order")
    if wide:
        shoff, shentsize, shnum = (
            _unpack(order + "Q", data, 0x28)[0],
            *_unpack(order + "HH", data, 0x3A),
        )
        section = order + "IIQQQQIIQQ"
        entry = order + "qQ"
    else:
        shoff, shentsize, shnum = (
            _unpack(order + "I", data, 0x20)[0],
            *_unpack(order + "HH", data, 0x2E),
        )
        section = order + "IIIIIIIIII"
        entry = order + "iI"
    sections = [_unpack(section, data, shoff + i * shentsize) for i in range(shnum)]
    needed: list[str] = []
    for header in sections:
        if header[1] != _SHT_DYNAMIC:
            continue
        offset, size, link = header[4], header[5], header[6]
        strings = sections[link][4]
        step = struct.calcsize(entry)
        for start in range(offset, offset + size, step):
            tag, value = _unpack(entry, data, start)
            if tag == 0:
                break
            if tag == _DT_NEEDED:
                end = data.index(b"\0", strings + value)
                needed.append(data[strings + value : end].decode())
    return needed


def _unpack(layout: str, data: bytes, offset: int) -> tuple[int, ...]:
    try:
        return struct.unpack_from(layout, data, offset)
    except struct.error:
        raise NotElfError("truncated ELF file") from None


def base_libraries(path: Path = BASE_LIBRARIES) -> set[str]:
    """The base image's sonames (the list file, comments and blank lines left out)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def dnf_installed(instructions: Sequence[Instruction]) -> set[str]:
    """The sonames a Dockerfile's `dnf install` (or `microdnf install`) adds
    (`SYSTEM_PACKAGES`; other packages add none this check knows of)."""
    added: set[str] = set()
    for instruction in instructions:
        if instruction.keyword != "RUN":
            continue
        for command in re.split(r"&&|;|\|\|", " ".join(instruction.args)):
            words = command.split()
            if words[:1] in (["dnf"], ["microdnf"]) and "install" in words:
                for word in words[words.index("install") + 1 :]:
                    added.update(SYSTEM_PACKAGES.get(word, ()))
    return added


@dataclass(frozen=True)
class MissingLibrary:
    library: str
    needed_by: tuple[str, ...]
    """The `.so` files (relative to the tree) that need it."""

    def describe(self) -> str:
        users = ", ".join(self.needed_by[:3]) + (" ..." if len(self.needed_by) > 3 else "")
        return f"{self.library} (needed by {users})"


def missing_libraries(root: Path, available: Iterable[str]) -> list[MissingLibrary]:
    """Every soname a shared object under `root` needs that neither `available` nor the tree
    itself provides, with the files that need it (sorted by library)."""
    files = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    shipped = {p.name for p in root.rglob("*")}
    present = set(available) | shipped
    users: dict[str, list[str]] = {}
    for path in files:
        if not _SHARED_OBJECT.search(path.name):
            continue
        try:
            needs = needed_libraries(path)
        except NotElfError:
            continue
        for library in needs:
            if library not in present:
                users.setdefault(library, []).append(path.relative_to(root).as_posix())
    return [MissingLibrary(name, tuple(sorted(users[name]))) for name in sorted(users)]
