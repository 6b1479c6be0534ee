"""The calculations of a whole op-doc: statements, named values, itemised totals, tables.

:mod:`.arith` checks one statement.  This module decides what a statement is and what it knows:

* In code blocks a line that starts with ``=``/``≈`` or an operator continues the line before, as
  does the line after one that ends with an operator: ``FLOPs = 4 × 2 × 4096`` / ``= 32,768``.
* A ```python block that parses is code, not arithmetic: only its comments are checked.
* ``name = ... = value`` and ``name: value`` define a value that later expressions may use by name
  (``total = attn_params × 12``); names are forgotten at the next H2 section.
* The dtypes named on the line, else in its block or paragraph, else in its section, supply the
  element size a bytes result may leave implicit.
* Lines or list items of ``label: value`` followed by a ``Total: value`` line, and table columns
  or rows with a total, are summed (rule OD903).
"""

from __future__ import annotations

import ast
import io
import re
import textwrap
import tokenize as pytokenize
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterable, Iterator

from .arith import Known, Number, Statement, Val, _plain, audit_statement, tokenize
from .markdown import CodeBlock, MarkdownDoc
from .units import DTYPE_BYTES, DTYPE_PATTERN, UNITS, dtype_bytes

__all__ = ["CalcFinding", "audit_document"]

MAX_STATEMENTS = 2_000  # an op-doc has hundreds; past this the audit stops (and says so)
MAX_ITEMS = 4_000  # lines read as list items, and table rows, likewise
MAX_STATEMENT_CHARS = 4_000  # no worked calculation is longer; a longer "statement" is not one
_WORTH = re.compile(r"\d")
_RESTATED = re.compile(r"\d\s*[A-Za-z%]*\s*\(\s*(?:[~≈]\s*)?\d")  # "454,328,320 bytes (454.3 MiB)"  # a statement without a digit states no value to check
_CLAIMS = re.compile(r"[=≈≃≅:]")

_LIST_MARK = re.compile(r"^(\s*)(?:[-*+•]|\d{1,3}[.)])(\s+)")
_CONTINUES = re.compile(r"^\s*(?:=|≈|~=|[×*·+/÷])")
_OPEN_END = re.compile(r"(?:[=≈×*·+/÷(]|\s-)\s*$")
_TOTAL_WORD = re.compile(r"\b(?:total|totals|sum|overall|combined|altogether|in all)\b", re.IGNORECASE)
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$")
_PYTHON = ("python", "py", "python3")
_FAMILY_WORDS = {"params": "params", "parameters": "params", "param": "params", "parameter": "params",
                 "flops": "flops", "flop": "flops", "bytes": "bytes", "byte": "bytes"}


@dataclass(frozen=True)
class CalcFinding:
    rule: str  # "OD901" (a calculation) or "OD903" (a stated total)
    line: int
    message: str


@dataclass
class _Scope:
    """Names the document computed, forgotten at each H2."""

    values: dict[str, Known] = field(default_factory=dict)
    dimensions: frozenset[str] = frozenset()

    def resolve(self, name: str) -> Known | Fraction | None:
        if name in self.dimensions or len(name) < 2:
            return None
        if name in self.values:
            return self.values[name]
        if name.lower() in DTYPE_BYTES and name.lower() == name:
            return DTYPE_BYTES[name]
        return None

    def define(self, name: str, val: Val) -> None:
        if name in self.dimensions or len(name) < 2 or name.lower() in DTYPE_BYTES or name in UNITS:
            return
        shown = val.number.text if val.number is not None and not val.operators else _plain(val.value)
        self.values[name] = Known(val.value, val.error, val.line, shown)


def audit_document(md: MarkdownDoc, dimensions: Iterable[str] = ()) -> list[CalcFinding]:
    """Every wrong calculation and wrong stated total in ``md``."""
    auditor = _DocumentAudit(md, frozenset(dimensions))
    return auditor.run()


