"""A handler module whose import (the init phase) takes `INIT_SECONDS`."""

from __future__ import annotations

import os
import time
from typing import Any

time.sleep(float(os.environ.get("INIT_SECONDS", "0")))


def handler(event: Any, context: Any) -> dict[str, Any]:
    return {"pid": os.getpid()}
