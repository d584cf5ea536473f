"""The dataset contract (which columns, of which type, which one is the target), its inference
from a first drop, and the checks a file must pass against it.

Header checks run before any row is read; row checks run on the counts gathered while cleaning
the whole file. Each failure is a DataValidationError with a stable code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from functions.common.config.dataset import DatasetConfig, FeatureType, Task
from functions.ml.cleaning import (
    CleaningSummary,
    ColumnQuality,
    clean_numeric,
    marker_set,
    normalise_header,
)
from functions.ml.errors import DataValidationError, RejectionCode
from functions.ml.profile import CategoricalProfile, NumericProfile

# A classification target with more classes than this is almost surely the wrong column
# (an id or a continuous value); counting them all would also cost unbounded memory.
MAX_CLASSES = 1_000


class DatasetContract(BaseModel):
    """Feature columns (in order) with their types, and the target."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    target: str
    task: Task
    features: dict[str, FeatureType]

    @property
    def target_type(self) -> FeatureType:
        return FeatureType.CATEGORICAL if self.task is Task.CLASSIFICATION else FeatureType.NUMERIC

    @property
    def column_types(self) -> dict[str, FeatureType]:
        """Every curated column (features, then the target) -> its type."""
        return {**self.features, self.target: self.target_type}

    def fingerprint(self) -> bytes:
        """Canonical bytes of the contract, order included (part of the data version hash)."""
        columns = [[name, kind.value] for name, kind in self.column_types.items()]
        payload = {"target": self.target, "task": self.task.value, "columns": columns}
        return json.dumps(payload, separators=(",", ":")).encode()

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> DatasetContract:
        return cls.model_validate_json(text)


def contract_from_config(dataset: DatasetConfig) -> DatasetContract | None:
    """The contract `[dataset.features]` declares, or None when it is to be inferred. Its
    columns are the features, then the audit-only fairness attributes (categorical): the
    curated data keeps them, training leaves them out (`DatasetConfig.audit_columns`)."""
    if not dataset.features:
        return None
    audit = dict.fromkeys(dataset.audit_columns, FeatureType.CATEGORICAL)
    return DatasetContract(
        target=dataset.target, task=dataset.task, features={**dataset.features, **audit}
    )


def header_mapping(header: list[str], target: str) -> dict[str, str]:
    """Raw name -> normalised name; rejects duplicate names and a missing target."""
    mapping = normalise_header(header)
    if target not in mapping.values():
        # A wrong delimiter or a missing newline can make the header huge: names are shortened.
        names = [_short(name) for name in mapping.values()]
        shown = ", ".join(names[:MAX_NAMES_SHOWN])
        more = f" and {len(names) - MAX_NAMES_SHOWN} more" if len(names) > MAX_NAMES_SHOWN else ""
        raise DataValidationError(
            RejectionCode.MISSING_TARGET,
            f"The target column {target!r} is missing (columns: {shown}{more}).",
            columns=[target],
            details={"columns": names[:MAX_NAMES_SHOWN], "column_count": len(names)},
        )
    return mapping


MAX_NAMES_SHOWN = 50
MAX_NAME_CHARS = 80


def _short(name: str) -> str:
    if len(name) <= MAX_NAME_CHARS:
        return name
    return f"{name[:MAX_NAME_CHARS]}... ({len(name)} chars)"


def check_columns(mapping: dict[str, str], contract: DatasetContract) -> None:
    present = set(mapping.values())
    missing = [name for name in contract.features if name not in present]
    if missing:
        raise DataValidationError(
            RejectionCode.MISSING_COLUMNS,
            f"Required column(s) missing: {', '.join(missing)} (the dataset's features and "
            "any dataset.fairness_attributes must all be in the file).",
            columns=missing,
        )


def _compatible(arrow_type: pa.DataType, kind: FeatureType) -> bool:
    if pa.types.is_null(arrow_type):
        return True
    if pa.types.is_dictionary(arrow_type):
        return _compatible(arrow_type.value_type, kind)
    numeric = (
        pa.types.is_integer(arrow_type)
        or pa.types.is_floating(arrow_type)
        or pa.types.is_decimal(arrow_type)
    )
    if kind is FeatureType.NUMERIC:
        return numeric
    text = pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
    return numeric or text or pa.types.is_boolean(arrow_type)


