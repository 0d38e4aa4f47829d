"""Thin KFP v2 components: each reads its inputs, calls a domain module, writes outputs.

Every component runs in the project image
(:func:`churn_kfp.orchestration.image.component_image`) with
``install_kfp_package=False``: the image already holds the pinned kfp, so nothing is
installed at run time. Heavy imports happen inside the component bodies.
"""

__all__ = [
    "data_generation",
    "deployment",
    "evaluation",
    "features",
    "ingestion",
    "labels",
    "monitoring",
    "registration",
    "sentiment",
    "spark_features",
    "training",
]
