"""Traceability: a **Location** ``file.py:START-END`` that points at the class."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..context import LintContext, LintDoc
from ..registry import Finding, finding, rule
from ._common import find_h2

_LABEL = re.compile(r"^\s*(?:[-*+]\s+)?(?:\*\*|__)?Location\s*(?::\s*)?(?:\*\*|__)?\s*:?\s*(?P<rest>.*)$", re.IGNORECASE)
_RANGE = re.compile(r"`?(?<![^\s`:()\[\]])(?P<file>[^\s`:()\[\]]+\.py):(?P<start>\d+)\s*[-–]\s*(?P<end>\d+)`?")


@dataclass(frozen=True)
class Location:
    line: int
    file: str | None
    start: int | None
    end: int | None
    text: str


def find_location(doc: LintDoc) -> Location | None:
    """The document's **Location** line, preferring Constructor Information."""
    md = doc.md
    assert md is not None
    constructor = find_h2(md, "Constructor Information")
    found: list[Location] = []
    for number, text in md.prose_lines():
        label = _LABEL.match(text)
        if not label:
            continue
        rest = label.group("rest")
        match = _RANGE.search(rest)
        if match:
            location = Location(number, match.group("file"), int(match.group("start")), int(match.group("end")), rest)
        else:
            location = Location(number, None, None, None, rest)
        if constructor is not None and constructor.contains(number):
            return location
        found.append(location)
    return found[0] if found else None


@rule("OD301", "error", "Constructor Information lacks a **Location** of the form `file.py:START-END`.")
def location_present(doc: LintDoc, context: LintContext) -> list[Finding]:
    md = doc.md
    assert md is not None
    location = find_location(doc)
    if location is None:
        section = find_h2(md, "Constructor Information")
        line = section.start if section else 1
        return [finding("OD301", doc, line, "no **Location**: `path/to/file.py:START-END` line for traceability")]
    if location.file is None:
        return [
            finding(
                "OD301",
                doc,
                location.line,
                f"**Location** `{location.text.strip()[:80]}` does not give a file and line range like `path/file.py:120-164`",
            )
        ]
    assert location.start is not None and location.end is not None
    if location.start < 1 or location.end < location.start:
        return [finding("OD301", doc, location.line, f"line range {location.start}-{location.end} is empty or reversed")]
    return []


def resolve_source(root: Path, relative: str) -> Path | None:
    """``root/relative``, or ``root`` joined with a shorter tail of ``relative``."""
    parts = [p for p in PurePosixPath(relative.replace("\\", "/")).parts if p not in ("/", ".", "..")]
    for index in range(len(parts)):
        candidate = root.joinpath(*parts[index:])
        if candidate.is_file():
            return candidate
    return None


def _class_node(tree: ast.AST, name: str) -> ast.ClassDef | None:
    if isinstance(tree, ast.Module):
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name == name:
                return node
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    return None


def _class_name(doc: LintDoc) -> str | None:
    if doc.class_name:
        return doc.class_name
    md = doc.md
    assert md is not None
    h1 = next((h for h in md.headings if h.level == 1), None)
    return re.sub(r"[`*_]", "", h1.title).strip() if h1 else None


@rule("OD302", "error", "With --source, the Location's line range must start where the class is defined today.")
def location_current(doc: LintDoc, context: LintContext) -> list[Finding]:
    if context.source is None:
        return []
    location = find_location(doc)
    if location is None or location.file is None or location.start is None or location.end is None:
        return []
    path = resolve_source(context.source, location.file)
    if path is None:
        return []
    name = _class_name(doc)
    try:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError) as exc:
        return [finding("OD302", doc, location.line, f"cannot check the range: {path} does not parse ({exc})")]
    node = _class_node(tree, name) if name else None
    if node is None:
        return [finding("OD302", doc, location.line, f"{path} defines no class `{name}`")]
    starts = {node.lineno} | {decorator.lineno for decorator in node.decorator_list}
    end = node.end_lineno or node.lineno
    line_count = len(source.splitlines())
    findings = []
    if location.start not in starts:
        findings.append(
            finding(
                "OD302",
                doc,
                location.line,
                f"line range starts at {location.start}, but `class {name}` is at line {node.lineno} of {path} "
                f"(the class spans {node.lineno}-{end} today)",
            )
        )
    elif location.end > line_count:
        findings.append(
            finding("OD302", doc, location.line, f"line range ends at {location.end}, past the end of {path} ({line_count} lines)")
        )
    return findings


@rule("OD303", "warning", "With --source, the Location's file was not found under the source directory.")
def location_file_missing(doc: LintDoc, context: LintContext) -> list[Finding]:
    if context.source is None:
        return []
    location = find_location(doc)
    if location is None or location.file is None:
        return []
    if resolve_source(context.source, location.file) is None:
        return [
            finding("OD303", doc, location.line, f"`{location.file}` is not under {context.source}; line range not verified")
        ]
    return []
