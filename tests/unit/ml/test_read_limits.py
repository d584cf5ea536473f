"""Reading stays within `[ingest]`'s caps whatever a file holds: a line, a record or a column
count over its cap is refused with a reason that names the cap and where, before the reader
holds more than the cap; files within the caps read as before, however they are chunked."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from functions.common.config import IngestConfig
from functions.ml.errors import DataValidationError
from functions.ml.ingestion import ingest_file
from functions.ml.readers import (
    CHUNK_CELLS,
    FileFormat,
    ReadLimits,
    detect_format,
    open_table,
)
from functions.ml.sample_data import churn_frame, encode

SMALL = ReadLimits(max_line_bytes=1024, max_record_bytes=4096, max_columns=50)


def _file(tmp_path: Path, content: bytes, name: str = "drop") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def _read(path: Path, limits: ReadLimits = SMALL, chunk_rows: int = 1_000) -> pd.DataFrame:
    table = open_table(
        path, detect_format(path, path.name), delimiter=",", chunk_rows=chunk_rows, limits=limits
    )
    return pd.concat(list(table.chunks()), ignore_index=True)


def _refusal(path: Path, limits: ReadLimits = SMALL) -> DataValidationError:
    with pytest.raises(DataValidationError) as caught:
        _read(path, limits)
    return caught.value


def _csv(rows: int, seed: int = 1) -> bytes:
    return encode(churn_frame(rows, seed=seed))


@pytest.mark.parametrize("gzipped", [False, True], ids=["csv", "csv.gz"])
@pytest.mark.parametrize("row", [1, 5, 300], ids=["header", "sniffed-rows", "past-the-sniff"])
def test_a_line_over_the_cap_is_refused_naming_its_line_and_the_cap(
    tmp_path: Path, gzipped: bool, row: int
) -> None:
    lines = _csv(400).splitlines(keepends=True)
    lines.insert(row - 1, b"x" * 1025 + b"\n")
    content = b"".join(lines)
    name = "a.csv.gz" if gzipped else "a.csv"
    path = _file(tmp_path, gzip.compress(content) if gzipped else content, name)

    refusal = _refusal(path)

    assert refusal.code.value == "line_too_long"
    assert refusal.message == (
        f"Line {row:,} is longer than 1,024 bytes ([ingest] max_line_bytes); reading stopped there."
    )
    assert refusal.rows == [row]
    assert refusal.details == {"line": row, "max_line_bytes": 1024}


def test_a_line_exactly_at_the_cap_is_read(tmp_path: Path) -> None:
    header = b"id,note\n"
    line = b"1," + b"y" * (1024 - 2) + b"\n"
    path = _file(tmp_path, header + line * 3 + b"2,short\n", "a.csv")

    frame = _read(path)

    assert frame["note"].str.len().tolist() == [1022, 1022, 1022, 5]


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
def test_every_line_ending_ends_a_line(tmp_path: Path, ending: bytes) -> None:
    rows = [b"id,note"] + [b"%d,%s" % (i, b"z" * 600) for i in range(200)]
    path = _file(tmp_path, ending.join(rows) + ending, "a.csv")

    assert len(_read(path)) == 200


def test_json_lines_over_the_cap_are_refused_naming_the_line(tmp_path: Path) -> None:
    lines = [json.dumps({"age": i, "churned": "yes"}) for i in range(50)]
    lines.insert(9, json.dumps({"age": 1, "churned": "x" * 2000}))
    path = _file(tmp_path, gzip.compress("\n".join(lines).encode()), "a.jsonl.gz")

    refusal = _refusal(path)

    assert refusal.code.value == "line_too_long"
    assert refusal.rows == [10]


def test_a_quoted_record_spanning_lines_over_the_cap_is_refused_naming_the_record(
    tmp_path: Path,
) -> None:
    # 30 data rows, then one whose quoted note spans 2,000 short lines (26 KB), each line
    # under the line cap.
    rows = b"".join(b"%d,ok\n" % i for i in range(30))
    path = _file(tmp_path, b"id,note\n" + rows + b'99,"' + b"a short line\n" * 2_000 + b'"\n')

    refusal = _refusal(path)

    assert refusal.code.value == "record_too_large"
    assert refusal.message == (
        "Record 31 (counting data rows after the header) is too long to fit the reader's "
        "block; the cap is 4,096 bytes ([ingest] max_record_bytes)."
    )
    assert refusal.rows == [31]


def test_a_quoted_record_spanning_lines_within_the_cap_is_read_whole(tmp_path: Path) -> None:
    note = "a short line\n" * 200  # 2,600 bytes in 200 lines: under the 4,096-byte record cap
    body = "id,note\n" + "".join(f'{i},"{note}"\n' for i in range(100))
    path = _file(tmp_path, body.encode(), "a.csv")

    frame = _read(path)

    assert len(frame) == 100
    assert set(frame["note"]) == {note}


def test_a_header_with_too_many_columns_is_refused_before_any_row_is_read(
    tmp_path: Path,
) -> None:
    header = ",".join(f"c{i}" for i in range(51))
    path = _file(tmp_path, f"{header}\n".encode() + b"1\n", "a.csv")

    refusal = _refusal(path)

    assert refusal.code.value == "too_many_columns"
    assert refusal.message == (
        "The header has 51 columns; at most 50 are read ([ingest] max_columns = 50)."
    )
    assert refusal.rows == [1]


def test_json_lines_with_too_many_distinct_keys_are_refused_at_the_line_that_adds_one(
    tmp_path: Path,
) -> None:
    # Each line alone is small; together their keys would make a 300-column frame.
    lines = [json.dumps({f"k{i}": 1, "churned": "yes"}) for i in range(300)]
    path = _file(tmp_path, "\n".join(lines).encode(), "a.jsonl")

    refusal = _refusal(path)

    assert refusal.code.value == "too_many_columns"
    assert refusal.message.startswith("Up to line 50, the file has 51 columns; at most 50")
    assert refusal.rows == [50]


def test_a_json_line_that_is_not_an_object_is_named(tmp_path: Path) -> None:
    path = _file(tmp_path, b'{"a": 1, "churned": "yes"}\n{"a": 2, "churned": "no"}\n[1, 2]\n')

    refusal = _refusal(path, ReadLimits())

    assert refusal.code.value == "not_json_lines"
    assert refusal.message.startswith("Line 3 holds a JSON array or a bare value")


def test_parquet_with_too_many_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({f"c{i}": [1] for i in range(51)}), path)

    refusal = _refusal(path)

    assert refusal.code.value == "too_many_columns"
    assert refusal.message.startswith("The file's schema has 51 columns")


def test_a_parquet_row_group_of_huge_rows_is_refused_from_its_footer(tmp_path: Path) -> None:
    path = tmp_path / "a.parquet"
    small = pa.table({"note": ["ok"] * 10})
    huge = pa.table({"note": ["x" * 50_000]})
    with pq.ParquetWriter(path, small.schema) as writer:
        writer.write_table(small)
        writer.write_table(huge)  # its own row group: one row of 50 KB, compressed to bytes

    refusal = _refusal(path)

    assert refusal.code.value == "record_too_large"
    assert refusal.rows == [11]
    assert refusal.message.startswith("Record 11 starts row group 1, whose 1 row(s) average")


def test_a_wide_file_is_read_in_fewer_rows_per_chunk_with_the_same_result(
    tmp_path: Path,
) -> None:
    columns = 400
    rows = CHUNK_CELLS // columns + 1_000
    frame = pd.DataFrame({f"c{i}": range(rows) for i in range(columns)})
    path = tmp_path / "wide.parquet"
    frame.to_parquet(path, index=False)
    limits = ReadLimits(max_columns=columns)

    table = open_table(path, FileFormat.PARQUET, delimiter=",", chunk_rows=200_000, limits=limits)
    sizes = [len(chunk) for chunk in table.chunks(columns=["c0", "c399"])]

    assert sizes == [CHUNK_CELLS // columns, 1_000]


def test_the_data_version_does_not_depend_on_how_the_caps_chunk_a_file(
    tmp_path: Path, churn, churn_contract
) -> None:
    content = _csv(5_000, seed=7)
    versions = set()
    for index, chunk_rows in enumerate((1_000, 200_000)):
        source = _file(tmp_path, content, f"a{index}.csv")
        out = tmp_path / f"out{index}"
        out.mkdir()
        result = ingest_file(
            source,
            name="a.csv",
            dataset=churn,
            contract=churn_contract,
            out_dir=out,
            chunk_rows=chunk_rows,
            limits=ReadLimits(),
        )
        versions.add(result.data_version)
    assert len(versions) == 1


def test_the_caps_default_from_ingest_config() -> None:
    ingest = IngestConfig()

    assert ReadLimits() == ReadLimits.of(ingest)
    assert (ingest.max_line_bytes, ingest.max_record_bytes, ingest.max_columns) == (
        1 << 20,
        4 << 20,
        2_000,
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"max_line_bytes": 8 << 20, "max_record_bytes": 4 << 20},
            "ingest.max_line_bytes (8388608) must not exceed ingest.max_record_bytes",
        ),
        (
            {"memory_mb": 512, "max_record_bytes": 64 << 20},
            "ingest.max_record_bytes (67108864) must be at most 1/16 of ingest.memory_mb (512",
        ),
    ],
)
def test_caps_that_do_not_fit_the_function_are_refused_by_the_config(
    values: dict[str, int], message: str
) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        IngestConfig(**values)
