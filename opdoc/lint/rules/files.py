"""File-level rules: can the path be read as a markdown op-doc at all?"""

from __future__ import annotations

from ..context import MAX_LINES, LintContext, LintDoc
from ..registry import Finding, finding, rule


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


@rule("OD001", "error", "The file is not markdown (its name does not end in .md).", stage="file")
def not_markdown(doc: LintDoc, context: LintContext) -> list[Finding]:
    if doc.read_error is None and not doc.has_markdown_suffix:
        suffix = doc.path.suffix or "no extension"
        return [finding("OD001", doc, 1, f"not a markdown file ({suffix}); op-docs are `op-<ClassName>.md` files")]
    return []


@rule("OD002", "error", "The file is empty or holds only whitespace.", stage="file")
def empty_file(doc: LintDoc, context: LintContext) -> list[Finding]:
    if doc.has_markdown_suffix and doc.raw is not None and doc.decode_error is None and doc.md is None:
        return [finding("OD002", doc, 1, "the file is empty; an op-doc needs at least sections 1-9 of the template")]
    return []


@rule("OD003", "error", "The file is binary: it holds NUL bytes or is not valid UTF-8.", stage="file")
def binary_file(doc: LintDoc, context: LintContext) -> list[Finding]:
    if doc.decode_error is not None:
        return [finding("OD003", doc, 1, f"not a text file: it {doc.decode_error}")]
    return []


@rule("OD004", "error", "The file is too large to be an op-doc (over 2 MiB: not read; over 20,000 lines: read in part).", stage="file")
def huge_file(doc: LintDoc, context: LintContext) -> list[Finding]:
    if doc.read_error is None and doc.raw is None and doc.size is not None and doc.size > context.max_bytes:
        limit = _megabytes(context.max_bytes)
        return [finding("OD004", doc, 1, f"the file is {_megabytes(doc.size)}, over the {limit} limit; not checked")]
    if doc.line_total is not None:
        return [finding("OD004", doc, MAX_LINES,
                        f"the file has {doc.line_total:,} lines; only the first {MAX_LINES:,} are checked")]
    return []


@rule("OD005", "error", "The path cannot be read (missing, not a regular file, or no permission).", stage="file")
def unreadable(doc: LintDoc, context: LintContext) -> list[Finding]:
    if doc.read_error is not None:
        return [finding("OD005", doc, 1, f"cannot read this path: {doc.read_error}")]
    return []


@rule("OD006", "warning", "A directory given to lint holds no op-*.md file.", stage="file")
def empty_directory(doc: LintDoc, context: LintContext) -> list[Finding]:
    if doc.empty_dir:
        return [finding("OD006", doc, 1, "directory holds no `op-*.md` files; nothing was checked here")]
    return []
