"""Run every benchmark, print the figures and write them as JSON.

Each ``bench/<suite>_bench.py`` module exposes ``run() -> dict`` (optionally ``quick``); figures are
measured in this run, and each benchmark reports a baseline measured in the same run so
the ratios mean something on whatever machine runs them.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import platform
import sys
import time
from pathlib import Path

import psutil

BENCH_DIR = Path(__file__).resolve().parent
SUITES = ("features", "import", "pipeline", "retraining", "serving")


def machine() -> dict:
    """Describes the machine the figures come from."""
    return {
        "python": platform.python_version(),
        "cpus": psutil.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> int:
    """Runs the selected suites; exits non-zero if one of them crashed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", default=str(BENCH_DIR / "results"), help="JSON folder")
    parser.add_argument(
        "--only", default=",".join(SUITES), help=f"comma-separated suites from {SUITES}"
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke check)")
    args = parser.parse_args(argv)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(BENCH_DIR))
    results, failed = {"machine": machine()}, []
    for suite in [s.strip() for s in args.only.split(",") if s.strip()]:
        module_name = f"{suite}_bench"
        if not (BENCH_DIR / f"{module_name}.py").exists():
            print(f"[{suite}] no benchmark module {module_name}.py: skipped")
            continue
        print(f"\n[{suite}] running ...", flush=True)
        started = time.perf_counter()
        try:
            run = importlib.import_module(module_name).run
            accepts_quick = "quick" in inspect.signature(run).parameters
            figures = run(quick=args.quick) if accepts_quick else run()
        except Exception as exc:  # report and go on with the other suites
            print(f"[{suite}] FAILED: {exc!r}")
            failed.append(suite)
            continue
        figures["bench_seconds"] = round(time.perf_counter() - started, 1)
        results[suite] = figures
        (out_dir / f"{suite}.json").write_text(json.dumps(figures, indent=2, default=str))
        print(json.dumps(figures, indent=2, default=str))
    (out_dir / "all.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwrote {out_dir / 'all.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
