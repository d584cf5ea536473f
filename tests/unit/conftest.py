"""Unit tests are pure: any attempt to open a network socket fails the test.

Every deployed function has `POWERTOOLS_METRICS_NAMESPACE=mlops`; the shared metrics object
(functions/common/observability.py) reads it when first imported, which may be while any test
module is collected."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from pytest_socket import disable_socket, enable_socket

os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "mlops")


@pytest.fixture(autouse=True)
def _no_network() -> Iterator[None]:
    disable_socket()
    yield
    enable_socket()
