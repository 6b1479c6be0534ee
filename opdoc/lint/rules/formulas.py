"""A formula and the value beside it, at the page's own symbol values.

A table row ``| attention products | 4 × B × H × S × k × d_h | 343.6 G |`` on a page that defines
``k`` = 6 experts per token gives 251.7 M, not 343.6 G: the formula uses ``k`` with another meaning
(the keys) than the page gave it.  Each symbol may take any of the values the page states for it
(``S`` = 8192 at prefill or 1 at decode, a column headed ``decode (S=1)``); the row is reported only
when no choice of them gives any of the row's values.
"""

from __future__ import annotations

import itertools
import re
from fractions import Fraction

from ..arith import Number, UnsafeExpression, _Parser, tokenize
from ..context import LintContext, LintDoc
from ..registry import Finding, finding, rule
from ._common import definitions

MAX_CHOICES = 64  # combinations of symbol values tried per formula
MAX_ROWS = 2_000
_SYMBOL = re.compile(r"(?<![\w.])([A-Za-z]{1,2}(?:_[A-Za-z0-9]{1,4})?)(?![\w(])")
_PRODUCT = re.compile(r"[A-Za-z_]\w*\s*[×*]\s*[\w(]")
_SETTING = re.compile(r"(?<![\w.])([A-Za-z][A-Za-z0-9_]{0,7})\s*=\s*(\d[\d,]*)(?![\d.])")
_NUMBER = re.compile(r"(?<![\w.^])\d[\d,]*(?:\.\d+)?(?![\d.]|\s*(?:px|%))")


def page_values(doc: LintDoc) -> dict[str, set[Fraction]]:
    """Every value the page gives each symbol: its definitions' numbers and ``X=...`` settings."""
    md = doc.md
    assert md is not None
    values: dict[str, set[Fraction]] = {}
    for definition in definitions(doc):
        for match in _NUMBER.finditer(definition.meaning):
            values.setdefault(definition.name, set()).add(Fraction(match.group(0).replace(",", "")))
    for text in md.lines:
        for name, value in _SETTING.findall(text):
            values.setdefault(name, set()).add(Fraction(value.replace(",", "")))
    return values


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def _value(cell: str) -> Number | None:
    tokens = [t for t in tokenize(cell.replace("**", "  ")) if t.kind != "sep"]
    if len(tokens) != 1 or tokens[0].kind != "num":
        return None
    return Number.parse(tokens[0], cell.replace("**", "  ")[tokens[0].start : tokens[0].end])


def _evaluate(formula: str, choice: dict[str, Fraction]) -> Fraction | None:
    text = formula.replace("`", " ")
    tokens = tokenize(text)
    parser = _Parser(tokens, text, lambda name: choice.get(name))
    try:
        parsed = parser.parse(0, len(tokens))
    except (ValueError, UnsafeExpression):
        return None
    if parsed.val is None or parsed.end != len(tokens):
        return None
    return parsed.val.value


@rule("OD705", "error", "A formula does not give the value beside it at the page's own symbol values (a symbol used with another meaning?).")
def formula_values(doc: LintDoc, context: LintContext) -> list[Finding]:
    md = doc.md
    assert md is not None
    values = None
    findings = []
    header: dict[str, set[Fraction]] = {}
    rows = 0
    for number, text in md.prose_lines():
        if not text.lstrip().startswith("|"):
            header = {}
            continue
        rows += 1
        if rows > MAX_ROWS:
            break  # bounded work on any file; an op-doc has tens of rows
        cells = _cells(text)
        if not header and not any(_PRODUCT.search(c) for c in cells):
            # a header row: "prefill (S=8192)", "decode (S=1)" bind symbols for the rows below
            header = {}
            for name, value in _SETTING.findall(text):
                header.setdefault(name, set()).add(Fraction(value.replace(",", "")))
            continue
        formulas = [c for c in cells if _PRODUCT.search(c) and not re.search(r"[~≈≤≥<>]", c) and not _value(c)]
        stated = [n for c in cells if (n := _value(c)) is not None and n.value != 0]
        if len(formulas) != 1 or not stated:
            continue
        formula = formulas[0]
        if values is None:
            values = page_values(doc)
        names = sorted({m.group(1) for m in _SYMBOL.finditer(formula.replace("`", " "))})
        options = {name: sorted(values.get(name, set()) | header.get(name, set())) for name in names}
        if len(names) < 2 or any(not v for v in options.values()):
            continue
        choices = list(itertools.islice(itertools.product(*options.values()), MAX_CHOICES))
        results = [r for choice in choices if (r := _evaluate(formula, dict(zip(names, choice)))) is not None]
        if not results:
            continue
        if any(abs(r - n.value) <= max(n.ulp / 2, abs(n.value) / 100) for r in results for n in stated):
            continue
        first = dict(zip(names, choices[0]))
        shown = ", ".join(f"{k}={_plain(v)}" for k, v in first.items())
        findings.append(
            finding("OD705", doc, number,
                    f"`{formula.strip('`')}` at the page's values ({shown}) is {_plain(results[0])}, not "
                    f"{' or '.join(n.text for n in stated)}; is one of its symbols used with another meaning here?")
        )
    return findings


def _plain(value: Fraction) -> str:
    if value.denominator == 1:
        return f"{value.numerator:,}"
    return f"{float(value):.4g}"
