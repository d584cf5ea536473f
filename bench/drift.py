"""The drift engine (functions/ml/drift/) against Evidently's DataDriftPreset, on a 1M-row window.

Data (seeded): a 200,000-row reference and a 1,000,000-row current window of 20 numeric and 3
categorical columns, 7 of them shifted by a known amount (`SHIFTS`: from a +0.05 sd mean shift,
below the engine's effect-size floor by design, to +1 sd, a x1.5 scale, more nulls, moved
category shares and a new category), 16 not; plus a second 1,000,000-row window drawn from the
reference distribution itself.

(a) The reference profile is built by `functions.ml.reference_profile.reference_profile` and
    read back from JSON, as the monitoring function reads the stored one. In a fresh process,
    the window is loaded as the function holds it after parsing (float64 arrays, NaN = missing;
    lists of str, None = missing), then `compare` is timed (median of `--repeats`) and its peak
    memory measured: peak RSS during the call minus RSS before it (the kernel's high-water mark
    is reset after loading via /proc/self/clear_refs; tracemalloc's peak where that is
    unavailable). With `DriftAccumulator` in the engine, the same window is also streamed in
    `--chunk`-row chunks (time, peak, and its report must equal `compare`'s).
(b) Evidently's DataDriftPreset (defaults) on the same data from Parquet, run by
    bench/drift_evidently.py in `.venv-evidently` (`make bench` creates it).

Prints both verdicts per column against the known truth, both times and their ratio. Exits
non-zero when the engine is less than 100x faster than Evidently, when the same-distribution
window flags any feature, or when the chunked path fails or disagrees with `compare`.

    python bench/drift.py [--rows 1000000] [--reference-rows 200000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# Run as a script: its own folder is on sys.path.
from drift_data import CATEGORICAL, NUMERIC, SHIFTS, SPECS, build_profile, draw, write_parquet

REPO = Path(__file__).resolve().parents[1]
EVIDENTLY_PYTHON = REPO / ".venv-evidently" / "bin" / "python"
TARGET_RATIO = 100
MB = 1024 * 1024


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


def _reset_peak() -> bool:
    """Restart the kernel's peak-RSS mark at the current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        _rss_mb("VmHWM")
    except (OSError, LookupError):
        return False
    return True


def _peak(run: Callable[[], Any]) -> tuple[Any, float, float, str]:
    """`run()`'s result, its seconds and the memory it took at peak above what was held
    before it (MB), and how that was measured."""
    if _reset_peak():
        before = _rss_mb("VmRSS")
        started = time.perf_counter()
        result = run()
        seconds = time.perf_counter() - started
        return result, seconds, _rss_mb("VmHWM") - before, "peak RSS minus RSS before the call"
    tracemalloc.start()
    started = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / MB
    tracemalloc.stop()
    return result, seconds, peak, "tracemalloc peak (slows the call)"


def _load_window(path: Path) -> dict[str, Any]:
    """As the monitoring function holds a parsed window: float64 arrays, lists of str."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    kinds = {spec.name: spec in NUMERIC for spec in SPECS}
    return {
        name: table.column(name).to_numpy() if kinds[name] else table.column(name).to_pylist()
        for name in table.column_names
    }


def _size_mb(window: dict[str, Any]) -> float:
    """The window's own size: array buffers, list slots and each distinct str once."""
    size = 0
    for values in window.values():
        if isinstance(values, np.ndarray):
            size += values.nbytes
        else:
            strings = {id(value): value for value in values if value is not None}
            size += sys.getsizeof(values) + sum(map(sys.getsizeof, strings.values()))
    return size / MB


def _chunked(drift: Any, profile: dict[str, Any], window: dict[str, Any], chunk: int) -> Any:
    accumulator = drift.DriftAccumulator(profile)
    rows = len(next(iter(window.values())))
    for start in range(0, rows, chunk):
        accumulator.add({name: values[start : start + chunk] for name, values in window.items()})
    return accumulator.report()


def _features(report: Any) -> dict[str, dict[str, Any]]:
    return {
        name: {"severity": feature.severity, "statistics": feature.statistics}
        for name, feature in report.features.items()
    }


