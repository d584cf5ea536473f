"""Peak memory of ingesting a large CSV, against a naive `pd.read_csv` of the same file.

Generates a ~500 MB churn-like CSV in `.bench/` (reused when present), then measures, each in
its own fresh process so neither inherits the other's heap: (a) the ingest stage's pure path
(`functions.ml.ingestion.ingest_file`: file in, curated Parquet out) and (b) `pd.read_csv` of
the whole file. Exits non-zero when (a) peaks at 1024 MB or more: the ingest function must fit
in far less memory than the file would take as a DataFrame.

    python bench/ingest_memory.py [--size-mb 500] [--dir .bench]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIMIT_MB = 1024
BLOCK_ROWS = 250_000
MB = 1024 * 1024


def generate(path: Path, size_mb: int) -> None:
    """Write blocks of distinct churn rows until the file reaches `size_mb` (atomic rename, so
    an interrupted run never leaves a short file behind to be reused)."""
    from functions.ml.sample_data import churn_frame

    if path.exists() and path.stat().st_size >= size_mb * MB:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    started = time.perf_counter()
    with partial.open("wb") as file:
        block = 0
        while file.tell() < size_mb * MB:
            frame = churn_frame(BLOCK_ROWS, seed=block, first_id=block * BLOCK_ROWS)
            file.write(frame.to_csv(index=False, header=block == 0, lineterminator="\n").encode())
            block += 1
    partial.rename(path)
    elapsed = time.perf_counter() - started
    print(f"generated {path} ({path.stat().st_size / MB:.0f} MB) in {elapsed:.0f} s")


def _peak_rss_mb() -> float:
    """Peak RSS of this process image. Linux's VmHWM restarts at exec; ru_maxrss does not (a
    child would report its parent's peak from before the exec), so it is only the fallback."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(mode: str, path: Path) -> dict[str, float]:
    """Run one measurement in this (fresh) process; return its figures."""
    import pandas as pd
    import pyarrow  # noqa: F401  (imported by both modes; counted in the baseline)

    from functions.common.config.loading import load_config
    from functions.ml.ingestion import ingest_file
    from functions.ml.schema import contract_from_config

    baseline = _peak_rss_mb()
    started = time.perf_counter()
    if mode == "ours":
        dataset = load_config(REPO / "mlops.toml").dataset
        with tempfile.TemporaryDirectory(prefix="bench-") as out:
            result = ingest_file(
                path,
                name=path.name,
                dataset=dataset,
                contract=contract_from_config(dataset),
                out_dir=Path(out),
            )
            rows_in, rows_out = result.rows_in, result.rows_out
    else:
        frame = pd.read_csv(path)
        rows_in = rows_out = len(frame)
    return {
        "seconds": time.perf_counter() - started,
        "peak_rss_mb": _peak_rss_mb(),
        "baseline_rss_mb": baseline,
        "rows_in": rows_in,
        "rows_out": rows_out,
    }


def run_child(mode: str, path: Path) -> dict[str, float]:
    completed = subprocess.run(
        [sys.executable, __file__, "--measure", mode, str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def report(input_mb: float, ours: dict[str, float], naive: dict[str, float]) -> None:
    print(f"input: {input_mb:.0f} MB, {ours['rows_in']:,.0f} rows")
    for label, figures in (("ingest (ours)", ours), ("pd.read_csv (naive)", naive)):
        print(
            f"{label:>20}: peak RSS {figures['peak_rss_mb']:7.0f} MB "
            f"(imports {figures['baseline_rss_mb']:.0f} MB), "
            f"{figures['peak_rss_mb'] / input_mb:.2f} MB per input MB, "
            f"{figures['seconds']:6.1f} s, {figures['rows_in'] / figures['seconds']:,.0f} rows/s"
        )
    print(f"naive / ours peak RSS: {naive['peak_rss_mb'] / ours['peak_rss_mb']:.1f}x")
    print(f"ours kept {ours['rows_out']:,.0f} of {ours['rows_in']:,.0f} rows (duplicates dropped)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--dir", type=Path, default=REPO / ".bench")
    parser.add_argument("--measure", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        mode, path = args.measure
        print(json.dumps(measure(mode, Path(path))))
        return 0

    path = args.dir / f"churn-{args.size_mb}mb.csv"
    generate(path, args.size_mb)
    input_mb = path.stat().st_size / MB
    ours = run_child("ours", path)
    naive = run_child("naive", path)
    report(input_mb, ours, naive)
    if ours["peak_rss_mb"] >= LIMIT_MB:
        print(f"FAIL: ingestion peaked at {ours['peak_rss_mb']:.0f} MB (limit {LIMIT_MB} MB)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
