"""churn-kfp: customer-churn prediction that keeps learning, on Kubeflow Pipelines."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("churn-kfp")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"
