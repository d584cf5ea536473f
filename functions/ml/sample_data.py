"""Deterministic demo data: a telecom churn table matching `mlops.toml`, and one file for each
way a drop can be bad. Used by the tests, the benchmark and the demo; everything is in memory
(bytes), a few MB at most, and the same seed always gives the same bytes.
"""

from __future__ import annotations

import gzip
import io

import numpy as np
import pandas as pd

TARGET = "churned"
NUMERIC_FEATURES = ("age", "tenure_months", "monthly_charges", "total_charges", "support_calls")
CATEGORICAL_FEATURES = ("contract", "payment_method", "internet_service", "region")
CONTRACTS = ("month-to-month", "one year", "two year")
PAYMENT_METHODS = ("electronic check", "mailed check", "bank transfer", "credit card")
INTERNET_SERVICES = ("dsl", "fiber optic", "no internet")
REGIONS = ("north", "south", "east", "west")
FORMATS = ("csv", "csv.gz", "parquet", "jsonl")
_DISPLAY = {"customer_id": "Customer ID", "monthly_charges": "Monthly Charges ($)"}

# Drops that must be quarantined, file name -> the reason code ingestion must give.
BAD_FILE_REASONS = {
    "empty.csv": "empty_file",
    "header_only.csv": "header_only",
    "semicolon_separated.csv": "wrong_delimiter",
    "missing_target.csv": "missing_target",
    "binary_garbage.csv": "binary_content",
    "latin1_encoded.csv": "not_utf8",
    "wrong_type.csv": "wrong_type",
    "all_null_column.csv": "all_null_column",
    "duplicate_columns.csv": "duplicate_columns",
    "colliding_columns.csv": "duplicate_columns",
    "not_gzip.csv.gz": "not_gzip",
    "schema_mismatch.parquet": "schema_mismatch",
    "single_row.csv": "too_few_rows",
    "single_class.csv": "single_class",
}


def churn_frame(
    rows: int = 1_000,
    seed: int = 0,
    *,
    first_id: int = 0,
    missing_share: float = 0.02,
    duplicate_share: float = 0.01,
) -> pd.DataFrame:
    """A churn table: `customer_id` (not a feature), the nine features of `mlops.toml` and the
    target `churned` ("yes"/"no"), with a learnable signal (short contracts, fibre, support
    calls and high charges raise churn; tenure lowers it), about `missing_share` missing
    values in age, payment_method and region, `total_charges` missing for brand-new customers
    (as in the well-known telco data set), and about `duplicate_share` exact duplicate rows."""
    rng = np.random.default_rng(seed)
    duplicates = int(rows * duplicate_share)
    n = rows - duplicates
    contract = rng.choice(CONTRACTS, size=n, p=[0.55, 0.25, 0.20])
    max_tenure = np.select([contract == CONTRACTS[0], contract == CONTRACTS[1]], [36, 60], 72)
    tenure = np.floor(rng.random(n) * (max_tenure + 1)).astype(np.int64)
    internet = rng.choice(INTERNET_SERVICES, size=n, p=[0.35, 0.45, 0.20])
    base_charge = np.select([internet == "dsl", internet == "fiber optic"], [50.0, 85.0], 22.0)
    monthly = np.round(np.clip(base_charge + rng.normal(0.0, 9.0, n), 15.0, 130.0), 2)
    total = np.round(monthly * tenure * rng.normal(1.0, 0.03, n), 2)
    support_calls = rng.poisson(0.8 + 1.4 * (internet == "fiber optic"), n)
    payment = rng.choice(PAYMENT_METHODS, size=n, p=[0.35, 0.2, 0.22, 0.23])
    age = np.round(np.clip(rng.normal(46.0, 15.0, n), 18, 90))
    logit = (
        -1.3
        + 1.5 * (contract == CONTRACTS[0])
        - 0.8 * (contract == CONTRACTS[2])
        + 0.5 * (internet == "fiber optic")
        + 0.4 * (payment == "electronic check")
        + 0.35 * support_calls
        + 0.02 * (monthly - 65.0)
        - 0.04 * tenure
        - 0.01 * (age - 46.0)
    )
    churned = np.where(rng.random(n) < 1.0 / (1.0 + np.exp(-logit)), "yes", "no")
    frame = pd.DataFrame(
        {
            "customer_id": np.char.mod("C%09d", np.arange(first_id, first_id + n)),
            "age": age,
            "tenure_months": tenure,
            "monthly_charges": monthly,
            "total_charges": np.where(tenure == 0, np.nan, total),
            "support_calls": support_calls,
            "contract": contract,
            "payment_method": payment,
            "internet_service": internet,
            "region": rng.choice(REGIONS, size=n),
            TARGET: churned,
        }
    )
    for column in ("age", "payment_method", "region"):
        frame.loc[rng.random(n) < missing_share, column] = None
    if duplicates:
        copies = frame.iloc[rng.integers(0, n, duplicates)]
        frame = pd.concat([frame, copies], ignore_index=True)
        frame = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
    return frame


