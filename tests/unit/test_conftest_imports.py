"""No test imports from a conftest module: pytest imports conftest files itself (a second
import makes a second copy of each class in them), so fixtures stay there and the plain helpers
tests share live in `tests.helpers`."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
# Statements in modules and in the scripts tests run in a child interpreter.
CONFTEST_IMPORT = re.compile(
    r"^\s*(?:from\s+[\w.]*\bconftest\s+import"  # from tests.unit.conftest import x
    r"|from\s+[\w.]+\s+import\s[^\n#]*\bconftest\b"  # from . import conftest
    r"|import\s+[\w.]*\bconftest\b)",  # import tests.e2e.conftest
    re.MULTILINE,
)


def test_no_test_imports_from_a_conftest_module() -> None:
    found = [
        f"{path.relative_to(TESTS)}: {match.group(0).strip()}"
        for path in sorted(TESTS.rglob("*.py"))
        for match in CONFTEST_IMPORT.finditer(path.read_text(encoding="utf-8"))
    ]
    assert found == []
