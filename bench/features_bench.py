"""Growth curve of the feature data path: DuckDB engine vs a plain pandas group-by.

For every size, synthetic transactions (about n/20 customers with skewed activity over 365
days, string customer ids) are generated with numpy and written once to Parquet in a
temporary folder (never kept). Then, in the same run:

- ``duckdb``: :func:`churn_kfp.learn.duckdb_engine.build_feature_table_duckdb` reads that
  Parquet and computes the whole feature table (every behaviour and quantity feature) at the
  four cutoffs of a run (two training, validation, test), all cores;
- ``baseline``: plain pandas reads the same Parquet and, per cutoff, group-bys the core
  features (recency, frequency and monetary per window), up to ``--baseline-max`` rows.

Each records wall seconds, transactions/s (rows read once, whatever the cutoffs) and the peak
growth of resident memory; sizes under 5M run three times and report the median run.

Up to ``--path-max`` rows (default 30M) the bench also times the run's whole training data
path, ``data_path``: the same transactions written as a landing zone of monthly Parquet
partitions, then ingest (validate + clean), features and labels, each step the code the
pipeline's step runs (:mod:`data_path`), with its own seconds and peak memory.
Results go to JSON and, with matplotlib, a PNG beside it.

Run ``python bench/features_bench.py --help``; ``make bench`` runs 1M, 10M and 30M,
``make bench-scale`` adds 100M.
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

try:
    from churn_kfp.learn.duckdb_engine import build_feature_table_duckdb, connect
except ImportError:  # running from a source checkout without installation
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from churn_kfp.learn.duckdb_engine import build_feature_table_duckdb, connect
from data_path import run_data_path, write_landing_zone  # bench/ is on sys.path

from churn_kfp.learn.plan import CutoffPlan

DAYS = 365
ORIGIN = pd.Timestamp("2024-01-01")
PLAN = CutoffPlan(
    train=[pd.Timestamp("2024-08-01"), pd.Timestamp("2024-09-01")],
    validation=pd.Timestamp("2024-10-01"),
    test=pd.Timestamp("2024-11-01"),
    horizon_days=30,
)
WINDOWS = (30, 60, 90)
REPEATS, REPEAT_BELOW = 3, 5_000_000
"""Sizes below ``REPEAT_BELOW`` run ``REPEATS`` times (median): sub-second runs are noisy."""
DEFAULT_SIZES = (1_000_000, 10_000_000, 30_000_000)
SCALE_SIZES = (*DEFAULT_SIZES, 100_000_000)
CHUNK = 5_000_000
TARGETS = {
    "tx_per_s_at_10M": (">=", 5_000_000),
    "speedup_at_10M": (">=", 3.0),
    "time_per_tx_growth_30M_over_1M": ("<=", 1.3),
}
"""Issue 16's targets for the DuckDB engine (measured when the run has those sizes)."""
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "features.json"
DEFAULT_PNG = DEFAULT_OUT.with_suffix(".png")


