"""``churn compile``: write the pipeline YAML files."""

from __future__ import annotations

import argparse
from pathlib import Path


def compile_pipelines(out_dir: Path) -> list[Path]:
    """Compiles every pipeline into ``out_dir`` and returns the written files."""
    from kfp import compiler

    from churn_kfp.pipelines import registry

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, func in registry.PIPELINES.items():
        path = out_dir / f"{name}.yaml"
        compiler.Compiler().compile(func, str(path))
        written.append(path)
    return written


def _handle(args: argparse.Namespace) -> int:
    from churn_kfp.orchestration.image import component_image

    for path in compile_pipelines(Path(args.out_dir)):
        print(f"wrote {path}")
    print(f"components run in image {component_image()}")
    return 0


def register(subparsers) -> None:
    """Adds the ``compile`` sub-command."""
    parser = subparsers.add_parser(
        "compile",
        help="compile the pipelines to KFP v2 YAML",
        description="Compile the training and retraining pipelines to KFP v2 IR YAML. "
        "Set CHURN_IMAGE (or IMAGE with make) to choose the component image.",
    )
    parser.add_argument("--out-dir", default="build/pipelines", help="output folder")
    parser.set_defaults(handler=_handle)
