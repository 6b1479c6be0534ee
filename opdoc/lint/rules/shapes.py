"""Shapes: the forward's input and output shapes are stated, in the
knowledge base's declared dimension symbols."""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass
from typing import Iterator

from ..context import LintContext, LintDoc
from ..registry import Finding, finding, rule
from ..symbols import BUILTIN_MEANINGS, concepts
from ._common import PYTHON_LANGS, definitions, find_h2
from ._common import declared_symbols as doc_symbols

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_ATOM = rf"(?:{_NAME}|\d+)"
_ELEMENT = rf"{_ATOM}(?:\s*(?:\*\*|//|[*×/+\-])\s*{_ATOM})*(?:²|\^2)?"
SHAPE_TUPLE = re.compile(rf"(?<![\w.\]\)])\(\s*(?P<body>{_ELEMENT}(?:\s*,\s*{_ELEMENT})+)\s*,?\s*\)")
_IDENT = re.compile(_NAME)

_UNIT_WORDS = frozenset({"x", "KB", "MB", "GB", "TB", "s", "ms", "us", "ns", "e", "pi"})  # after a number: units
_SYMBOL_LIKE = re.compile(r"^[A-Za-z]{1,2}(?:_[A-Za-z0-9]+)?$")
_DIM_WORD = re.compile(
    r"^(?:batch(?:_size)?|bsz|seq(?:_?len(?:gth)?)?|sequence_length|tokens?|hidden(?:_size|_dim)?|dim|embed_dim"
    r"|channels|height|width|heads|head_dim|features|num_\w+|n_\w+|\w+_(?:len|length|size|dim|heads|tokens|experts|channels))$"
)
_STOP_WORDS = frozenset(
    "a an and or of to in on at by if is it as be we the for not vs via per out e g i ie eg etc see use no".split()
)

# Descriptive names and the symbols that usually stand for them.
_SYNONYMS: dict[str, tuple[str, ...]] = {}
for _words, _symbols in (
    ("batch batch_size bsz", ("B",)),
    ("seq seq_len seqlen seq_length sequence_length num_tokens tokens", ("S",)),
    ("hidden hidden_size hidden_dim dim embed_dim d_model", ("h", "d", "D")),
    ("heads num_heads n_heads num_attention_heads", ("H",)),
    ("head_dim", ("d_h", "d_k", "d_head")),
    ("intermediate_size ffn_dim", ("d_ff",)),
    ("num_experts n_experts n_routed_experts", ("E",)),
    ("channels in_channels", ("C", "C_in")),
    ("height", ("H_img",)),
    ("width", ("W_img",)),
    ("patch_size", ("p",)),
):
    for _word in _words.split():
        _SYNONYMS[_word] = _symbols
# Declared symbols that commonly name the same dimension.
_SAME_DIMENSION = ({"d", "h", "D", "d_model"}, {"d_h", "d_k", "d_head"})

_INPUT_WORDS = re.compile(r"\b(?:input|inputs|entry|args|arguments)\b", re.IGNORECASE)
_OUTPUT_WORDS = re.compile(r"\b(?:output|outputs|out|returns?|result)\b", re.IGNORECASE)
_SAME_SHAPE = re.compile(r"\b(?:same shape as (?:the )?input|shape (?:is )?unchanged|unchanged shape)\b", re.IGNORECASE)
_ARGS_HEADER = re.compile(r"^\s*(?:Args|Arguments|Parameters|Inputs?)\s*:", re.IGNORECASE)
_RETURNS_HEADER = re.compile(r"^\s*(?:Returns?|Outputs?|Yields)\s*:", re.IGNORECASE)


@dataclass(frozen=True)
class Shape:
    line: int
    text: str
    names: tuple[str, ...]
    context: str  # the full line it sits on
    role: str  # "input", "output" or ""


def _classify(names: tuple[str, ...], symbols: frozenset[str]) -> bool:
    """Is a parenthesised tuple with these identifiers a shape?"""
    if all(len(name) == 1 and name.islower() for name in names) and not set(names) <= symbols:
        return False  # (k, v), (x, y): a pair of values, not a shape
    for name in names:
        if name in symbols:
            continue
        if name.lower() in _STOP_WORDS:
            return False
        if not (_SYMBOL_LIKE.match(name) or _DIM_WORD.match(name)):
            return False
    return True


def _python_text_lines(text: str) -> dict[int, str]:
    """Comment and string text of a python block, by 1-based line."""
    found: dict[int, list[str]] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type in (tokenize.COMMENT, tokenize.STRING):
                for offset, piece in enumerate(token.string.split("\n")):
                    found.setdefault(token.start[0] + offset, []).append(piece)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        found = {}
        for number, line in enumerate(text.split("\n"), start=1):
            if "#" in line:
                found[number] = [line.split("#", 1)[1]]
    return {number: " ".join(pieces) for number, pieces in found.items()}


