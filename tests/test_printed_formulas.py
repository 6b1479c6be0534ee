"""Formulas printed for people parse back to the expressions they print (brackets included)."""

from __future__ import annotations

import re

import pytest
import sympy

from opdoc import formula
from opdoc.formula import parse_formula, plain_text
from opdoc.pipeline import Paths, load
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
