"""The code version the local cloud stamps on its functions changes with their code, so a
training set trained before by other code is not "unchanged" (issue 16 item 16)."""

from __future__ import annotations

from pathlib import Path

from infra.local.synth import local_code_version


def test_the_local_code_version_follows_the_functions_code(tmp_path: Path) -> None:
    module = tmp_path / "functions" / "train" / "logic.py"
    module.parent.mkdir(parents=True)
    module.write_text("SEED = 1\n")
    (tmp_path / "README.md").write_text("docs\n")
    first = local_code_version(tmp_path)

    (tmp_path / "README.md").write_text("other docs\n")
    assert local_code_version(tmp_path) == first, "only the functions' code counts"

    module.write_text("SEED = 2\n")
    changed = local_code_version(tmp_path)
    assert changed != first and changed.startswith("local-")

    module.write_text("SEED = 1\n")
    assert local_code_version(tmp_path) == first


def test_the_repo_s_functions_get_a_real_code_version() -> None:
    version = local_code_version(Path(__file__).resolve().parents[3])
    assert version.startswith("local-") and len(version) == len("local-") + 12