def _scan_units(doc: LintDoc, start: int, end: int) -> Iterator[tuple[int, str, str, str]]:
    """(line, text to search, full line, docstring role) for lines in [start, end]."""
    md = doc.md
    assert md is not None
    for number, text in md.prose_lines(start, end):
        yield number, text, text, ""
    for block in md.blocks_in(start, end):
        lines = block.text_lines
        if block.lang in PYTHON_LANGS:
            searchable = _python_text_lines(block.text)
            role = ""
            for index, line in enumerate(lines, start=1):
                if _ARGS_HEADER.match(line):
                    role = "input"
                elif _RETURNS_HEADER.match(line):
                    role = "output"
                if index in searchable:
                    yield block.first_text_line + index - 1, searchable[index], line, role
                if ('"""' in line or "'''" in line) and not _ARGS_HEADER.match(line):
                    role = ""
        else:
            for index, line in enumerate(lines, start=1):
                yield block.first_text_line + index - 1, line, line, ""


def find_shapes(doc: LintDoc, context: LintContext, start: int = 1, end: int | None = None) -> list[Shape]:
    md = doc.md
    assert md is not None
    last = md.line_count if end is None else end
    key = ("shapes", start, last)
    if key not in doc.cache:
        doc.cache[key] = _find_shapes(doc, context, start, last)
    return doc.cache[key]


def _find_shapes(doc: LintDoc, context: LintContext, start: int, last: int) -> list[Shape]:
    md = doc.md
    assert md is not None
    symbols = doc_symbols(doc, context)
    shapes = []
    for number, searchable, full, docstring_role in _scan_units(doc, start, last):
        line_role: str | None = None  # worked out once per line, not once per shape on it
        for match in SHAPE_TUPLE.finditer(searchable):
            names = tuple(_IDENT.findall(match.group("body")))
            if not _classify(names, symbols):
                continue
            if line_role is None:
                line_role = "output" if _OUTPUT_WORDS.search(full) else "input" if _INPUT_WORDS.search(full) else docstring_role
            shapes.append(Shape(number, match.group(0), names, full, line_role))
    shapes.sort(key=lambda s: s.line)
    return shapes


@rule("OD701", "error", "Module Internals / Key Pseudo Code do not state the forward's input and output shapes.")
def io_shapes(doc: LintDoc, context: LintContext) -> list[Finding]:
    md = doc.md
    assert md is not None
    sections = [s for s in (find_h2(md, "Module Internals"), find_h2(md, "Key Pseudo Code")) if s is not None]
    if not sections:
        return []
    roles: set[str] = set()
    for section in sections:
        roles |= {shape.role for shape in find_shapes(doc, context, section.start, section.end)}
        if any(_SAME_SHAPE.search(text) for _, text in md.prose_lines(section.start, section.end)) or any(
            _SAME_SHAPE.search(block.text) for block in md.blocks_in(section.start, section.end)
        ):
            roles.add("output")
    missing = [role for role in ("input", "output") if role not in roles]
    if not missing:
        return []
    anchor = sections[-1].start
    what = " and ".join(missing)
    return [
        finding(
            "OD701",
            doc,
            anchor,
            f"no {what} shape stated in Module Internals / Key Pseudo Code (e.g. `input: (B, S, h)` in the docstring)",
        )
    ]


def _declared_list(context: LintContext) -> str:
    names = sorted(context.symbols, key=lambda s: (s.lower(), s))
    shown = ", ".join(names[:40]) + (", ..." if len(names) > 40 else "")
    return f"{shown} from {context.symbols_origin}, or define it in the document (`where X = ...`)"


# A symbol is not glued to a word by a hyphen ("deepseek-ai/..." is a name, not ai over something).
_FORMULA_SYMBOL = re.compile(r"(?<![\w.])(?<![A-Za-z]-)([A-Za-z]{1,2}(?:_[A-Za-z0-9]{1,4})?)(?![\w(-])")
# Words written with a slash that are not divisions.
_SLASH_WORDS = re.compile(r"\b(?:I/O|R/W|w/o|n/a)\b")
# Products written with × or * (a "·" between two capitals is a matrix product: Q·Kᵀ).
_PRODUCT = re.compile(r"[A-Za-z_][\w]*\s*[×*]\s*[\w(]|[\w)]\s*[×*]\s*[A-Za-z_]")
_TIMES = re.compile(r"\s*[×*/]\s*$|^\s*(?:[×*/²]|\^)")


