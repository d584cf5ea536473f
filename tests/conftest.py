"""Every deployed function has `POWERTOOLS_METRICS_NAMESPACE=mlops`. Powertools' shared
metrics object (functions/common/observability.py) reads it when first imported, and that may
be while any test module of any folder is collected (the CLI's modules import stage code), so
it is set here, before the first one."""

from __future__ import annotations

import os

os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "mlops")
