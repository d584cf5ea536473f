"""Cleaning, one chunk at a time, with every change counted in a `CleaningSummary`.

Column names are normalised (strip, lowercase, non-alphanumerics -> `_`); cells equal to a
configured missing marker (trimmed, case-insensitive) become null; numeric columns become
float64 and categorical ones strings (missing stays null); with `LabelNormaliser`, a target
label that differs from a known class only in case or whitespace becomes that class; rows
without a target and exact duplicate rows (also across chunks) are dropped; columns outside
the contract are dropped.
Cleaning is idempotent: cleaning a cleaned frame changes nothing.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, Field

from functions.common.config.dataset import FeatureType
from functions.ml.errors import DataValidationError, RejectionCode

MAX_SAMPLES = 5
TEXT = pd.ArrowDtype(pa.string())
"""Dtype of cleaned categorical columns: Arrow strings inside pandas (missing is <NA>), which
go to Parquet without a copy."""
_NOT_NAME = re.compile(r"[^a-z0-9]+")
_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_NULL_TEXT = pa.scalar(None, pa.string())


def normalise_column_name(name: str, position: int = 0) -> str:
    """`" Monthly Charges ($)"` -> `"monthly_charges"`; an empty name becomes `column_<n>`
    (1-based position) and a leading digit gets a `_` prefix, so every result is a valid
    lower_snake_case identifier."""
    text = _NOT_NAME.sub("_", name.replace("\ufeff", "").strip().lower()).strip("_")
    if not text:
        return f"column_{position + 1}"
    return f"_{text}" if text[0].isdigit() else text


def normalise_header(header: list[str]) -> dict[str, str]:
    """Raw column name -> normalised name, rejecting duplicate names as written and names that
    collide once normalised (`Age` and `age `): either would silently merge two columns."""
    repeated = sorted(name for name, count in Counter(header).items() if count > 1)
    if repeated:
        raise DataValidationError(
            RejectionCode.DUPLICATE_COLUMNS,
            f"The header repeats column name(s) {', '.join(map(repr, repeated))}.",
            columns=repeated,
        )
    mapping = {raw: normalise_column_name(raw, i) for i, raw in enumerate(header)}
    groups: dict[str, list[str]] = {}
    for raw, name in mapping.items():
        groups.setdefault(name, []).append(raw)
    collisions = {name: raws for name, raws in groups.items() if len(raws) > 1}
    if collisions:
        described = "; ".join(f"{raws} -> {name!r}" for name, raws in collisions.items())
        raise DataValidationError(
            RejectionCode.DUPLICATE_COLUMNS,
            f"Columns collide after name normalisation: {described}.",
            columns=sorted(raw for raws in collisions.values() for raw in raws),
            details={"collisions": collisions},
        )
    return mapping


def label_key(label: str) -> str:
    """What case and whitespace variants of a label have in common: `" Yes  No"` -> `"yes no"`."""
    return " ".join(label.split()).casefold()


class LabelNormaliser:
    """Rewrites target labels that differ from exactly one known class only in case or
    whitespace to that class, counting each rewrite; anything else is left as it is (the class
    check reports it)."""

    def __init__(self, classes: Iterable[str]) -> None:
        self.classes = frozenset(classes)
        keys = Counter(label_key(label) for label in self.classes)
        self._known = {label_key(c): c for c in self.classes if keys[label_key(c)] == 1}
        self.counts: Counter[tuple[str, str]] = Counter()

    def apply(self, values: pd.Series) -> pd.Series:
        mapping = {
            label: self._known[label_key(label)]
            for label in values.dropna().unique()
            if label not in self.classes and label_key(label) in self._known
        }
        if not mapping:
            return values
        result = values.copy()
        for label, known in mapping.items():
            rows = (values == label).fillna(False).to_numpy(dtype=bool)
            self.counts[(label, known)] += int(rows.sum())
            result[rows] = known
        return result

    def changes(self) -> list[dict[str, Any]]:
        """Each rewrite as `{"from": label, "to": class, "rows": count}`, by label."""
        return [
            {"from": label, "to": known, "rows": rows}
            for (label, known), rows in sorted(self.counts.items())
        ]


class CleaningSummary(BaseModel):
    """What cleaning changed, with counts (written to the manifest)."""

    rows_in: int = 0
    rows_out: int = 0
    malformed_rows_dropped: int = 0
    rows_missing_target_dropped: int = 0
    duplicate_rows_dropped: int = 0
    columns_renamed: dict[str, str] = Field(default_factory=dict)
    columns_dropped: list[str] = Field(default_factory=list)
    values_trimmed: dict[str, int] = Field(default_factory=dict)
    missing_markers_replaced: dict[str, int] = Field(default_factory=dict)
    invalid_values_nulled: dict[str, int] = Field(default_factory=dict)
    labels_normalised: list[dict[str, Any]] = Field(default_factory=list)


@dataclass
class ColumnQuality:
    """Per-column counts validation needs: how many values were present before coercion and
    how many of them could not be coerced (with a few examples)."""

    present: int = 0
    invalid: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def invalid_share(self) -> float:
        return self.invalid / self.present if self.present else 0.0


@dataclass
class CleanedColumn:
    values: pd.Series
    present: int
    trimmed: int
    markers: int
    invalid: np.ndarray


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _as_text(series: pd.Series) -> pa.ChunkedArray:
    """The values as Arrow strings, null for missing, whatever the input type (CSV text,
    typed Parquet or JSON values). Text is processed with Arrow compute: an order of magnitude
    faster than Python string objects, and far lighter."""
    if isinstance(series.dtype, pd.StringDtype | pd.ArrowDtype):
        values = pa.array(series.array)
    elif series.dtype == object and pd.api.types.infer_dtype(series, skipna=True) in (
        "string",
        "empty",
    ):
        values = pa.array(series.to_numpy(), type=pa.string(), from_pandas=True)
    else:
        text = series.map(_to_text, na_action="ignore")
        values = pa.array(text.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
    chunked = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
    # One string type throughout; an empty or all-missing column arrives with type null.
    return chunked if chunked.type == pa.string() else chunked.cast(pa.string())


def _count(mask: pa.ChunkedArray) -> int:
    return int(pc.sum(mask).as_py() or 0)


def _strip_markers(series: pd.Series, markers: pa.Array) -> tuple[pa.ChunkedArray, int, int]:
    text = _as_text(series)
    stripped = pc.utf8_trim_whitespace(text)
    is_marker = pc.fill_null(pc.is_in(pc.utf8_lower(stripped), value_set=markers), False)
    cleaned = pc.if_else(is_marker, _NULL_TEXT, stripped)
    return cleaned, _count(pc.not_equal(stripped, text)), _count(is_marker)


def _text_series(values: pa.ChunkedArray) -> pd.Series:
    return pd.Series(pd.arrays.ArrowExtensionArray(values))


def clean_categorical(series: pd.Series, markers: pa.Array) -> CleanedColumn:
    values, trimmed, replaced = _strip_markers(series, markers)
    invalid = np.zeros(len(values), dtype=bool)
    return CleanedColumn(
        _text_series(values), _count(pc.is_valid(values)), trimmed, replaced, invalid
    )


def clean_numeric(series: pd.Series, markers: pa.Array) -> CleanedColumn:
    """float64 values; text that is not a decimal number, and infinities, count as invalid and
    become null."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        numbers = series.to_numpy(dtype=np.float64, na_value=np.nan)
        present = ~np.isnan(numbers)
        trimmed = replaced = 0
    else:
        text, trimmed, replaced = _strip_markers(series, markers)
        valid = pc.fill_null(pc.match_substring_regex(text, _NUMBER), False)
        numbers = pc.cast(pc.if_else(valid, text, _NULL_TEXT), pa.float64()).to_numpy()
        present = pc.is_valid(text).to_numpy()
    invalid = present & (np.isnan(numbers) | np.isinf(numbers))
    numbers = np.where(invalid, np.nan, numbers)
    return CleanedColumn(
        pd.Series(numbers, dtype=np.float64), int(present.sum()), trimmed, replaced, invalid
    )


