"""Throughput of ``churn import`` end to end, against a plain ``pandas.read_csv`` baseline.

Two exports are imported into a temporary local landing zone, each timed from the file on
disk to the partitions and the manifest written (reading, mapping, normalising, duplicate
removal, the pandera contract check, encoding Parquet, writing):

- ``synthetic``: a simple comma-separated export (customer id, ISO time stamp, quantity,
  amount) generated with numpy, ``--rows`` lines;
- ``cdnow``: the real CDNOW log (whitespace-aligned, CRLF, ``YYYYMMDD`` dates, the shipped
  ``examples/cdnow/mapping.yaml``) replicated to at least ``--cdnow-rows`` lines, each copy
  with its own customer ids. Skipped (and said so) when the file is not found.

The baseline, measured in the same run on the same file, is ``pandas.read_csv`` alone
(``sep=r"\\s+"`` for the whitespace file): ``ratio_to_read_csv`` is import time divided by
read time, so below 1 means the whole import is faster than just reading the file with
pandas. Peak resident memory is sampled every 5 ms during the import. CPU seconds (all
threads) are reported beside wall time: on a shared machine they vary less.

Run ``python bench/import_bench.py --help``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

try:
    from churn_kfp.data.importer.importing import import_file
    from churn_kfp.data.importer.mapping import load_mapping, mapping_from_dict
    from churn_kfp.data.storage import LocalLandingZone
except ImportError:  # running from a source checkout without installation
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from churn_kfp.data.importer.importing import import_file
    from churn_kfp.data.importer.mapping import load_mapping, mapping_from_dict
    from churn_kfp.data.storage import LocalLandingZone

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results" / "import.json"
CDNOW_MAPPING = REPO / "examples" / "cdnow" / "mapping.yaml"
TARGET_ROWS_PER_SECOND = 1_000_000
SYNTHETIC_MAPPING = {
    "format": "csv",
    "delimiter": ",",
    "columns": {
        "customer_id": "customer_id",
        "timestamp": "order_date",
        "quantity": "quantity",
        "amount": "amount",
    },
    "timestamp_format": "%Y-%m-%d %H:%M:%S",
}


def cdnow_path() -> Path | None:
    """The CDNOW log beside the checkout (``../shared``) or under ``$CHURN_SHARED_DIR``."""
    candidates = [REPO.parent / "shared/data/cdnow/CDNOW_master.txt"]
    if os.environ.get("CHURN_SHARED_DIR"):
        candidates.insert(0, Path(os.environ["CHURN_SHARED_DIR"]) / "data/cdnow/CDNOW_master.txt")
    return next((p for p in candidates if p.is_file()), None)


def make_synthetic(path: Path, rows: int, seed: int = 0) -> None:
    """Writes a simple export: ~rows/20 customers, one year of second-resolution stamps."""
    rng = np.random.default_rng(seed)
    stamps = np.datetime64("2024-01-01T00:00:00") + rng.integers(0, 365 * 86_400, rows).astype(
        "timedelta64[s]"
    )
    table = pa.table(
        {
            "customer_id": pa.array(rng.integers(1, max(rows // 20, 2), rows)).cast(pa.string()),
            "order_date": pc.strftime(pa.array(stamps), format="%Y-%m-%d %H:%M:%S"),
            "quantity": pa.array(rng.integers(1, 6, rows)),
            "amount": pa.array(np.round(rng.lognormal(3.0, 0.8, rows), 2)),
        }
    )
    options = pacsv.WriteOptions(quoting_style="none")
    pacsv.write_csv(table, str(path), write_options=options)


def make_cdnow_copies(source: Path, path: Path, min_rows: int) -> int:
    """Replicates the CDNOW log to at least ``min_rows`` lines; returns the line count.

    Copy ``k`` adds ``k * 100000`` to the customer ids (zero-padded to 7 digits, columns
    still aligned), so every copy is a distinct set of customers, not duplicate lines.
    """
    lines = source.read_bytes().split(b"\r\n")
    header, body = lines[0], [line for line in lines[1:] if line.strip()]
    copies = -(-min_rows // len(body))
    ids = [line[:6] for line in body]  # "     1" .. " 23570": right-aligned in 6 columns
    rest = [line[6:] for line in body]
    with path.open("wb") as out:
        out.write(header + b"\r\n")
        for k in range(copies):
            block = b"".join(
                b"%8d" % (int(i) + k * 100_000) + r + b"\r\n"
                for i, r in zip(ids, rest, strict=True)
            )
            out.write(block)
    return copies * len(body)


def timed(func: Callable[[], Any]) -> dict[str, Any]:
    """Runs ``func`` once: wall seconds, CPU seconds, peak RSS (sampled) and its growth."""
    process = psutil.Process()
    gc.collect()
    before = process.memory_info().rss
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        result = func()
    finally:
        seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
        done.set()
        sampler.join()
    peak[0] = max(peak[0], process.memory_info().rss)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "peak_rss_mib": peak[0] / 2**20,
        "rss_growth_mib": (peak[0] - before) / 2**20,
        "result": result,
    }


def measure(name: str, path: Path, mapping, read_csv: Callable[[], Any], work: Path) -> dict:
    """Imports ``path`` into a fresh landing zone and reads it with pandas, both timed."""
    zone = LocalLandingZone(work / f"landing-{name}")
    imported = timed(lambda: import_file(path, mapping, zone, progress=False))
    baseline = timed(read_csv)
    report = imported.pop("result")
    baseline.pop("result")
    rows = report.rows_read
    return {
        "export": name,
        "rows": rows,
        "file_mib": round(path.stat().st_size / 2**20, 1),
        "rows_kept": report.rows_kept,
        "partitions": len(report.partitions),
        "import_seconds": round(imported["seconds"], 3),
        "import_cpu_seconds": round(imported["cpu_seconds"], 3),
        "import_rows_per_second": round(rows / imported["seconds"]),
        "import_peak_rss_mib": round(imported["peak_rss_mib"], 1),
        "import_rss_growth_mib": round(imported["rss_growth_mib"], 1),
        "read_csv_seconds": round(baseline["seconds"], 3),
        "read_csv_cpu_seconds": round(baseline["cpu_seconds"], 3),
        "read_csv_rows_per_second": round(rows / baseline["seconds"]),
        "ratio_to_read_csv": round(imported["seconds"] / baseline["seconds"], 2),
        "meets_target": rows / imported["seconds"] >= TARGET_ROWS_PER_SECOND,
    }


def run(
    rows: Sequence[int] = (1_000_000,),
    cdnow_rows: int | None = 5_000_000,
    quick: bool = False,
) -> dict[str, Any]:
    """Measures import throughput, prints the table; returns the figures (module docstring).

    Args:
        rows: Sizes of the synthetic CSV export.
        cdnow_rows: Replicate the CDNOW log to at least this many lines (``None``: skip).
        quick: Small sizes (100k synthetic, 200k CDNOW) for a smoke check.
    """
    if quick:
        rows, cdnow_rows = (100_000,), (200_000 if cdnow_rows else None)
    results: list[dict] = []
    notes: list[str] = []
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    with tempfile.TemporaryDirectory(prefix="import-bench-") as tmp:
        work = Path(tmp)
        mapping = mapping_from_dict(SYNTHETIC_MAPPING)
        for n in rows:
            path = work / f"synthetic-{n}.csv"
            make_synthetic(path, n)
            results.append(
                measure("synthetic_csv", path, mapping, lambda p=path: pd.read_csv(p), work)
            )
            path.unlink()
        source = cdnow_path()
        if cdnow_rows and source is None:
            notes.append("CDNOW log not found beside the checkout: its figures are missing")
        elif cdnow_rows:
            path = work / "cdnow-replicated.txt"
            make_cdnow_copies(source, path, cdnow_rows)
            results.append(
                measure(
                    "cdnow_whitespace",
                    path,
                    load_mapping(CDNOW_MAPPING),
                    lambda: pd.read_csv(path, sep=r"\s+"),
                    work,
                )
            )
    figures = {
        "target_rows_per_second": TARGET_ROWS_PER_SECOND,
        "cpus": psutil.cpu_count(),
        "load_average_at_start": None if load is None else round(load, 2),
        "results": results,
        "notes": notes,
    }
    print(format_table(figures), flush=True)
    return figures


def format_table(figures: dict[str, Any]) -> str:
    """The figures as a table for humans."""
    header = (
        f"{'export':<18}{'rows':>11}{'MiB':>7}{'import s':>10}{'cpu s':>8}{'rows/s':>12}"
        f"{'read_csv s':>12}{'ratio':>7}{'peak RSS':>10}  target"
    )
    lines = [header, "-" * len(header)]
    for r in figures["results"]:
        lines.append(
            f"{r['export']:<18}{r['rows']:>11,}{r['file_mib']:>7}{r['import_seconds']:>10.2f}"
            f"{r['import_cpu_seconds']:>8.2f}{r['import_rows_per_second']:>12,}"
            f"{r['read_csv_seconds']:>12.2f}{r['ratio_to_read_csv']:>7.2f}"
            f"{r['import_peak_rss_mib']:>8.0f}Mi  {'met' if r['meets_target'] else 'missed'}"
        )
    lines.append(
        f"target {figures['target_rows_per_second']:,} rows/s; ratio = import time / "
        f"pandas.read_csv time on the same file; {figures['cpus']} CPUs, load average "
        f"{figures['load_average_at_start']} at start"
    )
    lines.extend(f"note: {n}" for n in figures["notes"])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: run, print the table, write the JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="example: python bench/import_bench.py --rows 1000000,2000000 --cdnow-rows 5000000",
    )
    parser.add_argument(
        "--rows", default="1000000", help="comma-separated sizes of the synthetic CSV export"
    )
    parser.add_argument(
        "--cdnow-rows",
        type=int,
        default=5_000_000,
        help="replicate the CDNOW log to at least this many lines (0: skip)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke check)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="JSON output path")
    args = parser.parse_args(argv)
    sizes = tuple(int(s.replace("_", "")) for s in args.rows.split(",") if s.strip())
    figures = run(rows=sizes, cdnow_rows=args.cdnow_rows or None, quick=args.quick)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
