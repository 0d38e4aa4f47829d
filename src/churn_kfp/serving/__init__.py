"""Serving: the promoted model over the V2 (Open Inference) protocol, locally and on KServe.

``server`` runs MLServer on this machine with ``runtime``, the validating runtime (typed
inputs, 422s naming fields, ``churn_probability`` and ``churn`` outputs, models loaded skops
only) whose hot path is ``lean`` (validated numpy columns straight into the booster);
``launch`` starts MLServer with the request size ``limits``; ``client`` calls any V2
endpoint from DataFrames; ``deploy`` is the pipelines' last step (a manifest locally, the
KServe InferenceService on a cluster), with ``smoke``, its check that the served model
answers what was registered.
"""

__all__ = ["client", "deploy", "launch", "lean", "limits", "runtime", "server", "smoke"]