def size_label(n: int) -> str:
    """``1_000_000`` -> ``"1M"``, ``250_000`` -> ``"250k"``."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def write_transactions(n: int, folder: Path, seed: int = 0) -> list[Path]:
    """Writes n synthetic transactions as Parquet files of at most :data:`CHUNK` rows."""
    rng = np.random.default_rng(seed)
    n_customers = max(1, n // 20)
    weights = rng.pareto(1.5, n_customers) + 0.1  # some customers buy far more often
    cumulative = np.cumsum(weights / weights.sum())
    ids = pa.array([f"C{i:08d}" for i in range(n_customers)])
    origin_s = int(ORIGIN.timestamp())
    paths = []
    for start in range(0, n, CHUNK):
        size = min(CHUNK, n - start)
        customer = np.minimum(np.searchsorted(cumulative, rng.random(size)), n_customers - 1)
        seconds = origin_s + rng.integers(0, DAYS * 86_400, size=size)
        table = pa.table(
            {
                "customer_id": ids.take(pa.array(customer)),
                "timestamp": pa.array(seconds.astype("datetime64[s]").astype("datetime64[us]")),
                "amount": np.round(rng.lognormal(3.5, 0.8, size=size), 2),
                "quantity": rng.integers(1, 6, size=size).astype(np.float64),
            }
        )
        path = folder / f"part-{start // CHUNK:04d}.parquet"
        pq.write_table(table, path)
        paths.append(path)
    return paths


def naive_features(transactions: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """Baseline: recency and frequency/monetary per window with plain pandas group-bys."""
    past = transactions[transactions["timestamp"] < cutoff]
    eligible = past[past["timestamp"] >= cutoff - pd.Timedelta(days=max(WINDOWS))]
    out = pd.DataFrame(index=pd.Index(eligible["customer_id"].unique(), name="customer_id"))
    last = past.groupby("customer_id")["timestamp"].max()
    out["recency_days"] = (cutoff - last.reindex(out.index)).dt.total_seconds() / 86_400
    for w in WINDOWS:
        recent = past[past["timestamp"] >= cutoff - pd.Timedelta(days=w)]
        agg = recent.groupby("customer_id")["amount"].agg(["count", "sum"])
        agg = agg.reindex(out.index, fill_value=0)
        out[f"frequency_{w}d"] = agg["count"].astype(float)
        out[f"monetary_{w}d"] = agg["sum"]
    return out.sort_index().reset_index()


def naive_table(paths: Sequence[Path]) -> pd.DataFrame:
    """The baseline at every cutoff of the run, reading the Parquet with pandas."""
    transactions = pd.read_parquet(paths if len(paths) > 1 else paths[0])
    parts = [naive_features(transactions, c).assign(cutoff=c) for c in PLAN.all_cutoffs()]
    return pd.concat(parts, ignore_index=True)


class PeakRss:
    """Samples the resident set size in a thread; ``peak_mb`` is the growth over the start."""

    def __init__(self, interval: float = 0.005):
        import psutil

        self._process = psutil.Process(os.getpid())
        self._interval = interval
        self._stop = threading.Event()
        self.start_rss = 0
        self.peak_rss = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, self._process.memory_info().rss)
            time.sleep(self._interval)

    def __enter__(self) -> PeakRss:
        self.start_rss = self.peak_rss = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_rss = max(self.peak_rss, self._process.memory_info().rss)

    @property
    def peak_mb(self) -> float:
        return (self.peak_rss - self.start_rss) / 2**20


def timed(fn: Any, repeat: int = 1) -> tuple[dict[str, Any], Any]:
    """Wall and CPU seconds and peak memory growth of a call, and its (last) result.

    With ``repeat`` > 1 the call runs that many times: the seconds are the median run's
    (``runs_s`` lists them all), the peak the largest.
    """
    runs = []
    for _ in range(repeat):
        gc.collect()
        with PeakRss() as memory:
            start, start_cpu = time.perf_counter(), time.process_time()
            result = fn()
            seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        runs.append((seconds, cpu, memory.peak_mb))
    seconds, cpu, _ = sorted(runs)[len(runs) // 2]
    figures = {
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "peak_mb": round(max(r[2] for r in runs), 1),
    }
    if repeat > 1:
        figures["runs_s"] = [round(r[0], 3) for r in runs]
    return figures, result


def same_core_values(table: pd.DataFrame, baseline: pd.DataFrame) -> bool:
    """Whether the engine and the baseline agree on the baseline's columns."""
    baseline = baseline.assign(cutoff=baseline["cutoff"].astype("datetime64[ns]"))
    ours = table.set_index(["cutoff", "customer_id"]).sort_index()
    theirs = baseline.set_index(["cutoff", "customer_id"]).sort_index()
    return ours.index.equals(theirs.index) and all(
        np.allclose(ours[c].to_numpy(), theirs[c].to_numpy()) for c in theirs.columns
    )


