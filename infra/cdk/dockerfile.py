"""A Dockerfile read as instructions: enough of Docker's syntax for the checks and tools that
read the training Dockerfiles (comments, line continuations, `--flags`, shell and exec form),
without Docker."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, replace


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


_VARIABLE = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


def expand_args(
    instructions: list[Instruction], build_args: dict[str, str] | None = None
) -> list[Instruction]:
    """`instructions` with each `ARG` set (`build_args`, else its default) substituted into
    later COPY arguments, as `docker build --build-arg` does; other variables (ENV,
    `${LAMBDA_TASK_ROOT}`) are left as written."""
    values: dict[str, str] = {}
    expanded = []
    for instruction in instructions:
        if instruction.keyword == "ARG":
            for declaration in instruction.args:
                name, _, default = declaration.partition("=")
                values[name] = (build_args or {}).get(name, default)
        elif instruction.keyword == "COPY" and values:

            def substitute(match: re.Match[str]) -> str:
                name = match.group("braced") or match.group("plain")
                return values.get(name, match.group(0))

            instruction = replace(
                instruction, args=[_VARIABLE.sub(substitute, arg) for arg in instruction.args]
            )
        expanded.append(instruction)
    return expanded
