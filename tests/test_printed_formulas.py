"""Formulas printed for people parse back to the expressions they print (brackets included)."""

from __future__ import annotations

import re

import pytest
import sympy

from opdoc import formula
from opdoc.formula import parse_formula, plain_text
from opdoc.pipeline import Paths, load
from opdoc.registry import KERNELS
from opdoc.view import _factor, shape_product
from opdoc_testing import ROOT

_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")


def unprint(text: str) -> str:
    """The printer's notation back to a formula: × to *, superscripts and ^ to **."""
    text = re.sub(r"([⁰¹²³⁴⁵⁶⁷⁸⁹]+)", lambda m: "**" + m.group(1).translate(_SUPERSCRIPTS), text)
    return text.replace("^", "**").replace("×", "*")


def reparse(printed: str) -> sympy.Expr:
    """Parse printed text back; a whole model's peak prints longer than a spec's formula may be."""
    with pytest.MonkeyPatch.context() as patch:
        for limit in ("MAX_FORMULA_CHARS", "MAX_NODES", "MAX_DEPTH", "MAX_TERMS", "MAX_DEGREE"):
            patch.setattr(formula, limit, 10**6)
        return parse_formula(unprint(printed), CATALOG.symbols)


CATALOG, EVALUATOR = load(Paths(root=ROOT))
TENSORS = [(op, index) for op, item in CATALOG.specs.items() for index in range(len(item.spec.tensors))]


@pytest.mark.parametrize("op, index", TENSORS, ids=[f"{op}.{CATALOG.specs[op].spec.tensors[i].name}" for op, i in TENSORS])
def test_a_printed_shape_product_parses_back_to_the_element_count(op, index):
    item = CATALOG.specs[op]
    axes = [item.exprs[f"tensors.{index}.shape.{a}"] for a in range(len(item.spec.tensors[index].shape))]
    printed = shape_product(axes)
    assert sympy.expand(parse_formula(unprint(printed), CATALOG.symbols) - sympy.Mul(*axes)) == 0, printed


@pytest.mark.parametrize("op", sorted(CATALOG.specs))
def test_printed_totals_parse_back(op):
    for name, expr in EVALUATOR.quantities(op, EVALUATOR.variants(op)[0]).derived().items():
        expanded = sympy.expand(expr)
        printed = plain_text(expanded)
        assert sympy.expand(reparse(printed) - expanded) == 0, (name, printed)


# Every total a page expands and prints: the FLOPs of each op, variant and kernel.
PRINTED = [(op, variant, kernel) for op in CATALOG.specs for variant in EVALUATOR.variants(op) for kernel in KERNELS]


@pytest.mark.parametrize("op, variant, kernel", PRINTED, ids=[f"{o}-{v}-{k}" for o, v, k in PRINTED])
def test_a_total_expanded_in_a_ring_and_printed_once_per_term_is_what_sympy_gives(op, variant, kernel):
    from opdoc.evaluate import expand
    from opdoc.formula import _fold_log2, _PlainPrinter, latex

    quantities = EVALUATOR.quantities(op, variant, kernel)
    forward = 0
    for expr in (quantities.tensor_flops, quantities.cuda_flops):
        ours = expand(expr)
        assert sympy.srepr(ours) == sympy.srepr(sympy.expand(expr))  # the same tree, not only equal
        forward += ours
    # printers that keep what they printed write what sympy's fresh printers write
    assert latex(forward) == sympy.latex(forward)
    assert plain_text(forward) == _PlainPrinter({"order": "grlex"}).doprint(_fold_log2(forward))


def test_what_a_ring_cannot_hold_is_expanded_by_sympy():
    from opdoc.evaluate import expand

    x, y = sympy.symbols("x y", positive=True)
    for expr in ((x + y) ** 2 * sympy.sqrt(x), (x + 1) / (y * (x - 1)), sympy.Integer(7), 3 * sympy.floor((x + 1) * y) ** 2,
                 sympy.Rational(1, 2) * (x + y) * (x - y)):
        assert sympy.srepr(expand(expr)) == sympy.srepr(sympy.expand(expr)), expr


def test_a_float_printed_inside_a_sum_first_still_prints_whole_on_its_own():
    from opdoc.formula import _PlainPrinter, latex

    x, number = sympy.Symbol("x"), sympy.Float("1.75")
    # sympy's str printer trims a Float inside a sum ("1.75") but writes all its digits alone
    # ("1.75000000000000"): what the sum's printing kept must not be read for the Float alone.
    for expr in (2 * x + number, number):
        assert plain_text(expr) == _PlainPrinter({"order": "grlex"}).doprint(expr)
        assert latex(expr) == sympy.latex(expr)