def check_declared_types(
    schema: pa.Schema, mapping: dict[str, str], contract: DatasetContract
) -> None:
    """A typed file (Parquet) whose declared column types contradict the contract is rejected
    before reading rows: its types are the producer's statement of what the column holds."""
    types = contract.column_types
    conflicts = {
        mapping[field.name]: str(field.type)
        for field in schema
        if mapping[field.name] in types and not _compatible(field.type, types[mapping[field.name]])
    }
    if conflicts:
        described = ", ".join(
            f"{name} is {declared}, contract says {types[name].value}"
            for name, declared in conflicts.items()
        )
        raise DataValidationError(
            RejectionCode.SCHEMA_MISMATCH,
            f"The file's declared schema contradicts the dataset contract: {described}.",
            columns=sorted(conflicts),
            details={"declared": conflicts, "contract": {n: types[n].value for n in conflicts}},
        )


def infer_contract(
    sample: pd.DataFrame,
    dataset: DatasetConfig,
    declared: dict[str, pa.DataType] | None = None,
) -> DatasetContract:
    """Infer feature types from a sample of the first drop (normalised column names).

    A declared type (Parquet) decides; otherwise a column is numeric when at least
    `1 - max_invalid_share` of its present values parse as numbers, else categorical.
    """
    markers = marker_set(dataset.missing_markers)
    features: dict[str, FeatureType] = {}
    for name in sample.columns:
        if name == dataset.target:
            continue
        arrow_type = (declared or {}).get(name)
        if arrow_type is not None and not pa.types.is_null(arrow_type):
            numeric = _compatible(arrow_type, FeatureType.NUMERIC)
        else:
            column = clean_numeric(sample[name], markers)
            numeric = column.present > 0 and (
                column.invalid.sum() / column.present <= dataset.max_invalid_share
            )
        features[name] = FeatureType.NUMERIC if numeric else FeatureType.CATEGORICAL
    return DatasetContract(target=dataset.target, task=dataset.task, features=features)


def validate_rows(
    *,
    contract: DatasetContract,
    dataset: DatasetConfig,
    summary: CleaningSummary,
    quality: dict[str, ColumnQuality],
    profile: dict[str, NumericProfile | CategoricalProfile],
    class_counts: dict[str, int],
    malformed_samples: list[str],
    classes: Sequence[str] | None = None,
) -> None:
    """The checks over the whole cleaned file, in a fixed order (the first failure is reported).
    `classes`: the frozen class set of a classification target (None: not frozen yet)."""
    _check_malformed(summary, dataset, malformed_samples)
    if summary.rows_in == 0:
        raise DataValidationError(
            RejectionCode.HEADER_ONLY, "The file has a header but no data rows."
        )
    _check_types(quality, dataset)
    _check_nulls(contract, dataset, summary, profile)
    if summary.rows_out < dataset.min_rows:
        raise DataValidationError(
            RejectionCode.TOO_FEW_ROWS,
            f"Only {summary.rows_out} usable row(s) after cleaning; at least {dataset.min_rows} "
            "are required.",
            details={"rows_in": summary.rows_in, "rows_out": summary.rows_out},
        )
    if contract.task is Task.CLASSIFICATION:
        if classes is not None:
            check_known_classes(contract.target, class_counts, classes, dataset.normalize_labels)
        check_classes(contract.target, class_counts, dataset.min_class_rows)
    else:
        _check_regression_target(contract.target, profile[contract.target])


def _check_malformed(summary: CleaningSummary, dataset: DatasetConfig, samples: list[str]) -> None:
    total = summary.rows_in + summary.malformed_rows_dropped
    if summary.malformed_rows_dropped and (
        summary.rows_in == 0 or summary.malformed_rows_dropped / total > dataset.max_invalid_share
    ):
        raise DataValidationError(
            RejectionCode.MALFORMED_ROWS,
            f"{summary.malformed_rows_dropped} of {total} rows do not have as many fields as "
            "the header.",
            rows=samples,
        )


