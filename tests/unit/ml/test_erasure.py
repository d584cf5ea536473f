"""A subject's rows leave a dropped file in any format, the file keeps its format and every
other row; curated rows are found by the fingerprints of the subject's raw rows."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from functions.common.config.dataset import DatasetConfig
from functions.ml.erasure import (
    Matcher,
    Subject,
    SubjectSyntaxError,
    UnreadableFileError,
    filter_json_lines,
    filter_parquet,
    filter_table,
    fingerprints,
    same_value,
)
from functions.ml.ingestion import IngestionResult
from functions.ml.readers.formats import FileFormat, detect_format
from functions.ml.sample_data import FORMATS, churn_frame, display_headers, encode

SUBJECT = Subject("customer_id", "C000000003")


def _read(path: Path, file_format: str) -> pd.DataFrame:
    if file_format == "parquet":
        return pd.read_parquet(path)
    if file_format.startswith("jsonl"):
        return pd.read_json(path, lines=True, dtype=False)
    compression = "gzip" if file_format.endswith(".gz") else None
    return pd.read_csv(path, dtype=str, keep_default_na=False, compression=compression)


@pytest.mark.parametrize("file_format", FORMATS)
def test_filter_removes_only_the_subjects_rows_and_keeps_the_format(
    tmp_path: Path, file_format: str
) -> None:
    frame = churn_frame(50, seed=4, duplicate_share=0)
    source, out = tmp_path / f"drop.{file_format}", tmp_path / "out"
    source.write_bytes(encode(frame, file_format))

    result = filter_table(source, source.name, out, Matcher(SUBJECT), delimiter=",")

    assert (result.rows_in, result.removed, result.kept) == (50, 1, 49)
    assert detect_format(out, source.name) is FileFormat(file_format)
    kept = _read(out, file_format)
    assert len(kept) == 49 and "C000000003" not in set(kept["customer_id"])
    assert list(kept.columns) == list(frame.columns)


def test_columns_are_matched_as_ingestion_names_them(tmp_path: Path) -> None:
    source, out = tmp_path / "drop.csv.gz", tmp_path / "out"
    source.write_bytes(encode(display_headers(churn_frame(20, duplicate_share=0)), "csv.gz"))

    result = filter_table(
        source, source.name, out, Matcher(SUBJECT), delimiter=",", keep_removed=True
    )

    assert result.removed == 1
    assert result.removed_rows[0]["customer_id"] == "C000000003"
    header = gzip.decompress(out.read_bytes()).split(b"\n", 1)[0]
    assert header.startswith(b"Customer ID,")


def test_json_lines_keep_other_lines_byte_for_byte(tmp_path: Path) -> None:
    lines = [
        b'{"request_id": "r1", "row": 0, "features": {"age": 3}}\n',
        b'{"request_id":"r2","row":0,"features":{"age":4}}\n',
        b"not json but mentions r1\n",
        b"not json at all\n",
    ]
    source, out = tmp_path / "capture", tmp_path / "out"
    source.write_bytes(b"".join(lines))

    result = filter_json_lines(source, out, Matcher(Subject.request("r1")))

    assert result.removed == 2
    assert out.read_bytes() == lines[1] + lines[3]


def test_feedback_of_the_subjects_predictions_is_theirs(tmp_path: Path) -> None:
    source, out = tmp_path / "labels.csv", tmp_path / "out"
    source.write_text("request_id,row,label\nr1,0,yes\nr1,1,no\nr2,0,no\n")
    matcher = Matcher(SUBJECT, linked=frozenset({("r1", 1)}))

    result = filter_table(source, source.name, out, matcher, delimiter=",")

    assert result.removed == 1
    assert out.read_text() == "request_id,row,label\nr1,0,yes\nr2,0,no\n"


def _columnar(request_id: str, ids: list[str], first: int = 0) -> dict[str, object]:
    return {
        "record": "capture",
        "format_version": 2,
        "request_id": request_id,
        "model_version": 1,
        "first_row": first,
        "rows": len(ids),
        "request_rows": first + len(ids),
        "columns": {"Customer ID": ids, "age": list(range(len(ids)))},
        "predictions": [f"p{i}" for i in range(len(ids))],
        "probabilities": [[0.5, 0.5] for _ in ids],
        "error": None,
    }


def _line(record: dict[str, object]) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def test_a_columnar_capture_record_is_rewritten_without_the_subjects_rows(
    tmp_path: Path,
) -> None:
    ids = ["C1", "C000000003", "C2", "C3", "C000000003"]
    other = _columnar("r2", ["C9"])
    source, out = tmp_path / "capture", tmp_path / "out"
    source.write_bytes(_line(_columnar("r1", ids)) + _line(other))

    result = filter_json_lines(source, out, Matcher(SUBJECT), keep_removed=True, columnar=True)

    assert (result.rows_in, result.removed) == (6, 2)
    kept = [json.loads(line) for line in out.read_bytes().splitlines()]
    # Runs of kept rows, each a record of its own that still names its rows in the request.
    assert [(r["request_id"], r["first_row"], r["rows"]) for r in kept] == [
        ("r1", 0, 1),
        ("r1", 2, 2),
        ("r2", 0, 1),
    ]
    assert kept[1]["columns"] == {"Customer ID": ["C2", "C3"], "age": [2, 3]}
    assert kept[1]["predictions"] == ["p2", "p3"] and len(kept[1]["probabilities"]) == 2
    assert kept[1]["request_rows"] == 5 and kept[2] == other
    assert [(r["request_id"], r["row"]) for r in result.removed_rows] == [("r1", 1), ("r1", 4)]
    assert b"C000000003" not in out.read_bytes()


def test_a_request_and_its_linked_rows_leave_columnar_capture(tmp_path: Path) -> None:
    source, out = tmp_path / "capture", tmp_path / "out"
    source.write_bytes(_line(_columnar("r1", ["a", "b"])) + _line(_columnar("r2", ["c", "d"], 5)))

    whole = filter_json_lines(source, out, Matcher(Subject.request("r1")), columnar=True)
    assert whole.removed == 2
    assert [json.loads(line)["request_id"] for line in out.read_bytes().splitlines()] == ["r2"]

    linked = Matcher(Subject("customer_id", "zzz"), linked=frozenset({("r2", 6)}))
    result = filter_json_lines(source, out, linked, columnar=True)
    assert result.removed == 1
    kept = [json.loads(line) for line in out.read_bytes().splitlines()]
    assert [(r["request_id"], r["first_row"], r["rows"]) for r in kept] == [
        ("r1", 0, 2),
        ("r2", 5, 1),
    ]


def test_capture_features_match_the_subject_column() -> None:
    record = {"request_id": "r", "row": 0, "features": {"Customer ID": 42.0}}

    assert Matcher(Subject("customer_id", "42")).record(record)
    assert not Matcher(Subject("customer_id", "420")).record(record)


@pytest.mark.parametrize(
    ("cell", "value", "same"),
    [
        (" C1 ", "C1", True),
        (42, "42.0", True),
        ("4.20", "4.2", True),
        (None, "None", False),
        (float("nan"), "nan", False),
        ("C1", "c1", False),
        (True, "1", False),
    ],
)
def test_values_match_as_text_or_numbers(cell: object, value: str, same: bool) -> None:
    assert same_value(cell, value) is same


def test_curated_rows_are_found_by_fingerprint(
    tmp_path: Path, churn: DatasetConfig, ingest: Callable[..., IngestionResult]
) -> None:
    frame = display_headers(churn_frame(120, seed=5, duplicate_share=0))
    dropped = tmp_path / "drop.jsonl"
    dropped.write_bytes(encode(frame, "jsonl"))
    curated = ingest("drop.jsonl", dropped.read_bytes())
    removed = filter_table(
        dropped,
        "drop.jsonl",
        tmp_path / "raw-out",
        Matcher(SUBJECT),
        delimiter=",",
        keep_removed=True,
    ).removed_rows
    schema = {name: kind.value for name, kind in curated.contract.column_types.items()}

    prints = fingerprints(
        removed, schema=schema, target=churn.target, missing_markers=churn.missing_markers
    )
    result = filter_parquet(curated.data_path, tmp_path / "out.parquet", None, fingerprints=prints)

    assert len(prints) == 1
    assert (result.rows_in, result.removed) == (curated.rows_out, 1)
    kept = pq.read_table(tmp_path / "out.parquet")
    assert kept.num_rows == curated.rows_out - 1
    assert kept.schema == pq.read_schema(curated.data_path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("customer_id", "must be COLUMN=VALUE"),
        ("=C1", "must be COLUMN=VALUE"),
        ("customer_id=  ", "empty value"),
    ],
)
def test_subject_syntax_errors_name_the_problem(text: str, problem: str) -> None:
    with pytest.raises(SubjectSyntaxError, match=problem):
        Subject.parse(text)


def test_subject_parses_column_as_ingestion_names_it_and_hashes_with_salt() -> None:
    subject = Subject.parse(" Customer ID = a=b ")

    assert subject == Subject("customer_id", "a=b")
    assert subject.digest(b"1") != subject.digest(b"2")
    assert "a=b" not in subject.digest(b"1")


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    source = tmp_path / "drop.parquet"
    source.write_bytes(b"PAR1 but not really")

    with pytest.raises(UnreadableFileError):
        filter_table(source, source.name, tmp_path / "out", Matcher(SUBJECT), delimiter=",")


def test_json_object_feedback_is_one_row(tmp_path: Path) -> None:
    source, out = tmp_path / "r1-0.json", tmp_path / "out"
    source.write_text(json.dumps({"request_id": "r1", "row": 0, "label": "yes"}))

    result = filter_json_lines(source, out, Matcher(Subject.request("r1")))

    assert (result.rows_in, result.kept) == (1, 0) and out.read_bytes() == b""
