"""Every deployed function has `POWERTOOLS_METRICS_NAMESPACE=mlops` and its service name.
Powertools' shared logger and metrics objects (functions/common/observability.py) read them
when first imported, and that may be while any test module of any folder is collected (the
CLI's modules import stage code), so they are set here, before the first one: the process's
service is `ingest`, as it was for the integration tests' first import."""

from __future__ import annotations

import os

os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "mlops")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "ingest")
