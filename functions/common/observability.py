"""Powertools Logger and Metrics, one instance each per process (module level, as Powertools
recommends). Service name and namespace come from POWERTOOLS_* variables set by the CDK app."""

from __future__ import annotations

import warnings

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics()

# A request that records nothing (a health check, a model summary) is normal here; Powertools
# would log a UserWarning for each one.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
