"""The single rule registry.

Every check is a function ``(doc, context) -> list[Finding]`` registered with
the :func:`rule` decorator, which refuses a second rule with an id already in
use.  ``severity`` is ``"error"`` for a failed Quality Checklist item and
``"warning"`` for advice.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    from .context import LintContext, LintDoc

__all__ = ["Finding", "Rule", "RULES", "SEVERITIES", "finding", "rule"]

SEVERITIES = ("error", "warning")
_ID = re.compile(r"^OD\d{3}$")


@dataclass(frozen=True, order=True)
class Finding:
    path: str
    line: int
    rule: str
    severity: str
    message: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


CheckFn = Callable[["LintDoc", "LintContext"], "list[Finding]"]


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str
    description: str
    check: CheckFn
    stage: str  # "file": runs on every path; "content": only on readable markdown


RULES: dict[str, Rule] = {}


def rule(rule_id: str, severity: str, description: str, *, stage: str = "content") -> Callable[[CheckFn], CheckFn]:
    """Register the decorated check under ``rule_id``."""
    if not _ID.match(rule_id):
        raise ValueError(f"rule id {rule_id!r} must look like OD123")
    if severity not in SEVERITIES:
        raise ValueError(f"rule {rule_id}: severity must be one of {SEVERITIES}, not {severity!r}")
    if stage not in ("file", "content"):
        raise ValueError(f"rule {rule_id}: unknown stage {stage!r}")
    if not description or "\n" in description:
        raise ValueError(f"rule {rule_id}: description must be one non-empty line")

    def register(fn: CheckFn) -> CheckFn:
        if rule_id in RULES:
            raise ValueError(f"duplicate rule id {rule_id}: already used by {RULES[rule_id].check.__qualname__}")
        RULES[rule_id] = Rule(rule_id, severity, description, fn, stage)
        return fn

    return register


def finding(rule_id: str, doc: "LintDoc", line: int, message: str) -> Finding:
    """Build a finding for ``rule_id`` with the rule's registered severity."""
    registered = RULES[rule_id]
    return Finding(doc.display, max(int(line), 1), rule_id, registered.severity, message)
