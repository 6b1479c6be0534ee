"""Exact values of one expression at many bindings, without rebuilding sympy objects.

`expr.xreplace(binding)` builds a new sympy tree per binding, and sympy re-flattens and re-checks
every sum and product it builds; evaluating a sweep of six sizes for every op that way cost more
than drawing the plots. Here each expression is compiled once into a program over its distinct
subexpressions (`run`) that computes with Python integers and fractions, so the numbers are the same exact
values, only cheaper, and every later binding reuses the program. Anything outside the arithmetic
a formula can contain (opdoc/formula.py) falls back to xreplace for that binding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction

import sympy

from opdoc.formula import log2, maximum, minimum

Number = int | Fraction  # and float once an irrational log2 enters


class _Unsupported(Exception):
    pass


def _floor(value: Number) -> int:
    return math.floor(value)


def _ceiling(value: Number) -> int:
    return math.ceil(value)


def _floor_log2(value: Number) -> int:
    k = math.floor(math.log2(value))  # a float estimate, then corrected by exact comparisons
    while Fraction(2) ** k > value:
        k -= 1
    while Fraction(2) ** (k + 1) <= value:
        k += 1
    return k


def _ceil_log2(value: Number) -> int:
    k = _floor_log2(value)
    return k if Fraction(2) ** k == value else k + 1


def _log2(value: Number) -> Number | float:
    """Exact for powers of two; otherwise irrational, so a float (the plots need no more)."""
    if value > 0 and _floor_log2(value) == _ceil_log2(value):
        return _floor_log2(value)
    return math.log2(value)


def _power(base: Number, exponent: Number) -> Number:
    if isinstance(exponent, int) or exponent.denominator == 1:
        return Fraction(base) ** int(exponent) if exponent < 0 else base ** int(exponent)
    raise _Unsupported  # roots: leave them to sympy, which keeps them exact


# sympy function class -> exact Python counterpart on numbers
def _max(*values: Number) -> Number:
    return max(values)  # of one value too: maximum(x) stays unevaluated in sympy


def _min(*values: Number) -> Number:
    return min(values)


_FUNCTIONS = {sympy.floor: _floor, sympy.ceiling: _ceiling, maximum: _max, minimum: _min,
              sympy.Max: _max, sympy.Min: _min, log2: _log2}
# floor(log2(x)) and ceil(log2(x)), as in a sort's log2 passes, stay exact integers
_OF_LOG2 = {sympy.floor: _floor_log2, sympy.ceiling: _ceil_log2}


# Every expression is compiled once into a program: the ids of its distinct subexpressions, children
# before parents. sympy shares subexpressions between (and within) the formulas of a model, so a
# program is a walk of the expression's DAG, not of its tree, and a binding's values of shared nodes
# (kept by id) serve every formula evaluated at that binding.
_CONST, _SYMBOL, _ADD, _MUL, _SCALE, _POWER, _FUNCTION = range(7)
_IDS: dict[sympy.Expr, int] = {}
_NODES: list[tuple[int, object, tuple[int, ...]]] = []  # id -> (kind, payload, argument ids)
_PROGRAMS: dict[sympy.Expr, tuple[int, ...]] = {}


def _node(expr: sympy.Expr) -> int:
    """The id of expr, registering it and its arguments the first time."""
    found = _IDS.get(expr)
    if found is not None:
        return found
    if expr.is_Integer:
        kind, payload, args = _CONST, int(expr), ()
    elif expr.is_Rational:
        kind, payload, args = _CONST, Fraction(int(expr.p), int(expr.q)), ()
    elif expr.is_Symbol:
        kind, payload, args = _SYMBOL, expr, ()
    elif expr.is_Mul and expr.args[0].is_Rational and not expr.args[0].is_Integer:
        # p/q · rest: the rest's product stays an int and is divided once at the end, exactly
        # (a halved triangle, B·S·(S+1)/2), instead of Fraction arithmetic all the way up
        kind, payload, args = _SCALE, (int(expr.args[0].p), int(expr.args[0].q)), expr.args[1:]
    elif expr.is_Add or expr.is_Mul:
        kind, payload, args = (_ADD if expr.is_Add else _MUL), None, expr.args
    elif expr.is_Pow and expr.exp.is_Integer:
        kind, payload, args = _POWER, int(expr.exp), (expr.base,)
    elif expr.is_Pow:
        kind, payload, args = _FUNCTION, _power, expr.args
    elif expr.func in _OF_LOG2 and expr.args[0].func is log2:
        kind, payload, args = _FUNCTION, _OF_LOG2[expr.func], expr.args[0].args
    elif expr.func in _FUNCTIONS:
        kind, payload, args = _FUNCTION, _FUNCTIONS[expr.func], expr.args
    else:  # a root, anything new: sympy decides
        raise _Unsupported
    ids = tuple(_node(arg) for arg in args)
    _IDS[expr] = index = len(_NODES)
    _NODES.append((kind, payload, ids))
    return index


def _program(expr: sympy.Expr) -> tuple[int, ...]:
    program = _PROGRAMS.get(expr)
    if program is None:
        seen: set[int] = set()
        order: list[int] = []
        _collect(_node(expr), seen, order)
        program = _PROGRAMS[expr] = tuple(order)
    return program


def _collect(index: int, seen: set[int], order: list[int]) -> None:
    """The nodes an expression needs, each once, arguments first."""
    stack = [(index, False)]
    while stack:
        node, ready = stack.pop()
        if ready:
            order.append(node)
        elif node not in seen:
            seen.add(node)
            stack.append((node, True))
            stack.extend((arg, False) for arg in reversed(_NODES[node][2]))


def run(expr: sympy.Expr, binding: Mapping[sympy.Symbol, Number], values: dict[int, Number] | None = None) -> Number:
    """expr at one binding, exactly; `values` (node id -> value at this binding) may be shared by every
    expression evaluated at the same binding. _Unsupported outside the arithmetic of formulas."""
    values = {} if values is None else values
    nodes, program = _NODES, _program(expr)
    for index in program if program[-1] not in values else ():  # () when evaluated at this binding already
        if index in values:
            continue
        kind, payload, args = nodes[index]
        if kind == _CONST:
            value = payload
        elif kind == _SYMBOL:
            try:
                value = binding[payload]
            except KeyError:
                raise _Unsupported from None
        elif kind == _ADD:
            value = sum([values[arg] for arg in args])
        elif kind == _MUL:
            value = math.prod([values[arg] for arg in args])
        elif kind == _SCALE:
            numerator, denominator = payload
            value = numerator * math.prod([values[arg] for arg in args])
            if isinstance(value, int):
                quotient, remainder = divmod(value, denominator)
                value = quotient if remainder == 0 else Fraction(value, denominator)
            else:
                value = value / denominator
        elif kind == _POWER:
            base = values[args[0]]
            value = base ** payload if payload >= 0 else Fraction(base) ** payload
        else:
            value = payload(*[values[arg] for arg in args])
        if value.__class__ is Fraction and value.denominator == 1:
            value = value.numerator  # a whole number again (n · 1/n): the sums above it stay integer sums
        values[index] = value
    return values[program[-1]]


def free_symbols(expr: sympy.Expr) -> set[sympy.Symbol]:
    """expr.free_symbols, read off its program: sympy walks the tree, so a subexpression shared a
    hundred times (a layer's formulas in a whole model) is walked a hundred times."""
    try:
        program = _program(expr)
    except _Unsupported:
        return expr.free_symbols
    return {_NODES[index][1] for index in program if _NODES[index][0] == _SYMBOL}


def values_at(expr: sympy.Expr, bindings: Sequence[Mapping[sympy.Symbol, sympy.Expr]], *,
              numbers: Sequence[Mapping[sympy.Symbol, Number]] | None = None,
              values: Sequence[dict[int, Number]] | None = None) -> list[float]:
    """float(expr.xreplace(binding)) for each binding, computed exactly and converted once at the end.

    Many expressions at the same bindings (every quantity of an op at its examples) may pass the
    bindings already converted (`numbers`, from `numeric_binding`) and one `values` dict per binding,
    so that the subexpressions they share are computed once."""
    numeric = numbers if numbers is not None else [numeric_binding(binding) for binding in bindings]
    shared = values if values is not None else [{} for _ in numeric]
    try:
        return [float(run(expr, binding, known)) for binding, known in zip(numeric, shared)]
    except _Unsupported:
        return [float(expr.xreplace(binding)) for binding in bindings]


def numeric_binding(binding: Mapping[sympy.Symbol, sympy.Expr]) -> dict[sympy.Symbol, Number]:
    """The rational values of a binding as Python numbers (symbols bound to anything else are left out)."""
    converted: dict[sympy.Symbol, Number] = {}
    for symbol, value in binding.items():
        if value.is_Integer:
            converted[symbol] = int(value)
        elif value.is_Rational:
            converted[symbol] = Fraction(int(value.p), int(value.q))
    return converted


def exact_value(expr: sympy.Expr, numbers: Mapping[sympy.Symbol, Number],
                values: dict[int, Number] | None = None) -> Number | None:
    """expr at one binding as a Python int or Fraction (a float once an irrational log2 enters); None
    when the expression leaves the exact arithmetic (a root, an unbound symbol) or divides by zero.
    `values` shares computed subexpressions between calls at the same binding (see `run`)."""
    try:
        return run(expr, numbers, values)
    except (_Unsupported, ZeroDivisionError):
        return None


def exact_sympy(value: Number) -> sympy.Expr | None:
    """A Python int or Fraction as a sympy Integer or Rational; None for a float (not exact)."""
    if isinstance(value, int):
        return sympy.Integer(value)
    if isinstance(value, Fraction):
        return sympy.Rational(value.numerator, value.denominator)
    return None


def exact_at(expr: sympy.Expr, numbers: Mapping[sympy.Symbol, Number],
             values: dict[int, Number] | None = None) -> sympy.Expr | None:
    """expr at one binding as a sympy Integer or Rational, computed with Python numbers; None when the
    expression leaves the exact arithmetic (a root, an irrational log2, an unbound symbol)."""
    value = exact_value(expr, numbers, values)
    return None if value is None else exact_sympy(value)


def exact_values(expr: sympy.Expr, numbers: Sequence[Mapping[sympy.Symbol, Number]]) -> list[Number] | None:
    """expr at many bindings, as exact Python numbers; None when it leaves exact arithmetic."""
    try:
        return [run(expr, binding) for binding in numbers]
    except (_Unsupported, ZeroDivisionError):
        return None


def substituted(expr: sympy.Expr, binding: Mapping[sympy.Symbol, sympy.Expr]) -> sympy.Expr:
    """expr.xreplace(binding): computed on Python numbers when that gives an exact number (no new sympy
    tree per binding), else by sympy (a symbol left free, a root)."""
    value = exact_at(expr, numeric_binding(binding))
    return value if value is not None else expr.xreplace(binding)
