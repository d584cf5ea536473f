"""Format detection by content and chunked reading of every supported format."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from functions.ml.errors import DataValidationError
from functions.ml.readers.formats import FileFormat, detect_format
from functions.ml.readers.tables import open_table
from functions.ml.sample_data import churn_frame, encode


def _file(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "drop"
    path.write_bytes(content)
    return path


def _code(tmp_path: Path, content: bytes, name: str) -> str:
    with pytest.raises(DataValidationError) as caught:
        detect_format(_file(tmp_path, content), name)
    return caught.value.code.value


@pytest.mark.parametrize(
    ("file_format", "name", "expected"),
    [
        ("csv", "drop.csv", FileFormat.CSV),
        ("csv", "drop.txt", FileFormat.CSV),
        ("csv.gz", "drop.csv.gz", FileFormat.CSV_GZIP),
        ("csv.gz", "drop.csv", FileFormat.CSV_GZIP),
        ("parquet", "drop.parquet", FileFormat.PARQUET),
        ("parquet", "drop.csv", FileFormat.PARQUET),
        ("jsonl", "drop.jsonl", FileFormat.JSON_LINES),
        ("jsonl", "drop.csv", FileFormat.JSON_LINES),
    ],
)
def test_the_format_is_decided_by_content_not_by_the_name(
    tmp_path: Path, file_format: str, name: str, expected: FileFormat
) -> None:
    content = encode(churn_frame(50, seed=1), file_format)

    assert detect_format(_file(tmp_path, content), name) is expected


def test_gzipped_json_lines_are_recognised(tmp_path: Path) -> None:
    content = gzip.compress(encode(churn_frame(50), "jsonl"))

    assert detect_format(_file(tmp_path, content), "x.jsonl.gz") is FileFormat.JSON_LINES_GZIP


@pytest.mark.parametrize(
    ("content", "name", "code"),
    [
        (b"", "a.csv", "empty_file"),
        (b"  \n\n \t\n", "a.csv", "empty_file"),
        (gzip.compress(b""), "a.csv.gz", "empty_file"),
        (b"age,churned\n1,yes\n", "a.csv.gz", "not_gzip"),
        (b"\x1f\x8b\x08\x00garbage that is not deflate", "a.csv.gz", "not_gzip"),
        (b"age,churned\n1,yes\n", "a.parquet", "not_parquet"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 50, "a.csv", "binary_content"),
        ("age,región\n1,sí\n".encode("utf-16"), "a.csv", "not_utf8"),
        ("age,region\n1,köln\n".encode("latin-1"), "a.csv", "not_utf8"),
        (b'[{"age": 1}, {"age": 2}]', "a.json", "not_json_lines"),
    ],
)
def test_unreadable_content_is_named_precisely(
    tmp_path: Path, content: bytes, name: str, code: str
) -> None:
    assert _code(tmp_path, content, name) == code


def test_a_utf8_byte_order_mark_is_fine(tmp_path: Path) -> None:
    path = _file(tmp_path, b"\xef\xbb\xbfage,churned\n1,yes\n")

    table = open_table(path, detect_format(path, "a.csv"), delimiter=",", chunk_rows=10)

    assert table.columns == ["age", "churned"]


@pytest.mark.parametrize(("delimiter", "shown"), [(";", "';'"), ("\t", "'\\t'"), ("|", "'|'")])
def test_a_file_with_another_delimiter_is_reported_as_such(
    tmp_path: Path, delimiter: str, shown: str
) -> None:
    path = _file(tmp_path, encode(churn_frame(30), sep=delimiter))

    with pytest.raises(DataValidationError) as caught:
        open_table(path, FileFormat.CSV, delimiter=",", chunk_rows=10)

    assert caught.value.code.value == "wrong_delimiter"
    assert shown in caught.value.message
    assert caught.value.details["detected"] == delimiter


def test_the_configured_delimiter_reads_such_a_file(tmp_path: Path) -> None:
    path = _file(tmp_path, encode(churn_frame(30), sep=";"))

    table = open_table(path, FileFormat.CSV, delimiter=";", chunk_rows=10)

    assert "churned" in table.columns
    assert sum(len(chunk) for chunk in table.chunks()) == 30


def test_delimited_text_comes_in_chunks_of_exactly_chunk_rows_as_untouched_strings(
    tmp_path: Path,
) -> None:
    text = "id,note\n" + "".join(f'{i}," padded, ""quoted""\nline"\n' for i in range(25))
    path = _file(tmp_path, text.encode())

    chunks = list(open_table(path, FileFormat.CSV, delimiter=",", chunk_rows=10).chunks())

    assert [len(chunk) for chunk in chunks] == [10, 10, 5]
    assert chunks[2]["id"].tolist() == ["20", "21", "22", "23", "24"]
    assert chunks[0]["note"].iloc[0] == ' padded, "quoted"\nline'


def test_only_the_requested_columns_are_read(tmp_path: Path) -> None:
    path = _file(tmp_path, encode(churn_frame(30)))
    table = open_table(path, FileFormat.CSV, delimiter=",", chunk_rows=100)

    (chunk,) = table.chunks(columns=["churned", "age"])

    assert list(chunk.columns) == ["churned", "age"]


def test_rows_with_the_wrong_number_of_fields_are_skipped_and_counted(tmp_path: Path) -> None:
    path = _file(tmp_path, b"a,b,c\n1,2,3\n4,5\n6,7,8,9\n10,11,12\n")
    table = open_table(path, FileFormat.CSV, delimiter=",", chunk_rows=100)

    rows = pd.concat(table.chunks())

    assert rows["a"].tolist() == ["1", "10"]
    assert table.malformed_rows == 2
    assert any("6,7,8,9" in sample for sample in table.malformed_samples)


def test_non_utf8_bytes_past_the_sniffed_sample_are_caught_while_reading(tmp_path: Path) -> None:
    frame = churn_frame(2_001)
    good = encode(frame.head(2_000))
    assert len(good) > 64 * 1024
    last = encode(frame.tail(1).assign(region="köln")).decode().splitlines()[1] + "\n"
    path = _file(tmp_path, good + last.encode("latin-1"))
    table = open_table(path, detect_format(path, "a.csv"), delimiter=",", chunk_rows=500)

    with pytest.raises(DataValidationError) as caught:
        list(table.chunks())

    assert caught.value.code.value == "not_utf8"


@pytest.mark.parametrize(
    ("spread", "binary"),
    [
        pytest.param(b"\x1b[0m", False, id="a-few-escapes-are-text"),
        pytest.param(b"\x01\x02\x03\x04" * 200, True, id="a-binary-blob-without-nul"),
    ],
)
def test_control_bytes_past_the_sniffed_sample_are_binary_only_in_bulk(
    tmp_path: Path, spread: bytes, binary: bool
) -> None:
    good = encode(churn_frame(2_000))
    at = good.index(b"north", 70_000)
    path = _file(tmp_path, good[:at] + spread + good[at:])
    table = open_table(path, detect_format(path, "a.csv"), delimiter=",", chunk_rows=500)

    if not binary:
        assert sum(len(chunk) for chunk in table.chunks()) == 2_000
        return
    with pytest.raises(DataValidationError) as caught:
        list(table.chunks())
    assert caught.value.code.value == "binary_content"
    assert caught.value.details["byte_offset"] == at
    assert "control bytes within 64 KB (text has at most 655)" in str(caught.value)


def test_a_truncated_gzip_stream_is_reported_as_not_gzip(tmp_path: Path) -> None:
    whole = gzip.compress(encode(churn_frame(5_000, seed=3)))
    path = _file(tmp_path, whole[: len(whole) * 2 // 3])
    table = open_table(path, detect_format(path, "a.csv.gz"), delimiter=",", chunk_rows=1_000)

    with pytest.raises(DataValidationError) as caught:
        list(table.chunks())

    assert caught.value.code.value == "not_gzip"


def test_parquet_is_read_in_batches_with_its_declared_types(tmp_path: Path) -> None:
    path = _file(tmp_path, encode(churn_frame(120), "parquet"))
    table = open_table(path, FileFormat.PARQUET, delimiter=",", chunk_rows=50)

    chunks = list(table.chunks(columns=["tenure_months", "churned"]))

    assert [len(chunk) for chunk in chunks] == [50, 50, 20]
    assert str(table.arrow_schema.field("tenure_months").type) == "int64"
    assert list(chunks[0].columns) == ["tenure_months", "churned"]


def test_json_lines_align_objects_that_omit_keys(tmp_path: Path) -> None:
    lines = b'{"a": 1, "churned": "yes"}\n{"churned": "no", "b": "x"}\n\n{"a": 3}\n'
    path = _file(tmp_path, lines)
    table = open_table(path, FileFormat.JSON_LINES, delimiter=",", chunk_rows=10)

    (chunk,) = table.chunks()

    assert table.columns == ["a", "churned", "b"]
    assert chunk["churned"].tolist()[:2] == ["yes", "no"]
    assert pd.isna(chunk["churned"].iloc[2])


def test_a_broken_json_line_is_a_malformed_row(tmp_path: Path) -> None:
    path = _file(tmp_path, b'{"a": 1, "churned": "yes"}\n{"a": 2, "churned": \n')

    with pytest.raises(DataValidationError) as caught:
        list(open_table(path, FileFormat.JSON_LINES, delimiter=",", chunk_rows=10).chunks())

    assert caught.value.code.value == "malformed_rows"


def test_a_parquet_footer_with_a_column_name_that_is_not_utf8_is_not_parquet(
    tmp_path: Path,
) -> None:
    import io

    buffer = io.BytesIO()
    churn_frame(20, seed=1).to_parquet(buffer, index=False)
    data = bytearray(buffer.getvalue())
    footer = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    start = data.index(b"region", footer)  # the schema's column names come first
    data[start] = 0x80  # one byte flipped: the name is no longer UTF-8

    path = _file(tmp_path, bytes(data))
    with pytest.raises(DataValidationError) as caught:
        open_table(path, detect_format(path, "a.parquet"), delimiter=",", chunk_rows=10)
    assert caught.value.code.value == "not_parquet"


def test_gzip_damaged_after_the_detected_prefix_is_not_gzip(tmp_path: Path) -> None:
    from functions.ml.readers.formats import SAMPLE_BYTES

    # Long lines: the header check reads past the prefix format detection decompressed.
    line = "x" * (SAMPLE_BYTES // 4)
    text = "age,churned,note\n" + "".join(f"{i},yes,{line}{i}\n" for i in range(20))
    body = gzip.compress(text.encode(), compresslevel=1)
    path = _file(tmp_path, body[: len(body) // 2])

    with pytest.raises(DataValidationError) as caught:
        open_table(path, detect_format(path, "a.csv.gz"), delimiter=",", chunk_rows=10)
    assert caught.value.code.value == "not_gzip"
