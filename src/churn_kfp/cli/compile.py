"""``churn compile``: write the pipeline YAML files."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

_FRESH_PROCESS = "CHURN_COMPILE_FRESH_PROCESS"


def compile_pipelines(out_dir: Path, image: str | None = None) -> list[Path]:
    """Compiles every pipeline into ``out_dir`` and returns the written files.

    Every executor runs in ``image`` (default: :func:`component_image`). The image is
    fixed when the components are first imported; if this process imported them with
    another one, the pipelines are compiled in a fresh process with ``CHURN_IMAGE`` set.

    Raises:
        ValueError: ``image`` is not a valid reference (see :func:`component_image`).
        RuntimeError: The compiled YAML still names another image.
    """
    from churn_kfp.orchestration.image import IMAGE_ENV, component_image

    image = component_image({IMAGE_ENV: image} if image else None)
    written = _compile_here(out_dir)
    if _images(written) != {image} and not os.environ.get(_FRESH_PROCESS):
        subprocess.run(
            [sys.executable, "-m", "churn_kfp.cli.main", "compile", "--out-dir", str(out_dir)],
            env={**os.environ, IMAGE_ENV: image, _FRESH_PROCESS: "1"},
            check=True,
            capture_output=True,
        )
    found = _images(written)
    if found != {image}:
        raise RuntimeError(f"compiled executors use {', '.join(sorted(found))}, not {image}")
    return written


def _compile_here(out_dir: Path) -> list[Path]:
    from kfp import compiler

    from churn_kfp.pipelines import registry

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, func in registry.PIPELINES.items():
        path = out_dir / f"{name}.yaml"
        compiler.Compiler().compile(func, str(path))
        written.append(path)
    return written


def _images(paths: list[Path]) -> set[str]:
    """Every executor image named in the compiled pipeline specs."""
    import yaml

    images = set()
    for path in paths:
        spec = next(yaml.safe_load_all(path.read_text()))
        executors = spec["deploymentSpec"]["executors"].values()
        images |= {executor["container"]["image"] for executor in executors}
    return images


def _handle(args: argparse.Namespace) -> int:
    from churn_kfp.orchestration.image import component_image, is_placeholder

    try:
        image = component_image({"CHURN_IMAGE": args.image} if args.image else None)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in compile_pipelines(Path(args.out_dir), image):
        print(f"wrote {path}")
    print(f"components run in image {image}")
    if is_placeholder(image):
        print(
            "note: that is the placeholder image; `churn submit` refuses it. Build and name "
            "your own: IMAGE=<registry>/churn-kfp:<tag> make images compile"
        )
    return 0


def register(subparsers) -> None:
    """Adds the ``compile`` sub-command."""
    parser = subparsers.add_parser(
        "compile",
        help="compile the pipelines to KFP v2 YAML",
        description="Compile the training and retraining pipelines to KFP v2 IR YAML. "
        "--image (or CHURN_IMAGE, or IMAGE with make) chooses the component image.",
    )
    parser.add_argument("--out-dir", default="build/pipelines", help="output folder")
    parser.add_argument(
        "--image",
        help="component image, registry/repo:tag or repo@sha256:... (default: $CHURN_IMAGE)",
    )
    parser.set_defaults(handler=_handle)