class _DocumentAudit:
    def __init__(self, md: MarkdownDoc, dimensions: frozenset[str]):
        self.md = md
        self.scope = _Scope(dimensions=dimensions)
        self.findings: list[CalcFinding] = []
        self.statements = 0
        self.items = 0
        # (line, stated value) -> computed value, for each value the audit found wrong: a total is
        # checked against what its items should be, so one wrong item is reported once, where it is
        self.corrections: dict[tuple[int, Fraction], Fraction] = {}
        self.results: list[tuple[int, str, Fraction]] = []  # (line, digits, unit scale) of stated results
        self.stopped_at: int | None = None
        self._section_dtypes: dict[int, frozenset[Fraction]] = {}
        self._h2_lines = sorted(h.line for h in md.headings if h.level <= 2)

    def run(self) -> list[CalcFinding]:
        units = sorted(self._units(), key=lambda unit: unit[0])
        h2 = 0
        for first_line, lines, context in units:
            while h2 < len(self._h2_lines) and self._h2_lines[h2] <= first_line:
                self.scope.values.clear()
                self.results.clear()
                h2 += 1
            self._audit_unit(lines, context)
            self._totals(lines)
            if self.stopped_at is not None:
                break
        for table in self._tables():
            self.items += len(table)
            if self.items > MAX_ITEMS:
                self.stopped_at = self.stopped_at or table[0][0]
                break
            self._table_totals(table)
        if self.stopped_at is not None:
            self.findings.append(
                CalcFinding("OD901", self.stopped_at,
                            f"arithmetic audit stopped here after {MAX_STATEMENTS:,} calculations or {MAX_ITEMS:,} list "
                            "items and table rows; the rest is not checked")
            )
        return self.findings

    # --- what to read ----------------------------------------------------------------------------------------

    def _units(self) -> Iterator[tuple[int, list[tuple[int, str]], str]]:
        """(first line, [(line, text)], text of the unit) for code blocks and prose paragraphs."""
        md = self.md
        for block in md.code_blocks:
            if block.lang == "mermaid":
                continue
            lines = [(block.first_text_line + i, t) for i, t in enumerate(block.text_lines)]
            if block.lang in _PYTHON and _parses(block):
                lines = list(_python_comments(block))
            if lines:
                # the lines that introduce a block ("Example (B=1, bf16):") are part of its context
                before = [md.line(n) for n in range(max(block.line - 3, 1), block.line) if n not in md.code_lines]
                yield block.line, lines, "\n".join(before) + "\n" + block.text
        paragraph: list[tuple[int, str]] = []
        headings = {h.line for h in md.headings}
        for number, text in md.prose_lines():
            if not text.strip() or number in headings:
                if paragraph:
                    yield paragraph[0][0], paragraph, "\n".join(t for _, t in paragraph)
                paragraph = []
                continue
            if paragraph and paragraph[-1][0] != number - 1:
                yield paragraph[0][0], paragraph, "\n".join(t for _, t in paragraph)
                paragraph = []
            paragraph.append((number, text))
        if paragraph:
            yield paragraph[0][0], paragraph, "\n".join(t for _, t in paragraph)

    def _dtypes(self, statement: str, unit_dtypes: frozenset[Fraction], line: int) -> frozenset[Fraction]:
        found = dtype_bytes(statement)
        if found:
            return frozenset(found)
        if unit_dtypes:
            return unit_dtypes
        section = self.md.enclosing(line)
        if section is None:
            return frozenset()
        if section.start not in self._section_dtypes:
            self._section_dtypes[section.start] = frozenset(dtype_bytes(self.md.text_between(section.start, section.end)))
        return self._section_dtypes[section.start]

    # --- calculations ------------------------------------------------------------------------------------------

    def _audit_unit(self, lines: list[tuple[int, str]], unit_text: str) -> None:
        unit_dtypes = frozenset(dtype_bytes(unit_text))  # once per block, not once per statement
        for text, marks in _statements(lines):
            if len(text) > MAX_STATEMENT_CHARS or not _WORTH.search(text):
                continue
            if not _CLAIMS.search(text):
                if "(" in text:
                    self._ratio_claims(Statement(text, marks))  # "16x fewer ... (27.6 M of 227.2 M)"
                if not _RESTATED.search(text):
                    continue  # nothing is claimed equal to anything
            self.statements += 1
            if self.statements > MAX_STATEMENTS:
                self.stopped_at = marks[0][1]
                return
            statement = Statement(text, marks, self._dtypes(text, unit_dtypes, marks[0][1]))
            self._element_size(statement)
            self._reused(statement)
            self._ratio_claims(statement)
            for issue in audit_statement(statement, self.scope.resolve, self.scope.define):
                self.findings.append(CalcFinding("OD901", issue.line, f"arithmetic: {issue.message}"))
                if issue.computed is not None and issue.stated is not None:
                    self.corrections[(issue.line, issue.stated)] = issue.computed

    def _element_size(self, statement: Statement) -> None:
        """``fp32 copy: 8192 × 1280 × 2 bytes``: the bytes per element a product uses are not those of
        the one dtype the statement names."""
        sizes = dtype_bytes(statement.text)
        if len(sizes) != 1 or _COUNTED_COPIES.search(statement.text):
            return
        size = next(iter(sizes))
        tokens = tokenize(statement.text, statement.lines)
        for index, token in enumerate(tokens):
            if token.kind != "num" or token.unit is None or token.unit.family != "bytes" or token.unit.scale != 1:
                continue
            before = tokens[index - 1] if index else None
            if before is None or before.kind != "op" or before.text not in "×*·":
                continue
            number = Number.parse(token, statement.text[token.start : token.end])
            if number.value in _ELEMENT_SIZES and number.value != size:
                name = DTYPE_PATTERN.search(statement.text).group(1)
                self.findings.append(CalcFinding(
                    "OD901", token.line,
                    f"arithmetic: {name} is {_plain(size)} byte{'s' * (size != 1)} per element, not {number.text}"))
                return

    def _reused(self, statement: Statement) -> None:
        """A value carried over from an earlier result with two digits swapped (4.13 for 4.31)."""
        tokens = tokenize(statement.text, statement.lines)
        for index, token in enumerate(tokens):
            if token.kind != "num" or token.unit is None or not token.unit.prefixed:
                continue
            neighbours = [tokens[i] for i in (index - 1, index + 1) if 0 <= i < len(tokens)]
            if not any(t.kind == "op" and t.text in "×*·/+" for t in neighbours):
                continue  # only operands: a value used again
            digits = token.text.replace(",", "")
            for line, shown, unit in reversed(self.results[-40:]):
                if unit == token.unit.scale and shown != digits and len(shown) == len(digits) and sorted(shown) == sorted(digits):
                    self.findings.append(CalcFinding(
                        "OD901", token.line,
                        f"arithmetic: {statement.text[token.start:token.end].strip()} is used here, but the value computed on "
                        f"line {line} is {shown}{statement.text[token.start:token.end][len(token.text):]} (two digits swapped?)"))
                    return
        for index, token in enumerate(tokens):
            if token.kind == "num" and token.unit is not None and token.unit.prefixed and index and tokens[index - 1].kind in ("rel", "tilde"):
                self.results.append((token.line, token.text.replace(",", ""), token.unit.scale))

    def _ratio_claims(self, statement: Statement) -> None:
        """``16x fewer active parameters (27.6 M of 227.2 M)``: the ratio its own numbers give."""
        for match in _RATIO_CLAIM.finditer(statement.text):
            numbers = [Number.parse(t, match.group("pair")[t.start : t.end])
                       for t in tokenize(match.group("pair")) if t.kind == "num"]
            if len(numbers) != 2 or 0 in (numbers[0].value, numbers[1].value):
                continue
            small, large = sorted(n.value for n in numbers)
            ratio = large / small
            claimed = Fraction(match.group("ratio"))
            decimals = len(match.group("ratio").partition(".")[2])
            if abs(ratio - claimed) > max(Fraction(1, 2 * 10**decimals), claimed / 20):
                line = next((l for o, l in reversed(statement.lines) if o <= match.start()), statement.lines[0][1])
                self.findings.append(CalcFinding(
                    "OD901", line,
                    f"arithmetic: {match.group('ratio')}x does not follow from {match.group('pair').strip()}: "
                    f"the ratio is {_format_ratio(ratio)}x"))

    # --- itemised totals ---------------------------------------------------------------------------------------

    def _totals(self, lines: list[tuple[int, str]]) -> None:
        group: list[_Item] = []
        for number, text in lines:
            if not text.strip() or text.lstrip().startswith("|"):
                group = []
                continue
            item = None
            if _WORTH.search(text):
                self.items += 1
                if self.items > MAX_ITEMS:
                    self.stopped_at = self.stopped_at or number
                    return
                item = _item(number, text)
            if item is None:
                if text.rstrip().endswith(":"):
                    group = []  # a sub-heading starts a new list
                continue
            if _TOTAL_WORD.search(item.label):
                if not item.computed and not re.search(r"\d", item.label):
                    self._check_total(item, [i for i in group if i.indent == item.indent])
                group = []
                continue
            group.append(item)

    def _check_total(self, total: "_Item", items: list["_Item"]) -> None:
        items = [i for i in items if not _ASIDE.search(i.label)]  # "for comparison, ...", "... alone"
        first: tuple[str, Val, list[Val], bool] | None = None
        for family, stated in total.values:
            parts = _matching(items, family)
            if parts is None:
                continue
            addends = [self._corrected(v) for v in parts[0]]
            if _sums_to(addends, stated, parts[1]):
                return
            first = first or (family, stated, addends, parts[1])
        if first is None:
            return
        _, stated, addends, _ = first
        value = sum((p.value for p in addends), Fraction(0))
        lines = f"lines {addends[0].line}-{addends[-1].line}"
        shown = _shown_like(value, stated)
        self.findings.append(
            CalcFinding("OD903", total.line,
                        f"total: the {len(addends)} items above ({lines}) sum to {shown}, not {stated.text}")
        )

    def _corrected(self, val: Val) -> Val:
        better = self.corrections.get((val.line, val.value))
        return val if better is None else Val(better, Fraction(0), val.text, val.line, number=val.number)

    # --- tables ------------------------------------------------------------------------------------------------

    def _tables(self) -> Iterator[list[tuple[int, list[str]]]]:
        rows: list[tuple[int, list[str]]] = []
        for number, text in self.md.prose_lines():
            if text.lstrip().startswith("|"):
                if len(rows) > MAX_ITEMS:
                    continue  # the budget check below stops at this table
                if _TABLE_RULE.match(text):
                    rows.append((number, []))  # the header rule
                else:
                    rows.append((number, _cells(text)))
                continue
            if rows:
                yield rows
            rows = []
        if rows:
            yield rows

    def _table_totals(self, rows: list[tuple[int, list[str]]]) -> None:
        if len(rows) < 3 or rows[1][1]:
            return  # not a table: no rule under the header
        header = rows[0][1]
        body = rows[2:]
        # a column headed "total" sums the numeric cells to its left
        for column, title in enumerate(header):
            if column == 0 or not _TOTAL_WORD.search(title) or re.search(r"\bper\b", title, re.IGNORECASE):
                continue
            for number, cells in body:
                if column >= len(cells):
                    continue
                total = _cell_value(cells[column], number)
                parts = [v for c in cells[1:column] if (v := _cell_value(c, number)) is not None]
                if total is None or len(parts) < 2 or len(parts) != column - 1:
                    continue
                self._compare_parts(total, parts, number, f"the cells left of `{title.strip()}`", allow_product=True)
        # a row labelled "total" sums the cells above it
        start = 0
        for position, (number, cells) in enumerate(body):
            if not cells or not _TOTAL_WORD.search(cells[0]) or re.search(r"\d", cells[0]):
                continue
            for column in range(1, len(cells)):
                total = _cell_value(cells[column], number)
                parts = [v for n, c in body[start:position] if column < len(c) and (v := _cell_value(c[column], n)) is not None]
                if total is None or len(parts) < 2:
                    continue
                title = header[column].strip() if column < len(header) else f"column {column + 1}"
                self._compare_parts(total, parts, number, f"the `{title}` cells above it")
            start = position + 1

    def _compare_parts(self, total: Val, parts: list[Val], line: int, what: str, allow_product: bool = False) -> None:
        value = sum((p.value for p in parts), Fraction(0))
        tolerance = sum((p.error for p in parts), Fraction(0)) + total.error
        if abs(value - total.value) <= tolerance:
            return
        if allow_product:
            product = Fraction(1)
            for p in parts:
                product *= p.value
            relative = sum((p.error / abs(p.value) for p in parts if p.value), Fraction(0))
            if abs(product - total.value) <= abs(product) * relative + total.error:
                return
        self.findings.append(
            CalcFinding("OD903", line, f"total: {what} sum to {_shown_like(value, total)}, not {total.text}")
        )


