"""Stage helper: safe formula parsing (an `ast` whitelist turned into sympy) and number formatting.

Formula strings come from YAML that anyone can edit, so they are never given to `eval` or to
`sympy.sympify` (which evaluates Python). Only numbers, declared symbols, + - * / ** //, unary minus
and a short list of named functions are accepted; anything else is an error that says what it found.

The work a formula can cause is bounded before it is done: its length, the size and nesting of its
syntax tree, every exponent, the degree and the number of terms it can expand to, and the size of
every constant, so a hostile formula is refused in milliseconds instead of hanging the build. Every
part is checked to be a finite real number as it is built (`1/0`, `sqrt(-1)`, `log2(0)` are refused).

Pages print formulas in the notation `2 × B × S² × h`; `parse_formula` reads that notation too, so
a formula printed on a page parses back to the same expression.
"""

from __future__ import annotations

import ast
import difflib
import io
import math
import re
import tokenize
from functools import lru_cache
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction

import sympy
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import precedence
from sympy.printing.str import StrPrinter

from opdoc.charset import hidden_character, lookalike

MAX_FORMULA_CHARS = 2000
MAX_NODES = 500  # syntax-tree nodes; the largest formula in the DeepSeek-OCR specs has under 200
MAX_DEPTH = 50  # syntax-tree nesting; deeper trees overflow sympy's recursion (the specs reach 15)
MAX_EXPONENT = 64  # formulas are polynomials in the dimensions; a larger power is a mistake or an attack
MAX_DEGREE = 16  # total degree after expansion ((S**8)**8 is degree 64); the specs reach 7
MAX_TERMS = 100  # an upper bound on the terms after expansion (proofs simplify them); the specs reach 11
MAX_LITERAL = 10**21  # larger than any FLOP count we document, small enough to print
MIN_LITERAL = Fraction(1, 10**21)  # smaller non-zero literals are refused, not rounded to 0
_LITERAL_DIGITS = math.log10(MAX_LITERAL)  # so also every computed number, numerator and denominator


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
        if all(arg.is_number and arg.is_extended_real for arg in args):  # sqrt(8), log2(3): compared exactly
            return cls.pick(args, key=lambda arg: (arg, sympy.default_sort_key(arg)))
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

