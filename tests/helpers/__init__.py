"""Plain helpers the tests share, one module per concern: the AWS resources as the stack creates
them (cloud, registry), dataset versions as ingest commits them (datasets), the Lambda context,
trained models (models), drift reference profiles (drift), the repository's config as the
end-to-end tests deploy it (config), predict API events (predict_api), what an import loads
(imports), commands run in a child process (processes), CDK apps synthesized in a child
interpreter (synth) and a local cloud serving a promoted model (served). Fixtures stay in
conftest.py files, and no test imports from a conftest module
(tests/unit/test_conftest_imports.py checks it)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