# --- statements ---------------------------------------------------------------------------------------------------

def _statements(lines: list[tuple[int, str]]) -> Iterator[tuple[str, list[tuple[int, int]]]]:
    """Join continued lines; yield (text, [(offset, line)]).  A ``#`` comment is its own statement."""
    parts: list[str] = []
    marks: list[tuple[int, int]] = []
    length = 0
    previous_open = False
    for number, raw in lines:
        text = _LIST_MARK.sub(lambda m: " " * len(m.group(0)), raw, count=1)
        comment = None
        if "#" in text and not text.lstrip().startswith("#"):
            text, comment = text.split("#", 1)
        elif text.lstrip().startswith("#"):
            text, comment = "", text.lstrip()[1:]
        if not text.strip():
            if parts:
                yield " ".join(parts), marks
            parts, marks, length, previous_open = [], [], 0, False
        elif parts and (previous_open or _CONTINUES.match(text)):
            marks.append((length + 1, number))
            parts.append(text)
            length += 1 + len(text)
            previous_open = bool(_OPEN_END.search(text))
        else:
            if parts:
                yield " ".join(parts), marks
            parts, marks, length = [text], [(0, number)], len(text)
            previous_open = bool(_OPEN_END.search(text))
        if comment is not None and comment.strip():
            yield comment, [(0, number)]
    if parts:
        yield " ".join(parts), marks


