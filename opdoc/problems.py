"""User errors with their place (`path:line: field: message`), shared by every stage.

Kept apart from spec.py so that commands which stop early (an unchanged build) import no sympy.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class SpecProblem:
    """One user-facing error: where it is and what to do."""

    path: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        text = f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        # A path or key may hold what no terminal can print (a lone surrogate from a bad file name).
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


class SpecError(Exception):
    """Raised with every problem of a run; the CLI prints them and exits 1."""

    def __init__(self, problems: list[SpecProblem]):
        self.problems = sorted(set(problems))
        super().__init__("\n".join(map(str, self.problems)))
