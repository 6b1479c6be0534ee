"""Constructor: every ``__init__`` parameter has a bullet, with its default."""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass

from ..context import LintContext, LintDoc
from ..markdown import CodeBlock
from ..registry import Finding, finding, rule
from ._common import PYTHON_LANGS, find_h2

_BULLET = re.compile(r"^(?P<indent>\s*)[-*+]\s+(?:\*\*|__)?`(?P<span>[^`]+)`")
_ANY_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def complete_header(text: str) -> str | None:
    """A bare ``def f(...)`` / ``class C(...)`` header made parseable, or None."""
    stripped = text.strip()
    if not stripped.startswith(("def ", "async def ", "class ")):
        return None
    if stripped.endswith(":"):
        return text.rstrip() + "\n    ..."
    return text.rstrip() + ":\n    ..."


def parse_python(text: str) -> tuple[ast.Module | None, SyntaxError | None, str]:
    """Parse a python block (dedented); bare signatures are completed.  Returns
    the tree (or None), the first syntax error, and the text that was parsed."""
    source = textwrap.dedent(text)
    try:
        return ast.parse(source), None, source
    except SyntaxError as error:
        completed = complete_header(source)
        if completed is not None:
            try:
                return ast.parse(completed), None, completed
            except SyntaxError:
                pass
        return None, error, source
    except ValueError as error:  # NUL bytes and the like
        return None, SyntaxError(str(error)), source


@dataclass(frozen=True)
class Parameter:
    name: str
    line: int  # in the markdown file
    default: ast.expr | None
    default_source: str | None


def _signature_names(doc: LintDoc) -> tuple[str, ...]:
    """A class page shows ``def __init__``; a helper function's page (the template's abbreviated form
    for utility functions) shows the function's own ``def <name>``."""
    return ("__init__", doc.class_name) if doc.class_name else ("__init__",)


def signature_block(doc: LintDoc) -> CodeBlock | None:
    md = doc.md
    assert md is not None
    section = find_h2(md, "Constructor Information")
    if section is None:
        return None
    for block in md.blocks_in(section.start, section.end):
        if block.lang in PYTHON_LANGS + ("",) and any(f"def {name}(" in block.text for name in _signature_names(doc)):
            return block
    return None


def signature_parameters(block: CodeBlock, names: tuple[str, ...] = ("__init__",)) -> tuple[list[Parameter] | None, str]:
    tree, error, source = parse_python(block.text)
    if tree is None:
        assert error is not None
        line = block.first_text_line + max((error.lineno or 1) - 1, 0)
        return None, f"line {line}: {error.msg}"
    init = next(
        (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name in names),
        None,
    )
    if init is None:
        return None, "no `def __init__` in the block"
    args = init.args
    positional = list(args.posonlyargs) + list(args.args)
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    pairs: list[tuple[ast.arg, ast.expr | None]] = list(zip(positional, defaults))
    if pairs and pairs[0][0].arg in ("self", "cls"):
        pairs = pairs[1:]
    if args.vararg is not None:
        pairs.append((args.vararg, None))
    pairs.extend(zip(args.kwonlyargs, args.kw_defaults))
    if args.kwarg is not None:
        pairs.append((args.kwarg, None))
    parameters = []
    for arg, default in pairs:
        default_source = ast.get_source_segment(source, default) if default is not None else None
        parameters.append(Parameter(arg.arg, block.first_text_line + arg.lineno - 1, default, default_source))
    return parameters, ""


