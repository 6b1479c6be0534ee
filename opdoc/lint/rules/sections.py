"""Sections: the template's H2 sections, their order and their titles."""

from __future__ import annotations

import re

from ..context import LintContext, LintDoc
from ..markdown import Section
from ..registry import Finding, finding, rule
from ._common import (
    ALL_H2,
    FLOPS_TITLES,
    MEMORY_TITLES,
    PYTHON_LANGS,
    REQUIRED_H2,
    find_flops,
    find_h2,
    find_memory,
    normalize_title,
    recognised_h2,
)


def _recognised(doc: LintDoc) -> list[tuple[int, Section, bool]]:
    assert doc.md is not None
    return recognised_h2(doc.md)


@rule("OD201", "error", "A required section (template sections 2-9) is missing.")
def missing_sections(doc: LintDoc, context: LintContext) -> list[Finding]:
    md = doc.md
    assert md is not None
    present = {index: section for index, section, _ in reversed(_recognised(doc))}
    findings = []
    for index, title in enumerate(REQUIRED_H2):
        if index in present:
            continue
        later = [present[i].start for i in present if i > index]
        line = min(later) if later else max(md.line_count, 1)
        before = next((REQUIRED_H2[i] for i in range(index - 1, -1, -1) if i in present), None)
        where = f"after `## {before}`" if before else "right after the H1 title"
        findings.append(finding("OD201", doc, line, f"missing section `## {title}` (it belongs {where})"))
    return findings


def _longest_increasing(indices: list[int]) -> set[int]:
    """Positions (into ``indices``) of one longest strictly increasing run."""
    if not indices:
        return set()
    best_len = [1] * len(indices)
    previous = [-1] * len(indices)
    for i in range(len(indices)):
        for j in range(i):
            if indices[j] < indices[i] and best_len[j] + 1 > best_len[i]:
                best_len[i] = best_len[j] + 1
                previous[i] = j
    position = max(range(len(indices)), key=lambda k: (best_len[k], -k))
    keep = set()
    while position != -1:
        keep.add(position)
        position = previous[position]
    return keep


@rule("OD202", "error", "Template sections appear out of the template's order, or twice.")
def section_order(doc: LintDoc, context: LintContext) -> list[Finding]:
    findings = []
    seen: dict[int, Section] = {}
    ordered: list[tuple[int, Section]] = []
    for index, section, _ in _recognised(doc):
        if index in seen:
            findings.append(
                finding(
                    "OD202",
                    doc,
                    section.start,
                    f"section `## {ALL_H2[index]}` appears again (first at line {seen[index].start})",
                )
            )
            continue
        seen[index] = section
        ordered.append((index, section))
    keep = _longest_increasing([index for index, _ in ordered])
    for position, (index, section) in enumerate(ordered):
        if position in keep:
            continue
        kept_before = [ordered[k][0] for k in sorted(keep) if ordered[k][0] < index]
        anchor = f"after `## {ALL_H2[max(kept_before)]}`" if kept_before else "before the other sections"
        findings.append(
            finding(
                "OD202",
                doc,
                section.start,
                f"section `## {ALL_H2[index]}` is out of order; the template puts it {anchor}",
            )
        )
    return findings


@rule("OD203", "error", "The FLOP section lacks its `### FLOPs` or `### Memory Usage` subsection.")
def cost_subsections(doc: LintDoc, context: LintContext) -> list[Finding]:
    md = doc.md
    assert md is not None
    parent = find_h2(doc.md, "FLOP Count and Memory Usage Impact")
    if parent is None:
        return []
    findings = []
    if find_flops(md) is None:
        findings.append(
            finding("OD203", doc, parent.start, "no `### FLOPs` (or `### FLOPs (per forward pass)`) subsection here")
        )
    if find_memory(md) is None:
        findings.append(finding("OD203", doc, parent.start, "no `### Memory Usage` subsection here"))
    return findings


@rule("OD204", "warning", "An H2 section the template does not define (consider folding it into a template section).")
def extra_sections(doc: LintDoc, context: LintContext) -> list[Finding]:
    md = doc.md
    assert md is not None
    findings = []
    known = {section.start for _, section, _ in _recognised(doc)}
    for section in md.sections(2):
        if section.start not in known:
            hint = ""
            if normalize_title(section.title).startswith("optimization"):
                hint = "; the template lists optimization opportunities under `## Key Performance Characteristics`"
            findings.append(
                finding("OD204", doc, section.start, f"extra section `## {section.title}` is not in the template{hint}")
            )
    return findings


@rule("OD205", "error", "A template heading is present but not worded exactly as the template words it.")
def heading_wording(doc: LintDoc, context: LintContext) -> list[Finding]:
    md = doc.md
    assert md is not None
    findings = []
    for index, section, exact in _recognised(doc):
        if not exact:
            findings.append(
                finding(
                    "OD205",
                    doc,
                    section.start,
                    f"heading `## {section.title}` is misworded: the template's section is `## {ALL_H2[index]}`",
                )
            )
    flops = find_flops(md)
    if flops is not None and flops.title not in FLOPS_TITLES:
        findings.append(
            finding("OD205", doc, flops.start, f"heading `### {flops.title}` should read `### FLOPs (per forward pass)` or `### FLOPs`")
        )
    memory = find_memory(md)
    if memory is not None and memory.title not in MEMORY_TITLES:
        findings.append(finding("OD205", doc, memory.start, f"heading `### {memory.title}` should read `### Memory Usage`"))
    return findings


# A subclass of another module (not of nn.Module itself) may inherit its forward unchanged.
_INHERITS_FORWARD = re.compile(r"^\s*class\s+\w+\s*\((?!\s*(?:torch\.)?(?:nn\.)?Module\s*\))[\w.]+\s*\)\s*:", re.MULTILINE)


@rule("OD206", "error", "Usage Pattern shows no code example, or Definition shows no Python class with its forward.")
def examples_present(doc: LintDoc, context: LintContext) -> list[Finding]:
    md = doc.md
    assert md is not None
    findings = []
    usage = find_h2(md, "Usage Pattern")
    if usage is not None and not md.blocks_in(usage.start, usage.end):
        findings.append(finding("OD206", doc, usage.start, "`## Usage Pattern` has no code block with a usage example"))
    definition = find_h2(md, "Definition")
    if definition is None:
        return findings
    code = [block.text for block in md.blocks_in(definition.start, definition.end) if block.lang in PYTHON_LANGS]
    if not code:
        findings.append(
            finding("OD206", doc, definition.start, "`## Definition` has no ```python block with the class definition")
        )
    elif any(re.search(r"^\s*class\s", text, re.MULTILINE) for text in code) and not any(
        re.search(r"\bdef\s+forward\s*\(", text) for text in code
    ) and not any(_INHERITS_FORWARD.search(text) for text in code):
        # the template: "Show constructor signature and forward method"
        findings.append(
            finding("OD206", doc, definition.start, "`## Definition` shows the class without its `forward` method")
        )
    return findings
