"""Stage helper: safe formula parsing (an `ast` whitelist turned into sympy) and number formatting.

Formula strings come from YAML that anyone can edit, so they are never given to `eval` or to
`sympy.sympify` (which evaluates Python). Only numbers, declared symbols, + - * / ** //, unary minus
and a short list of named functions are accepted; anything else is an error that says what it found.
"""

from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Callable, Mapping
from fractions import Fraction

import sympy

MAX_FORMULA_CHARS = 2000
MAX_EXPONENT = 64  # formulas are polynomials in the dimensions; a larger power is a mistake or an attack
MAX_LITERAL = 10**21  # larger than any FLOP count we document, small enough to print


class FormulaError(ValueError):
    """A formula the spec author must fix; the message says what and how."""


def _ceil(x: sympy.Expr) -> sympy.Expr:
    return sympy.ceiling(x)


class log2(sympy.Function):  # noqa: N801 - prints as the formula's author wrote it
    """Base-2 logarithm that stays `log2(x)` while symbolic and becomes exact once x is a number."""

    @classmethod
    def eval(cls, x):
        if x.is_Number:
            return sympy.log(x, 2)
        return None


def _log2(x: sympy.Expr) -> sympy.Expr:
    return log2(x)


class _Extremum(sympy.Function):
    """max/min that stays symbolic until every argument is a number.

    sympy's own Max and Min compare symbolic arguments on every construction to drop dominated ones;
    peak-memory formulas nest them deeply and are rebuilt at every substitution, which made a build
    take minutes. Here the comparison happens once, on numbers, and is exact.
    """

    pick = max

    @classmethod
    def eval(cls, *args):
        if all(arg.is_Number for arg in args):
            return cls.pick(args)
        return None


class maximum(_Extremum):  # noqa: N801
    pick = max


class minimum(_Extremum):  # noqa: N801
    pick = min


# name -> (arity, builder). `min`/`max` take two or more arguments.
FUNCTIONS: dict[str, tuple[int | None, Callable[..., sympy.Expr]]] = {
    "ceil": (1, _ceil),
    "floor": (1, sympy.floor),
    "min": (None, lambda *args: minimum(*args)),
    "max": (None, lambda *args: maximum(*args)),
    "log2": (1, _log2),
    "sqrt": (1, sympy.sqrt),
}

_BINARY = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: sympy.floor(a / b),
}


