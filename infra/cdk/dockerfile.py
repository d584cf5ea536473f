"""A Dockerfile read as instructions: enough of Docker's syntax for the checks and tools that
read the training Dockerfiles (comments, line continuations, `--flags`, shell and exec form),
without Docker."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    flags: dict[str, str]
    args: list[str]
    text: str


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with their `--flags` and arguments (continuations joined, comments out).
    Exec-form (JSON array) arguments are read as JSON."""
    instructions: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        start = start or number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        joined, pending = (pending + stripped).strip(), ""
        if joined:
            instructions.append(_instruction(start, joined))
        start = 0
    if pending.strip():
        instructions.append(_instruction(start, pending.strip()))
    return instructions


def _instruction(line: int, text: str) -> Instruction:
    keyword, _, rest = text.partition(" ")
    rest = rest.strip()
    args: list[str]
    if rest.startswith("["):
        try:
            args = [str(arg) for arg in json.loads(rest)]
        except ValueError:
            args = shlex.split(rest)
    else:
        args = shlex.split(rest, posix=True)
    flags = {}
    while args and args[0].startswith("--"):
        flag, _, value = args.pop(0)[2:].partition("=")
        flags[flag] = value
    return Instruction(line, keyword.upper(), flags, args, text)