def formula_symbols(doc: LintDoc) -> list[tuple[int, str, str]]:
    """(line, symbol, formula text) for the factors of symbolic products in the cost section: the
    ``T`` of ``4 × B × T × d × d_ff``.  Names the page uses in its python code are variables."""
    md = doc.md
    assert md is not None
    section = find_h2(md, "FLOP Count and Memory Usage Impact")
    if section is None:
        return []
    code_names = {name for block in md.code_blocks if block.lang in PYTHON_LANGS for name in _IDENT.findall(block.text)}
    python = {n for b in md.code_blocks if b.lang in PYTHON_LANGS for n in range(b.line, b.end_line + 1)}
    found = []
    for number in range(section.start, section.end + 1):
        text = re.sub(r"\*\*|__", "  ", md.line(number))  # bold is not multiplication
        text = _SLASH_WORDS.sub(lambda m: " " * len(m.group(0)), text)
        if number in python or number in md.comment_lines or not _PRODUCT.search(text):
            continue
        for match in _FORMULA_SYMBOL.finditer(text):
            name = match.group(1)
            before, after = text[: match.start()], text[match.end() :]
            if not (_TIMES.search(before) or _TIMES.match(after)):
                continue  # only factors of a product
            if re.search(r"\d\s*$", before) or name in code_names:
                continue  # "2 B" is two bytes; a python variable is not a dimension
            found.append((number, name, text.strip()))
    return found


@rule("OD702", "error", "A shape or a formula uses a dimension symbol neither the template, the knowledge base nor the page declares.")
def declared_symbols(doc: LintDoc, context: LintContext) -> list[Finding]:
    reported: set[str] = set()
    findings = []
    symbols = doc_symbols(doc, context)
    for number, name, formula in formula_symbols(doc):
        if name in symbols or name in reported or name in _UNIT_WORDS:
            continue
        reported.add(name)
        shown = formula if len(formula) <= 60 else formula[:57] + "..."
        findings.append(
            finding("OD702", doc, number,
                    f"`{name}` in formula `{shown}` is not a declared dimension symbol (declared: {_declared_list(context)})")
        )
    for shape in find_shapes(doc, context):
        for name in shape.names:
            if name in symbols or name in reported or not _SYMBOL_LIKE.match(name):
                continue
            reported.add(name)
            findings.append(
                finding(
                    "OD702",
                    doc,
                    shape.line,
                    f"`{name}` in shape `{shape.text}` is not a declared dimension symbol (declared: {_declared_list(context)})",
                )
            )
    return findings


@rule("OD703", "warning", "Shapes name a dimension inconsistently (spelled-out names, or two symbols for one dimension).")
def consistent_symbols(doc: LintDoc, context: LintContext) -> list[Finding]:
    findings = []
    reported: set[str] = set()
    first_use: dict[str, int] = {}
    symbols = doc_symbols(doc, context)
    for shape in find_shapes(doc, context):
        for name in shape.names:
            first_use.setdefault(name, shape.line)
            if name in symbols or name in reported or _SYMBOL_LIKE.match(name):
                continue
            reported.add(name)
            candidates = [s for s in _SYNONYMS.get(name, ()) if s in symbols]
            hint = f"; write `{candidates[0]}`" if candidates else "; use a declared symbol"
            findings.append(
                finding("OD703", doc, shape.line, f"shape `{shape.text}` spells a dimension as `{name}`{hint}")
            )
    defined = {d.name: concepts(d.meaning) for d in definitions(doc)}
    for group, concept in zip(_SAME_DIMENSION, ("hidden", "head_dim")):
        # a symbol the page itself defines as something else ("`d` = head dim") is not in the group
        members = {n for n in group if not defined.get(n) or concept in defined[n]}
        used = sorted((n for n in members if n in first_use and n in symbols), key=lambda n: first_use[n])
        if len(used) > 1:
            later = used[1]
            findings.append(
                finding(
                    "OD703",
                    doc,
                    first_use[later],
                    f"shapes use both `{used[0]}` (line {first_use[used[0]]}) and `{later}` for what is usually one dimension",
                )
            )
    return findings


@rule("OD704", "error", "The document defines a declared dimension symbol with another meaning.")
def symbol_meanings(doc: LintDoc, context: LintContext) -> list[Finding]:
    findings = []
    reported: set[str] = set()
    for definition in definitions(doc):
        name = definition.name
        # the knowledge base's meanings bind; the template's letters are notation a page may redefine
        if name in reported or name not in context.kb_meanings:
            continue
        said = concepts(definition.meaning)
        known = context.kb_meanings.get(name, "")
        accepted = concepts(known) | concepts(BUILTIN_MEANINGS.get(name, ""))
        if not said or not accepted or said & accepted:
            continue
        reported.add(name)
        meaning = known or BUILTIN_MEANINGS.get(name, "")
        where = "the knowledge base" if known else "the op-doc template"
        others = sorted(
            other for other, text in {**BUILTIN_MEANINGS, **context.kb_meanings}.items()
            if other != name and said <= concepts(text) and other in context.symbols
        )
        hint = f"; the symbol for that is `{others[0]}`" if others else "; pick a symbol that is not declared"
        findings.append(
            finding(
                "OD704",
                doc,
                definition.line,
                f"`{name}` is defined here as \"{definition.meaning[:60]}\", but {where} uses `{name}` for "
                f"{meaning}{hint}",
            )
        )
    return findings
