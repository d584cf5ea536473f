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

from functions.common.config.dataset import IngestConfig
from functions.ml.errors import DataValidationError
from functions.ml.ingestion import ingest_file
from functions.ml.readers.formats import FileFormat, detect_format
from functions.ml.readers.limits import CHUNK_CELLS, ReadLimits
from functions.ml.readers.tables import open_table
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


def test_a_gzip_drop_expanding_far_beyond_its_size_is_refused_as_it_is_read(
    tmp_path: Path,
) -> None:
    # 1 GiB of blank lines compresses to about 1 MB: reading stops at 100x that.
    member = gzip.compress(b"\n" * (1 << 20), compresslevel=9)
    body = gzip.compress(b'{"age": 1, "churned": "yes"}\n') + member * 1024
    path = _file(tmp_path, body, "a.jsonl.gz")

    refusal = _refusal(path, ReadLimits())

    assert refusal.code.value == "gzip_bomb"
    limit = max(64 << 20, 100 * len(body))
    assert refusal.details["limit"] == limit
    assert f"over {limit:,} bytes" in refusal.message


def test_gzip_that_expands_normally_is_read_whatever_its_size(tmp_path: Path) -> None:
    content = _csv(3_000, seed=4)
    path = _file(tmp_path, gzip.compress(content), "a.csv.gz")

    assert len(_read(path, ReadLimits(max_gzip_ratio=2))) == 3_000  # under the 64 MiB floor


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("a.csv", b"id," + b"n" * 2_000 + b",churned\n1,2,yes\n"),
        ("a.jsonl", ('{"id": 1, "' + "k" * 2_000 + '": 2, "churned": "yes"}\n').encode()),
    ],
)
def test_a_column_name_longer_than_1024_characters_is_refused(
    tmp_path: Path, name: str, content: bytes
) -> None:
    refusal = _refusal(_file(tmp_path, content, name), ReadLimits())

    assert refusal.code.value == "column_name_too_long"
    assert refusal.message.startswith("A column name is 2,000 characters long (at most 1,024)")


def test_a_header_whose_quoted_name_spans_two_lines_is_one_row(tmp_path: Path) -> None:
    path = _file(tmp_path, b'id,"a\nnote",churned\n1,x,yes\n2,y,no\n', "a.csv")

    frame = _read(path, ReadLimits())

    assert list(frame.columns) == ["id", "a\nnote", "churned"]
    assert frame["churned"].tolist() == ["yes", "no"], "the header's second line is no row"


@pytest.mark.parametrize(
    ("line", "code", "start"),
    [
        ('{"churned": "yes", "x": ' + "[" * 40 + "]" * 40 + "}", "malformed_rows", "Line 3 nests"),
        ('{"churned": "yes", "x": ' + "[" * 2_000 + "]" * 2_000 + "}", "malformed_rows", ""),
        ('{"churned": "yes", "region": "\\udc00"}', "not_utf8", "Line 3 holds a lone surrogate"),
        ('{"churned": "yes", "x": ' + "1" * 5_000 + "}", "malformed_rows", ""),
    ],
    ids=["nested-too-deep", "nested-past-the-parsers", "lone-surrogate", "5000-digit-integer"],
)
def test_json_values_the_pipeline_cannot_hold_are_refused_naming_the_problem(
    tmp_path: Path, line: str, code: str, start: str
) -> None:
    good = '{"churned": "no", "x": 1}\n' * 2
    refusal = _refusal(_file(tmp_path, (good + line + "\n").encode(), "a.jsonl"), ReadLimits())

    assert refusal.code.value == code
    assert refusal.message.startswith(start)


def test_json_keys_that_look_like_numbers_stay_column_names(tmp_path: Path) -> None:
    path = _file(tmp_path, b'{"1": "yes", "2": 5}\n{"1": "no", "2": 6}\n', "a.jsonl")

    frame = _read(path, ReadLimits())

    assert list(frame.columns) == ["1", "2"]


def test_a_json_line_bringing_many_keys_late_starts_a_new_chunk(tmp_path: Path) -> None:
    # Rows x keys of one chunk would be 20,000 x 60 cells: the cell budget splits it.
    lines = ['{"churned": "no"}'] * 19_999 + [json.dumps({f"k{i}": 1 for i in range(59)})]
    path = _file(tmp_path, "\n".join(lines).encode(), "a.jsonl")
    table = open_table(path, FileFormat.JSON_LINES, delimiter=",", chunk_rows=20_000)

    sizes = [len(chunk) for chunk in table.chunks()]

    assert sum(sizes) == 20_000 and len(sizes) >= 2


def test_parquet_values_are_checked_as_decoded_not_as_stored(tmp_path: Path) -> None:
    # A dictionary-encoded 5 KB value repeated: a few KB on disk, 5 KB per row decoded.
    path = tmp_path / "a.parquet"
    values = pa.DictionaryArray.from_arrays(pa.array([0] * 20_000, pa.int32()), ["x" * 5_000])
    table = pa.table({"churned": ["yes", "no"] * 10_000, "note": values})
    pq.write_table(table, path, store_schema=False)
    assert path.stat().st_size < 100_000

    chunks = list(
        open_table(
            path, FileFormat.PARQUET, delimiter=",", chunk_rows=200_000, limits=ReadLimits()
        ).chunks()
    )
    refusal = _refusal(path, ReadLimits(max_record_bytes=4_096, max_line_bytes=1_024))

    assert max(len(chunk) for chunk in chunks) <= (64 << 20) // 5_000 + 1024
    assert refusal.code.value == "record_too_large"
    assert refusal.message.startswith("Record 1 decodes to 5,003 bytes of values")


def test_parquet_text_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    offsets = pa.array([0, 2, 4], pa.int32()).buffers()[1]
    data = pa.py_buffer(b"ok\xff\xfe")
    bad = pa.Array.from_buffers(pa.string(), 2, [None, offsets, data])
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"churned": ["yes", "no"], "region": bad}), path)

    refusal = _refusal(path, ReadLimits())

    assert refusal.code.value == "not_utf8"
    assert refusal.message == "Column 'region' holds text that is not UTF-8 (records 1-2)."
