"""Exact values of one expression at many bindings, without rebuilding sympy objects.

`expr.xreplace(binding)` builds a new sympy tree per binding, and sympy re-flattens and re-checks
every sum and product it builds; evaluating a sweep of six sizes for every op that way cost more
than drawing the plots. `values_at` walks the tree once for all bindings with Python integers and
fractions, so the numbers are the same exact values, only cheaper. Anything outside the arithmetic
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
_FUNCTIONS = {sympy.floor: _floor, sympy.ceiling: _ceiling, maximum: max, minimum: min,
              sympy.Max: max, sympy.Min: min, log2: _log2}
# floor(log2(x)) and ceil(log2(x)), as in a sort's log2 passes, stay exact integers
_OF_LOG2 = {sympy.floor: _floor_log2, sympy.ceiling: _ceil_log2}


def _walk(expr: sympy.Expr, bindings: Sequence[Mapping[sympy.Symbol, Number]],
          seen: dict[sympy.Expr, list[Number]]) -> list[Number]:
    if expr in seen:
        return seen[expr]
    if expr.is_Integer:
        result = [int(expr)] * len(bindings)
    elif expr.is_Rational:
        result = [Fraction(int(expr.p), int(expr.q))] * len(bindings)
    elif expr.is_Symbol:
        try:
            result = [binding[expr] for binding in bindings]
        except KeyError:
            raise _Unsupported from None
    elif expr.is_Add or expr.is_Mul:
        parts = [_walk(arg, bindings, seen) for arg in expr.args]
        result = list(parts[0])
        for part in parts[1:]:
            result = [a + b for a, b in zip(result, part)] if expr.is_Add else [a * b for a, b in zip(result, part)]
    elif expr.is_Pow:
        bases, exponents = _walk(expr.base, bindings, seen), _walk(expr.exp, bindings, seen)
        result = [_power(b, e) for b, e in zip(bases, exponents)]
    elif expr.func in _OF_LOG2 and expr.args[0].func is log2:
        inner = _walk(expr.args[0].args[0], bindings, seen)
        result = [_OF_LOG2[expr.func](value) for value in inner]
    elif expr.func in _FUNCTIONS:
        function = _FUNCTIONS[expr.func]
        parts = [_walk(arg, bindings, seen) for arg in expr.args]
        result = [function(*column) for column in zip(*parts)]
    else:  # a root, anything new: sympy decides
        raise _Unsupported
    result = [value.numerator if isinstance(value, Fraction) and value.denominator == 1 else value
              for value in result]
    seen[expr] = result
    return result


def values_at(expr: sympy.Expr, bindings: Sequence[Mapping[sympy.Symbol, sympy.Expr]], *,
              numbers: Sequence[Mapping[sympy.Symbol, Number]] | None = None,
              seen: dict | None = None) -> list[float]:
    """float(expr.xreplace(binding)) for each binding, computed exactly and converted once at the end.

    Many expressions at the same bindings (every quantity of an op at its examples) may pass the
    bindings already converted (`numbers`, from `numeric_binding`) and one `seen` dict, so that the
    subexpressions they share are computed once."""
    numeric = numbers if numbers is not None else [numeric_binding(binding) for binding in bindings]
    try:
        return [float(value) for value in _walk(expr, numeric, {} if seen is None else seen)]
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


def exact_at(expr: sympy.Expr, numbers: Mapping[sympy.Symbol, Number], seen: dict | None = None) -> sympy.Expr | None:
    """expr at one binding as a sympy Integer or Rational, computed with Python numbers; None when the
    expression leaves the exact arithmetic (a root, an irrational log2, an unbound symbol). `seen`
    shares computed subexpressions between calls at the same binding."""
    try:
        value = _walk(expr, [numbers], {} if seen is None else seen)[0]
    except (_Unsupported, ZeroDivisionError):
        return None
    if isinstance(value, int):
        return sympy.Integer(value)
    if isinstance(value, Fraction):
        return sympy.Rational(value.numerator, value.denominator)
    return None


def exact_values(expr: sympy.Expr, numbers: Sequence[Mapping[sympy.Symbol, Number]]) -> list[Number] | None:
    """expr at many bindings in one walk, as exact Python numbers; None when it leaves exact arithmetic."""
    try:
        return _walk(expr, list(numbers), {})
    except (_Unsupported, ZeroDivisionError):
        return None