def documented_bullets(doc: LintDoc) -> dict[str, tuple[int, str]]:
    """name -> (line, bullet text with its continuation lines), first bullet wins."""
    md = doc.md
    assert md is not None
    section = find_h2(md, "Constructor Information")
    if section is None:
        return {}
    lines = list(md.prose_lines(section.start, section.end))
    bullets: dict[str, tuple[int, str]] = {}
    # "**Parameters** (all from `config`):" documents `config` through the bullets that follow
    for number, text in lines:
        header = re.match(r"^\s*(?:\*\*|__)Parameters(?:\*\*|__)?(.*)$", text)
        if header:
            for name in re.findall(r"`([A-Za-z_]\w*)`", header.group(1)):
                bullets.setdefault(name, (number, text))
    for position, (number, text) in enumerate(lines):
        match = _BULLET.match(text)
        if not match:
            continue
        name_match = re.match(r"\**([A-Za-z_]\w*)", match.group("span").strip())
        if not name_match:
            continue
        body = [text]
        for later_number, later in lines[position + 1 :]:
            if not later.strip() or _ANY_BULLET.match(later) or later_number != number + len(body):
                break
            body.append(later)
        bullets.setdefault(name_match.group(1), (number, " ".join(part.strip() for part in body)))
    return bullets


def _default_stated(text: str, parameter: Parameter) -> bool:
    lowered = text.lower()
    if "default" not in lowered:
        return False
    after = text[lowered.index("default") :]
    node = parameter.default
    assert node is not None
    for candidate in {parameter.default_source, ast.unparse(node)}:
        if candidate and candidate in text:
            return True
    value: object = None
    if isinstance(node, ast.Constant):
        value = node.value
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        operand = node.operand.value
        value = -operand if isinstance(operand, (int, float)) and not isinstance(operand, bool) else None
    if value is None or isinstance(value, bool):
        word = str(value)
        return re.search(rf"\b{word}\b", after, re.IGNORECASE) is not None
    if isinstance(value, (int, float)):
        for number in _NUMBER.findall(after):
            try:
                if float(number) == float(value):
                    return True
            except ValueError:
                continue
        return False
    if isinstance(value, str):
        return value in after
    return False


@rule("OD401", "error", "Constructor Information shows no parseable `def __init__(...)` Signature block.")
def signature_present(doc: LintDoc, context: LintContext) -> list[Finding]:
    md = doc.md
    assert md is not None
    section = find_h2(md, "Constructor Information")
    if section is None:
        return []
    block = signature_block(doc)
    if block is None:
        return [finding("OD401", doc, section.start, "no **Signature** code block with `def __init__(...)`")]
    parameters, problem = signature_parameters(block, _signature_names(doc))
    if parameters is None:
        return [finding("OD401", doc, block.line, f"the Signature block does not parse as Python ({problem})")]
    return []


def _parameters_and_bullets(doc: LintDoc) -> tuple[list, dict]:
    """The Signature's parameters (empty when there is none to read) and the Parameters bullets."""
    block = signature_block(doc)
    parameters = signature_parameters(block, _signature_names(doc))[0] if block is not None else None
    return (parameters or []), (documented_bullets(doc) if parameters else {})


@rule("OD402", "error", "A constructor parameter from the Signature has no `name` bullet under Parameters.")
def parameters_documented(doc: LintDoc, context: LintContext) -> list[Finding]:
    parameters, bullets = _parameters_and_bullets(doc)
    return [
        finding(
            "OD402",
            doc,
            parameter.line,
            f"constructor parameter `{parameter.name}` is not documented (add a **Parameters** bullet starting with `{parameter.name}`)",
        )
        for parameter in parameters
        if parameter.name not in bullets
    ]


@rule("OD403", "error", "A documented constructor parameter does not state the default the Signature gives it.")
def defaults_documented(doc: LintDoc, context: LintContext) -> list[Finding]:
    parameters, bullets = _parameters_and_bullets(doc)
    findings = []
    for parameter in parameters:
        if parameter.default is None or parameter.name not in bullets:
            continue
        line, text = bullets[parameter.name]
        if _default_stated(text, parameter):
            continue
        shown = parameter.default_source or ast.unparse(parameter.default)
        if "default" in text.lower():
            message = f"`{parameter.name}` states a default, but not the signature's `{shown}`"
        else:
            message = f"`{parameter.name}` defaults to `{shown}` in the signature; say so in its bullet (default: {shown})"
        findings.append(finding("OD403", doc, line, message))
    return findings