def _parses(block: CodeBlock) -> bool:
    try:
        ast.parse(textwrap.dedent(block.text))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _python_comments(block: CodeBlock) -> Iterator[tuple[int, str]]:
    try:
        for token in pytokenize.generate_tokens(io.StringIO(textwrap.dedent(block.text)).readline):
            if token.type == pytokenize.COMMENT:
                yield block.first_text_line + token.start[0] - 1, token.string.lstrip("#")
    except (pytokenize.TokenError, IndentationError, SyntaxError):
        return


# --- items and cells ----------------------------------------------------------------------------------------------

@dataclass
class _Item:
    line: int
    indent: int
    label: str
    values: list[tuple[str, Val]]  # (family, value), the first of each family
    computed: bool  # the line computes its value (an operator before it)


_STATES_VALUE = re.compile(r"\s*(?:[~≈]|about|approx\w*|roughly)?\s*[(\d.]")
_LABEL = re.compile(r"^(?P<label>[^:=≈|]{1,80}?)\s*(?::|=|≈)\s*(?P<rest>.*)$")


def _item(number: int, raw: str) -> _Item | None:
    """``label: value`` (or ``label = ... = value``): the value of one line of a list."""
    indent = len(raw) - len(raw.lstrip())
    if len(raw) > 1_100:
        return None
    text = _LIST_MARK.sub(lambda m: " " * len(m.group(0)), raw, count=1).replace("**", "  ").replace("`", " ")
    match = _LABEL.match(text.strip())
    if not match:
        return None
    label, rest = match.group("label"), match.group("rest")
    if len(rest) > 1_000:
        return None  # not a list item
    if not _STATES_VALUE.match(rest) and not re.search(r"\s(?:=|≈)\s", rest):
        return None  # "Linear 768 -> 3072 with bias": a description with numbers in it, not a value
    values, computed = _final_values(rest, number)
    if not values:
        return None
    if re.search(r"[×*·/+^]|\s[-−]\s", match.group("label")):
        computed = True
    return _Item(number, indent, label, values, computed)


