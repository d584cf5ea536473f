"""The shadow report: alias `shadow`'s records joined to production's capture records of the
same requests, by (`request_id`, `first_row`), row by row. Pure: numpy only.

- classifiers: the share of rows where the shadow predicts production's class (agreement) and
  the confusion matrix (production's class -> the shadow's class -> rows);
- regressors: the distribution of shadow - production (mean, p50, p95 of the absolute
  difference, max absolute difference);
- latency (`latency_ms` of each request, conversion and `session.run`): p50 and p99 of the
  shadow's and of production's over the joined requests (production's is unknown for version 1
  captures);
- drift of the outputs: PSI of the shadow's predictions against production's (classes: the
  predicted classes and each class's probability in ten bins over [0, 1]; regression: ten
  bins at production's deciles), judged with `[drift] psi` limits.

Shadow records with `error` set are counted by code (`sensitive_feature`, ...), never joined;
a shadow record whose capture is not among the capture records read counts as `unmatched`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from functions.ml.drift.numeric import population_stability
from functions.ml.drift.report import severity_of

PSI_EPSILON = 1e-4
PROBABILITY_BINS = 10


def _key(record: Mapping[str, Any]) -> tuple[Any, int]:
    return record.get("request_id"), int(record.get("first_row") or 0)


def shadow_report(
    capture: Iterable[Mapping[str, Any]],
    shadow: Iterable[Mapping[str, Any]],
    *,
    psi_limits: tuple[float, float] = (0.1, 0.25),
) -> dict[str, Any]:
    """The report of `shadow` records against the `capture` records of the same requests
    (both version 2 capture records of one model)."""
    production = {
        _key(record): record
        for record in capture
        if record.get("error") is None and record.get("alias", "production") == "production"
    }
    skipped: Counter[str] = Counter()
    unmatched = 0
    pairs: list[tuple[Mapping[str, Any], Mapping[str, Any]]] = []
    for record in shadow:
        if record.get("error") is not None:
            skipped[str(record["error"])] += 1
            continue
        found = production.get(_key(record))
        if found is None or found.get("rows") != record.get("rows"):
            unmatched += 1
            continue
        pairs.append((found, record))
    report: dict[str, Any] = {
        "requests": len(pairs),
        "rows": sum(int(shadow["rows"]) for _, shadow in pairs),
        "shadow_versions": sorted({int(s["model_version"]) for _, s in pairs}),
        "production_versions": sorted({int(p["model_version"]) for p, _ in pairs}),
        "skipped": dict(sorted(skipped.items())),
        "unmatched": unmatched,
        "latency_ms": _latency(pairs),
    }
    if not pairs:
        report.update(
            task=None, agreement=None, classes=None, confusion=None, errors=None, output_drift=None
        )
        return report
    classes = pairs[0][1].get("classes")
    production_out = [v for p, _ in pairs for v in p["predictions"]]
    shadow_out = [v for _, s in pairs for v in s["predictions"]]
    if classes is not None:
        report.update(
            task="classification",
            **_agreement(production_out, shadow_out, classes),
            errors=None,
            output_drift=_class_drift(pairs, production_out, shadow_out, classes, psi_limits),
        )
    else:
        production_values = np.asarray(production_out, dtype=np.float64)
        shadow_values = np.asarray(shadow_out, dtype=np.float64)
        report.update(
            task="regression",
            agreement=None,
            classes=None,
            confusion=None,
            errors=_errors(shadow_values - production_values),
            output_drift=[_numeric_drift(production_values, shadow_values, psi_limits)],
        )
    return report


def _agreement(
    production: Sequence[Any], shadow: Sequence[Any], classes: Sequence[str]
) -> dict[str, Any]:
    labels = [str(c) for c in classes]
    confusion = {p: dict.fromkeys(labels, 0) for p in labels}
    agree = 0
    for p, s in zip(production, shadow, strict=True):
        p, s = str(p), str(s)
        confusion.setdefault(p, dict.fromkeys(labels, 0))
        confusion[p][s] = confusion[p].get(s, 0) + 1
        agree += p == s
    return {"agreement": agree / len(production), "classes": labels, "confusion": confusion}


def _errors(difference: np.ndarray) -> dict[str, float | None]:
    finite = difference[np.isfinite(difference)]
    if not finite.size:
        return {"mean": None, "p50_abs": None, "p95_abs": None, "max_abs": None}
    absolute = np.abs(finite)
    return {
        "mean": float(finite.mean()),
        "p50_abs": float(np.percentile(absolute, 50)),
        "p95_abs": float(np.percentile(absolute, 95)),
        "max_abs": float(absolute.max()),
    }


def _percentiles(values: Sequence[Any]) -> dict[str, float | None]:
    present = np.asarray([v for v in values if isinstance(v, int | float)], dtype=np.float64)
    if not present.size:
        return {"p50": None, "p99": None, "requests": 0}
    return {
        "p50": float(np.percentile(present, 50)),
        "p99": float(np.percentile(present, 99)),
        "requests": int(present.size),
    }


def _latency(pairs: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> dict[str, Any]:
    return {
        "shadow": _percentiles([s.get("latency_ms") for _, s in pairs]),
        "production": _percentiles([p.get("latency_ms") for p, _ in pairs]),
    }


def _drift(name: str, psi: float, limits: tuple[float, float]) -> dict[str, Any]:
    return {"output": name, "psi": psi, "severity": severity_of(psi, limits)}


def _class_drift(
    pairs: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
    production: Sequence[Any],
    shadow: Sequence[Any],
    classes: Sequence[str],
    limits: tuple[float, float],
) -> list[dict[str, Any]]:
    labels = [str(c) for c in classes]
    counts_p = Counter(map(str, production))
    counts_s = Counter(map(str, shadow))
    drift = [
        _drift(
            "class",
            population_stability(
                np.asarray([counts_p[c] for c in labels], dtype=np.float64),
                np.asarray([counts_s[c] for c in labels], dtype=np.float64),
                PSI_EPSILON,
            ),
            limits,
        )
    ]
    probabilities_p = _probabilities(p for p, _ in pairs)
    probabilities_s = _probabilities(s for _, s in pairs)
    if probabilities_p is None or probabilities_s is None:
        return drift
    edges = np.linspace(0.0, 1.0, PROBABILITY_BINS + 1)
    for index, label in enumerate(labels):
        reference, _ = np.histogram(probabilities_p[:, index], bins=edges)
        current, _ = np.histogram(probabilities_s[:, index], bins=edges)
        psi = population_stability(
            reference.astype(np.float64), current.astype(np.float64), PSI_EPSILON
        )
        drift.append(_drift(f"probability of {label}", psi, limits))
    return drift


def _probabilities(records: Iterable[Mapping[str, Any]]) -> np.ndarray | None:
    rows: list[Any] = []
    for record in records:
        if record.get("probabilities") is None:
            return None
        rows.extend(record["probabilities"])
    values = np.asarray(rows, dtype=np.float64)
    return np.nan_to_num(values, nan=0.0) if values.ndim == 2 else None


def _numeric_drift(
    production: np.ndarray, shadow: np.ndarray, limits: tuple[float, float]
) -> dict[str, Any]:
    production = production[np.isfinite(production)]
    shadow = shadow[np.isfinite(shadow)]
    if not production.size or not shadow.size:
        return {"output": "prediction", "psi": None, "severity": "none"}
    inner = np.unique(np.quantile(production, np.linspace(0.1, 0.9, 9)))
    edges = np.concatenate(([-np.inf], inner, [np.inf]))
    reference, _ = np.histogram(production, bins=edges)
    current, _ = np.histogram(shadow, bins=edges)
    psi = population_stability(reference.astype(np.float64), current.astype(np.float64), 1e-4)
    return _drift("prediction", psi, limits)


def report_lines(report: Mapping[str, Any]) -> list[str]:
    """The report as lines of text (what `mlops models shadow report` prints)."""
    shadow, production = report["shadow_versions"], report["production_versions"]
    lines = [
        f"requests compared: {report['requests']} ({report['rows']} rows); shadow version(s) "
        f"{_listed(shadow)} vs production {_listed(production)}"
    ]
    if report["skipped"]:
        lines.append(
            "not scored by the shadow: "
            + ", ".join(f"{code} {count}" for code, count in report["skipped"].items())
        )
    if report["unmatched"]:
        lines.append(f"shadow records without their capture in the window: {report['unmatched']}")
    if report["task"] == "classification":
        lines.append(f"agreement with production: {report['agreement']:.2%}")
        classes = report["classes"]
        lines.append("confusion (rows: production, columns: shadow):")
        width = max(len(c) for c in [*classes, "production"]) + 2
        lines.append("".join(c.rjust(width) for c in ["", *classes]))
        for label, row in report["confusion"].items():
            lines.append(
                label.rjust(width) + "".join(str(row.get(c, 0)).rjust(width) for c in classes)
            )
    elif report["task"] == "regression":
        e = report["errors"]
        lines.append(
            f"shadow - production: mean {_num(e['mean'])}, |p50| {_num(e['p50_abs'])}, "
            f"|p95| {_num(e['p95_abs'])}, max |{_num(e['max_abs'])}|"
        )
    latency = report["latency_ms"]
    lines.append(
        "latency ms p50/p99: shadow "
        f"{_num(latency['shadow']['p50'])}/{_num(latency['shadow']['p99'])}, production "
        f"{_num(latency['production']['p50'])}/{_num(latency['production']['p99'])}"
    )
    for drift in report["output_drift"] or []:
        lines.append(
            f"output drift, {drift['output']}: PSI {_num(drift['psi'])} ({drift['severity']})"
        )
    return lines


def _listed(values: Sequence[int]) -> str:
    return ", ".join(map(str, values)) or "-"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
