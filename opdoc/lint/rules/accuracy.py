"""Accuracy: worked arithmetic is right and cross-references resolve."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

from ..arith import audit_line
from ..context import LintContext, LintDoc
from ..registry import Finding, finding, rule

_MENTION = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*op-[A-Za-z_][A-Za-z0-9_]*\.md)\b")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


@rule("OD901", "error", "Worked arithmetic in a code block does not evaluate to the value it states.")
def arithmetic(doc: LintDoc, context: LintContext) -> list[Finding]:
    md = doc.md
    assert md is not None
    findings = []
    for block in md.code_blocks:
        if block.lang == "mermaid":
            continue
        for offset, line in enumerate(block.text_lines):
            for issue in audit_line(line):
                findings.append(finding("OD901", doc, block.first_text_line + offset, f"arithmetic: {issue.message}"))
    return findings


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