def _final_values(text: str, number: int) -> tuple[list[tuple[str, Val]], bool]:
    """The last value at parenthesis depth 0 of each clause, with its family; and whether an operator
    comes before the first one."""
    tokens = tokenize(text, [(0, number)])
    values: list[tuple[str, Val]] = []
    families: set[str] = set()
    computed = False
    depth = 0
    last: tuple[str, Val] | None = None
    operators = 0
    first_clause = True
    for index, token in enumerate(tokens):
        if token.kind == "lp":
            depth += 1
        elif token.kind == "rp":
            depth = max(depth - 1, 0)
        elif depth == 0 and token.kind == "op":
            operators += 1
        elif depth == 0 and token.kind == "num":
            following = tokens[index + 1] if index + 1 < len(tokens) else None
            if following is not None and following.kind == "op" and following.text not in "²³":
                continue  # an operand, not a result
            number_ = Number.parse(token, text[token.start : token.end])
            approximate = index > 0 and tokens[index - 1].kind in ("tilde",) or (
                index > 0 and tokens[index - 1].kind == "rel" and tokens[index - 1].text != "="
            )
            last = (_family(number_, following), Val(number_.value, number_.stated_error(approximate), number_.text,
                                                        token.line, number=number_))
        elif depth == 0 and token.kind == "sep" and token.text in ",;→⇒":
            if last is not None and last[0] not in families:
                values.append(last)
                families.add(last[0])
                computed = computed or (first_clause and operators > 0)
                first_clause = False
            last, operators = None, 0
    if last is not None and last[0] not in families:
        values.append(last)
        computed = computed or (first_clause and operators > 0)
    return values, computed


