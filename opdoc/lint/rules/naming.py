"""Naming: the file is ``op-<ClassName>.md`` and its H1 is exactly that class."""

from __future__ import annotations

import re

from ..context import LintContext, LintDoc
from ..registry import Finding, finding, rule

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@rule("OD101", "error", "The file name must be op-<ClassName>.md with ClassName a Python identifier.")
def file_name(doc: LintDoc, context: LintContext) -> list[Finding]:
    if doc.class_name is None:
        return [
            finding(
                "OD101",
                doc,
                1,
                f"file name `{doc.path.name}` does not follow `op-<ClassName>.md` (ClassName a Python identifier)",
            )
        ]
    return []


@rule("OD102", "error", "The document opens with one H1 that is exactly the class name, with no formatting.")
def title(doc: LintDoc, context: LintContext) -> list[Finding]:
    md = doc.md
    assert md is not None
    expected = doc.class_name
    h1s = [h for h in md.headings if h.level == 1]
    if not h1s:
        want = f"`# {expected}`" if expected else "`# ClassName`"
        return [finding("OD102", doc, 1, f"no H1 title; the document must open with {want}")]
    findings = []
    first = md.headings[0]
    if first.level != 1:
        findings.append(finding("OD102", doc, first.line, "the H1 title must come before every other heading"))
    for extra in h1s[1:]:
        findings.append(
            finding("OD102", doc, extra.line, f"second H1 `{extra.title}`; only the title is an H1, sections are H2")
        )
    heading = h1s[0]
    if not _IDENTIFIER.match(heading.title):
        bare = re.sub(r"[`*_]", "", heading.title).strip()
        hint = f" (write `# {bare}`)" if _IDENTIFIER.match(bare) else ""
        findings.append(
            finding(
                "OD102",
                doc,
                heading.line,
                f"H1 `{heading.title}` must be the bare class name, without formatting, prefixes or extra words{hint}",
            )
        )
    elif expected is not None and heading.title != expected:
        findings.append(
            finding("OD102", doc, heading.line, f"H1 `{heading.title}` does not match the class `{expected}` named by the file")
        )
    return findings
