"""Plain helpers the tests share: the AWS resources as the stack creates them, the Lambda
context, trained models and predict API events. Fixtures stay in conftest.py files, and no test
imports from a conftest module (tests/unit/test_conftest_imports.py checks it)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
