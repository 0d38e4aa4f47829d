"""The ``churn`` command line: run the pipelines locally, compile, submit, serve.

Run ``churn --help`` or ``churn <command> --help`` for details.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from churn_kfp import __version__

# Sub-command modules under churn_kfp.cli, in the order --help lists them.
COMMANDS = ("run", "retrain", "compile", "importer", "cluster", "serve")

EPILOG = """\
environment:
  CHURN_HOME            local state (MLflow DB + artifacts, landing zone, reports); default .churn
  CHURN_LANDING_ZONE    landing-zone folder or s3:// URI; default $CHURN_HOME/landing
  MLFLOW_TRACKING_URI   MLflow tracking server; default sqlite:///$CHURN_HOME/mlflow.db
  CHURN_IMAGE           component image used when compiling; default from the package version
"""


def build_parser() -> argparse.ArgumentParser:
    """Builds the argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="churn",
        description="Customer-churn prediction that keeps learning, on Kubeflow Pipelines. "
        "Runs the same pipelines locally (kfp.local, no cluster) or on Kubeflow.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"churn-kfp {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name in COMMANDS:
        importlib.import_module(f"churn_kfp.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``churn`` script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
