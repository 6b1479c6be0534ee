"""Re-checking the worked arithmetic op-docs show.

A *statement* (one line, or several joined when a line continues the previous one) is cut into
clauses at punctuation (``,`` ``;`` ``:`` ``|``), and a clause into a *chain* at its relations
(``=``, ``≈``): ``FLOPs = 2 × 1 × 8192 × 1280 = 20,971,520 ≈ 21.0 MFLOPs``.  Every segment of a
chain that holds only numbers (with units, and with words between them: ``24 blocks × 12 heads``)
is evaluated exactly, as a fraction, and every value the chain states is compared with the latest
computed one, allowing for the rounding of the digits each side shows:

* a value is right when it lies within half a unit in its last shown digit (plus what rounded
  operands such as ``1.87 GB`` allow); a whole number stated with ``=`` and no unit, such as
  ``67,108,864,000``, is exact;
* operands without a unit are also read in the result's unit (``24 × 3.1 = 74.4 GFLOPs``), a
  bytes result may leave the element size of a named dtype implicit, and decimal prefixes on bytes
  and counts may be meant in binary (``1M`` for 2^20);
* a segment that starts with the previous result continues a running chain
  (``= 20,971,520 × 2 = 41,943,040``), and one that starts with an operator applies it to the
  previous result (``= 20,971,520; × 2 bytes = ...``);
* a parenthesis after a value is a side remark unless it holds just another value for the same
  quantity (``= 6.55 M (6,553,600)``), which is then compared too.

Segments with unknown names (``B × S × h``) are skipped; names the document computed earlier
(``attn_params = 4 × 1280² = 6.55M``) are known.  Nothing is passed to ``eval``.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Callable, Iterable

from .units import BILLION, DTYPE_BYTES, RATIO, UNITS, Unit

__all__ = [
    "ArithIssue",
    "Known",
    "Statement",
    "UnsafeExpression",
    "audit_line",
    "audit_statement",
    "safe_eval",
    "tokenize",
]


class UnsafeExpression(ValueError):
    """The expression is not plain arithmetic (or is too large to evaluate)."""


# Work limits: an op-doc never comes near them, a hostile file cannot make the audit slow.
MAX_EXPONENT = 64
MAX_BITS = 4096  # numerator or denominator of any intermediate value
MAX_CLAUSE_TOKENS = 400
MAX_DEPTH = 40  # nested parentheses
MAX_DIGITS = 40  # characters in one written number


def safe_eval(expression: str) -> float:
    """Evaluate ``expression`` made of numbers, ``+ - * / **`` and parentheses (no names)."""
    try:
        tree = ast.parse(expression, mode="eval")
    except (SyntaxError, ValueError, RecursionError) as exc:
        raise UnsafeExpression(str(exc)) from None

    def walk(node: ast.AST, depth: int = 0) -> Fraction:
        if depth > MAX_DEPTH * 4:
            raise UnsafeExpression("expression nests too deeply")
        if isinstance(node, ast.Expression):
            return walk(node.body, depth + 1)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            if isinstance(node.value, float) and not math.isfinite(node.value):
                raise UnsafeExpression("result is not finite")
            return Fraction(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
            value = walk(node.operand, depth + 1)
            return value if isinstance(node.op, ast.UAdd) else -value
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)):
            symbol = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "^"}[type(node.op)]
            return _apply(walk(node.left, depth + 1), symbol, walk(node.right, depth + 1))
        raise UnsafeExpression(f"not arithmetic: {type(node).__name__}")

    return float(walk(tree))


def _check_size(value: Fraction) -> Fraction:
    if value.numerator.bit_length() > MAX_BITS or value.denominator.bit_length() > MAX_BITS:
        raise UnsafeExpression("number too large to check")
    return value


def _apply(left: Fraction, op: str, right: Fraction) -> Fraction:
    if op == "+":
        return _check_size(left + right)
    if op == "-":
        return _check_size(left - right)
    if op == "*":
        return _check_size(left * right)
    if op == "/":
        if right == 0:
            raise UnsafeExpression("division by zero")
        return _check_size(left / right)
    if right.denominator != 1 or abs(right) > MAX_EXPONENT:
        raise UnsafeExpression("power too large to check")
    if left == 0 and right < 0:
        raise UnsafeExpression("division by zero")
    if abs(left.numerator).bit_length() * abs(int(right)) > MAX_BITS * 2:
        raise UnsafeExpression("power too large to check")
    return _check_size(left ** int(right))


# --- tokens ---------------------------------------------------------------------------------------------------

_NUMBER = r"(?:\d{1,3}(?:,\d{3})+(?![\d,])(?:\.\d+)?|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|\.\d+)"
_TOKEN = re.compile(
    rf"""
    (?P<space>\s+)
  | (?P<num>{_NUMBER})
  | (?P<rel>~=|≈|≃|≅|==?)
  | (?P<tilde>~)
  | (?P<op>\*\*|[×*·∙⋅/÷+\-−–^²³])
  | (?P<lp>\()
  | (?P<rp>\))
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<sep>[,;:|!?<>≤≥→⇒—\[\]{{}}"]|\.(?!\d))
  | (?P<other>.)
    """,
    re.VERBOSE,
)
# What may follow a number as its unit; looked up in UNITS (one big alternation would be slow).
_UNIT_AFTER = re.compile(r"(x)(?![A-Za-z0-9_])|[ ]?(%|[A-Za-zµμ]+(?:/s)?)(?![A-Za-z0-9_/])")
_LATEX = {r"\times": "×", r"\cdot": "·", r"\approx": "≈", r"\div": "÷", r"\,": "", r"\sim": "~"}
_LATEX_RE = re.compile("|".join(re.escape(k) for k in _LATEX))
_BOLD = re.compile(r"\*\*|__")


@dataclass
class Token:
    kind: str  # num, rel, tilde, op, lp, rp, word, sep, other, range
    text: str
    start: int
    end: int
    line: int
    unit: Unit | None = None
    tight: bool = False  # a relation with no space on either side
    spaced_before: bool = False
    index: int = 0  # position in the statement's token list


def _clean(text: str) -> str:
    """Markup that is not arithmetic, replaced by spaces of the same length (offsets stay valid)."""
    if "\\" in text:
        text = _LATEX_RE.sub(lambda m: _LATEX[m.group(0)].ljust(len(m.group(0))), text)
    text = text.replace("`", " ").replace("$", " ")
    if "**" not in text and "__" not in text:
        return text

    def bold(match: re.Match[str]) -> str:
        # ``2 ** 10`` is a power; ``**Total**`` is emphasis
        before = text[: match.start()].rstrip()[-1:]
        after = text[match.end() :].lstrip()[:1]
        if match.group(0) == "**" and (before.isdigit() or before == ")") and (after.isdigit() or after == "("):
            return "**"
        return "  "

    return _BOLD.sub(bold, text)


def tokenize(text: str, lines: list[tuple[int, int]] | None = None) -> list[Token]:
    """Tokens of ``text``; ``lines`` maps offsets to line numbers as (first offset, line) pairs."""
    text = _clean(text)
    tokens: list[Token] = []
    position = 0
    line_index = 0
    marks = lines or [(0, 1)]
    spaced = True
    while position < len(text):
        match = _TOKEN.match(text, position)
        assert match is not None  # "other" matches any character
        while line_index + 1 < len(marks) and marks[line_index + 1][0] <= position:
            line_index += 1
        kind = match.lastgroup or "other"
        position = match.end()
        if kind == "space":
            spaced = True
            continue
        token = Token(kind, match.group(0), match.start(), match.end(), marks[line_index][1], spaced_before=spaced,
                      index=len(tokens))
        spaced = False
        if kind == "num" and len(match.group(0)) > MAX_DIGITS:
            token.kind = "other"  # a number no op-doc writes: not evaluated
        elif kind == "num":
            unit = _UNIT_AFTER.match(text, position)
            if unit is not None and (unit.group(1) or unit.group(2) in UNITS):
                token.unit = RATIO if unit.group(1) else UNITS[unit.group(2)]
                if unit.group(2) == "B":
                    rest = text[unit.end() : unit.end() + 12].lstrip().lower()
                    if rest.startswith(("param", "token", "model")):
                        token.unit = BILLION
                position = token.end = unit.end()
        tokens.append(token)
    _mark_context(tokens, text)
    return tokens


def _is_hyphen(tokens: list[Token], index: int, text: str) -> bool:
    after = text[tokens[index].end : tokens[index].end + 1]
    before = text[tokens[index].start - 1 : tokens[index].start] if tokens[index].start else ""
    return bool(after) and not after.isspace() and (after.isalpha() or before.isalpha())


def _mark_context(tokens: list[Token], text: str) -> None:
    for index, token in enumerate(tokens):
        if token.kind == "rel":
            before = text[token.start - 1] if token.start else " "
            after = text[token.end] if token.end < len(text) else " "
            token.tight = not before.isspace() and not after.isspace()
            if token.text == "==":
                token.kind = "sep"
            elif token.tight and token.text == "=":
                left = tokens[index - 1] if index else None
                right = tokens[index + 1] if index + 1 < len(tokens) else None
                numeric = left is not None and left.kind in ("num", "rp") and right is not None and right.kind in ("num", "lp")
                if not numeric:
                    token.kind = "sep"  # ``B=1``: a binding, not a claim
        elif token.kind == "op" and token.text == "-" and not token.spaced_before and _is_hyphen(tokens, index, text):
            token.kind = "other"  # "512-wide", "tensor-core": a hyphen, not a minus
        elif token.kind == "op" and token.text in "-–" and not token.spaced_before:
            # ``1-39`` and ``2025-01-17`` are ranges and dates, not subtractions
            left = tokens[index - 1] if index else None
            right = tokens[index + 1] if index + 1 < len(tokens) else None
            if left is not None and right is not None and left.kind == "num" and right.kind == "num" and not right.spaced_before:
                left.kind = token.kind = right.kind = "range"
        elif token.kind == "op" and token.text == "–":
            token.kind = "sep"


# --- values ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Number:
    """A number as written, e.g. ``1.87 GB``: its value in base units and how many digits it shows."""

    text: str  # digits with the unit as written
    digits: str
    value: Fraction
    unit: Unit | None
    ulp: Fraction  # one unit in the last shown digit, in base units
    whole: bool  # no decimal point and no exponent
    trailing_zeros: int

    @staticmethod
    def parse(token: Token, unit_text: str) -> "Number":
        digits = token.text.replace(",", "")
        mantissa, _, exponent = digits.lower().partition("e")
        power = int(exponent) if exponent else 0
        whole, _, fraction = mantissa.partition(".")
        decimals = len(fraction)
        scale = token.unit.scale if token.unit else Fraction(1)
        # built from integers: Fraction("1.87") parses a string with a regex, far slower
        value = Fraction(int(whole + fraction or "0"), 10**decimals) * (10**power if power >= 0 else Fraction(1, 10**-power)) * scale
        stripped = mantissa.rstrip("0") if "." not in mantissa else mantissa
        zeros = len(mantissa) - len(stripped) if stripped else 0
        ulp = Fraction(10) ** (power - decimals) * scale
        return Number(unit_text, token.text, value, token.unit, ulp, decimals == 0 and not exponent, zeros)

    @property
    def prefixed(self) -> bool:
        return self.unit is not None and self.unit.prefixed

    def operand_error(self) -> Fraction:
        """How far the true operand may lie from what is shown: whole numbers without a magnitude
        prefix are exact (dimensions, counts); anything else is rounded to its last digit."""
        if self.whole and not self.prefixed:
            return Fraction(0)
        return self.ulp / 2

    def stated_error(self, approximate: bool) -> Fraction:
        """Half a unit in the last digit a stated result shows.  ``= 150`` is exact; ``≈ 150``
        shows two significant digits."""
        if self.whole and not self.prefixed and not approximate:
            return Fraction(0)
        if self.whole and approximate:
            return self.ulp * 10**self.trailing_zeros / 2
        return self.ulp / 2

    def binary_value(self) -> Fraction | None:
        if self.unit is None or self.unit.binary is None:
            return None
        return self.value / self.unit.scale * self.unit.binary


@dataclass
class Val:
    """A computed or stated quantity: exact value, how far off it may be, and where it came from."""

    value: Fraction
    error: Fraction
    text: str
    line: int
    operators: int = 0
    unit_seen: bool = False  # an operand carried a unit or magnitude prefix
    bytes_seen: bool = False  # an operand is in bytes, or is a dtype's element size
    lead: "Val | None" = None  # the first operand, for running chains
    number: Number | None = None  # set when the value is one stated number
    alternative: "Val | None" = None  # the value with bare addends read in the unit of the others
    names: tuple[tuple[str, "Known"], ...] = ()  # document values it used, by name


@dataclass(frozen=True)
class Known:
    """A value the document computed earlier under a name."""

    value: Fraction
    error: Fraction
    line: int
    text: str


class _Symbolic(Exception):
    """The segment names something unknown (``B × S × h``): nothing to check."""


_HEDGES = {"about", "approximately", "approx", "roughly", "around", "nearly", "circa", "ca"}
# Words after a value that start a new sentence part rather than name what was counted.
_BREAKS = {
    "and", "or", "so", "then", "while", "but", "which", "hence", "thus", "giving", "gives", "give", "where",
    "with", "when", "if", "vs", "versus", "that", "because", "since", "for", "is", "are", "was", "to", "at",
    "in", "by", "from", "minus", "plus", "times", "of", "on", "i", "e", "ie", "eg", "see", "as",
}
# Words that end the description of a value before a relation ("the MLP (64%) and ... at S = 257").
_LABEL_BREAKS = {"and", "or", "but", "so", "then", "while", "which", "where", "when", "if", "because", "since", "at",
                 "is", "are", "was", "dominate", "dominates"}
_PRECEDENCE = {"+": 1, "-": 1, "−": 1, "×": 2, "*": 2, "·": 2, "∙": 2, "⋅": 2, "/": 2, "÷": 2, "^": 3, "**": 3}
_CANON = {"×": "*", "·": "*", "∙": "*", "⋅": "*", "÷": "/", "−": "-", "**": "^", "x": "*"}


@dataclass
class Parse:
    val: Val | None  # None: symbolic
    end: int  # index after the last token consumed
    words: list[Token] = field(default_factory=list)  # words absorbed after the last operand
    annotations: list[tuple[int, int]] = field(default_factory=list)  # (start, end) token ranges in parentheses


Resolver = Callable[[str], "Known | Fraction | None"]


class _Parser:
    def __init__(self, tokens: list[Token], source: str, resolve: Resolver):
        self.tokens = tokens
        self.source = source
        self.resolve = resolve
        self.bare_scale: Fraction | None = None  # read unitless operands in this unit (an interpretation)

    def text(self, start: int, end: int) -> str:
        if start >= end:
            return ""
        return self.source[self.tokens[start].start : self.tokens[end - 1].end].strip()

    def parse(self, start: int, stop: int) -> Parse:
        """Parse one expression from ``start`` (not past ``stop``); raises ValueError if none starts there."""
        self.stop = stop
        self.pos = start
        self.symbolic = False
        self.words: list[Token] = []
        self.annotations: list[tuple[int, int]] = []
        self.names: list[tuple[str, Known]] = []
        try:
            val = self._expression(0, 0)
        except UnsafeExpression:
            raise ValueError("not checkable") from None
        if self.pos == start:
            raise ValueError("no expression")
        result = Parse(None if self.symbolic else val, self.pos, self.words, self.annotations)
        if result.val is not None:
            end = self._content_end(start)
            result.val.text = self.text(start, end)
            result.val.line = self.tokens[end - 1].line
            result.val.names = tuple(dict(self.names).items())
        return result

    def _content_end(self, start: int) -> int:
        """Where the quoted text of the expression ends: trailing remarks and count words dropped."""
        cut = self.pos
        for a, b in reversed(self.annotations):
            if b == cut:
                cut = a
        words = {token.index for token in self.words}
        while cut > start + 1 and cut - 1 in words:
            cut -= 1
        return cut

    def _peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < self.stop else None

    def _binary_op(self) -> str | None:
        token = self._peek()
        if token is None:
            return None
        if token.kind == "op" and token.text in _PRECEDENCE:
            return token.text
        if token.kind == "word" and token.text == "x" and token.spaced_before and self.pos + 1 < self.stop:
            following = self.tokens[self.pos + 1]
            if following.kind in ("num", "lp") and following.spaced_before:
                return "x"
        return None

    def _expression(self, min_precedence: int, depth: int) -> Val:
        if depth > MAX_DEPTH:
            raise UnsafeExpression("nested too deeply")
        left = self._unary(depth)
        while True:
            token = self._peek()
            if token is not None and token.kind == "op" and token.text in "²³":
                self.pos += 1
                left = self._combine(left, "^", Val(Fraction(2 if token.text == "²" else 3), Fraction(0), "", token.line))
                continue
            op = self._binary_op()
            if op is None:
                return left
            precedence = _PRECEDENCE.get(op, 2)
            if precedence < min_precedence:
                return left
            self.pos += 1
            right = self._expression(precedence if op in ("^", "**") else precedence + 1, depth + 1)
            left = self._combine(left, _CANON.get(op, op), right)

    def _unary(self, depth: int) -> Val:
        token = self._peek()
        if token is not None and token.kind == "op" and token.text in "-−+":
            self.pos += 1
            inner = self._unary(depth + 1)
            if token.text == "+":
                return inner
            return Val(-inner.value, inner.error, "", inner.line, inner.operators, inner.unit_seen, inner.bytes_seen, inner.lead)
        return self._term(depth)

    def _term(self, depth: int) -> Val:
        token = self._peek()
        if token is None:
            raise ValueError("expected a value")
        if token.kind == "num":
            self.pos += 1
            number = Number.parse(token, self.source[token.start : token.end])
            val = Val(number.value, number.operand_error(), number.text, token.line,
                      unit_seen=token.unit is not None and (token.unit.prefixed or token.unit.family == "bytes"),
                      bytes_seen=token.unit is not None and token.unit.family == "bytes", number=number)
            self.words = []
            self._absorb_words()
        elif token.kind == "word" and self._labels_a_number():
            # "attention 451.0 GFLOPs + MLP 430.8 GFLOPs": words naming the number that follows
            while self.tokens[self.pos].kind == "word":
                self.pos += 1
            return self._term(depth)
        elif token.kind == "word":
            self.pos += 1
            val = self._name(token, depth)
            self.words = []
        elif token.kind == "lp":
            self.pos += 1
            inner = self._expression(0, depth + 1)
            closing = self._peek()
            if closing is None or closing.kind != "rp":
                raise ValueError("unclosed parenthesis")
            self.pos += 1
            val = Val(inner.value, inner.error, "", inner.line, inner.operators, inner.unit_seen, inner.bytes_seen, inner.lead)
            self.words = []
            self._absorb_words()
        else:
            raise ValueError("expected a value")
        self._skip_annotations()
        return val

    def _labels_a_number(self) -> bool:
        """Up to four words that are not known names, then a number."""
        index = self.pos
        while index < self.stop and index - self.pos < 4 and self.tokens[index].kind == "word":
            word = self.tokens[index].text
            if self.resolve(word) is not None or word == "x" or word.lower() == "sizeof":
                return False
            index += 1
        return index > self.pos and index < self.stop and self.tokens[index].kind == "num"

    def _name(self, token: Token, depth: int) -> Val:
        name = token.text
        if name.lower() == "sizeof" and self.pos + 2 < self.stop and self.tokens[self.pos].kind == "lp":
            inner, closing = self.tokens[self.pos + 1], self.tokens[self.pos + 2]
            if inner.kind == "word" and closing.kind == "rp" and inner.text.lower() in DTYPE_BYTES:
                self.pos += 3
                return Val(DTYPE_BYTES[inner.text.lower()], Fraction(0), "", token.line, bytes_seen=True, unit_seen=True)
        found = self.resolve(name)
        if found is None:
            self.symbolic = True
            return Val(Fraction(1), Fraction(0), "", token.line)
        if isinstance(found, Known):
            self.names.append((name, found))
            return Val(found.value, found.error, name, token.line, unit_seen=True)
        return Val(found, Fraction(0), name, token.line, bytes_seen=True, unit_seen=True)  # a dtype's size

    def _absorb_words(self) -> None:
        """Words naming what a number counts (``24 blocks``) belong to it."""
        while True:
            token = self._peek()
            if token is None or token.kind != "word":
                return
            if token.text == "x" and self._binary_op() == "x":
                return
            self.words.append(token)
            self.pos += 1

    def _skip_annotations(self) -> None:
        while True:
            token = self._peek()
            if token is None or token.kind != "lp":
                return
            depth = 0
            index = self.pos
            while index < self.stop:
                kind = self.tokens[index].kind
                depth += 1 if kind == "lp" else -1 if kind == "rp" else 0
                if depth == 0:
                    break
                index += 1
            if depth != 0:
                # an unclosed remark runs to the end of the clause
                self.annotations.append((self.pos, self.stop))
                self.pos = self.stop
                return
            self.annotations.append((self.pos, index + 1))
            self.pos = index + 1

    def _combine(self, left: Val, op: str, right: Val) -> Val:
        if self.bare_scale is not None and op in "+-" and left.unit_seen != right.unit_seen:
            # "881.8 + 11 × 903.3 GFLOPs": a bare addend is in the unit of the other
            bare = right if left.unit_seen else left
            scaled = Val(bare.value * self.bare_scale, bare.error * self.bare_scale, bare.text, bare.line,
                         bare.operators, True, bare.bytes_seen, bare.lead)
            left, right = (left, scaled) if left.unit_seen else (scaled, right)
        value = _apply(left.value, op, right.value)
        a, b = abs(left.value), abs(right.value)
        ea, eb = left.error, right.error
        if op in "+-":
            error = ea + eb
        elif op == "*":
            error = a * eb + b * ea + ea * eb
        elif op == "/":
            if b <= eb:
                raise UnsafeExpression("divisor too uncertain")
            error = (ea + abs(value) * eb) / (b - eb)
        else:  # integer power
            n = abs(int(right.value))
            if ea == 0:
                error = Fraction(0)
            else:
                high = (a + ea) ** n
                error = _check_size(high - a**n)
                if right.value < 0:
                    low = a - ea
                    error = _check_size(1 / low**n - 1 / a**n) if low > 0 else Fraction(10) ** 300
        return Val(value, error, "", right.line, left.operators + right.operators + 1,
                   left.unit_seen or right.unit_seen, left.bytes_seen or right.bytes_seen,
                   left.lead if left.lead is not None else left)


# --- chains ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ArithIssue:
    expression: str
    shown: str
    correct: str
    message: str
    line: int = 1
    computed: Fraction | None = None  # what the stated value should be
    stated: Fraction | None = None


@dataclass
class Statement:
    """Text to audit with its line map, and what the document around it knows."""

    text: str
    lines: list[tuple[int, int]]  # (offset, line) where each joined line starts
    dtype_sizes: frozenset[Fraction] = frozenset()  # element sizes of dtypes named in context


@dataclass
class _Segment:
    start: int
    end: int
    relation: str  # the relation before it ("" for the first)


def _clauses(tokens: list[Token]) -> Iterable[tuple[int, int, str]]:
    """Token ranges between separators at parenthesis depth 0, with the separator that ends each."""
    depth = 0
    start = 0
    for index, token in enumerate(tokens):
        if token.kind == "lp":
            depth += 1
        elif token.kind == "rp":
            depth = max(depth - 1, 0)
        elif token.kind == "sep" and depth == 0:
            if index > start:
                yield start, index, token.text
            start = index + 1
    if start < len(tokens):
        yield start, len(tokens), ""


def _segments(tokens: list[Token], start: int, end: int) -> list[_Segment]:
    segments = []
    depth = 0
    begin = start
    relation = ""
    for index in range(start, end):
        token = tokens[index]
        if token.kind == "lp":
            depth += 1
        elif token.kind == "rp":
            depth = max(depth - 1, 0)
        elif token.kind == "rel" and depth == 0:
            segments.append(_Segment(begin, index, relation))
            relation = token.text
            begin = index + 1
    segments.append(_Segment(begin, end, relation))
    return segments


def _is_approximate(relation: str, tokens: list[Token], segment: _Segment) -> bool:
    if relation not in ("=", ""):
        return True
    first = tokens[segment.start] if segment.start < segment.end else None
    return first is not None and (first.kind == "tilde" or first.text.lower() in _HEDGES)


class _Auditor:
    def __init__(self, statement: Statement, resolve: Resolver, define: Callable[[str, Val], None] | None):
        self.statement = statement
        self.tokens = tokenize(statement.text, statement.lines)
        self.source = _clean(statement.text)
        self.parser = _Parser(self.tokens, self.source, resolve)
        self.define = define
        self.issues: list[ArithIssue] = []

    def run(self) -> list[ArithIssue]:
        label: str | None = None
        self.carry: Val | None = None  # the last value of the clause before, for "; × 64 = ..."
        for start, end, separator in _clauses(self.tokens):
            carried, self.carry = self.carry, None
            if end - start <= MAX_CLAUSE_TOKENS:
                self._clause(start, end, label, carried)
            # ``name: ...`` labels the clause after the colon
            single = self._single_word(_Segment(start, end, ""))
            label = single if separator == ":" else None
        return self.issues

    # A clause may hold several chains when a value is followed by a new sentence part.
    def _clause(self, start: int, end: int, label: str | None, carried: Val | None = None) -> None:
        segments = _segments(self.tokens, start, end)
        if len(segments) < 2:
            if label is not None and self.define is not None:
                self._define_single(label, segments[0])
            self.carry = self._single_value(segments[0])
            self._restatements(start, end)
            return
        defined = self._single_word(segments[0])
        name = defined or label
        chain: list[tuple[_Segment, Parse]] = []
        # ``name = ...`` defines name: it is not read as a value (it may hold an older one)
        first = None if defined is not None else self._parse_suffix(segments[0])
        opening = self.tokens[start]
        if carried is not None and opening.kind == "op" and opening.text in _PRECEDENCE and segments[0].end > start + 1:
            # "...= 3,440,640; × 64 experts = 220,200,960": a running chain across the separator
            first = self._continue(carried, opening.text, _Segment(start + 1, segments[0].end, "")) or first
        if first is not None:
            chain.append((segments[0], first))
        for position in range(1, len(segments)):
            segment = segments[position]
            last = position == len(segments) - 1
            skip = self._skip_hedges(segment)
            try:
                parsed = self._parse(skip, segment.end)
            except ValueError:
                parsed = None
            if parsed is None:
                self._evaluate(chain, name)
                chain, name = [], None
                if not last:
                    restart = self._parse_suffix(segment)
                    if restart is not None:
                        chain = [(segment, restart)]
                        name = self._single_word(segment)
                continue
            breaks = next((i for i, w in enumerate(parsed.words) if w.text.lower() in _BREAKS), None)
            complete = parsed.end >= segment.end
            chain.append((segment, parsed))
            if not last and (breaks is not None or not complete):
                self._evaluate(chain, name)
                chain, name = [], None
                rest = _Segment(parsed.end if breaks is None else parsed.words[breaks].index, segment.end, "")
                restart = self._parse_suffix(rest)
                if restart is not None:
                    chain = [(rest, restart)]
                    name = self._single_word(rest)
        self._evaluate(chain, name)

    def _restatements(self, start: int, end: int) -> None:
        """``454,328,320 bytes (454.3 MiB)``: a value restated in parentheses, with no relation."""
        tokens = self.tokens
        for index in range(start, end - 2):
            first, opening = tokens[index], tokens[index + 1]
            if first.kind != "num" or opening.kind != "lp" or first.unit is None:
                continue
            inner = index + 2
            approximate = False
            while inner < end and (tokens[inner].kind in ("tilde", "rel") or tokens[inner].text.lower() in _HEDGES):
                approximate = True
                inner += 1
            if inner + 1 >= end or tokens[inner].kind != "num" or tokens[inner + 1].kind != "rp":
                continue
            second = tokens[inner]
            if second.unit is None or second.unit.family != first.unit.family:
                continue
            one = Number.parse(first, self.source[first.start : first.end])
            other = Number.parse(second, self.source[second.start : second.end])
            if one.value == 0 or not Fraction(1, 16) <= other.value / one.value <= 16:
                continue
            reference = Val(one.value, one.stated_error(False), one.text, first.line, number=one)
            self._compare_stated(reference, Val(other.value, Fraction(0), other.text, second.line, number=other), approximate)

    def _continue(self, carried: Val, op: str, rest: _Segment) -> Parse | None:
        try:
            parsed = self._parse(rest.start, rest.end)
        except ValueError:
            return None
        if parsed.val is None or parsed.end != rest.end:
            return None
        try:
            combined = self.parser._combine(carried, _CANON.get(op, op), parsed.val)
        except UnsafeExpression:
            return None
        combined.text = f"{carried.text} {op} {parsed.val.text}"
        combined.line = parsed.val.line
        combined.lead = carried
        return Parse(combined, parsed.end, parsed.words, parsed.annotations)

    def _single_value(self, segment: _Segment) -> Val | None:
        try:
            parsed = self.parser.parse(self._skip_hedges(segment), segment.end)
        except ValueError:
            return None
        val = parsed.val
        if val is not None and val.operators == 0 and val.number is not None:
            return Val(val.value, val.number.stated_error(False), val.text, val.line, number=val.number)
        return None

    def _define_single(self, name: str, segment: _Segment) -> None:
        """``attention: 61.4M`` names a value too."""
        try:
            parsed = self.parser.parse(self._skip_hedges(segment), segment.end)
        except ValueError:
            return
        val = parsed.val
        if val is not None and val.operators == 0 and val.number is not None and not parsed.words:
            approximate = _is_approximate("=", self.tokens, segment)
            assert self.define is not None
            self.define(name, Val(val.value, val.number.stated_error(approximate), val.text, val.line, number=val.number))

    def _parse(self, start: int, end: int) -> Parse:
        """Parse, and when bare and unit-bearing addends mix, also the reading with one unit."""
        parsed = self.parser.parse(start, end)
        val = parsed.val
        if val is not None and val.operators:
            used = self.tokens[start : parsed.end]
            scales = {t.unit.scale for t in used if t.kind == "num" and t.unit is not None and t.unit.prefixed}
            if len(scales) == 1 and any(t.kind == "num" and t.unit is None for t in used):
                self.parser.bare_scale = next(iter(scales))
                try:
                    again = self.parser.parse(start, end).val
                    if again is not None and again.value != val.value:
                        val.alternative = again
                except ValueError:
                    pass
                finally:
                    self.parser.bare_scale = None
        return parsed

    def _skip_hedges(self, segment: _Segment) -> int:
        index = segment.start
        while index < segment.end and (self.tokens[index].kind == "tilde" or self.tokens[index].text.lower() in _HEDGES):
            index += 1
        return index

    def _single_word(self, segment: _Segment) -> str | None:
        if segment.end - segment.start == 1 and self.tokens[segment.start].kind == "word":
            return self.tokens[segment.start].text
        return None

    def _parse_suffix(self, segment: _Segment) -> Parse | None:
        """The longest expression that ends exactly where the segment ends (labels dropped)."""
        tries = 0
        for index in range(segment.start, segment.end):
            token = self.tokens[index]
            before = self.tokens[index - 1] if index > segment.start else None
            if token.kind not in ("num", "word", "lp", "op", "tilde"):
                continue
            if before is not None and before.kind in ("op", "lp", "tilde", "num", "rp"):
                continue  # inside an expression, or a remark after a value
            tries += 1
            if tries > 12:
                return None
            start = self._skip_hedges(_Segment(index, segment.end, ""))
            try:
                parsed = self._parse(start, segment.end)
            except ValueError:
                continue
            if parsed.end == segment.end and not any(w.text.lower() in _LABEL_BREAKS for w in parsed.words):
                if parsed.val is not None and parsed.val.operators == 0 and self.tokens[start].kind == "word":
                    continue  # "... bytes in bf16 =": a name after words is a label, not a value
                return parsed
        return None

    # --- the comparison walk -----------------------------------------------------------------------------------

    def _evaluate(self, chain: list[tuple[_Segment, Parse]], name: str | None) -> None:
        reference: Val | None = None
        computed: Val | None = None  # the first computed value, for a name
        for segment, parsed in chain:
            val = parsed.val
            if val is None:
                continue
            approximate = _is_approximate(segment.relation, self.tokens, segment)
            if val.operators == 0 and val.number is not None and not val.names:
                stated = val
                if reference is None:
                    reference = Val(stated.value, stated.number.stated_error(approximate), stated.text, stated.line,
                                    number=stated.number)
                else:
                    self._compare_stated(reference, stated, approximate)
                self._compare_remarks(reference, parsed)
                continue
            if reference is None:
                reference = val
                computed = computed or val
                continue
            if self._agree(reference, val, approximate=False):
                if val.error < reference.error:
                    reference = val
                computed = computed or val
                continue
            if val.lead is not None and self._agree(reference, val.lead, approximate=False):
                reference = val  # a running chain: the previous result, multiplied on
                computed = val
                continue
            if reference.operators == 0 and reference.number is not None:
                self._report(val, reference.number, reference.text, reference.line)
            else:
                self.issues.append(
                    ArithIssue(val.text, reference.text, _plain(val.value),
                               f"`{val.text}` evaluates to {_plain(val.value)}, but `{reference.text}` is "
                               f"{_plain(reference.value)}", val.line)
                )
            reference = val
        if reference is not None:
            self.carry = reference
        if name is not None and self.define is not None:
            final = computed or reference
            if final is not None:
                self.define(name, final)

    def _agree(self, expected: Val, actual: Val, approximate: bool) -> bool:
        tolerance = expected.error + actual.error
        mine = [actual.value] + ([actual.alternative.value] if actual.alternative is not None else [])
        for candidate in self._interpretations(expected, actual.number):
            if any(abs(candidate - value) <= tolerance for value in mine):
                return True
        return False

    def _interpretations(self, computed: Val, stated: Number | None) -> list[Fraction]:
        """The computed value, and what it is if its operands are read in the result's unit or a
        bytes result leaves a named dtype's element size implicit."""
        values = [computed.value]
        if computed.alternative is not None:
            values.append(computed.alternative.value)
        if stated is None or stated.unit is None:
            return values
        unit = stated.unit
        if not computed.unit_seen and unit.scale != 1:
            values.append(computed.value * unit.scale)
        if unit.family == "bytes" and not computed.bytes_seen:
            for size in self.statement.dtype_sizes:
                values.append(computed.value * size)
        return values

    def _compare_stated(self, reference: Val, stated: Val, approximate: bool) -> None:
        number = stated.number
        assert number is not None
        tolerance = reference.error + number.stated_error(approximate)
        candidates = self._interpretations(reference, number)
        if any(abs(c - number.value) <= tolerance for c in candidates):
            return
        binary = number.binary_value()
        if binary is not None:
            binary_tolerance = reference.error + number.stated_error(approximate) / number.unit.scale * number.unit.binary
            for candidate in candidates:
                if _power_of_two_based(candidate) and abs(candidate - binary) <= binary_tolerance:
                    return
        if reference.operators == 0 and reference.number is not None and not reference.names:
            # two stated values, e.g. ``8190 = 2^13`` read the other way round, or ``21 MB = 25 MB``
            if abs(reference.value - number.value) <= reference.error + number.stated_error(approximate):
                return
        self._report(reference, number, stated.text, stated.line)

    def _report(self, computed: Val, number: Number, shown: str, line: int) -> None:
        correct = _in_unit_of(computed, number)
        named = "".join(f"; `{n}` is {k.text} (line {k.line})" for n, k in computed.names[:2])
        self.issues.append(
            ArithIssue(computed.text, shown, correct, f"`{computed.text}` evaluates to {correct}, not {shown}{named}", line,
                       computed.value, number.value)
        )

    def _compare_remarks(self, reference: Val | None, parsed: Parse) -> None:
        """``= 6.55 M (6,553,600)``: a parenthesis holding only a value restates the result."""
        if reference is None:
            return
        for start, end in parsed.annotations:
            inner = [t for t in self.tokens[start + 1 : end - 1]]
            approximate = False
            while inner and (inner[0].kind in ("tilde", "rel") or inner[0].text.lower() in _HEDGES):
                approximate = approximate or inner[0].text != "="
                inner = inner[1:]
            if len(inner) != 1 or inner[0].kind != "num":
                continue
            token = inner[0]
            number = Number.parse(token, self.source[token.start : token.end])
            if number.value == 0 or reference.value == 0:
                continue
            ratio = abs(number.value / reference.value)
            if not Fraction(1, 16) <= ratio <= 16:
                continue  # a different quantity mentioned in passing
            val = Val(number.value, Fraction(0), number.text, token.line, number=number)
            self._compare_stated(reference, val, approximate)


def _power_of_two_based(value: Fraction) -> bool:
    """Binary prefixes are only plausible for sizes built from powers of two (8192 × 512 × 2)."""
    return value.denominator == 1 and value != 0 and value.numerator % 256 == 0


def _plain(value: Fraction) -> str:
    if value.denominator == 1:
        return f"{value.numerator:,}"
    return _format(value, Fraction(1), "0")


def _format(value: Fraction, scale: Fraction, shown_number: str) -> str:
    """``value / scale`` with a sensible number of digits (never e-notation)."""
    x = value / scale
    if x == 0:
        return "0"
    shown_decimals = len(shown_number.split(".")[1]) if "." in shown_number else 0
    magnitude = math.floor(math.log10(abs(float(x)))) if float(x) != 0 else 0
    decimals = min(max(shown_decimals + 1, 3 - magnitude, 0), 12)
    text = format(round(Decimal(x.numerator) / Decimal(x.denominator), decimals), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _in_unit_of(computed: Val, number: Number) -> str:
    """The computed value written the way the stated one is (same unit and spacing)."""
    unit = number.unit
    if unit is None:
        if "," in number.digits and computed.value.denominator == 1:
            return f"{computed.value.numerator:,}"
        return _format(computed.value, Fraction(1), number.digits)
    suffix = number.text[len(number.digits) :]
    decimal = _format(computed.value, unit.scale, number.digits)
    if "," in number.digits and (computed.value / unit.scale).denominator == 1:
        decimal = f"{(computed.value / unit.scale).numerator:,}"
    text = decimal + suffix
    if unit.binary is not None and unit.family == "bytes" and _power_of_two_based(computed.value):
        binary = _format(computed.value, unit.binary, number.digits)
        if binary != decimal:
            text += f" (or {binary}{suffix.replace('B', 'iB')} in binary units)"
    return text


def audit_statement(statement: Statement, resolve: Resolver | None = None,
                    define: Callable[[str, Val], None] | None = None) -> list[ArithIssue]:
    """Every wrong value ``statement`` states; ``resolve`` knows earlier named values and dtypes."""
    return _Auditor(statement, resolve or _dtype_only, define).run()


def _dtype_only(name: str) -> Fraction | None:
    return DTYPE_BYTES.get(name.lower()) if name.lower() == name else None


def audit_line(line: str) -> list[ArithIssue]:
    """Check one line on its own (a ``#`` comment is checked apart from the code before it)."""
    issues: list[ArithIssue] = []
    parts = line.split("#", 1) if "#" in line else [line]
    for part in parts:
        issues.extend(audit_statement(Statement(part, [(0, 1)])))
    return issues