def run(
    sizes: Sequence[int] = DEFAULT_SIZES,
    seed: int = 0,
    baseline_max: int = 10_000_000,
    path_max: int = 30_000_000,
    quick: bool = False,
    memory_limit: str = "10GB",
    png: Path | None = DEFAULT_PNG,
) -> dict[str, Any]:
    """Runs the benchmark.

    Args:
        sizes: Numbers of transactions.
        seed: Random seed of the synthetic data.
        baseline_max: Largest size the pandas baseline runs at.
        path_max: Largest size the whole data path (ingest + features + labels) runs at.
        quick: Small sizes only (a smoke check).
        memory_limit: DuckDB's memory limit; beyond it, it spills to the temporary folder.
        png: Where to draw the curve (``None``: no picture).

    Returns:
        ``{"sizes": {label: {...}}, "machine": {...}, ...}``.
    """
    if quick:
        sizes = (200_000, 1_000_000)
    load_before = os.getloadavg()[0]
    results: dict[str, Any] = {
        "cutoffs": [c.date().isoformat() for c in PLAN.all_cutoffs()],
        "windows": list(WINDOWS),
        "engine": "duckdb",
        "duckdb_memory_limit": memory_limit,
        "baseline": "pandas read_parquet + groupby: recency + frequency/monetary per window",
        "sizes": {},
        "machine": {"cpus": os.cpu_count(), "pandas": pd.__version__},
    }
    for n in sorted(sizes):
        with tempfile.TemporaryDirectory(prefix="churn-bench-") as tmp:
            folder = Path(tmp)
            started = time.perf_counter()
            paths = write_transactions(n, folder, seed)
            generate_s = time.perf_counter() - started
            spill = folder / "spill"

            def engine(paths: list[Path] = paths, spill: Path = spill) -> pd.DataFrame:
                connection = connect(memory_limit=memory_limit, temp_directory=str(spill))
                try:
                    return build_feature_table_duckdb(
                        [str(p) for p in paths], PLAN, windows=WINDOWS, connection=connection
                    )
                finally:
                    connection.close()

            repeat = REPEATS if n < REPEAT_BELOW else 1
            figures, table = timed(engine, repeat)
            entry: dict[str, Any] = {
                "transactions": n,
                "rows_out": len(table),
                "feature_columns": len(table.columns) - 3,
                "generate_seconds": round(generate_s, 1),
                "duckdb": {**figures, "tx_per_s": round(n / figures["seconds"])},
            }
            if n <= baseline_max:
                base, naive = timed(lambda paths=paths: naive_table(paths), repeat)
                entry["baseline"] = {**base, "tx_per_s": round(n / base["seconds"])}
                entry["speedup"] = round(base["seconds"] / figures["seconds"], 2)
                entry["same_core_values"] = same_core_values(table, naive)
                del naive
            del table
            gc.collect()
            if n <= path_max:
                zone = folder / "zone"
                write_landing_zone(paths, zone)
                path = run_data_path(zone, folder, PLAN, WINDOWS, timed, memory_limit)
                entry["data_path"] = {**path, "tx_per_s": round(n / path["seconds"])}
                gc.collect()
        results["sizes"][size_label(n)] = entry
        print_row(size_label(n), entry, flush=True)
    labels = list(results["sizes"])
    if len(labels) > 1:
        results["time_per_tx_growth"] = growth(
            results["sizes"][labels[0]], results["sizes"][labels[-1]]
        )
    results["targets"] = targets(results["sizes"])
    results["machine"]["load_average_1m"] = {
        "before": round(load_before, 2),
        "after": round(os.getloadavg()[0], 2),
    }
    if png is not None:
        png.parent.mkdir(parents=True, exist_ok=True)
        drawn = plot(results, png)
        if drawn:
            results["png"] = str(drawn)
    return results


def growth(small: dict[str, Any], large: dict[str, Any]) -> float:
    """The engine's time per transaction at the ``large`` size over that at the ``small`` one."""
    per_tx = [r["duckdb"]["seconds"] / r["transactions"] for r in (small, large)]
    return round(per_tx[1] / per_tx[0], 2)


def targets(sizes: dict[str, Any]) -> dict[str, Any]:
    """Each of :data:`TARGETS` the run can measure: target, measured value and whether met."""
    measured: dict[str, float | None] = {
        "tx_per_s_at_10M": sizes.get("10M", {}).get("duckdb", {}).get("tx_per_s"),
        "speedup_at_10M": sizes.get("10M", {}).get("speedup"),
        "time_per_tx_growth_30M_over_1M": None,
    }
    if "1M" in sizes and "30M" in sizes:
        measured["time_per_tx_growth_30M_over_1M"] = growth(sizes["1M"], sizes["30M"])
    out = {}
    for key, (relation, bound) in TARGETS.items():
        value = measured[key]
        if value is not None:
            met = value >= bound if relation == ">=" else value <= bound
            out[key] = {"target": f"{relation} {bound:g}", "measured": value, "met": met}
    return out


