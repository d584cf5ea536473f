"""SnapStart's `register_after_restore`, usable everywhere: Lambda's Python runtimes with
SnapStart provide `snapshot_restore_py`; elsewhere (tests, the local cloud) the hooks are only
recorded. `after_restore_hooks` lists what was registered, so a test can run a restore."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:
    from snapshot_restore_py import (  # type: ignore[import-not-found]
        register_after_restore as _register_with_runtime,
    )
except ImportError:  # outside Lambda
    _register_with_runtime = None

Hook = Callable[..., Any]
after_restore_hooks: list[Hook] = []


def register_after_restore(hook: Hook) -> Hook:
    """Run `hook` after every SnapStart restore (returns it, so it works as a decorator)."""
    after_restore_hooks.append(hook)
    if _register_with_runtime is not None:
        _register_with_runtime(hook)
    return hook
