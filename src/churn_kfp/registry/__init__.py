"""The model registry stage: what a registered churn model is, and who may serve.

``contract`` (threshold tag, P(churn) extraction, scoring rows as served), ``lineage`` (the
data lineage tags of a version), ``gate`` (the quality gate and the promotion rule),
``loading`` (the one safe model loader: skops with trusted types, anything else refused),
``champion`` (finding and loading the version the champion alias points to) and
``register`` (MLflow connection, logging and registering a candidate, promotion).
"""

__all__ = ["champion", "contract", "gate", "lineage", "loading", "register"]
