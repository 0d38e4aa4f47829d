"""Test-wide set-up: the same runtime environment the CLI and the image use."""

from churn_kfp.config import apply_runtime_env

# Before any test imports xgboost (OMP_WAIT_POLICY is read once, at import).
apply_runtime_env()
