"""`mlops predeploy`'s shared-library check: every `.so` must find what it links against in
Lambda's base image, in what the Dockerfile installs, or in the deployment itself."""

from __future__ import annotations

from pathlib import Path

import lightgbm

from infra.cdk.dockerfile import parse_dockerfile
from infra.cdk.predeploy import check_shared_libraries
from infra.cdk.shared_libraries import (
    base_libraries,
    dnf_installed,
    missing_libraries,
    needed_libraries,
)
from tests.helpers.elf import shared_object

REPO = Path(__file__).resolve().parents[2]


def _tree(tmp_path: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    return tmp_path


def test_a_library_the_base_image_lacks_fails_the_check_naming_it(tmp_path: Path) -> None:
    tree = _tree(
        tmp_path,
        {"pkg/lib/_native.so": shared_object(["libc.so.6", "libgomp.so.1", "libfoo.so.3"])},
    )

    result = check_shared_libraries([("training image", tree, set())])

    assert not result.passed
    assert any(
        p.startswith("training image: libfoo.so.3 (needed by pkg/lib/_native.so)")
        for p in result.problems
    )
    assert any("libgomp.so.1" in p for p in result.problems)
    assert not any("libc.so.6" in p for p in result.problems)


def test_what_the_dockerfile_installs_or_the_wheel_vendors_counts_as_present(
    tmp_path: Path,
) -> None:
    tree = _tree(
        tmp_path,
        {
            "lightgbm/lib/lib_lightgbm.so": shared_object(["libgomp.so.1", "libstdc++.so.6"]),
            "xgboost/lib/libxgboost.so": shared_object(["libgomp-a49a47f9.so.1.0.0"]),
            "xgboost_cpu.libs/libgomp-a49a47f9.so.1.0.0": shared_object(["libc.so.6"]),
        },
    )
    dockerfile = parse_dockerfile((REPO / "layers/training/Dockerfile").read_text())

    assert dnf_installed(dockerfile) == {"libgomp.so.1"}
    assert check_shared_libraries([("training image", tree, dnf_installed(dockerfile))]).passed
    (missing,) = missing_libraries(tree, base_libraries())
    assert missing.library == "libgomp.so.1"
    assert missing.needed_by == ("lightgbm/lib/lib_lightgbm.so",)


def test_lightgbm_needs_libgomp_which_the_base_image_lacks() -> None:
    library = Path(lightgbm.__file__).parent / "lib" / "lib_lightgbm.so"

    needed = needed_libraries(library)

    assert "libgomp.so.1" in needed
    assert "libgomp.so.1" not in base_libraries()
    assert {"libc.so.6", "libstdc++.so.6"} <= base_libraries()
