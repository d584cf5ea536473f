"""The local cloud runs a training job with the program the training image runs (`train`,
`exec python -m <module>`), found by reading the program, not by importing a stage."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.local.sagemaker import entry_point


def test_the_entry_point_is_the_main_of_the_module_the_image_program_runs() -> None:
    from functions.train import sagemaker_entry

    assert entry_point() is sagemaker_entry.main


def test_a_program_naming_another_module_runs_that_module(tmp_path: Path) -> None:
    program = tmp_path / "train"
    program.write_text('#!/bin/sh\nexec python -m infra.local.sagemaker_probe "$@"\n')

    with pytest.raises(ModuleNotFoundError, match="infra.local.sagemaker_probe"):
        entry_point(program)


def test_a_program_that_runs_no_module_is_refused(tmp_path: Path) -> None:
    program = tmp_path / "train"
    program.write_text("#!/bin/sh\nexec ./train.bin\n")

    with pytest.raises(ValueError, match="runs no `python -m <module>`"):
        entry_point(program)
