"""churn-kfp: customer-churn prediction that keeps learning, on Kubeflow Pipelines.

One package per stage, dependencies pointing down (README, "Layout"): ``cli`` → ``runs`` →
``pipelines`` → ``components`` → ``orchestration``, ``serving``, ``loop``, ``registry``,
``learn``, ``data`` → ``core``.
"""

from importlib.metadata import PackageNotFoundError, version

__all__ = [
    "cli",
    "components",
    "core",
    "data",
    "learn",
    "loop",
    "orchestration",
    "pipelines",
    "registry",
    "runs",
    "serving",
]

try:
    __version__ = version("churn-kfp")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"
