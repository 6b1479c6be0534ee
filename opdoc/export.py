"""Every quantity of ops at examples as flat rows: `opdoc eval` prints them, `opdoc export` writes them."""

from __future__ import annotations

import sympy

from opdoc.formula import FormulaError, engineering, parse_formula, plain_text, suggest
from opdoc.pipeline import Paths, load
from opdoc.placeholders import QUANTITY_UNITS
from opdoc.spec import SpecError, SpecProblem


def _rows(evaluator, op: str, example: str, variant, binding) -> list[dict[str, str]]:
    item = evaluator.catalog.specs[op]
    rows = []
    exprs = evaluator.quantities(op, variant).derived()
    for kernel in ("eager", "fused"):  # the peak under each attention kernel, beside the model's own
        exprs[f"peak_{kernel}"] = evaluator.quantities(op, variant, kernel).peak
    for quantity, expr in exprs.items():
        value = expr.xreplace(binding)
        if value.free_symbols:
            raise SpecError([SpecProblem(item.path, item.line("examples"), "examples",
                                         f"{quantity} needs {sorted(map(str, value.free_symbols))} bound")])
        rows.append({
            "op": op, "variant": variant or "", "example": example, "quantity": quantity,
            "value": str(value), "pretty": engineering(value, QUANTITY_UNITS[quantity]),
            "formula": plain_text(sympy.expand(expr)),
        })
    return rows


def evaluate_op(paths: Paths, op: str, example: str | None, overrides: dict[str, str]) -> list[dict[str, str]]:
    catalog, evaluator = load(paths)
    if op not in catalog.specs:
        raise SpecError([SpecProblem("opdoc eval", 0, "OP", f"no spec for '{op}'{suggest(op, sorted(catalog.specs))}")])
    spec = catalog.specs[op].spec
    examples = [example] if example else spec.examples
    scope = catalog.model.scopes[spec.scope]
    rows = []
    for name in examples:
        if name not in scope.examples:
            raise SpecError([SpecProblem("opdoc eval", 0, "--example",
                                         f"scope '{spec.scope}' has no example '{name}'{suggest(name, sorted(scope.examples))}")])
        binding = dict(evaluator.binding(spec.scope, name))
        for symbol, text in overrides.items():
            if symbol not in catalog.symbols:
                raise SpecError([SpecProblem("opdoc eval", 0, "--set",
                                             f"unknown symbol '{symbol}'{suggest(symbol, sorted(catalog.symbols))}")])
            try:
                value = parse_formula(text, {s.name: v for s, v in binding.items()})
            except FormulaError as exc:
                raise SpecError([SpecProblem("opdoc eval", 0, f"--set {symbol}", str(exc))]) from None
            binding[catalog.symbols[symbol]] = value
        for variant in evaluator.variants(op):
            rows.extend(_rows(evaluator, op, name, variant, binding))
    return rows


def export_rows(paths: Paths) -> list[dict[str, str]]:
    """Every quantity of every op at each of its named examples, in a stable order."""
    catalog, evaluator = load(paths)
    rows = []
    for op in sorted(catalog.specs):
        spec = catalog.specs[op].spec
        for example in spec.examples:
            binding = evaluator.binding(spec.scope, example)
            for variant in evaluator.variants(op):
                rows.extend(_rows(evaluator, op, example, variant, binding))
    return rows
