"""A moto server standing in for the local cloud that `mlops local up` runs, and the state
files the CLI reads to reach it."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    yield f"http://{host}:{port}"
    moto.stop()


@dataclass
class LocalState:
    endpoint: str
    state_dir: Path

    def write_outputs(self, outputs: dict[str, str]) -> None:
        (self.state_dir / "outputs.json").write_text(json.dumps(outputs))


@pytest.fixture
def local_state(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalState:
    """The moto server emptied, fake credentials, the repo config, and the state directory
    (`stack.json` naming the endpoint) that `mlops local up` writes; outputs are the test's."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "MLOPS_CONFIG_JSON"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("MLOPS_CONFIG", str(REPO / "mlops.toml"))
    monkeypatch.setenv("COLUMNS", "250")
    request = urllib.request.Request(f"{server}/moto-api/reset", data=b"{}", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "stack.json").write_text(json.dumps({"endpoint": server, "resources": {}}))
    monkeypatch.setenv("MLOPS_LOCAL_STATE_DIR", str(state_dir))
    return LocalState(server, state_dir)