def encode(frame: pd.DataFrame, file_format: str = "csv", *, sep: str = ",") -> bytes:
    """`frame` as the bytes of a drop in `file_format` (csv, csv.gz, parquet or jsonl)."""
    if file_format == "csv":
        return frame.to_csv(index=False, sep=sep, lineterminator="\n").encode()
    if file_format == "csv.gz":
        return gzip.compress(encode(frame, "csv", sep=sep), mtime=0)
    if file_format == "parquet":
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return buffer.getvalue()
    if file_format == "jsonl":
        return frame.to_json(orient="records", lines=True).encode()
    raise ValueError(f"unknown format {file_format!r}; use one of {FORMATS}")


def display_headers(frame: pd.DataFrame) -> pd.DataFrame:
    """The same table with spreadsheet-style headers (`Monthly Charges ($)`), which ingestion
    normalises back to the contract's names."""
    return frame.rename(columns=lambda name: _DISPLAY.get(name, name.replace("_", " ").title()))


def good_files(seed: int = 0, rows: int = 1_500) -> dict[str, bytes]:
    """Four good drops, one per format, each with different rows: file name -> content."""
    return {
        f"churn-{i + 1:04d}.{file_format}": encode(
            churn_frame(rows, seed + i, first_id=i * rows), file_format
        )
        for i, file_format in enumerate(FORMATS)
    }


def bad_files(seed: int = 7, rows: int = 200) -> dict[str, bytes]:
    """One drop per rejection case, file name -> content (expected codes: BAD_FILE_REASONS)."""
    frame = churn_frame(rows, seed)
    rng = np.random.default_rng(seed)
    complete = frame.dropna().head(1)
    wrong_type = frame.astype({"age": object})
    wrong_type.loc[rng.random(len(frame)) < 0.3, "age"] = "forty-two"
    latin1 = frame.assign(region=np.where(rng.random(len(frame)) < 0.5, "münchen", "köln"))
    duplicated = frame.rename(columns={"support_calls": "age"})
    colliding = frame.rename(columns={"region": "Region"}).assign(**{"region ": "north"})
    mismatched = frame.assign(monthly_charges=frame["monthly_charges"].map("${:.2f}".format))
    return {
        "empty.csv": b"",
        "header_only.csv": encode(frame.head(0)),
        "semicolon_separated.csv": encode(frame, sep=";"),
        "missing_target.csv": encode(frame.drop(columns=TARGET)),
        "binary_garbage.csv": b"\x89PNG\r\n\x1a\n" + rng.bytes(4096),
        "latin1_encoded.csv": encode(latin1).decode().encode("latin-1"),
        "wrong_type.csv": encode(wrong_type),
        "all_null_column.csv": encode(frame.assign(tenure_months=None)),
        "duplicate_columns.csv": encode(duplicated),
        "colliding_columns.csv": encode(colliding),
        "not_gzip.csv.gz": encode(frame),
        "schema_mismatch.parquet": encode(mismatched, "parquet"),
        "single_row.csv": encode(complete),
        "single_class.csv": encode(frame.assign(**{TARGET: "no"})),
    }
