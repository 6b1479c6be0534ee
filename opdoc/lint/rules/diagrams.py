"""Mermaid: Module Internals holds a sequence diagram, and every diagram parses."""

from __future__ import annotations

from ..context import LintContext, LintDoc
from ..markdown import CodeBlock
from ..registry import Finding, finding, rule
from ._common import find_h2


def diagram_kind(block: CodeBlock) -> tuple[str, int]:
    """The first meaningful word of a diagram and its line in the file
    (skipping blank lines, ``%%`` comments and a ``---`` front-matter block)."""
    lines = block.text_lines
    index = 0
    if index < len(lines) and lines[index].strip() == "---":
        index += 1
        while index < len(lines) and lines[index].strip() != "---":
            index += 1
        index += 1
    while index < len(lines):
        stripped = lines[index].strip()
        if stripped and not stripped.startswith("%%"):
            return stripped.split()[0], block.first_text_line + index
        index += 1
    return "", block.line


@rule("OD501", "error", "Module Internals holds no ```mermaid diagram.")
def internals_has_diagram(doc: LintDoc, context: LintContext) -> list[Finding]:
    md = doc.md
    assert md is not None
    section = find_h2(md, "Module Internals")
    if section is None or md.blocks_in(section.start, section.end, "mermaid"):
        return []
    return [finding("OD501", doc, section.start, "`## Module Internals` has no ```mermaid sequence diagram")]


@rule("OD502", "error", "The Module Internals diagram is not a `sequenceDiagram`.")
def internals_is_sequence(doc: LintDoc, context: LintContext) -> list[Finding]:
    md = doc.md
    assert md is not None
    section = find_h2(md, "Module Internals")
    if section is None:
        return []
    blocks = md.blocks_in(section.start, section.end, "mermaid")
    if not blocks or any(diagram_kind(block)[0] == "sequenceDiagram" for block in blocks):
        return []
    kind, line = diagram_kind(blocks[0])
    shown = f"`{kind}`" if kind else "an empty diagram"
    return [finding("OD502", doc, line, f"the diagram starts with {shown}; the template asks for `sequenceDiagram`")]


@rule("OD503", "error", "A mermaid diagram does not parse with mermaid's own parser.")
def diagrams_parse(doc: LintDoc, context: LintContext) -> list[Finding]:
    md = doc.md
    assert md is not None
    findings = []
    for block in md.code_blocks:
        if block.lang != "mermaid":
            continue
        result = context.mermaid_results.get((doc.display, block.line))
        if result is not None and not result.ok:
            findings.append(finding("OD503", doc, block.first_text_line + result.line - 1, result.message))
    return findings


@rule("OD504", "error", "The mermaid check could not run (Chromium, Playwright or mermaid missing); --no-mermaid skips it.")
def diagrams_checkable(doc: LintDoc, context: LintContext) -> list[Finding]:
    md = doc.md
    assert md is not None
    if not context.mermaid or context.mermaid_problem is None or context.mermaid_problem_reported:
        return []
    first = next((block for block in md.code_blocks if block.lang == "mermaid"), None)
    if first is None:
        return []
    context.mermaid_problem_reported = True
    return [finding("OD504", doc, first.line, context.mermaid_problem)]
