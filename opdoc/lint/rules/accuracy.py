"""Accuracy: worked arithmetic is right and cross-references resolve."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

from ..calc import CalcFinding, audit_document
from ..context import LintContext, LintDoc
from ..registry import Finding, finding, rule
from ._common import declared_symbols

_MENTION = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*op-[A-Za-z_][A-Za-z0-9_]*\.md)\b")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _calculations(doc: LintDoc, context: LintContext) -> list[CalcFinding]:
    if "calc" not in doc.cache:
        assert doc.md is not None
        doc.cache["calc"] = audit_document(doc.md, declared_symbols(doc, context))
    return doc.cache["calc"]


@rule("OD901", "error", "Worked arithmetic does not evaluate to the value it states.")
def arithmetic(doc: LintDoc, context: LintContext) -> list[Finding]:
    return [finding("OD901", doc, f.line, f.message) for f in _calculations(doc, context) if f.rule == "OD901"]


@rule("OD903", "error", "A stated total is not the sum of the items listed with it.")
def totals(doc: LintDoc, context: LintContext) -> list[Finding]:
    return [finding("OD903", doc, f.line, f.message) for f in _calculations(doc, context) if f.rule == "OD903"]


@rule("OD902", "error", "A linked or mentioned op-*.md file does not exist next to this document.")
def cross_references(doc: LintDoc, context: LintContext) -> list[Finding]:
    md = doc.md
    assert md is not None
    base = doc.path.parent
    targets: dict[tuple[int, str], str] = {}
    for link in md.links:
        target = unquote(link.target.split("#", 1)[0].split("?", 1)[0])
        if not target or _SCHEME.match(target) or not re.search(r"(?:^|/)op-[^/]*\.md$", target):
            continue
        targets.setdefault((link.line, target), target)
    for number, line in enumerate(md.lines, start=1):
        for match in _MENTION.finditer(line):
            targets.setdefault((number, match.group(1)), match.group(1))
    findings = []
    seen: set[tuple[int, Path]] = set()
    for (number, target), shown in sorted(targets.items()):
        resolved = (base / target).resolve() if not target.startswith("/") else Path(target)
        if (number, resolved) in seen:
            continue
        seen.add((number, resolved))
        if not resolved.is_file():
            findings.append(finding("OD902", doc, number, f"`{shown}` does not exist next to this file"))
    return findings
