"""The ``churn`` command line: it parses arguments and hands the work to the layers below.

``main`` is the entry point; each other module adds its sub-commands: ``run``, ``retrain``
(``retrain`` and ``simulate``), ``compile``, ``importer`` (``import``), ``cluster``
(``submit`` and ``schedule``) and ``serve`` (``serve`` and ``predict``). ``options`` builds
the protocol options from :class:`churn_kfp.core.protocol.Protocol`.
"""

__all__ = ["cluster", "compile", "importer", "main", "options", "retrain", "run", "serve"]
