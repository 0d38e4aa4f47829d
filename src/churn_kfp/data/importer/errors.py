"""What ``churn import`` raises: a bad mapping, a refused export, a failed write."""

from __future__ import annotations

from typing import Any

__all__ = ["ImportFailed", "ImportRefused", "MappingError"]


class MappingError(ValueError):
    """An import mapping that cannot be used (unknown key, missing column, bad value)."""


class ImportRefused(ValueError):
    """An export that cannot be imported as it is; nothing was written.

    ``str(error)`` reads ``<file>: column '<column>': <problem> (e.g. '<example>'). <hint>``
    leaving out the parts that are ``None``.

    Attributes:
        file: The export (path or name).
        column: The offending source column, or ``None``.
        problem: What is wrong.
        example: An offending value, or ``None``.
        hint: What to change, or ``None``.
    """

    def __init__(
        self,
        file: str,
        column: str | None,
        problem: str,
        example: str | None = None,
        hint: str | None = None,
    ):
        super().__init__(file, column, problem, example, hint)
        self.file = file
        self.column = column
        self.problem = problem
        self.example = example
        self.hint = hint

    def __str__(self) -> str:
        parts = [self.file]
        if self.column is not None:
            parts.append(f"column {self.column!r}")
        problem = self.problem
        if self.example is not None:
            problem += f" (e.g. {self.example!r})"
        parts.append(problem)
        text = ": ".join(parts)
        return f"{text}. {self.hint}" if self.hint else text

    def to_dict(self) -> dict[str, Any]:
        """Returns the refusal as JSON-serialisable fields."""
        return {
            "status": "refused",
            "error": str(self),
            "file": self.file,
            "column": self.column,
            "problem": self.problem,
            "example": self.example,
            "hint": self.hint,
        }


class ImportFailed(RuntimeError):
    """Writing to the landing zone failed midway; what this import wrote was removed."""