def measure(directory: Path, repeats: int, chunk: int) -> dict[str, Any]:
    """The engine's figures, in this (fresh) process."""
    from functions.ml.drift import engine as drift

    profile = json.loads((directory / "profile.json").read_text())
    window = _load_window(directory / "current.parquet")
    figures: dict[str, Any] = {"window_mb": _size_mb(window)}
    report, first, peak, how = _peak(lambda: drift.compare(profile, window))
    seconds = [first]
    for _ in range(repeats - 1):
        started = time.perf_counter()
        drift.compare(profile, window)
        seconds.append(time.perf_counter() - started)
    figures |= {
        "rows": report.rows,
        "seconds": statistics.median(seconds),
        "all_seconds": seconds,
        "peak_mb": peak,
        "peak_method": how,
        "verdict": report.verdict,
        "features": _features(report),
    }
    if hasattr(drift, "DriftAccumulator"):
        try:
            streamed, chunk_seconds, chunk_peak, _ = _peak(
                lambda: _chunked(drift, profile, window, chunk)
            )
            figures["chunked"] = {
                "seconds": chunk_seconds,
                "peak_mb": chunk_peak,
                "chunk": chunk,
                "features": _features(streamed),
            }
        except Exception as error:  # reported and failed by the parent, never hidden
            figures["chunked"] = {"error": f"{type(error).__name__}: {error}"}
    window.clear()  # frees the first window before the second is loaded
    same = drift.compare(profile, _load_window(directory / "same.parquet"))
    figures["same"] = {"rows": same.rows, "verdict": same.verdict, "features": _features(same)}
    return figures


