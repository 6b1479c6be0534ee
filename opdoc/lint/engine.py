"""Running the rules over a set of paths."""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from . import rules as _rules  # noqa: F401  (fills the registry)
from .context import BUILTIN_SYMBOLS, LintContext, LintDoc, find_specs_root, load_doc, load_symbol_meanings
from .mermaid import MermaidUnavailable, parse_diagrams
from .registry import RULES, Finding

__all__ = ["LintReport", "collect", "lint_paths"]

_SKIP_DIRS = {"node_modules", ".git", ".venv", "__pycache__"}


@dataclass
class LintReport:
    findings: list[Finding] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    diagrams: int = 0
    mermaid_seconds: float = 0.0
    mermaid_problem: str | None = None

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def exit_code(self) -> int:
        return 1 if self.errors else 0

    def by_rule(self) -> Counter[str]:
        return Counter(f.rule for f in self.findings)

    def rule_ids(self, severity: str | None = None) -> set[str]:
        return {f.rule for f in self.findings if severity is None or f.severity == severity}


def _display(path: Path) -> str:
    text = str(path)
    return text[2:] if text.startswith("./") else text


def collect(paths: Iterable[str | os.PathLike[str]]) -> list[LintDoc | tuple[Path, str]]:
    """Expand arguments: a directory means the op-*.md files below it."""
    items: list[LintDoc | tuple[Path, str]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("op-*.md")
                if not (set(p.relative_to(path).parts[:-1]) & _SKIP_DIRS) and not any(
                    part.startswith(".") for part in p.relative_to(path).parts[:-1]
                )
            )
            if not found:
                items.append(LintDoc(path=path, display=_display(path), empty_dir=True))
            items.extend((p, _display(p)) for p in found)
        else:
            items.append((path, _display(path)))
    return items


def lint_paths(
    paths: Sequence[str | os.PathLike[str]],
    *,
    source: str | os.PathLike[str] | None = None,
    mermaid: bool = True,
    symbols: Iterable[str] | dict[str, str] | None = None,
    specs: str | os.PathLike[str] | bool | None = None,
) -> LintReport:
    """Lint ``paths`` (files or directories) and return every finding.

    ``symbols``: the knowledge base's dimension symbols (names, or names with meanings); by default
    read from ``specs/*/model.yaml``.  ``specs``: the directory holding opdoc's ``specs/`` to compare
    pages with (default: found like the symbols), or False for no spec comparison."""
    context = LintContext(mermaid=mermaid)
    if source is not None:
        context.source = Path(source)
        if not context.source.is_dir():
            raise NotADirectoryError(f"--source {source}: not a directory")
    # The knowledge base's symbols add to the template's own.
    if symbols is None:
        context.kb_meanings, origin = load_symbol_meanings()
        origin = origin or "no knowledge base"
    else:
        given = symbols if isinstance(symbols, dict) else {name: "" for name in symbols}
        context.kb_meanings, origin = {str(k): str(v) for k, v in given.items()}, "the symbols given to the linter"
    context.symbols = BUILTIN_SYMBOLS | frozenset(context.kb_meanings)
    context.symbols_origin = f"the template's built-in list and {origin}"
    if specs is None:
        context.specs_root = find_specs_root()
    elif specs is not False:
        context.specs_root = Path(specs)

    docs: list[LintDoc] = []
    for item in collect(paths):
        docs.append(item if isinstance(item, LintDoc) else load_doc(item[0], item[1], max_bytes=context.max_bytes))

    report = LintReport(files=[d.display for d in docs if not d.empty_dir])
    if mermaid:
        _parse_all_diagrams(docs, context, report)

    for doc in docs:
        for registered in sorted(RULES.values(), key=lambda r: r.id):
            if doc.empty_dir and registered.id != "OD006":
                continue
            if registered.stage == "content" and doc.md is None:
                continue
            # A rule that raises is a bug in the linter, not in the document:
            # it keeps its traceback (bad input files are findings, see rules/files.py).
            report.findings.extend(registered.check(doc, context))
    order = {doc.display: index for index, doc in enumerate(docs)}
    report.findings.sort(key=lambda f: (order.get(f.path, len(order)), f.line, f.rule, f.message))
    return report


def _parse_all_diagrams(docs: list[LintDoc], context: LintContext, report: LintReport) -> None:
    keys: list[tuple[str, int]] = []
    sources: list[str] = []
    for doc in docs:
        if doc.md is None:
            continue
        for block in doc.md.code_blocks:
            if block.lang == "mermaid":
                keys.append((doc.display, block.line))
                sources.append(block.text)
    report.diagrams = len(sources)
    if not sources:
        return
    started = time.perf_counter()
    try:
        results = parse_diagrams(sources)
    except MermaidUnavailable as exc:
        files = len({key[0] for key in keys})
        context.mermaid_problem = f"{exc} ({len(sources)} diagram(s) in {files} file(s) not checked)"
        report.mermaid_problem = context.mermaid_problem
        return
    finally:
        report.mermaid_seconds = context.mermaid_seconds = time.perf_counter() - started
    context.mermaid_results = dict(zip(keys, results))
