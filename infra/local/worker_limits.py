"""The limits a function worker runs under that the operating system enforces or reports: its
private /tmp of the function's ephemeral storage (a tmpfs in a mount namespace of its own,
`unshare`; where this machine refuses, a private directory stands for it, size-checked after
each invocation) and its memory (peak resident memory, read from /proc). The pool
(`infra.local.workers`) applies them: it kills a worker over its memory or its timeout."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_MIB = 1 << 20


# The sandbox: a private /tmp


@dataclass(frozen=True)
class Sandbox:
    """How workers get their private, size-limited /tmp."""

    prefix: tuple[str, ...]
    """Command prefix that makes a private mount namespace (empty: not available)."""
    reason: str = ""

    @property
    def isolated(self) -> bool:
        return bool(self.prefix)


_SANDBOX: Sandbox | None = None
_SANDBOX_LOCK = threading.Lock()


def sandbox() -> Sandbox:
    """Probe once whether this machine lets a process mount its own tmpfs (root, or
    unprivileged user namespaces)."""
    global _SANDBOX
    with _SANDBOX_LOCK:
        if _SANDBOX is None:
            _SANDBOX = _probe_sandbox()
        return _SANDBOX


def _probe_sandbox() -> Sandbox:
    unshare = shutil.which("unshare")
    if sys.platform != "linux" or unshare is None:
        return Sandbox((), "no Linux mount namespaces (unshare) on this machine")
    prefixes = [(unshare, "-m", "--propagation", "private")]
    if os.geteuid() != 0:
        prefixes = [(unshare, "-Urm", "--propagation", "private")]
    for prefix in prefixes:
        probe = [*prefix, "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /tmp && test -w /tmp"]
        try:
            result = subprocess.run(probe, capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if result.returncode == 0:
            return Sandbox(prefix)
        reason = result.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["refused"]
    return Sandbox((), f"mounting a private tmpfs was refused ({reason[0]})")


def _under_tmp(path: str) -> bool:
    resolved = Path(path).resolve()
    return resolved == Path("/tmp") or Path("/tmp") in resolved.parents


def private_tmp_script(size_mb: int, needed: Iterable[str]) -> str:
    """Shell commands, run in the worker's own mount namespace, that mount a tmpfs of
    `size_mb` (the function's ephemeral storage) at /tmp. What the worker runs from under this
    machine's /tmp (`needed`: a checkout there, the interpreter) is bound back into it at the
    same path, from the /tmp the namespace had before (held open as fd 9), so it stays
    readable."""
    tops = sorted(
        {
            parts[0]
            for path in needed
            if _under_tmp(path) and (parts := Path(path).resolve().relative_to("/tmp").parts)
        }
    )
    steps = [
        "exec 9</tmp",
        f"mount -t tmpfs -o size={size_mb}m,mode=1777 tmpfs /tmp",
    ]
    for top in tops:
        target = shlex.quote(f"/tmp/{top}")
        source = shlex.quote(f"/proc/self/fd/9/{top}")
        steps.append(f"mkdir -p {target} && mount --no-canonicalize --bind {source} {target}")
    steps += ["exec 9<&-", 'exec "$@"']
    return " && ".join(steps)


def directory_mb(directory: Path) -> float:
    """What the files under `directory` hold (a worker's stand-in /tmp)."""
    total = 0
    for path in directory.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file():
                total += path.stat().st_size
    return total / _MIB


# Memory


def peak_memory_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), plus the current memory of the
    processes it started (rare: read from /proc only when it has any)."""
    peak = _status_kib(pid, "VmHWM") / 1024
    children = _children(pid)
    if children:
        with contextlib.suppress(Exception):
            import psutil

            for child in psutil.Process(pid).children(recursive=True):
                peak += child.memory_info().rss / _MIB
    return peak


def _children(pid: int) -> str:
    """The ids of a process's children, as /proc lists them (empty: none, or not listed)."""
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().strip()
    except OSError:
        return ""


def _status_kib(pid: int, field_name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0