def run_engine(directory: Path, repeats: int, chunk: int) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, __file__, "--measure", str(directory), "--repeats", str(repeats)]
        + ["--chunk", str(chunk)],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run_evidently(directory: Path) -> dict[str, Any]:
    if not EVIDENTLY_PYTHON.exists():
        raise SystemExit(f"{EVIDENTLY_PYTHON} is missing: `make bench` creates it")
    completed = subprocess.run(
        [
            str(EVIDENTLY_PYTHON),
            str(REPO / "bench" / "drift_evidently.py"),
            str(directory / "reference.parquet"),
            str(directory / "current.parquet"),
            "--numeric",
            ",".join(spec.name for spec in NUMERIC),
            "--categorical",
            ",".join(spec.name for spec in CATEGORICAL),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _effect(statistics: dict[str, Any]) -> str:
    parts = []
    if "wasserstein_normed" in statistics:
        parts.append(f"W {statistics['wasserstein_normed']:.3f}")
        parts.append(f"PSI {statistics['psi']:.3f}")
    if "js_distance" in statistics:
        parts.append(f"JS {statistics['js_distance']:.3f}")
    if statistics.get("null_share_change", 0) >= 0.005:
        parts.append(f"nulls {statistics['null_share_change']:+.3f}")
    return ", ".join(parts)


def _ours(feature: dict[str, Any], shifted: bool = False) -> str:
    severity = feature["severity"]
    if shifted and severity == "none":
        severity = "not flagged (below effect-size threshold)"
    return f"{severity} ({_effect(feature['statistics'])})"


def _theirs(column: dict[str, Any]) -> str:
    verdict = "drift" if column["drift"] else "no drift"
    method = column["method"].replace(" distance", "").replace(" (normed)", "")
    return f"{verdict} ({method} {column['score']:.3f} vs {column['threshold']})"


def report(engine: dict[str, Any], evidently: dict[str, Any]) -> bool:
    """Print the figures; True when every target is met."""
    ok = True
    ours, theirs = engine["features"], evidently["columns"]
    print(
        f"{engine['rows']:,} current rows x {len(SPECS)} columns ({len(NUMERIC)} numeric, "
        f"{len(CATEGORICAL)} categorical), {len(SHIFTS)} shifted; reference profile from "
        f"the reference rows (10 quantile bins)"
    )
    rows = [
        (
            spec.name,
            SHIFTS[spec.name][0] if spec.name in SHIFTS else "none",
            _ours(ours[spec.name], shifted=spec.name in SHIFTS),
            _theirs(theirs[spec.name]),
        )
        for spec in SPECS
    ]
    width = max(len(row[2]) for row in rows) + 1
    header = (
        f"{'column':<8} {'truth':<28} {'drift engine':<{width}} Evidently {evidently['version']}"
    )
    print(header)
    print("-" * len(header))
    for name, truth, ours_text, theirs_text in rows:
        print(f"{name:<8} {truth:<28} {ours_text:<{width}} {theirs_text}")

    def outcome(flagged: Callable[[str], bool], why: str = "") -> str:
        hits = [name for name in SHIFTS if flagged(name)]
        false = [spec.name for spec in SPECS if spec.name not in SHIFTS and flagged(spec.name)]
        missed = [f"{name} ({SHIFTS[name][0]}){why}" for name in SHIFTS if name not in hits]
        share = (len(hits) + len(false)) / len(SPECS)
        summary = (
            f"{len(hits)}/{len(SHIFTS)} shifts flagged, {len(false)} false alarm(s), "
            f"{share:.0%} of columns drifted"
        )
        return summary + (f"; missed: {', '.join(missed)}" if missed else "")

    below = " not flagged (below effect-size threshold)"
    print(f"drift engine: {outcome(lambda name: ours[name]['severity'] != 'none', below)}")
    print(
        "  (every effect of such a column is under the engine's minor threshold: W 0.1, PSI 0.1,"
        " JS 0.1, nulls 0.05; by design)"
    )
    print(f"Evidently:    {outcome(lambda name: theirs[name]['drift'])}")
    print(
        f"dataset verdict: drift engine {engine['verdict']} (drift from 30% of features); "
        f"Evidently's DataDriftPreset calls dataset drift from 50% of columns"
    )

    ratio = evidently["seconds"] / engine["seconds"]
    runs = ", ".join(f"{s:.2f}" for s in engine["all_seconds"])
    print(f"drift engine compare: {engine['seconds']:.2f} s (median of {runs})")
    print(f"Evidently DataDriftPreset: {evidently['seconds']:.1f} s")
    print(f"Evidently / engine time: {ratio:.0f}x (target >= {TARGET_RATIO}x)")
    print(
        f"engine peak memory: {engine['peak_mb']:.0f} MB above the loaded window "
        f"({engine['peak_method']}); the window itself holds {engine['window_mb']:.0f} MB"
    )
    if ratio < TARGET_RATIO:
        print(f"FAIL: the engine is {ratio:.0f}x faster than Evidently (target {TARGET_RATIO}x)")
        ok = False

    chunked = engine.get("chunked")
    if chunked is None:
        print("chunked path: DriftAccumulator is not in functions/ml/drift/engine.py")
    elif "error" in chunked:
        print(f"FAIL: chunked path (DriftAccumulator) raised {chunked['error']}")
        ok = False
    else:
        differ = [
            name
            for name, feature in chunked["features"].items()
            if feature["severity"] != ours[name]["severity"]
        ]
        print(
            f"chunked path (DriftAccumulator, {chunked['chunk']:,}-row chunks): "
            f"{chunked['seconds']:.2f} s, peak {chunked['peak_mb']:.0f} MB above the window; "
            f"severities differing from compare: {len(differ)}"
        )
        if differ or set(chunked["features"]) != set(ours):
            print(f"FAIL: chunked path disagrees with compare on {', '.join(differ) or 'features'}")
            ok = False

    same = engine["same"]
    flagged = [name for name, feature in same["features"].items() if feature["severity"] != "none"]
    print(
        f"same-distribution window ({same['rows']:,} rows from the reference distribution): "
        f"{len(flagged)} feature(s) flagged, verdict {same['verdict']}"
        + "".join(f"; {name}: {_ours(same['features'][name])}" for name in flagged)
    )
    if flagged:
        print("FAIL: a window from the reference distribution flagged features")
        ok = False
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reference-rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=100_000)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.repeats, args.chunk)))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        directory = Path(tmp)
        reference = draw(args.reference_rows, seed=1)
        profile = build_profile(reference, seed=1)
        (directory / "profile.json").write_text(json.dumps(profile, allow_nan=False))
        write_parquet(reference, directory / "reference.parquet")
        del reference
        write_parquet(draw(args.rows, seed=2, shifted=True), directory / "current.parquet")
        write_parquet(draw(args.rows, seed=3), directory / "same.parquet")
        engine = run_engine(directory, args.repeats, args.chunk)
        evidently = run_evidently(directory)
    return 0 if report(engine, evidently) else 1


if __name__ == "__main__":
    sys.exit(main())
