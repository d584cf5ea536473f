"""What importing a module costs: the modules it loads, seen from a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence

from tests.helpers import REPO


def loaded_by_importing(modules: Sequence[str], packages: Sequence[str]) -> list[str]:
    """The modules of `packages` (top-level names) loaded once `modules` are imported in a fresh
    interpreter, sorted."""
    code = (
        f"import json, sys; import {', '.join(modules)}; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{tuple(packages)!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    loaded: list[str] = json.loads(result.stdout)
    return loaded
