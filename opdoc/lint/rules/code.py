"""Code: python blocks parse and indent by four spaces; fences are closed."""

from __future__ import annotations

import io
import tokenize

from ..context import LintContext, LintDoc
from ..registry import Finding, finding, rule
from ._common import python_blocks
from .constructor import parse_python


@rule("OD601", "error", "A ```python block is not valid Python syntax.")
def python_parses(doc: LintDoc, context: LintContext) -> list[Finding]:
    md = doc.md
    assert md is not None
    findings = []
    for block in python_blocks(md):
        tree, error, _ = parse_python(block.text)
        if tree is None:
            assert error is not None
            line = block.first_text_line + max((error.lineno or 1) - 1, 0)
            findings.append(
                finding("OD601", doc, line, f"python block does not parse: {error.msg} (label it ```text if it is not code)")
            )
    return findings


@rule("OD602", "error", "A ```python block indents with tabs or by other than 4 spaces per level.")
def python_indentation(doc: LintDoc, context: LintContext) -> list[Finding]:
    md = doc.md
    assert md is not None
    findings = []
    for block in python_blocks(md):
        tree, _, source = parse_python(block.text)
        if tree is None:
            continue
        stack = [0]
        reported: set[int] = set()
        try:
            for token in tokenize.generate_tokens(io.StringIO(source).readline):
                if token.type == tokenize.INDENT:
                    line = block.first_text_line + token.start[0] - 1
                    width = len(token.string.expandtabs(8))
                    if "\t" in token.string and line not in reported:
                        reported.add(line)
                        findings.append(finding("OD602", doc, line, "indented with a tab; use 4 spaces per level"))
                    elif width - stack[-1] != 4 and line not in reported:
                        reported.add(line)
                        findings.append(
                            finding("OD602", doc, line, f"indented {width - stack[-1]} spaces deeper than its block; use 4")
                        )
                    stack.append(width)
                elif token.type == tokenize.DEDENT and len(stack) > 1:
                    stack.pop()
        except (tokenize.TokenError, IndentationError, SyntaxError):
            continue
    return findings


@rule("OD603", "error", "A code fence is opened but never closed.")
def fences_closed(doc: LintDoc, context: LintContext) -> list[Finding]:
    md = doc.md
    assert md is not None
    return [
        finding("OD603", doc, block.line, "this code fence is never closed; the rest of the file is swallowed by it")
        for block in md.code_blocks
        if not block.closed
    ]
