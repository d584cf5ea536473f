"""The layers, checked: import-linter's contracts (pyproject.toml `[tool.importlinter]`) and the
adapters' surface.

- `functions.ml` imports only the vocabulary (`functions.common`): no adapter, no stage, no AWS
  SDK;
- the vocabulary imports nothing of `ml`, the adapters or a stage;
- no stage imports another stage;
- the CDK app, the `mlops` CLI and the local cloud never import a stage's internals;
- boto3 and botocore are imported only by the adapters, the CLI, the local cloud and the CDK
  app;
- an adapter keeps its client private: no public attribute holds a boto3 client or resource.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ADAPTERS = REPO / "functions" / "adapters"


def test_every_import_contract_is_kept() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache", "--no-logo"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout, result.stdout[-3000:]


_CLIENT_MAKERS = ("client", "resource", "LazyClient")


def _makes_client(value: ast.expr | None) -> bool:
    if not isinstance(value, ast.Call):
        return False
    func = value.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return called in _CLIENT_MAKERS


def _targets(assignment: ast.Assign | ast.AnnAssign) -> list[ast.expr]:
    return assignment.targets if isinstance(assignment, ast.Assign) else [assignment.target]


def _public_client_attributes(source: str) -> list[str]:
    """Public names that hold a client: `self.<name> = <...>.client(...)` (or `.resource`),
    and a class attribute `<name> = LazyClient(...)`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        assignments: list[ast.Assign | ast.AnnAssign] = []
        if isinstance(node, ast.ClassDef):
            assignments += [s for s in node.body if isinstance(s, ast.Assign | ast.AnnAssign)]
            names = [
                target.id
                for assignment in assignments
                if _makes_client(assignment.value)
                for target in (
                    assignment.targets
                    if isinstance(assignment, ast.Assign)
                    else [assignment.target]
                )
                if isinstance(target, ast.Name)
            ]
            found += [name for name in names if not name.startswith("_")]
        elif isinstance(node, ast.Assign | ast.AnnAssign) and _makes_client(node.value):
            found += [
                target.attr
                for target in _targets(node)
                if isinstance(target, ast.Attribute) and not target.attr.startswith("_")
            ]
    return found


def test_adapters_keep_their_clients_private() -> None:
    public = {
        str(path.relative_to(REPO)): names
        for path in sorted(ADAPTERS.rglob("*.py"))
        if (names := _public_client_attributes(path.read_text(encoding="utf-8")))
    }
    assert public == {}, f"adapters expose raw clients: {public}"
    assert _public_client_attributes("self.s3 = session.client('s3')") == ["s3"]
    assert _public_client_attributes("self._s3 = session.client('s3')") == []
    assert _public_client_attributes("class T:\n    dynamodb = aws.LazyClient('dynamodb')") == [
        "dynamodb"
    ]
