"""Throughput of point-in-time feature building, against a plain pandas group-by baseline.

Generates synthetic transactions with numpy (about n/20 customers, 365 days, string customer
ids as a clean frame has them), times :func:`churn_kfp.learn.features.build_features` at one cutoff
(the whole call, including encoding the transactions), records the peak growth of the
process's resident memory while it runs, and times a naive pandas implementation of the core
features (recency and frequency/monetary per window) on the smallest size.

Run ``python bench/features_bench.py --help``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

try:
    from churn_kfp.learn.features import TransactionIndex, build_features
except ImportError:  # running from a source checkout without installation
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from churn_kfp.learn.features import TransactionIndex, build_features

DAYS = 365
ORIGIN = pd.Timestamp("2024-01-01")
CUTOFF = ORIGIN + pd.Timedelta(days=300)
WINDOWS = (30, 60, 90)
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "features.json"


def size_label(n: int) -> str:
    """``1_000_000`` -> ``"1M"``, ``250_000`` -> ``"250k"``."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def make_transactions(n: int, seed: int = 0) -> pd.DataFrame:
    """Synthetic clean transactions: ~n/20 customers with skewed activity over 365 days."""
    rng = np.random.default_rng(seed)
    n_customers = max(1, n // 20)
    # Zipf-like activity: some customers buy far more often than others.
    weights = rng.pareto(1.5, n_customers) + 0.1
    customer = rng.choice(n_customers, size=n, p=weights / weights.sum())
    ids = np.array([f"C{i:08d}" for i in range(n_customers)], dtype=object)
    seconds = rng.integers(0, DAYS * 86_400, size=n)
    return pd.DataFrame(
        {
            "customer_id": ids[customer],
            "timestamp": ORIGIN + pd.to_timedelta(seconds, unit="s"),
            "amount": np.round(rng.lognormal(3.5, 0.8, size=n), 2),
            "quantity": rng.integers(1, 6, size=n).astype(np.float64),
        }
    )


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


def best_time(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """Best wall and CPU time of ``repeats`` calls, and the last result."""
    best, best_cpu, result = float("inf"), float("inf"), None
    for _ in range(repeats):
        gc.collect()
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    return best, best_cpu, result


def run(sizes: Sequence[int] = (1_000_000, 10_000_000), seed: int = 0) -> dict[str, Any]:
    """Runs the benchmark.

    Args:
        sizes: Numbers of transactions; the smallest also gets the pandas baseline.
        seed: Random seed of the synthetic data.

    Returns:
        ``{"features": {label: {...}}, "baseline": {...}, "machine": {...}}``.
    """
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    results: dict[str, Any] = {
        "cutoff": CUTOFF.date().isoformat(),
        "windows": list(WINDOWS),
        "features": {},
        "machine": {"cpus": os.cpu_count(), "numpy": np.__version__, "pandas": pd.__version__},
    }
    smallest = min(sizes)
    for n in sorted(sizes):
        transactions = make_transactions(n, seed)
        repeats = 3 if n <= 1_000_000 else 1
        gc.collect()
        with PeakRss() as memory:
            start, start_cpu = time.perf_counter(), time.process_time()
            table = build_features(transactions, CUTOFF, windows=WINDOWS)
            seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        if repeats > 1:
            again, again_cpu, table = best_time(
                lambda t=transactions: build_features(t, CUTOFF, windows=WINDOWS), repeats - 1
            )
            seconds, cpu = min(seconds, again), min(cpu, again_cpu)
        # The same work split in two: encoding once, then one cutoff on the encoded index
        # (what build_feature_table does for every further cutoff).
        encode, _, index = best_time(lambda t=transactions: TransactionIndex(t), 1)
        per_cutoff, _, _ = best_time(
            lambda i=index: build_features(i, CUTOFF, windows=WINDOWS), repeats
        )
        del index
        results["features"][size_label(n)] = {
            "transactions": n,
            "customers": int(transactions["customer_id"].nunique()) if n <= 1_000_000 else None,
            "eligible_rows": len(table),
            "feature_columns": len(table.columns) - 2,
            "runs": repeats,
            "seconds": round(seconds, 4),
            "cpu_seconds": round(cpu, 4),
            "tx_per_s": round(n / seconds),
            "tx_per_cpu_s": round(n / cpu),
            "peak_mb": round(memory.peak_mb, 1),
            "encode_seconds": round(encode, 4),
            "cutoff_on_index_seconds": round(per_cutoff, 4),
        }
        if n == smallest:
            base_seconds, _, base = best_time(
                lambda t=transactions: naive_features(t, CUTOFF), repeats
            )
            ours = table.set_index("customer_id")
            theirs = base.set_index("customer_id")
            same = ours.index.equals(theirs.index) and all(
                np.allclose(ours[c].to_numpy(), theirs[c].to_numpy()) for c in theirs.columns
            )
            results["baseline"] = {
                "size": size_label(n),
                "what": "pandas groupby: recency + frequency/monetary over 30/60/90 days",
                "runs": repeats,
                "seconds": round(base_seconds, 4),
                "tx_per_s": round(n / base_seconds),
                "speedup": round(base_seconds / seconds, 2),
                "same_values": bool(same),
            }
        del transactions, table
        gc.collect()
    if load_before is not None:
        # wall times are only meaningful when the machine was otherwise idle
        results["machine"]["load_average_1m"] = {
            "before": round(load_before, 2),
            "after": round(os.getloadavg()[0], 2),
        }
    return results


def print_table(results: dict[str, Any]) -> None:
    """Prints the results as a small table."""
    print(
        f"{'size':>6} {'seconds':>8} {'cpu s':>7} {'tx/s':>11} {'tx/cpu-s':>11} {'peak MB':>8} "
        f"{'encode s':>8} {'cutoff s':>8} {'rows':>8}"
    )
    for label, r in results["features"].items():
        print(
            f"{label:>6} {r['seconds']:>8.3f} {r['cpu_seconds']:>7.3f} {r['tx_per_s']:>11,} "
            f"{r['tx_per_cpu_s']:>11,} {r['peak_mb']:>8.1f} {r['encode_seconds']:>8.3f} "
            f"{r['cutoff_on_index_seconds']:>8.3f} {r['eligible_rows']:>8,}"
        )
    load = results["machine"].get("load_average_1m")
    if load:
        print(f"load average (1 min) before/after: {load['before']} / {load['after']}")
    base = results.get("baseline")
    if base:
        print(
            f"baseline ({base['what']}) at {base['size']}: {base['seconds']:.3f} s, "
            f"{base['tx_per_s']:,} tx/s; build_features is {base['speedup']}x faster "
            f"(same values on the shared columns: {base['same_values']})"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(
            "Benchmark churn_kfp.learn.features.build_features at one cutoff on synthetic "
            "transactions (~n/20 customers over 365 days) and compare with a naive pandas "
            "group-by implementation of recency/frequency/monetary at the smallest size."
        )
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[1_000_000, 10_000_000],
        metavar="N",
        help="numbers of transactions to time (default: 1000000 10000000)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"where to write the JSON results (default: {DEFAULT_OUT})",
    )
    args = parser.parse_args(argv)
    results = run(sizes=tuple(args.sizes), seed=args.seed)
    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
