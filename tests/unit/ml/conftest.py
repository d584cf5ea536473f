from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from functions.common.config.dataset import DatasetConfig
from functions.common.config.loading import load_config
from functions.ml.ingestion import IngestionResult, ingest_file
from functions.ml.schema import DatasetContract, contract_from_config

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def churn() -> DatasetConfig:
    """The demo dataset of mlops.toml (the sample data is built to match it)."""
    return load_config(REPO / "mlops.toml").dataset


@pytest.fixture(scope="session")
def churn_contract(churn: DatasetConfig) -> DatasetContract:
    contract = contract_from_config(churn)
    assert contract is not None
    return contract


@pytest.fixture
def ingest(
    tmp_path: Path, churn: DatasetConfig, churn_contract: DatasetContract
) -> Callable[..., IngestionResult]:
    """`ingest(name, content, ...)`: the pure ingestion of bytes dropped as `name`, against the
    demo contract unless another `contract` is given or `infer=True`."""
    counter = iter(range(1_000_000))

    def run(
        name: str,
        content: bytes,
        *,
        dataset: DatasetConfig | None = None,
        contract: DatasetContract | None = None,
        infer: bool = False,
        chunk_rows: int | None = None,
    ) -> IngestionResult:
        work = tmp_path / f"run-{next(counter)}"
        work.mkdir()
        source = work / "source"
        source.write_bytes(content)
        return ingest_file(
            source,
            name=name,
            dataset=dataset or churn,
            contract=None if infer else contract or churn_contract,
            out_dir=work,
            chunk_rows=chunk_rows,
        )

    return run
