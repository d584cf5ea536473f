"""Counting records, row ranges and their byte offsets, and reading text records for batch
inference (`functions/ml/batch.py`)."""

from __future__ import annotations

import pytest

from functions.ml import batch
from functions.ml.batch import RecordScan, UnreadableInput
from functions.ml.readers.formats import FileFormat


def _scan(data: bytes, scan: RecordScan, chunk: int) -> RecordScan:
    for start in range(0, len(data), chunk):
        scan.feed(data[start : start + chunk])
    return scan.finish()


@pytest.mark.parametrize("chunk", [1, 3, 7, 1 << 20])
def test_csv_records_are_counted_without_the_header_and_quoted_newlines_stay_in_a_record(
    chunk: int,
) -> None:
    data = b'a,b\n1,"x\ny"\n2,z\n\n3,"q""\n"\n4,w'

    scan = _scan(data, RecordScan.csv(every=2), chunk)

    assert scan.header_end == 4
    # 1,"x\ny" | 2,z | (blank) | 3,"q""\n" | 4,w
    assert scan.records == 5
    assert [data[o : o + 1] for o in scan.offsets] == [b"\n", b"4"]


@pytest.mark.parametrize("chunk", [2, 1 << 20])
def test_every_ranged_read_of_a_csv_holds_exactly_its_rows(chunk: int) -> None:
    rows = [f"{i},v{i}" for i in range(10)]
    data = ("h1,h2\n" + "\n".join(rows) + "\n").encode()
    scan = _scan(data, RecordScan.csv(every=3), chunk)

    ranges = batch.row_ranges(
        scan.records, 3, offsets=scan.offsets, first_byte=scan.header_end or 0, size=len(data)
    )

    assert [(r.start, r.end) for r in ranges] == [(0, 3), (3, 6), (6, 9), (9, 10)]
    read = [
        list(batch.csv_records(data[r.byte_start : r.byte_end].decode(), delimiter=","))
        for r in ranges
    ]
    assert [[f"{a},{b}" for a, b in part] for part in read] == [
        rows[0:3],
        rows[3:6],
        rows[6:9],
        rows[9:10],
    ]


def test_json_lines_are_one_record_per_line_and_a_last_line_without_newline_counts() -> None:
    scan = _scan(b'{"a": 1}\n{"a": "x\\ny"}\n{"a": 3}', RecordScan.json_lines(every=2), 4)

    assert scan.records == 3 and scan.header_end is None


def test_an_empty_file_is_one_empty_range_so_it_still_has_a_result() -> None:
    assert batch.row_ranges(0, 10) == [batch.RowRange(0, 0)]
    assert [(r.start, r.end) for r in batch.row_ranges(25, 10)] == [(0, 10), (10, 20), (20, 25)]


def test_input_formats_are_decided_by_content() -> None:
    assert batch.input_format("x.csv", b"PAR1....") is FileFormat.PARQUET
    assert batch.input_format("x.txt", b'  {"a": 1}') is FileFormat.JSON_LINES
    assert batch.input_format("x.jsonl.gz", b"\x1f\x8b...") is FileFormat.JSON_LINES_GZIP
    assert batch.input_format("x.gz", b"\x1f\x8b...") is FileFormat.CSV_GZIP
    assert batch.input_format("x.parquet", b"a,b\n1,2") is FileFormat.CSV
    with pytest.raises(UnreadableInput, match="empty"):
        batch.input_format("x.csv", b"  \n")
    with pytest.raises(UnreadableInput, match="binary"):
        batch.input_format("x.csv", b"ab\x00cd")


def test_markers_and_hidden_files_are_not_inputs() -> None:
    assert batch.is_input("part-1.csv") and batch.is_input("day=1/part.parquet")
    assert not any(batch.is_input(n) for n in ("_START", "_SUCCESS", ".keep", "_meta.json", "d/"))


def test_output_names_drop_the_extension_and_keep_it_when_two_inputs_would_collide() -> None:
    stems = batch.output_stems(["a.csv", "a.parquet", "b.csv.gz", "day=1/c.jsonl", "noext"])

    assert stems == {
        "a.csv": "a_csv",
        "a.parquet": "a_parquet",
        "b.csv.gz": "b",
        "day=1/c.jsonl": "day=1/c",
        "noext": "noext",
    }


def test_csv_rows_report_blank_and_short_records_and_missing_columns() -> None:
    records = [["1", "x", "id"], [], ["2", "y"]]

    table = batch.csv_rows(records, ["age", "contract", "id"], ["age", "contract", "region"])

    assert table.count == 3
    assert table.columns["age"] == ["1", None, None]
    assert table.present["region"] == [False, False, False]
    assert [(p[0], p[2]) for p in table.problems] == [(1, "empty_row"), (2, "malformed_row")]


def test_json_lines_rows_report_lines_that_are_not_objects() -> None:
    lines = [b'{"age": 3}', b"", b"[1]", b'{"age": ', b'{"contract": "a"}']

    table = batch.json_lines_rows(lines, ["age", "contract"])

    assert table.count == 5
    assert table.columns["age"] == [3, None, None, None, None]
    assert table.present["contract"] == [False, False, False, False, True]
    assert [(p[0], p[2]) for p in table.problems] == [
        (1, "empty_row"),
        (2, "invalid_instance"),
        (3, "malformed_json"),
    ]


def test_text_numbers_parse_vectorised_and_name_the_cells_that_are_not_numbers() -> None:
    missing = frozenset({"", "na"})

    assert batch.text_numbers(["1", " 2.5", "NA", ""], missing) == ([1.0, 2.5, None, None], [])
    numbers, bad = batch.text_numbers(["1", "forty"], missing)
    assert numbers == [1.0, None] and bad == [(1, "forty")]
    _, not_finite = batch.text_numbers(["1", "inf", "nan"], missing)
    assert not_finite == [(1, "inf"), (2, "nan")]
    assert batch.text_categories(["a", " NA ", None], missing) == ["a", None, None]


def test_json_lines_rows_take_producer_names_and_refuse_a_feature_named_twice() -> None:
    lines = [b'{"Monthly Charges ($)": 3.5}', b'{"monthly_charges": 1, "Monthly Charges ($)": 2}']
    aliases = {"Monthly Charges ($)": "monthly_charges"}

    table = batch.json_lines_rows(lines, ["monthly_charges"], aliases)

    assert table.columns["monthly_charges"] == [3.5, None]
    assert table.present["monthly_charges"] == [True, False]
    assert [(row, code) for row, _, code, _ in table.problems] == [(1, "duplicate_feature")]
