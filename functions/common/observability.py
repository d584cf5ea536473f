"""Powertools Logger and Metrics, one instance each per process (module level, as Powertools
recommends). Service name and namespace come from POWERTOOLS_* variables set by the CDK app."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics()