def _check_types(quality: dict[str, ColumnQuality], dataset: DatasetConfig) -> None:
    wrong = {name: q for name, q in quality.items() if q.invalid_share > dataset.max_invalid_share}
    if wrong:
        described = ", ".join(
            f"{name} ({q.invalid} of {q.present} values, e.g. {q.samples[0]['value']!r})"
            for name, q in wrong.items()
        )
        raise DataValidationError(
            RejectionCode.WRONG_TYPE,
            f"Column(s) with values of the wrong type: {described}; at most "
            f"{dataset.max_invalid_share:.0%} may be invalid.",
            columns=list(wrong),
            rows=[sample for q in wrong.values() for sample in q.samples],
            details={
                name: {"invalid": q.invalid, "present": q.present} for name, q in wrong.items()
            },
        )


def _check_nulls(
    contract: DatasetContract,
    dataset: DatasetConfig,
    summary: CleaningSummary,
    profile: dict[str, NumericProfile | CategoricalProfile],
) -> None:
    target = contract.target
    if summary.rows_missing_target_dropped == summary.rows_in:
        raise DataValidationError(
            RejectionCode.ALL_NULL_COLUMN,
            f"The target column {target!r} has no values.",
            columns=[target],
        )
    empty = [name for name in contract.features if summary.rows_out and not profile[name].count]
    if empty:
        raise DataValidationError(
            RejectionCode.ALL_NULL_COLUMN,
            f"Column(s) with no values at all: {', '.join(empty)}.",
            columns=empty,
        )
    shares = {
        name: profile[name].nulls / summary.rows_out
        for name in contract.features
        if summary.rows_out
    }
    shares[target] = summary.rows_missing_target_dropped / summary.rows_in
    too_many = {name: share for name, share in shares.items() if share > dataset.max_null_share}
    if too_many:
        described = ", ".join(f"{name} ({share:.0%})" for name, share in too_many.items())
        raise DataValidationError(
            RejectionCode.TOO_MANY_NULLS,
            f"Too many missing values in: {described}; at most {dataset.max_null_share:.0%} "
            "are allowed.",
            columns=list(too_many),
            details={"null_share": too_many},
        )


def check_classes(target: str, class_counts: dict[str, int], min_class_rows: int) -> None:
    if len(class_counts) > MAX_CLASSES:
        raise DataValidationError(
            RejectionCode.TOO_MANY_CLASSES,
            f"The target {target!r} has more than {MAX_CLASSES} classes; is it the right column?",
            columns=[target],
        )
    if len(class_counts) < 2:
        only = next(iter(class_counts), None)
        raise DataValidationError(
            RejectionCode.SINGLE_CLASS,
            f"The target {target!r} has a single class ({only!r}); classification needs at "
            "least two.",
            columns=[target],
            details={"class_counts": class_counts},
        )
    rare = {label: count for label, count in class_counts.items() if count < min_class_rows}
    if rare:
        raise DataValidationError(
            RejectionCode.TOO_FEW_CLASS_ROWS,
            f"Class(es) of {target!r} with fewer than {min_class_rows} rows: "
            f"{', '.join(f'{label!r} ({count})' for label, count in rare.items())}.",
            columns=[target],
            details={"class_counts": class_counts},
        )


def check_known_classes(
    target: str, class_counts: dict[str, int], classes: Sequence[str], normalized: bool
) -> None:
    """Every class of the file must be one of the frozen `classes` (the class set of the
    first good version): a new class would change what every later model predicts."""
    unknown = {label: n for label, n in class_counts.items() if label not in set(classes)}
    if not unknown:
        return
    ordered = dict(sorted(unknown.items(), key=lambda item: (-item[1], item[0])))
    listed = ", ".join(f"{label!r} ({count} rows)" for label, count in ordered.items())
    hint = (
        "Fix these labels in the file, or start a new dataset if the classes really changed."
        if normalized
        else "Case and whitespace variants of a known class are rewritten to it only with "
        "dataset.normalize_labels = true; otherwise fix these labels in the file."
    )
    raise DataValidationError(
        RejectionCode.UNKNOWN_CLASS,
        f"The target {target!r} has class(es) outside the dataset's class set "
        f"({', '.join(map(repr, classes))}, frozen at its first version): {listed}. {hint}",
        columns=[target],
        details={"unknown": ordered, "classes": list(classes)},
    )


def _check_regression_target(target: str, profile: NumericProfile | CategoricalProfile) -> None:
    if isinstance(profile, NumericProfile) and profile.min == profile.max:
        raise DataValidationError(
            RejectionCode.CONSTANT_TARGET,
            f"The target {target!r} is constant ({profile.min}); there is nothing to learn.",
            columns=[target],
        )
