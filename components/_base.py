"""The decorator every churn-kfp component uses."""

from __future__ import annotations

import functools

from kfp import dsl

from churn_kfp.orchestration.image import component_image


def churn_component(func=None, **kwargs):
    """``dsl.component`` with the project image and no run-time pip install."""
    decorator = functools.partial(
        dsl.component, base_image=component_image(), install_kfp_package=False, **kwargs
    )
    return decorator(func) if func is not None else decorator