def marker_set(missing_markers: Iterable[str]) -> pa.Array:
    """The configured missing markers, trimmed and lowercased, for `clean_*`."""
    return pa.array(sorted({marker.strip().lower() for marker in missing_markers}), pa.string())


class RowDeduplicator:
    """Remembers 64-bit hashes of the rows kept so far in one sorted numpy array (8 bytes per
    row), so duplicates are found across chunks without holding the rows themselves.
    Two different rows share a hash with probability ~n^2 / 2^65: negligible at 1e8 rows."""

    def __init__(self) -> None:
        self._seen = np.empty(0, dtype=np.uint64)

    def keep(self, hashes: np.ndarray) -> np.ndarray:
        """Mask of rows to keep: the first occurrence of each row never seen before."""
        mask = np.zeros(len(hashes), dtype=bool)
        if not len(hashes):
            return mask
        _, first = np.unique(hashes, return_index=True)
        mask[first] = True
        if self._seen.size:
            position = np.minimum(np.searchsorted(self._seen, hashes), self._seen.size - 1)
            mask &= self._seen[position] != hashes
        new = np.sort(hashes[mask])
        self._seen = np.insert(self._seen, np.searchsorted(self._seen, new), new)
        return mask


def row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """One uint64 per row over all its values (the same row always gets the same hash)."""
    return pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)


