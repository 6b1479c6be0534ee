"""Re-checking the worked arithmetic that op-docs show in their code blocks.

A line such as ``Input: 1 × 8192 × 1280 × 2 = 21 MB`` is split on ``=`` / ``≈``
into segments; every segment made only of numbers (with optional magnitude or
unit suffixes), operators and parentheses is evaluated and compared with the
final value, allowing for the rounding of the digits the final value shows.
Segments holding symbols (``B × S × h``) are skipped.

Expressions are evaluated by walking a whitelisted Python AST (numbers and
``+ - * / **``); nothing is ever passed to ``eval``.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from decimal import Decimal

__all__ = ["ArithIssue", "UnsafeExpression", "audit_line", "safe_eval"]


class UnsafeExpression(ValueError):
    """The expression is not plain arithmetic (or is too large to evaluate)."""


_MAX_EXPONENT = 64
_MAX_BASE = 1e6


def safe_eval(expression: str) -> float:
    """Evaluate ``expression`` made of numbers, ``+ - * / **`` and parentheses."""
    try:
        tree = ast.parse(expression, mode="eval")
    except (SyntaxError, ValueError) as exc:
        raise UnsafeExpression(str(exc)) from None

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return float(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
            value = walk(node.operand)
            return value if isinstance(node.op, ast.UAdd) else -value
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)):
            left = walk(node.left)
            right = walk(node.right)
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Mult):
                return left * right
            if isinstance(node.op, ast.Div):
                if right == 0:
                    raise UnsafeExpression("division by zero")
                return left / right
            if abs(right) > _MAX_EXPONENT or abs(left) > _MAX_BASE:
                raise UnsafeExpression("power too large to check")
            try:
                result = left**right
            except (OverflowError, ZeroDivisionError) as exc:
                raise UnsafeExpression(str(exc)) from None
            if isinstance(result, complex):
                raise UnsafeExpression("complex result")
            return float(result)
        raise UnsafeExpression(f"not arithmetic: {type(node).__name__}")

    value = walk(tree)
    if not math.isfinite(value):
        raise UnsafeExpression("result is not finite")
    return value


# --- units ----------------------------------------------------------------------------------------------------

_PREFIX = {"": 0, "K": 1, "k": 1, "M": 2, "G": 3, "T": 4, "P": 5}


@dataclass(frozen=True)
class _Unit:
    decimal: float
    binary: float  # equal to ``decimal`` unless the unit is an ambiguous byte unit
    label: str

    @property
    def ambiguous(self) -> bool:
        return self.decimal != self.binary


def _build_units() -> dict[str, _Unit]:
    units: dict[str, _Unit] = {}
    for prefix, power in _PREFIX.items():
        scale = 1000.0**power
        if prefix:
            units[prefix] = _Unit(scale, scale, prefix)
        for flop in ("FLOP", "FLOPs", "FLOPS", "flops", "Flops"):
            units[prefix + flop] = _Unit(scale, scale, prefix + "FLOPs")
        if prefix:
            units[prefix + "B"] = _Unit(scale, 1024.0**power, prefix.upper() + "B")
            units[prefix.upper() + "iB"] = _Unit(1024.0**power, 1024.0**power, prefix.upper() + "iB")
    for word in ("bytes", "byte", "params", "parameters", "elements"):
        units[word] = _Unit(1.0, 1.0, word)
    return units


_UNITS = _build_units()
_UNIT_ALTERNATION = "|".join(sorted((re.escape(u) for u in _UNITS), key=len, reverse=True))
_TIMES_SUFFIX = _Unit(1.0, 1.0, "x")  # "64x": a ratio, written glued to its number
_NUMBER = r"(?:\d{1,3}(?:,\d{3})+(?![\d,])(?:\.\d+)?|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|\.\d+)"
_TOKEN = re.compile(
    rf"""
    (?P<space>\s+)
  | (?P<number>{_NUMBER})(?:(?P<xunit>x)(?![A-Za-z0-9_])|[ ]?(?P<unit>{_UNIT_ALTERNATION})(?![A-Za-z0-9_]))?
  | (?P<op>\*\*|[×*·∙⋅÷/+\-−^()²³])
  | (?P<times>(?<=\s)x(?=\s))
    """,
    re.VERBOSE,
)
_RANGE = re.compile(r"\d-\d")
_RELATION = re.compile(r"\s+(=|~=|≃|≅)\s+|\s*(≈)\s*")
_LEAD = re.compile(r"^\s*(?:[-*•+]\s+|\d+[.)]\s+)?")
_LABEL = re.compile(r"^[^=≈:`]*[A-Za-z][^=≈:`]*:\s+")
_VALUE = re.compile(
    rf"^\s*~?\s*(?P<number>{_NUMBER})"
    rf"(?:(?P<xunit>x)(?![A-Za-z0-9_])|[ ]?(?P<unit>{_UNIT_ALTERNATION})(?![A-Za-z0-9_]))?(?P<rest>.*)$"
)


@dataclass(frozen=True)
class _Evaluated:
    text: str
    decimal: float
    binary: float
    ambiguous: bool
    has_operator: bool


def _evaluate_segment(segment: str) -> _Evaluated | None:
    """Evaluate one ``=``-separated segment, or ``None`` if it holds symbols."""
    text = segment.strip().lstrip("~").strip()
    if not text or _RANGE.search(text.replace("e-", "e+")):
        return None
    pieces_dec: list[str] = []
    pieces_bin: list[str] = []
    ambiguous = False
    operators = 0
    numbers = 0
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            return None  # a symbol or unknown character
        position = match.end()
        if match.group("space"):
            continue
        if match.group("number"):
            numbers += 1
            value = float(match.group("number").replace(",", ""))
            unit = _TIMES_SUFFIX if match.group("xunit") else _UNITS.get(match.group("unit") or "")
            if unit is None:
                pieces_dec.append(repr(value))
                pieces_bin.append(repr(value))
            else:
                ambiguous = ambiguous or unit.ambiguous
                pieces_dec.append(f"({value!r}*{unit.decimal!r})")
                pieces_bin.append(f"({value!r}*{unit.binary!r})")
            continue
        token = match.group("op") or "*"
        python = {"×": "*", "·": "*", "∙": "*", "⋅": "*", "÷": "/", "−": "-", "^": "**", "²": "**2", "³": "**3"}.get(token, token)
        if python not in ("(", ")"):
            operators += 1
        pieces_dec.append(python)
        pieces_bin.append(python)
    if numbers == 0:
        return None
    try:
        decimal = safe_eval(" ".join(pieces_dec))
        binary = safe_eval(" ".join(pieces_bin))
    except UnsafeExpression:
        return None
    return _Evaluated(text, decimal, binary, ambiguous, operators > 0)


@dataclass(frozen=True)
class _Shown:
    text: str
    number: str
    unit: _Unit | None
    decimal: float
    binary: float
    half_ulp_dec: float
    half_ulp_bin: float


def _shown_value(segment: str) -> _Shown | None:
    """The value a line ends with: a number with an optional unit, possibly
    followed by words (``per layer``) or a parenthetical remark."""
    match = _VALUE.match(segment)
    if not match:
        return None
    rest = match.group("rest")
    remark = rest.lstrip()
    if remark:
        if rest[0] not in " \t,;.!)":
            return None  # glued text: not a plain value
        if remark[0] in "×*·∙⋅/+−^÷²³" or remark[0].isdigit():
            return None  # the value continues as an expression
        if remark[0] == "-" and not re.match(r"-+\s", remark):
            return None
    digits = match.group("number").replace(",", "")
    unit = _TIMES_SUFFIX if match.group("xunit") else _UNITS.get(match.group("unit") or "")
    number = float(digits)
    mantissa = digits.lower().split("e")[0]
    exponent = int(digits.lower().split("e")[1]) if "e" in digits.lower() else 0
    if "." in mantissa:
        ulp = 10.0 ** (-len(mantissa.split(".")[1]))
    else:
        stripped = mantissa.rstrip("0")
        ulp = 10.0 ** (len(mantissa) - len(stripped)) if stripped else 1.0
    ulp *= 10.0**exponent
    dec_scale = unit.decimal if unit else 1.0
    bin_scale = unit.binary if unit else 1.0
    return _Shown(
        text=match.group(0)[: len(match.group(0)) - len(rest)].strip().lstrip("~").strip(),
        number=match.group("number"),
        unit=unit,
        decimal=number * dec_scale,
        binary=number * bin_scale,
        half_ulp_dec=0.5 * ulp * dec_scale,
        half_ulp_bin=0.5 * ulp * bin_scale,
    )


@dataclass(frozen=True)
class ArithIssue:
    expression: str
    shown: str
    correct: str
    message: str


def _format(value: float, scale: float, shown_number: str) -> str:
    """``value / scale`` with a sensible number of digits (never e-notation)."""
    x = value / scale
    if x == 0:
        return "0"
    shown_decimals = len(shown_number.split(".")[1]) if "." in shown_number else 0
    magnitude = math.floor(math.log10(abs(x)))
    decimals = max(shown_decimals + 1, 3 - magnitude, 0)
    decimals = min(decimals, 12)
    text = format(Decimal(repr(round(x, decimals))), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _correct_text(evaluated: _Evaluated, shown: _Shown) -> str:
    unit = shown.unit
    if unit is None:
        return _format(evaluated.decimal, 1.0, shown.number)
    separator = "" if unit.label in ("K", "M", "G", "T", "P", "x") else " "
    decimal_text = f"{_format(evaluated.decimal, unit.decimal, shown.number)}{separator}{unit.label}"
    if unit.ambiguous or evaluated.ambiguous:
        binary_number = _format(evaluated.binary, unit.binary, shown.number)
        if binary_number != _format(evaluated.decimal, unit.decimal, shown.number):
            binary_label = unit.label.replace("B", "iB") if unit.ambiguous else unit.label
            return f"{decimal_text} (or {binary_number}{separator}{binary_label} in binary units)"
    return decimal_text


def _close(actual: float, expected: float, half_ulp: float, exact: bool = False) -> bool:
    if exact:  # whole numbers below 2**53 are exact in floating point
        return actual == expected
    slack = half_ulp * (1 + 1e-9) + 1e-12 * max(abs(actual), abs(expected))
    return abs(actual - expected) <= slack


def audit_line(line: str) -> list[ArithIssue]:
    """Check every pure-arithmetic segment of ``line`` against its final value."""
    issues: list[ArithIssue] = []
    candidates = [line]
    if "#" in line:
        code, comment = line.split("#", 1)
        candidates = [code, comment]
    for candidate in candidates:
        issues.extend(_audit_text(candidate))
    return issues


def _audit_text(text: str) -> list[ArithIssue]:
    body = _LEAD.sub("", text, count=1)
    body = _LABEL.sub("", body, count=1)
    pieces = _RELATION.split(body)
    if len(pieces) < 4:
        return []
    # re.split with two groups yields: segment, group1, group2, segment, ...
    segments = pieces[0::3]
    relations = [a or b for a, b in zip(pieces[1::3], pieces[2::3])]
    final = segments[-1]
    approximate = relations[-1] != "=" or final.lstrip().startswith("~")
    shown = _shown_value(final)
    final_expression = None if shown else _evaluate_segment(final)
    if shown is None and (final_expression is None or not final_expression.has_operator):
        return []
    issues = []
    for segment in segments[:-1]:
        evaluated = _evaluate_segment(segment)
        if evaluated is None or (shown is not None and not evaluated.has_operator):
            continue
        if shown is not None:
            exact = (
                not approximate
                and shown.unit is None
                and not re.search(r"[.eE]", shown.number)
                and abs(evaluated.decimal - round(evaluated.decimal)) < 1e-9
            )
            ok = _close(evaluated.decimal, shown.decimal, shown.half_ulp_dec, exact) or (
                (evaluated.ambiguous or (shown.unit is not None and shown.unit.ambiguous))
                and _close(evaluated.binary, shown.binary, shown.half_ulp_bin)
            )
            if ok:
                continue
            correct = _correct_text(evaluated, shown)
            issues.append(
                ArithIssue(
                    evaluated.text,
                    shown.text,
                    correct,
                    f"`{evaluated.text}` evaluates to {correct}, not {shown.text}",
                )
            )
        else:
            assert final_expression is not None
            if _close(evaluated.decimal, final_expression.decimal, 0.0) or _close(
                evaluated.binary, final_expression.binary, 0.0
            ):
                continue
            correct = _format(evaluated.decimal, 1.0, "0")
            other = _format(final_expression.decimal, 1.0, "0")
            if evaluated.has_operator:
                message = f"`{evaluated.text}` evaluates to {correct}, but `{final_expression.text}` is {other}"
            else:
                message = f"`{final_expression.text}` evaluates to {other}, not {evaluated.text}"
            issues.append(ArithIssue(evaluated.text, final_expression.text, correct, message))
    return issues