# Values sympy builds for 1/0, 0/0, sqrt(-1), log2(0): none is a count of anything.
_NOT_FINITE_REAL = (sympy.zoo, sympy.nan, sympy.oo, -sympy.oo, sympy.I)


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

    The result depends on `symbols` only through the names the formula reads, so it is kept by their
    values: specs repeat formulas (B*S*h), and examples, check points and overrides bind most of a
    model's formulas to the same values again. A failure is not kept (its message suggests names
    from the whole table).
    """
    if extra_functions:  # a resolver's answer is not a value a key could hold
        return _parse(text, symbols, extra_functions, screen=False)
    key = (type(text), text, tuple((name, symbols.get(name)) for name in names_in(text)))  # 1 is not True
    found = _PARSED.get(key)
    if found is None:
        if len(_PARSED) >= _MOST_PARSED:  # a long-lived caller sweeping a size: start again, do not grow
            _PARSED.clear()
        found = _PARSED[key] = _parse(text, symbols, {}, screen=False)
    return found


_PARSED: dict[tuple, sympy.Expr] = {}
_MOST_PARSED = 100_000  # a build keeps about 3,000


def names_in(text: str | int | float) -> tuple[str, ...]:
    """The names a formula reads (symbols and functions), sorted; () for a number. A formula that does
    not parse raises FormulaError, as parse_formula would."""
    if isinstance(text, bool) or not isinstance(text, str):
        return ()
    return _names(text)


@lru_cache(maxsize=None)
def _names(text: str) -> tuple[str, ...]:
    return tuple(sorted({node.id for node in ast.walk(_syntax(text)[1]) if isinstance(node, ast.Name)}))


def check_formula(text: str | int | float) -> str | int | float:
    """Refuse a formula that no symbol table can rescue (syntax, size, 1/0, lookalikes, ...); return it.

    Run while a spec is validated, so such errors carry their YAML line even where the formula is
    parsed much later (a model's bindings). Unknown names and functions are left for `parse_formula`.
    """
    _screen(text)
    return text


@lru_cache(maxsize=None, typed=True)  # typed: True is not the formula 1
def _screen(text: str | int | float) -> None:
    """Once per distinct formula (specs repeat B*S*h many times); a failure is raised each time."""
    _parse(text, {}, {}, screen=True)


def _parse(text: str | int | float, symbols: Mapping[str, sympy.Expr],
           extra_functions: Mapping[str, Callable[[str], sympy.Expr]], screen: bool) -> sympy.Expr:
    if isinstance(text, bool):
        raise FormulaError(f"expected a formula, got the boolean {text}")
    if isinstance(text, int | float):
        return _number(text)
    if not isinstance(text, str):
        raise FormulaError(f"expected a formula string, got {type(text).__name__}")
    source, tree = _syntax(text)
    try:
        expr = _Converter(source, symbols, extra_functions, screen).convert(tree.body).expr
    except RecursionError:  # a last guard; the size check keeps sympy well inside its recursion limit
        raise FormulaError("formula is nested too deeply") from None
    for number in expr.atoms(sympy.Rational):  # coefficients too: (10**12*S)**2 is 10**24*S**2
        if max(abs(number.p), number.q) > MAX_LITERAL:
            raise FormulaError(f"this formula holds {_size(number)}; numbers in formulas stay within 1e21")
    return expr


@lru_cache(maxsize=None)
def _syntax(text: str) -> tuple[str, ast.Expression]:
    """A formula's text screened and parsed: the same text is parsed for every binding that uses it
    (a failure is not cached: it is raised again each time)."""
    if len(text) > MAX_FORMULA_CHARS:
        raise FormulaError(f"formula is {len(text)} characters long; the limit is {MAX_FORMULA_CHARS}")
    hidden = hidden_character(text)
    if hidden is not None:
        raise FormulaError(f"character {hidden[0] + 1}: {hidden[1]}")
    source = from_page_notation(text).strip()
    if not source:
        raise FormulaError("empty formula")
    problem = lookalike(source)
    if problem is not None:
        raise FormulaError(problem)
    if "#" in source:
        raise FormulaError("a formula cannot hold a comment (#); explain it in the field beside it")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise FormulaError(f"not a formula: {exc.msg} at column {exc.offset}") from None
    except (RecursionError, MemoryError):
        raise FormulaError("formula is nested too deeply") from None
    _check_size(tree)
    return source, tree


def _size(number: sympy.Rational) -> str:
    return f"a number of about {round(max(abs(number.p), number.q).bit_length() * math.log10(2))} digits"


# Page notation: `×` for `*` and superscript exponents (`S²`, `S⁻¹`).
_SUPERSCRIPTS = "⁰¹²³⁴⁵⁶⁷⁸⁹"
_TO_SUPERSCRIPT = str.maketrans("0123456789-", _SUPERSCRIPTS + "⁻")
_FROM_SUPERSCRIPT = str.maketrans(_SUPERSCRIPTS + "⁻", "0123456789-")
_SUPERSCRIPT_RUN = re.compile(f"⁻?[{_SUPERSCRIPTS}]+")


def from_page_notation(text: str) -> str:
    """'2 × B × S² × h' -> '2 * B * S**(2) * h': the notation pages print, as Python syntax."""
    text = text.replace("×", "*")
    return _SUPERSCRIPT_RUN.sub(lambda m: f"**({m.group(0).translate(_FROM_SUPERSCRIPT)})", text)


def _superscript(exponent: int) -> str:
    return str(exponent).translate(_TO_SUPERSCRIPT)


def _check_size(tree: ast.AST) -> None:
    """Refuse a syntax tree too large or too deep before anything is built from it (iteratively).

    A chain of the same operator (a + b + c, a * b / c) is as deep as it is long in Python's tree,
    but sympy keeps it flat: it counts as one level, and its length is bounded by MAX_NODES.
    """
    count, deepest, stack = 0, 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise FormulaError(f"formula has more than {MAX_NODES} parts; split it or simplify it")
        deepest = max(deepest, depth)
        for child in ast.iter_child_nodes(node):
            chained = (isinstance(node, ast.BinOp) and isinstance(child, ast.BinOp) and child is node.left
                       and _CHAINS.get(type(node.op)) == _CHAINS.get(type(child.op)) is not None)
            stack.append((child, depth if chained else depth + 1))
    if deepest > MAX_DEPTH:
        raise FormulaError(f"formula is nested more than {MAX_DEPTH} levels deep; simplify it")


_CHAINS = {ast.Add: "sum", ast.Sub: "sum", ast.Mult: "product", ast.Div: "product"}


def _number(value: int | float | Fraction, written: str | None = None) -> sympy.Expr:
    if isinstance(value, float) and not math.isfinite(value):
        raise FormulaError(f"{value!r} is not a number a formula can use")
    if abs(value) > MAX_LITERAL:
        raise FormulaError(f"number {written or repr(value)} is larger than {MAX_LITERAL:.0e}")
    if isinstance(value, int):
        return sympy.Integer(value)
    # A float is kept exact as the decimal it prints as (YAML's 1.0e-6 is 1/10**6, not a binary fraction).
    fraction = value if isinstance(value, Fraction) else Fraction(repr(value))
    if fraction and abs(fraction) < MIN_LITERAL:
        raise FormulaError(f"number {written or repr(value)} is smaller than {float(MIN_LITERAL):.0e}; "
                           "it would be lost in the arithmetic")
    return sympy.Rational(fraction.numerator, fraction.denominator)


@dataclass(frozen=True)
class _Part:
    """A converted sub-formula with upper bounds on its degree and on its terms once expanded."""

    expr: sympy.Expr
    degree: int = 0
    terms: int = 1


class _Converter:
    def __init__(self, source: str, symbols: Mapping[str, sympy.Expr],
                 extra: Mapping[str, Callable[[str], sympy.Expr]], screen: bool = False):
        self.source = source
        self.symbols = symbols
        self.extra = extra
        self.screen = screen  # check_formula: any name stands for a positive symbol, any call for one too

    def convert(self, node: ast.AST) -> _Part:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise FormulaError(f"{_describe(node)} is not allowed in a formula; use numbers, symbols, "
                               f"+ - * / ** // and {', '.join(self._function_names())}()")
        part = method(node)
        if part.degree > MAX_DEGREE:
            raise FormulaError(f"'{self._text(node)}' has degree up to {part.degree} in the symbols; "
                               f"the limit is {MAX_DEGREE}")
        if part.terms > MAX_TERMS:
            raise FormulaError(f"'{self._text(node)}' expands to as many as {part.terms} terms; "
                               f"the limit is {MAX_TERMS}")
        if part.expr.is_Number:
            self._check_constant(part.expr, node)
        return part

    def _function_names(self) -> list[str]:
        return sorted({*FUNCTIONS, *self.extra})

    def _text(self, node: ast.AST) -> str:
        text = ast.get_source_segment(self.source, node) or type(node).__name__
        return text if len(text) <= 60 else text[:57] + "..."

    def _check_constant(self, value: sympy.Expr, node: ast.AST) -> None:
        if not value.is_Rational:  # zoo, nan, ±oo, I and any irrational
            raise FormulaError(f"'{self._text(node)}' is not a finite real number")
        if max(abs(value.p), value.q) > MAX_LITERAL:
            raise FormulaError(f"'{self._text(node)}' is {_size(value)}; numbers in formulas stay within 1e21")

    def _finite(self, part: _Part, node: ast.AST, why: str) -> _Part:
        """Division, negative powers, sqrt and log2 are where a non-finite or complex value can appear."""
        if part.expr.has(*_NOT_FINITE_REAL):
            raise FormulaError(f"'{self._text(node)}' is not a finite real number ({why})")
        return part

    def _Constant(self, node: ast.Constant) -> _Part:
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise FormulaError(f"{_describe(node)} is not allowed in a formula; only numbers are")
        if isinstance(node.value, float):
            # The decimal as written: Python's float would round 1e-400 to 0 and 1e400 to infinity.
            written = (ast.get_source_segment(self.source, node) or repr(node.value)).replace("_", "")
            return _Part(_number(Fraction(written), written) if _is_decimal(written) else _number(node.value))
        return _Part(_number(node.value))

    def _Name(self, node: ast.Name) -> _Part:
        if node.id not in self.symbols:
            if self.screen:
                return _Part(sympy.Symbol(node.id, positive=True), degree=1)
            raise FormulaError(f"unknown symbol '{node.id}'{suggest(node.id, sorted(self.symbols))}")
        value = self.symbols[node.id]
        return _Part(value) if value.is_Number else _Part(value, degree=1)

    def _UnaryOp(self, node: ast.UnaryOp) -> _Part:
        operand = self.convert(node.operand)
        if isinstance(node.op, ast.USub):
            return _Part(-operand.expr, operand.degree, operand.terms)
        if isinstance(node.op, ast.UAdd):
            return operand
        raise FormulaError(f"operator {type(node.op).__name__} is not allowed in a formula")

    def _BinOp(self, node: ast.BinOp) -> _Part:
        if isinstance(node.op, ast.Pow):
            return self._power(node)
        build = _BINARY.get(type(node.op))
        if build is None:
            raise FormulaError(f"operator {type(node.op).__name__} is not allowed in a formula")
        left, right = self.convert(node.left), self.convert(node.right)
        expr = build(left.expr, right.expr)
        if isinstance(node.op, ast.Add | ast.Sub):
            return _Part(expr, max(left.degree, right.degree), left.terms + right.terms)
        if isinstance(node.op, ast.Mult):
            return _Part(expr, left.degree + right.degree, left.terms * right.terms)
        if right.expr.is_zero:
            raise FormulaError(f"'{self._text(node)}' divides by zero")
        part = _Part(expr, left.degree + right.degree, left.terms if isinstance(node.op, ast.Div) else 1)
        return self._finite(part, node, "a division")

    def _power(self, node: ast.BinOp) -> _Part:
        # Only a literal exponent: x**2 is a formula, x**y or 9**9**9 is a way to hang the build.
        exponent = node.right
        sign = 1
        if isinstance(exponent, ast.UnaryOp) and isinstance(exponent.op, ast.USub | ast.UAdd):
            sign, exponent = (-1 if isinstance(exponent.op, ast.USub) else 1), exponent.operand
        if not (isinstance(exponent, ast.Constant) and isinstance(exponent.value, int)
                and not isinstance(exponent.value, bool)):
            raise FormulaError("an exponent must be a whole number written as a literal, e.g. S**2")
        if exponent.value > MAX_EXPONENT:
            raise FormulaError(f"exponent {exponent.value} is larger than {MAX_EXPONENT}")
        power = sign * exponent.value
        base = self.convert(node.left)
        if base.expr.is_Rational and base.expr != 0:
            # Estimate the size before computing it: ((9**64)**64)**64 would take minutes.
            digits = abs(power) * math.log10(max(abs(base.expr.p), base.expr.q))
            if digits > _LITERAL_DIGITS:
                raise FormulaError(f"'{self._text(node)}' is a number with about {digits:.0f} digits; "
                                   "numbers in formulas stay within 1e21")
        terms = math.comb(power + base.terms - 1, base.terms - 1) if power > 0 else 1
        part = _Part(base.expr ** power, base.degree * abs(power), terms)
        return self._finite(part, node, "a power of zero") if power < 0 else part

    def _Call(self, node: ast.Call) -> _Part:
        if not isinstance(node.func, ast.Name):
            raise FormulaError(f"{_describe(node.func)} cannot be called in a formula")
        name = node.func.id
        if node.keywords:
            raise FormulaError(f"{name}() takes no keyword arguments in a formula")
        if name not in FUNCTIONS and self.screen:
            return _Part(sympy.Symbol(f"{name}()", positive=True), degree=1)
        if name not in FUNCTIONS and name in self.extra:
            if len(node.args) != 1 or not isinstance(node.args[0], ast.Name):
                raise FormulaError(f"{name}() takes one name, e.g. {name}(mlp)")
            return _Part(self.extra[name](node.args[0].id), degree=1)
        if name not in FUNCTIONS:
            known = self._function_names()
            raise FormulaError(f"unknown function '{name}'{suggest(name, known)}; "
                               f"allowed: {', '.join(known)}")
        arity, build = FUNCTIONS[name]
        if arity is not None and len(node.args) != arity:
            raise FormulaError(f"{name}() takes {arity} argument(s), got {len(node.args)}")
        if arity is None and len(node.args) < 2:
            raise FormulaError(f"{name}() takes two or more arguments")
        args = [self.convert(arg) for arg in node.args]
        part = _Part(build(*(arg.expr for arg in args)), max(arg.degree for arg in args))
        if name in ("sqrt", "log2"):
            return self._finite(part, node, f"{name} of a number that is not positive")
        return part


def _is_decimal(text: str) -> bool:
    try:
        Fraction(text)
    except ValueError:
        return False
    return True


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
# Printing: plain text as the template writes formulas (2 × B × S² × h), and exact numbers.
# Both printers write only what `parse_formula` reads back to the same expression.


class _Memoised:
    """A printer that prints each subexpression once. What a printer writes for an expression depends
    on the expression and its settings alone, and pages print the same terms in many totals (a whole
    model's prefill terms again in its request). A top-level call is not kept (a Float prints with
    all its digits there, trimmed inside another expression), nor one with keywords (LaTeX's exp=)."""

    def __init__(self, settings=None):
        super().__init__(settings)
        self._printed: dict[sympy.Basic, str] = {}

    def _print(self, expr, **kwargs) -> str:
        if kwargs or self._print_level == 0 or not isinstance(expr, sympy.Basic):
            return super()._print(expr, **kwargs)
        text = self._printed.get(expr)
        if text is None:
            text = self._printed[expr] = super()._print(expr)
        return text


class _PlainPrinter(_Memoised, StrPrinter):
    """sympy's str printer in page notation: `×` for products, superscript integer exponents."""

    def _print_Mul(self, expr):
        # Factors were printed already (their own `*` became `×`): what is left is this product's.
        return super()._print_Mul(expr).replace("*", " × ")

    def _print_Pow(self, expr, rational=False):
        exponent = expr.exp
        if exponent.is_Rational and exponent.q > 1 and exponent.q & (exponent.q - 1) == 0:
            # sqrt is the only root a formula can take: S**(3/2) is sqrt(S)³, S**(1/4) sqrt(sqrt(S)).
            text = self._print(expr.base)
            for _ in range(exponent.q.bit_length() - 1):
                text = f"sqrt({text})"
            return text if exponent.p == 1 else text + _superscript(exponent.p)
        if exponent.is_Integer and exponent != -1:
            return self.parenthesize(expr.base, precedence(expr), strict=False) + _superscript(int(exponent))
        return super()._print_Pow(expr, rational)

    def _print_maximum(self, expr):
        return f"max({', '.join(self._print(arg) for arg in expr.args)})"

    def _print_minimum(self, expr):
        return f"min({', '.join(self._print(arg) for arg in expr.args)})"

    def _print_ceiling(self, expr):
        return f"ceil({self._print(expr.args[0])})"


_PRINTER = _PlainPrinter({"order": "grlex"})


class _LatexPrinter(_Memoised, LatexPrinter):
    pass


_LATEX = _LatexPrinter()
_LOG2_SHOWN = sympy.Function("log2")  # log2(3) as written; sympy itself keeps it as log(3)/log(2)


def _fold_log2(expr: sympy.Expr) -> sympy.Expr:
    """log(3)/log(2) -> log2(3), so that a number's base-2 logarithm prints as the formula wrote it."""

    def powers(term: sympy.Expr) -> tuple[int, list[tuple[sympy.Expr, int]], list[sympy.Expr]]:
        """(power of log(2), [(x, power of log(x))], other factors) of a product."""
        base2, logs, others = 0, [], []
        for factor in sympy.Mul.make_args(term):
            argument, power = _log_power(factor)
            if argument == 2:
                base2 = power
            elif argument is not None:
                logs.append((argument, power))
            else:
                others.append(factor)
        return base2, logs, others

    def is_quotient(term: sympy.Expr) -> bool:
        if not term.is_Mul:
            return False
        base2, logs, _ = powers(term)
        # log2(x)**n is log(x)**n * log(2)**-n: the powers of the other logs add up to minus log(2)'s.
        return bool(base2 and logs) and sum(p for _, p in logs) == -base2

    def fold(term: sympy.Expr) -> sympy.Expr:
        _, logs, others = powers(term)
        return sympy.Mul(*others, *(_LOG2_SHOWN(argument) ** power for argument, power in logs))

    return expr.replace(is_quotient, fold) if expr.has(sympy.log) else expr


def _log_power(factor: sympy.Expr) -> tuple[sympy.Expr | None, int]:
    """(x, n) for a factor log(x)**n with an integer n, else (None, 0)."""
    base, power = factor.as_base_exp()
    if isinstance(base, sympy.log) and power.is_Integer:
        return base.args[0], int(power)
    return None, 0


@lru_cache(maxsize=None)  # pages print the same totals and shapes many times (forward = tensor + 0)
def plain_text(expr: sympy.Expr) -> str:
    """`2*B*S**2*h` -> `2 × B × S² × h`: the template's notation, deterministic for one sympy version."""
    return _PRINTER.doprint(_fold_log2(expr))


def latex(expr: sympy.Expr) -> str:
    """sympy.latex(expr), the same text, each subexpression printed once per process."""
    return _LATEX.doprint(expr)


def source_text(text: str | int | float) -> str:
    """The author's own formula in page notation (× for *, superscript exponents), in the author's order.

    Rewritten token by token, so `S**-1` becomes `S⁻¹`, and the order and spacing the author chose stay.
    """
    text = " ".join(str(text).split())
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return text.replace("*", " × ")  # not reached for a formula that parsed
    out: list[str] = []
    position = index = 0
    while index < len(tokens):
        token = tokens[index]
        replacement, after = None, index + 1
        if token.string == "**":
            exponent, after = _literal_exponent(tokens, index + 1)
            replacement = None if exponent is None else _superscript(exponent)
        elif token.string == "*":
            replacement = " × "
        if replacement is not None:
            out.append(text[position:token.start[1]].rstrip() + replacement)
            position = len(text) - len(text[tokens[after - 1].end[1]:].lstrip())
        index = after
    out.append(text[position:])
    return "".join(out)


def _literal_exponent(tokens: list[tokenize.TokenInfo], index: int) -> tuple[int | None, int]:
    """The integer after `**` (`2`, `-1`, `(2)`, `(-1)`) and the index after it, or (None, index + 0)."""
    strings = [token.string for token in tokens[index:index + 4]]
    for pattern in (["N"], ["-", "N"], ["(", "N", ")"], ["(", "-", "N", ")"]):
        if len(strings) >= len(pattern) and all(
                text.isdigit() if want == "N" else text == want for want, text in zip(pattern, strings)):
            digits = strings[pattern.index("N")]
            return (-1 if "-" in pattern else 1) * int(digits), index + len(pattern)
    return None, index


_PREFIXES = [(10**15, "P"), (10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "K")]

# unit -> how a prefixed figure reads ("{n} {p}FLOPs") and how a small one does ("{n} FLOPs").
UNITS = {
    "flops": ("{n} {p}FLOPs", "{n} FLOPs"),
    "bytes": ("{n} {p}B", "{n} B"),
    "params": ("{n} {p} parameters", "{n} parameters"),
    "count": ("{n} {p}", "{n}"),
}

# Past this many bits an integer is shown in scientific notation: Python refuses to write an int
# of more than 4,300 digits, and no documented quantity comes near either limit.
_MAX_EXACT_BITS = 10_000


def exact_number(value: sympy.Expr | int) -> str:
    """The exact value: an integer with thousands separators, or a decimal when it is not whole."""
    value = sympy.Integer(value) if isinstance(value, int) else sympy.nsimplify(value)
    if value.is_Integer:
        if int(value).bit_length() > _MAX_EXACT_BITS:
            return _scientific(value)
        return f"{int(value):,}"
    try:
        return f"{float(value):,.6g}"
    except OverflowError:
        return _scientific(value)


def _scientific(value: sympy.Expr) -> str:
    """1.234e+4000 for a value too large for a float, from sympy's arbitrary-precision arithmetic."""
    mantissa, _, exponent = sympy.Float(value, 4).__format__("").partition("e")
    return f"{float(mantissa):.3f}e{exponent}" if exponent else str(sympy.Float(value, 4))


def engineering(value: sympy.Expr | int, unit: str) -> str:
    """430838906880 flops -> '430.84 GFLOPs'; 26296320 params -> '26.30 M parameters' (decimal prefixes)."""
    prefixed, small = UNITS[unit]
    try:
        number = float(value)
    except OverflowError:
        return prefixed.format(n=_scientific(sympy.sympify(value)), p="").replace("  ", " ")
    for scale, prefix in _PREFIXES:
        if abs(number) >= scale:
            return prefixed.format(n=f"{number / scale:.2f}", p=prefix)
    return small.format(n=exact_number(value))


def with_exact(value: sympy.Expr | int, unit: str) -> str:
    """'430.84 GFLOPs (430,838,906,880)': the readable figure and the exact one beside it."""
    short = engineering(value, unit)
    exact = exact_number(value)
    return short if short.startswith(exact + " ") or short == exact else f"{short} ({exact})"
