"""One module per ``churn`` sub-command; each exposes ``register(subparsers)``."""