def print_row(label: str, r: dict[str, Any], flush: bool = False) -> None:
    """Prints one size's figures."""
    d = r["duckdb"]
    line = (
        f"{label:>5}: duckdb {d['seconds']:8.2f} s {d['tx_per_s']:>12,} tx/s "
        f"peak {d['peak_mb']:8.1f} MB"
    )
    if "baseline" in r:
        b = r["baseline"]
        line += (
            f" | pandas {b['seconds']:8.2f} s {b['tx_per_s']:>12,} tx/s "
            f"peak {b['peak_mb']:8.1f} MB | {r['speedup']}x, same values: {r['same_core_values']}"
        )
    print(line, flush=flush)
    if "data_path" in r:
        p = r["data_path"]
        steps = ", ".join(f"{s} {p[s]['seconds']:.2f} s" for s in ("ingest", "features", "labels"))
        print(
            f"{'':>5}  data path {p['seconds']:8.2f} s {p['tx_per_s']:>12,} tx/s "
            f"peak {p['peak_mb']:8.1f} MB ({steps})",
            flush=flush,
        )


def plot(results: dict[str, Any], path: Path) -> Path | None:
    """Writes transactions/s and peak memory per size as a PNG (None without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = list(results["sizes"].values())
    fig, (speed, memory) = plt.subplots(1, 2, figsize=(10, 4))
    for key, name in (
        ("duckdb", "features: DuckDB engine"),
        ("baseline", "features: pandas group-by"),
        ("data_path", "data path: ingest + features + labels"),
    ):
        points = [(r["transactions"], r[key]) for r in rows if key in r]
        if not points:
            continue
        x = [n for n, _ in points]
        speed.plot(x, [f["tx_per_s"] for _, f in points], marker="o", label=name)
        memory.plot(x, [f["peak_mb"] for _, f in points], marker="o", label=name)
    for axis, title in ((speed, "transactions / s"), (memory, "peak memory growth (MB)")):
        axis.set_xscale("log")
        axis.set_xlabel("transactions")
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
        axis.legend()
    fig.suptitle(
        f"features (and the data path) at {len(results['cutoffs'])} cutoffs, "
        f"{results['machine']['cpus']} CPUs"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(
            "Growth curve of the feature table on DuckDB (all cutoffs of a run, Parquet in) "
            "beside a plain pandas group-by of the core features, and the whole training data "
            "path (ingest + features + labels), on synthetic transactions."
        )
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=list(DEFAULT_SIZES),
        metavar="N",
        help="numbers of transactions (default: 1000000 10000000 30000000)",
    )
    parser.add_argument("--scale", action="store_true", help="add 100M (needs ~24 GiB)")
    parser.add_argument(
        "--baseline-max",
        type=int,
        default=10_000_000,
        help="largest size the pandas baseline runs at (default: 10000000)",
    )
    parser.add_argument(
        "--path-max",
        type=int,
        default=30_000_000,
        help=(
            "largest size the whole data path (ingest + features + labels, pandas ingest) "
            "runs at (default: 30000000)"
        ),
    )
    parser.add_argument(
        "--memory-limit",
        default="10GB",
        help="DuckDB's memory limit, beyond which it spills to disk (default: 10GB)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"JSON results; the PNG goes beside it (default: {DEFAULT_OUT})",
    )
    args = parser.parse_args(argv)
    sizes = sorted({*args.sizes, *(SCALE_SIZES if args.scale else ())})
    results = run(
        sizes=sizes,
        seed=args.seed,
        baseline_max=args.baseline_max,
        path_max=args.path_max,
        memory_limit=args.memory_limit,
        png=args.out.with_suffix(".png"),
    )
    load = results["machine"]["load_average_1m"]
    print(f"load average (1 min) before/after: {load['before']} / {load['after']}")
    if "time_per_tx_growth" in results:
        print(f"time per transaction, largest over smallest size: {results['time_per_tx_growth']}")
    for key, target in results["targets"].items():
        verdict = "met" if target["met"] else "NOT met"
        print(f"target {key} {target['target']}: {verdict} ({target['measured']:,})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    if "png" in results:
        print(f"wrote {results['png']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
