"""Powertools Logger and Metrics, one instance each per process (module level, as Powertools
recommends). Service name and namespace come from POWERTOOLS_* variables set by the CDK app.

`RequestMetrics` is the predict function's cheaper writer of the same CloudWatch embedded
metric format (EMF) documents: one JSON line per request, without Powertools' per-metric
validation objects or its decorator."""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from typing import Any

import orjson
from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics()

# A request that records nothing (a health check, a model summary) is normal here; Powertools
# would log a UserWarning for each one.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

_TRUE = {"1", "true", "yes", "on", "y", "t"}
MAX_METRICS = 100
"""CloudWatch's limit of metrics in one EMF document (Powertools publishes at it, too)."""


def _metrics_disabled() -> bool:
    """Powertools' rule: `POWERTOOLS_METRICS_DISABLED` true, or `POWERTOOLS_DEV` true with
    `POWERTOOLS_METRICS_DISABLED` unset."""
    disabled = os.environ.get("POWERTOOLS_METRICS_DISABLED")
    if disabled is not None:
        return disabled.strip().lower() in _TRUE
    return os.environ.get("POWERTOOLS_DEV", "false").strip().lower() in _TRUE


class RequestMetrics:
    """One request's metrics, written by `flush_metrics` as one EMF line on stdout: the
    namespace (`POWERTOOLS_METRICS_NAMESPACE`), the dimensions added (`add_dimension`) and the
    `service` dimension (`POWERTOOLS_SERVICE_NAME`), each metric's values as a list of floats
    and the metadata as top-level keys: what Powertools' `Metrics.log_metrics` writes.

    `add_metric`, `add_dimension` and `add_metadata` take Powertools' arguments (a unit is a
    `MetricUnit` or its name). A request with no metric writes nothing; metadata and dimensions
    never outlive the request (`clear_metrics`). `single_metric` writes one metric at once, on
    its own line, with the service and the given dimensions only."""

    def __init__(self) -> None:
        self._metrics: dict[str, tuple[str, list[float]]] = {}
        self._dimensions: dict[str, str] = {}
        self._metadata: dict[str, Any] = {}

    @property
    def service(self) -> str:
        return os.environ.get("POWERTOOLS_SERVICE_NAME") or "service_undefined"

    @property
    def default_dimensions(self) -> dict[str, str]:
        return {"service": self.service}

    def add_metric(self, name: str, unit: Any, value: float) -> None:
        """Add a value to the metric `name` (a metric added twice has both values).

        Raises:
            ValueError: `value` is not a number, or `name` is empty or over 255 characters.
        """
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ValueError(f"{value!r} is not a valid number for metric {name!r}")
        name = name.strip()
        if not 1 <= len(name) <= 255:
            raise ValueError(f"the metric name {name!r} must have 1 to 255 characters")
        unit = getattr(unit, "value", unit)
        known = self._metrics.get(name)
        if known is None:
            self._metrics[name] = (unit, [float(value)])
        else:
            known[1].append(float(value))
        if len(self._metrics) == MAX_METRICS:
            self._write(self._metrics, self._dimensions, self._metadata)
            self._metrics = {}

    def add_dimension(self, name: str, value: str) -> None:
        self._dimensions[name] = value if isinstance(value, str) else str(value)

    def add_metadata(self, key: str, value: Any) -> None:
        self._metadata[key] = value

    def clear_metrics(self) -> None:
        self._metrics = {}
        self._dimensions = {}
        self._metadata = {}

    def flush_metrics(self) -> None:
        """Write the request's metrics (nothing when there are none), then forget them."""
        if self._metrics:
            self._write(self._metrics, self._dimensions, self._metadata)
        self.clear_metrics()

    def single_metric(
        self, name: str, unit: Any, value: float, dimensions: dict[str, str] | None = None
    ) -> None:
        """Write one metric now, on its own line, with the service and `dimensions` only."""
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ValueError(f"{value!r} is not a valid number for metric {name!r}")
        self._write({name: (getattr(unit, "value", unit), [float(value)])}, dimensions or {}, {})

    def _write(
        self,
        metrics: dict[str, tuple[str, list[float]]],
        dimensions: dict[str, str],
        metadata: dict[str, Any],
    ) -> None:
        if _metrics_disabled():
            return
        namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE")
        if not namespace:
            raise ValueError("POWERTOOLS_METRICS_NAMESPACE is not set: no metric namespace")
        dimensions = {**dimensions, "service": self.service}
        document: dict[str, Any] = {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": namespace,
                        "Dimensions": [list(dimensions)],
                        "Metrics": [
                            {"Name": name, "Unit": unit} for name, (unit, _) in metrics.items()
                        ],
                    }
                ],
            },
            **dimensions,
            **metadata,
        }
        for name, (_, values) in metrics.items():
            # EMF has no NaN or infinity: such a value is left out, as CloudWatch would drop it
            document[name] = [value for value in values if math.isfinite(value)]
        sys.stdout.write(orjson.dumps(document, default=str).decode() + "\n")


request_metrics = RequestMetrics()
"""The predict function's request metrics (its handler flushes them after each request)."""
