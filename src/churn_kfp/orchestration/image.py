"""The one place that says which container image every component runs in."""

from __future__ import annotations

import os

from churn_kfp import __version__

IMAGE_REPOSITORY = "ghcr.io/churn-kfp/churn-kfp"


def component_image(environ: dict[str, str] | None = None) -> str:
    """Returns the component image reference.

    The tag is the package version (never ``latest``); ``CHURN_IMAGE`` overrides the
    whole reference at compile time (``IMAGE=registry/churn:tag make compile``).

    Raises:
        ValueError: If the override has no tag or uses ``latest``.
    """
    env = os.environ if environ is None else environ
    image = env.get("CHURN_IMAGE") or f"{IMAGE_REPOSITORY}:{__version__}"
    name = image.rsplit("/", 1)[-1]
    if "@sha256:" not in image and (":" not in name or name.endswith(":latest")):
        raise ValueError(
            f"component image {image!r} must carry an explicit tag or digest (not 'latest')"
        )
    return image