def suggest(name: str, known: list[str]) -> str:
    """' (did you mean 'x'?)' for the nearest known name, or '' when nothing is close."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def parse_formula(
    text: str | int | float,
    symbols: Mapping[str, sympy.Expr],
    extra_functions: Mapping[str, Callable[[str], sympy.Expr]] | None = None,
) -> sympy.Expr:
    """Parse `text` into a sympy expression over `symbols`, refusing anything that is not arithmetic.

    `extra_functions` maps a name to a resolver called with the *name* of its single argument, for
    references such as `peak(mlp)` whose argument is a child, not a symbol.
    """
    if isinstance(text, bool):
        raise FormulaError(f"expected a formula, got the boolean {text}")
    if isinstance(text, int | float):
        return _number(text)
    if not isinstance(text, str):
        raise FormulaError(f"expected a formula string, got {type(text).__name__}")
    if len(text) > MAX_FORMULA_CHARS:
        raise FormulaError(f"formula is {len(text)} characters long; the limit is {MAX_FORMULA_CHARS}")
    source = text.strip()
    if not source:
        raise FormulaError("empty formula")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise FormulaError(f"not a formula: {exc.msg} at column {exc.offset}") from None
    except (RecursionError, MemoryError):
        raise FormulaError("formula is nested too deeply") from None
    return _Converter(symbols, extra_functions or {}).convert(tree.body)


def _number(value: int | float) -> sympy.Expr:
    if abs(value) > MAX_LITERAL:
        raise FormulaError(f"number {value!r} is larger than {MAX_LITERAL:.0e}")
    if isinstance(value, int):
        return sympy.Integer(value)
    # A float literal such as 1.0e-6 is kept exact as the decimal the author wrote.
    fraction = Fraction(repr(value))
    return sympy.Rational(fraction.numerator, fraction.denominator)


class _Converter:
    def __init__(self, symbols: Mapping[str, sympy.Expr], extra: Mapping[str, Callable[[str], sympy.Expr]]):
        self.symbols = symbols
        self.extra = extra

    def convert(self, node: ast.AST) -> sympy.Expr:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise FormulaError(f"{_describe(node)} is not allowed in a formula; use numbers, symbols, "
                               f"+ - * / ** // and {', '.join(sorted([*FUNCTIONS, *self.extra]))}()")
        return method(node)

    def _Constant(self, node: ast.Constant) -> sympy.Expr:
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise FormulaError(f"{_describe(node)} is not allowed in a formula; only numbers are")
        return _number(node.value)

    def _Name(self, node: ast.Name) -> sympy.Expr:
        if node.id not in self.symbols:
            raise FormulaError(f"unknown symbol '{node.id}'{suggest(node.id, sorted(self.symbols))}")
        return self.symbols[node.id]

    def _UnaryOp(self, node: ast.UnaryOp) -> sympy.Expr:
        operand = self.convert(node.operand)
        if isinstance(node.op, ast.USub):
            return -operand
        if isinstance(node.op, ast.UAdd):
            return operand
        raise FormulaError(f"operator {type(node.op).__name__} is not allowed in a formula")

    def _BinOp(self, node: ast.BinOp) -> sympy.Expr:
        if isinstance(node.op, ast.Pow):
            return self._power(node)
        build = _BINARY.get(type(node.op))
        if build is None:
            raise FormulaError(f"operator {type(node.op).__name__} is not allowed in a formula")
        return build(self.convert(node.left), self.convert(node.right))

    def _power(self, node: ast.BinOp) -> sympy.Expr:
        # Only a literal exponent: x**2 is a formula, x**y or 9**9**9 is a way to hang the build.
        exponent = node.right
        sign = 1
        if isinstance(exponent, ast.UnaryOp) and isinstance(exponent.op, ast.USub):
            sign, exponent = -1, exponent.operand
        if not (isinstance(exponent, ast.Constant) and isinstance(exponent.value, int)
                and not isinstance(exponent.value, bool)):
            raise FormulaError("an exponent must be a whole number written as a literal, e.g. S**2")
        if exponent.value > MAX_EXPONENT:
            raise FormulaError(f"exponent {exponent.value} is larger than {MAX_EXPONENT}")
        return self.convert(node.left) ** (sign * exponent.value)

    def _Call(self, node: ast.Call) -> sympy.Expr:
        if not isinstance(node.func, ast.Name):
            raise FormulaError(f"{_describe(node.func)} cannot be called in a formula")
        name = node.func.id
        if node.keywords:
            raise FormulaError(f"{name}() takes no keyword arguments in a formula")
        if name in self.extra:
            if len(node.args) != 1 or not isinstance(node.args[0], ast.Name):
                raise FormulaError(f"{name}() takes one name, e.g. {name}(mlp)")
            return self.extra[name](node.args[0].id)
        if name not in FUNCTIONS:
            known = sorted([*FUNCTIONS, *self.extra])
            raise FormulaError(f"unknown function '{name}'{suggest(name, known)}; "
                               f"allowed: {', '.join(known)}")
        arity, build = FUNCTIONS[name]
        if arity is not None and len(node.args) != arity:
            raise FormulaError(f"{name}() takes {arity} argument(s), got {len(node.args)}")
        if arity is None and len(node.args) < 2:
            raise FormulaError(f"{name}() takes two or more arguments")
        return build(*(self.convert(arg) for arg in node.args))


def _describe(node: ast.AST) -> str:
    kinds = {
        ast.Attribute: "attribute access", ast.Lambda: "a lambda", ast.ListComp: "a comprehension",
        ast.SetComp: "a comprehension", ast.DictComp: "a comprehension", ast.GeneratorExp: "a generator",
        ast.Subscript: "indexing", ast.Compare: "a comparison", ast.BoolOp: "a boolean operator",
        ast.IfExp: "a conditional expression", ast.NamedExpr: "an assignment", ast.Starred: "unpacking",
        ast.List: "a list", ast.Tuple: "a tuple", ast.Dict: "a dict", ast.Set: "a set",
        ast.JoinedStr: "an f-string", ast.Await: "await", ast.Yield: "yield",
    }
    if isinstance(node, ast.Constant):
        return f"the constant {node.value!r}"
    return kinds.get(type(node), f"syntax '{type(node).__name__}'")


# ---------------------------------------------------------------------------------------------
# Printing: plain text as the template writes formulas (2 × B × S × h), and exact numbers.

_POWERS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def plain_text(expr: sympy.Expr) -> str:
    """`2*B*S**2*h` -> `2 × B × S² × h`: the template's notation, deterministic for one sympy version."""
    text = sympy.sstr(expr, order="grlex").replace("maximum(", "max(").replace("minimum(", "min(")
    text = text.replace("ceiling(", "ceil(")  # the formula language's name, so the text parses back
    text = re.sub(r"\*\*(\d+)", lambda m: m.group(1).translate(_POWERS), text)
    text = re.sub(r"\*\*\(?(-?\d+)\)?", lambda m: "^" + m.group(1), text)
    return text.replace("*", " × ")


def source_text(text: str | int | float) -> str:
    """The author's own formula with × for *: keeps the order the spec chose, which reads best."""
    text = str(text).strip()
    text = re.sub(r"\*\*(\d+)", lambda m: m.group(1).translate(_POWERS), text)
    return re.sub(r"\s*\*\s*", " × ", text)


_PREFIXES = [(10**15, "P"), (10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "K")]

# unit -> how a prefixed figure reads ("{n} {p}FLOPs") and how a small one does ("{n} FLOPs").
UNITS = {
    "flops": ("{n} {p}FLOPs", "{n} FLOPs"),
    "bytes": ("{n} {p}B", "{n} B"),
    "params": ("{n} {p} parameters", "{n} parameters"),
    "count": ("{n} {p}", "{n}"),
}


def exact_number(value: sympy.Expr | int) -> str:
    """The exact value: an integer with thousands separators, or a decimal when it is not whole."""
    value = sympy.Integer(value) if isinstance(value, int) else sympy.nsimplify(value)
    if value.is_Integer:
        return f"{int(value):,}"
    return f"{float(value):,.6g}"


def engineering(value: sympy.Expr | int, unit: str) -> str:
    """430838906880 flops -> '430.84 GFLOPs'; 26296320 params -> '26.30 M parameters' (decimal prefixes)."""
    prefixed, small = UNITS[unit]
    number = float(value)
    for scale, prefix in _PREFIXES:
        if abs(number) >= scale:
            return prefixed.format(n=f"{number / scale:.2f}", p=prefix)
    return small.format(n=exact_number(value))


def with_exact(value: sympy.Expr | int, unit: str) -> str:
    """'430.84 GFLOPs (430,838,906,880)': the readable figure and the exact one beside it."""
    short = engineering(value, unit)
    exact = exact_number(value)
    return short if short.startswith(exact + " ") or short == exact else f"{short} ({exact})"
