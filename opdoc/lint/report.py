"""Output formats: text (for people), github (workflow annotations), json."""

from __future__ import annotations

import json

from .engine import LintReport
from .registry import RULES

__all__ = ["FORMATS", "format_github", "format_json", "format_text"]


def format_text(report: LintReport) -> str:
    lines = [f"{f.path}:{f.line}: {f.rule} {f.severity}: {f.message}" for f in report.findings]
    counts = report.by_rule()
    if counts:
        lines.append("")
        lines.append("Summary by rule:")
        for rule_id in sorted(counts):
            registered = RULES.get(rule_id)
            severity = registered.severity if registered else "error"
            description = registered.description if registered else ""
            lines.append(f"  {rule_id}  {severity:<7}  {counts[rule_id]:>4}  {description}")
    errors, warnings = len(report.errors), len(report.warnings)
    files = len(report.files)
    tail = f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)} in {files} file{'s' * (files != 1)}"
    if report.diagrams and report.mermaid_problem is None:
        tail += f" ({report.diagrams} mermaid diagram{'s' * (report.diagrams != 1)} parsed in {report.mermaid_seconds:.1f} s)"
    lines.append(tail)
    return "\n".join(lines) + "\n"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def format_github(report: LintReport) -> str:
    lines = [
        f"::{f.severity} file={_escape_property(f.path)},line={f.line}::{_escape_data(f.rule + ' ' + f.message)}"
        for f in report.findings
    ]
    return "\n".join(lines) + ("\n" if lines else "")


def format_json(report: LintReport) -> str:
    return json.dumps([f.to_dict() for f in report.findings], indent=2, ensure_ascii=False) + "\n"


FORMATS = {"text": format_text, "github": format_github, "json": format_json}
