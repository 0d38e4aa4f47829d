"""The one place that says which container image every component runs in."""

from __future__ import annotations

import os
import re

from churn_kfp import __version__

IMAGE_REPOSITORY = "ghcr.io/churn-kfp/churn-kfp"
"""The placeholder repository: nobody publishes it, so a cluster cannot pull from it."""

IMAGE_ENV = "CHURN_IMAGE"
"""The variable that names the image (``make`` sets it from ``IMAGE``)."""

BUILD_HELP = (
    "build and push the image where a Docker engine runs "
    "(`IMAGE=registry.example.com/ml/churn-kfp:0.1.0 make images`), then name the same "
    "image when you submit: `IMAGE=... make submit`, `churn submit --image ...` or "
    f"{IMAGE_ENV}=...; a digest pins it (`registry.example.com/ml/churn-kfp@sha256:<64 hex>`)"
)

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


class PlaceholderImageError(ValueError):
    """The pipelines would run in the placeholder image, which no registry serves."""


def component_image(environ: dict[str, str] | None = None) -> str:
    """Returns the component image reference.

    The tag is the package version (never ``latest``); ``CHURN_IMAGE`` overrides the
    whole reference at compile time (``IMAGE=registry/churn:tag make compile``). A
    reference with a digest (``repo@sha256:<64 hex>``, with or without a tag) is kept
    verbatim, so the cluster pulls exactly that image.

    Raises:
        ValueError: If the override has no tag or digest, uses ``latest``, or has a
            malformed digest.
    """
    env = os.environ if environ is None else environ
    image = (env.get(IMAGE_ENV) or "").strip() or f"{IMAGE_REPOSITORY}:{__version__}"
    if "@" in image:
        if not _DIGEST.search(image):
            raise ValueError(
                f"component image {image!r}: a digest must read @sha256:<64 lowercase hex>"
            )
        return image
    name = image.rsplit("/", 1)[-1]
    if ":" not in name or name.endswith(":latest"):
        raise ValueError(
            f"component image {image!r} must carry an explicit tag or digest (not 'latest')"
        )
    return image


def repository_of(image: str) -> str:
    """The repository part of an image reference (without tag or digest)."""
    without_digest = image.split("@", 1)[0]
    head, _, name = without_digest.rpartition("/")
    name = name.split(":", 1)[0]
    return f"{head}/{name}" if head else name


def is_placeholder(image: str) -> bool:
    """Whether ``image`` lives in the placeholder repository nobody publishes."""
    return repository_of(image) == IMAGE_REPOSITORY


def require_published_image(image: str) -> str:
    """Returns ``image`` unless it is the placeholder.

    Raises:
        PlaceholderImageError: The image is in the placeholder repository; the message
            says how to build and name a real one.
    """
    if is_placeholder(image):
        raise PlaceholderImageError(
            f"the pipelines would run in the placeholder image {image}, which no registry "
            f"serves, so every step would fail to pull it: {BUILD_HELP}"
        )
    return image
