"""Every quantity of ops at bindings, as records: `opdoc eval`, `opdoc export`, `opdoc list` and the API read them.

Numbers come from the evaluator's one evaluated model (`Evaluator.evaluate`) at the evaluator's one
binding function (`Evaluator.binding`); nothing here binds or composes on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from opdoc.catalog import Catalog
from opdoc.evaluate import Evaluated, Evaluator
from opdoc.formula import engineering, plain_text, suggest
from opdoc.registry import QUANTITIES
from opdoc.spec import Formula, SpecError, SpecProblem

# How a unit is named in machine-readable output.
UNIT_NAMES = {"flops": "FLOPs", "params": "parameters", "bytes": "bytes"}


@dataclass(frozen=True)
class Selection:
    """Which ops, examples and overrides a command asks for."""

    ops: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    overrides: tuple[tuple[str, Formula], ...] = ()
    beyond_limits: bool = False
    origin: str = "--set"


def exact(value: sympy.Expr) -> int | str:
    """An exact number for JSON: an int when whole, else its exact fraction as text."""
    return int(value) if value.is_Integer else str(value)


def select(catalog: Catalog, ev: Evaluator, selection: Selection) -> list[tuple[Evaluated, str]]:
    """The results asked for, each op x example x variant at the model's kernel, with the example's name."""
    unknown = [op for op in selection.ops if op not in catalog.specs]
    if unknown:
        raise SpecError([SpecProblem("opdoc", 0, "OP", f"no spec for '{op}'{suggest(op, sorted(catalog.specs))}")
                         for op in unknown])
    results = []
    for op in selection.ops or sorted(catalog.specs):
        spec = catalog.specs[op].spec
        scope = catalog.model.scopes[spec.scope]
        examples = selection.examples or tuple(spec.examples)
        missing = [name for name in examples if name not in scope.examples]
        if missing and selection.ops:  # asked for by name: say so; across all ops: skip other scopes' names
            raise SpecError([SpecProblem("opdoc", 0, "--example", f"scope '{spec.scope}' of {op} has no example "
                                                                  f"'{name}'{suggest(name, sorted(scope.examples))}")
                             for name in missing])
        for example in (name for name in examples if name in scope.examples):
            binding = ev.binding(spec.scope, example, dict(selection.overrides),
                                 allow_beyond=selection.beyond_limits, origin=selection.origin)
            given = ", ".join(f"{k}={v}" for k, v in selection.overrides)
            where = f"example '{example}'" + (f" with {given}" if given else "")
            results += [(ev.evaluate(op, binding, variant, where=where), example) for variant in ev.variants(op)]
    return results


def record(result: Evaluated, example: str) -> dict:
    """One result as JSON: the full binding used, the limits it passes on purpose (--beyond-limits), and
    every quantity with its unit and formula."""
    return {
        "op": result.op, "variant": result.variant, "example": example, "kernel": result.kernel,
        "binding": {name: exact(value) for name, value in result.binding},
        **({"beyond_limits": list(result.passed)} if result.passed else {}),
        "quantities": {
            name: {"value": exact(value), "unit": UNIT_NAMES[QUANTITIES[name].unit],
                   "formula": plain_text(sympy.expand(result.formulas[name]))}
            for name, value in result.totals.items()
        },
        **({"stages": {stage: {name: exact(value) for name, value in parts.items()}
                       for stage, parts in result.stages.items()}} if result.stages else {}),
    }


def rows(results: list[tuple[Evaluated, str]]) -> list[dict[str, str]]:
    """Flat rows for CSV: one per quantity, with a column per symbol bound anywhere in the output."""
    symbols = sorted({name for result, _ in results for name, _ in result.binding})
    out = []
    for result, example in results:
        bound = {name: str(value) for name, value in result.binding}
        for name, value in result.totals.items():
            unit = QUANTITIES[name].unit
            out.append({
                "op": result.op, "variant": result.variant or "", "example": example, "kernel": result.kernel,
                "quantity": name, "value": str(value), "unit": UNIT_NAMES[unit],
                "pretty": engineering(value, unit), "formula": plain_text(sympy.expand(result.formulas[name])),
                **{f"bind.{symbol}": bound.get(symbol, "") for symbol in symbols},
            })
    return out


def listing(catalog: Catalog) -> list[dict]:
    """Every op with its family, scope, variants and examples (`opdoc list`)."""
    out = []
    for op in sorted(catalog.specs):
        spec = catalog.specs[op].spec
        scope = catalog.model.scopes[spec.scope]
        out.append({"op": op, "family": spec.family, "scope": spec.scope, "variants": list(spec.variants),
                    "examples": {name: scope.examples[name].title for name in spec.examples}})
    return out