def _family(number: Number, following) -> str:
    if number.unit is not None and number.unit.family != "count":
        return number.unit.family
    if following is not None and following.kind == "word" and following.text.lower() in _FAMILY_WORDS:
        return _FAMILY_WORDS[following.text.lower()]
    return "count"


_ELEMENT_SIZES = {Fraction(1), Fraction(2), Fraction(4), Fraction(8)}
_COUNTED_COPIES = re.compile(r"\btwo\b|\bboth\b|\bstates\b|\bmoments\b|\bcopies\b|\bK and V\b|master", re.IGNORECASE)
_RATIO_CLAIM = re.compile(
    r"(?<![\w.])(?P<ratio>\d+(?:\.\d+)?)\s*[x×]\s+(?:fewer|less|smaller|more|larger|bigger|faster|slower|lower|higher|"
    r"reduction|efficiency|increase|decrease|saving)\b[^()\n]{0,80}\((?P<pair>[^()\n]{1,80}?\d[^()\n]{0,40}?"
    r"(?:\bof\b|\bvs\.?|/|\bout of\b)[^()\n]{0,40}?\d[^()\n]{0,40})\)",
    re.IGNORECASE,
)


def _format_ratio(value: Fraction) -> str:
    return f"{float(value):.1f}".rstrip("0").rstrip(".")


_ASIDE = re.compile(r"\bfor comparison\b|\balone\b|\bwould\b|\be\.\s?g\.|\bvs\.?\b|\bof which\b|\bincluding\b|"
                    r"\bexcluding\b|\bcompared\b|\bif\b", re.IGNORECASE)


def _sums_to(addends: list[Val], stated: Val, bare: bool) -> bool:
    """The items add up to the total (read in the total's unit when they carry none)."""
    value = sum((p.value for p in addends), Fraction(0))
    tolerance = sum((p.error for p in addends), Fraction(0)) + stated.error
    if abs(value - stated.value) <= tolerance:
        return True
    unit = stated.number.unit if stated.number is not None else None
    return bare and unit is not None and abs(value * unit.scale - stated.value) <= tolerance * unit.scale


def _matching(items: list[_Item], family: str) -> tuple[list[Val], bool] | None:
    """The items' values of ``family`` (or, failing that, their bare numbers)."""
    exact = [v for item in items for f, v in item.values if f == family]
    if len(exact) >= 2 and len(exact) == len(items):
        return exact, False
    bare = [v for item in items for f, v in item.values if f == "count"]
    if family != "count" and len(bare) >= 2 and len(bare) == len(items) and not exact:
        return bare, not any(v.number is not None and v.number.unit is not None for v in bare)
    return None


def _cells(row: str) -> list[str]:
    text = row.strip()
    if text.startswith("|"):
        text = text[1:]
    if text.endswith("|"):
        text = text[:-1]
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", text)]


def _cell_value(cell: str, line: int) -> Val | None:
    """A cell holding one value (``450.97 GFLOPs``, ``~5 GB``, ``6.55 M (6,553,600)``)."""
    text = cell.replace("**", "  ").replace("`", " ")
    tokens = tokenize(text, [(0, line)])
    depth = 0
    found: list = []
    for token in tokens:
        if token.kind == "lp":
            depth += 1
        elif token.kind == "rp":
            depth -= 1
        elif depth == 0 and token.kind in ("num", "op", "rel", "range"):
            found.append(token)
    if len(found) != 1 or found[0].kind != "num":
        return None
    token = found[0]
    number = Number.parse(token, text[token.start : token.end])
    approximate = bool(re.match(r"\s*(?:~|≈|about|approx)", text))
    return Val(number.value, number.stated_error(approximate), number.text, line, number=number)


def _shown_like(value: Fraction, stated: Val) -> str:
    from .arith import _in_unit_of

    assert stated.number is not None
    return _in_unit_of(Val(value, Fraction(0), "", stated.line), stated.number)