class ChunkCleaner:
    """Cleans the chunks of one file in order, keeping cross-chunk state (duplicates seen,
    counts) and the summary of every change."""

    def __init__(
        self,
        columns: dict[str, FeatureType],
        target: str,
        missing_markers: Iterable[str],
        labels: LabelNormaliser | None = None,
    ) -> None:
        self.columns = columns
        self.target = target
        self.labels = labels
        self.markers = marker_set(missing_markers)
        self.summary = CleaningSummary()
        self.quality = {name: ColumnQuality() for name in columns}
        self._deduplicator = RowDeduplicator()
        self._renamed: dict[str, str] = {}
        self._dropped: set[str] = set()

    def clean(self, raw: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """The cleaned chunk (contract columns in contract order) and its row hashes."""
        offset = self.summary.rows_in
        self.summary.rows_in += len(raw)
        frame = self._conform(raw)
        cleaned: dict[str, pd.Series] = {}
        for name, kind in self.columns.items():
            column = self._clean_column(name, kind, frame, offset)
            cleaned[name] = column.values
        if self.labels is not None:
            cleaned[self.target] = self.labels.apply(cleaned[self.target])
            self.summary.labels_normalised = self.labels.changes()
        result = pd.DataFrame(cleaned, index=pd.RangeIndex(len(frame)))
        has_target = result[self.target].notna().to_numpy()
        self.summary.rows_missing_target_dropped += int((~has_target).sum())
        result = result[has_target]
        hashes = row_hashes(result)
        keep = self._deduplicator.keep(hashes)
        self.summary.duplicate_rows_dropped += int((~keep).sum())
        result = result[keep].reset_index(drop=True)
        self.summary.rows_out += len(result)
        return result, hashes[keep]

    def _conform(self, raw: pd.DataFrame) -> pd.DataFrame:
        mapping = normalise_header([str(name) for name in raw.columns])
        for old, new in mapping.items():
            if old != new and old not in self._renamed:
                self._renamed[old] = new
                self.summary.columns_renamed[old] = new
        frame = raw.rename(columns=mapping).reset_index(drop=True)
        extra = [name for name in frame.columns if name not in self.columns]
        for name in extra:
            if name not in self._dropped:
                self._dropped.add(name)
                self.summary.columns_dropped.append(name)
        return frame.drop(columns=extra)

    def _clean_column(
        self, name: str, kind: FeatureType, frame: pd.DataFrame, offset: int
    ) -> CleanedColumn:
        raw = frame[name] if name in frame else pd.Series([None] * len(frame), dtype=TEXT)
        cleaner = clean_numeric if kind is FeatureType.NUMERIC else clean_categorical
        column = cleaner(raw, self.markers)
        invalid = int(column.invalid.sum())
        _add(self.summary.values_trimmed, name, column.trimmed)
        _add(self.summary.missing_markers_replaced, name, column.markers)
        _add(self.summary.invalid_values_nulled, name, invalid)
        quality = self.quality[name]
        quality.present += column.present
        quality.invalid += invalid
        if invalid and len(quality.samples) < MAX_SAMPLES:
            for position in np.flatnonzero(column.invalid)[: MAX_SAMPLES - len(quality.samples)]:
                quality.samples.append(
                    {"row": offset + int(position) + 1, "value": _to_text(raw.iloc[position])}
                )
        return column


def _add(counts: dict[str, int], name: str, value: int) -> None:
    if value:
        counts[name] = counts.get(name, 0) + value


def clean_frame(
    frame: pd.DataFrame,
    columns: dict[str, FeatureType],
    target: str,
    missing_markers: Iterable[str],
) -> tuple[pd.DataFrame, CleaningSummary]:
    """Clean one whole frame (the single-chunk case of `ChunkCleaner`)."""
    cleaner = ChunkCleaner(columns, target, missing_markers)
    cleaned, _ = cleaner.clean(frame)
    return cleaned, cleaner.summary
