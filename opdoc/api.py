"""The Python API for tools and agents: exact numbers and formulas of any op, from the same evaluated model.

    >>> from opdoc import api
    >>> api.evaluate("DeepseekV2MLP", S=4096)["tensor_flops"]      # exact int, at the op's first example
    >>> api.evaluate("PatchEmbed", example="base_view", H_img=640, W_img=640)
    >>> api.formula("DeepseekV2MLP", "tensor_flops")                 # a sympy expression in the symbols
    >>> api.ops()                                                     # every op, its variants and examples

Keyword arguments override symbols or configuration keys; everything bound after them is re-derived
(setting B re-derives E_run, setting H_img re-derives the patch grid). Values that make no sense (a
negative size, a context past the trained one) raise `SpecError` with a message that says why;
`beyond_limits=True` allows a context past the trained one on purpose. Rendering's libraries only:
importing this never imports torch.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import sympy

from opdoc.catalog import Catalog
from opdoc.evaluate import Evaluator
from opdoc.export import Selection, exact, listing, select
from opdoc.spec import SpecError, SpecProblem

__all__ = ["SpecError", "evaluate", "formula", "ops"]


@lru_cache(maxsize=4)
def _loaded(root: str, specs: str | None) -> tuple[Catalog, Evaluator]:
    from opdoc.pipeline import Paths, load

    return load(Paths(root=Path(root), specs=Path(specs) if specs else None))


def _load(root: str | Path | None, specs: str | Path | None) -> tuple[Catalog, Evaluator]:
    base = Path(root) if root else Path(__file__).resolve().parent.parent
    return _loaded(str(base.resolve()), str(specs) if specs else None)


def evaluate(op: str, example: str | None = None, *, variant: str | None = None, beyond_limits: bool = False,
             root: str | Path | None = None, specs: str | Path | None = None,
             **overrides: int | str) -> dict[str, int | str]:
    """Every quantity of `op` at one example (default: its first) with overrides, as exact numbers.

    Whole numbers come back as int; a quantity that is a fraction (none at whole-number bindings) as
    its exact text. `variant` picks one of an op's variants (default: its first).
    """
    catalog, ev = _load(root, specs)
    if op in catalog.specs and example is None:
        example = catalog.specs[op].spec.examples[0]
    selection = Selection((op,), (example,) if example else (), tuple(overrides.items()), beyond_limits,
                          origin="opdoc.api.evaluate")
    results = select(catalog, ev, selection)
    variants = [result for result, _ in results if variant is None or result.variant == variant]
    if not variants:
        known = ", ".join(str(result.variant) for result, _ in results)
        raise SpecError([SpecProblem("opdoc.api.evaluate", 0, "variant", f"{op} has no variant '{variant}' ({known})")])
    return {name: exact(value) for name, value in variants[0].totals.items()}


def formula(op: str, quantity: str, *, variant: str | None = None, kernel: str | None = None,
            root: str | Path | None = None, specs: str | Path | None = None) -> sympy.Expr:
    """The sympy expression of one quantity of `op`, in the model's symbols (see `opdoc list`)."""
    catalog, ev = _load(root, specs)
    if op not in catalog.specs:
        select(catalog, ev, Selection((op,)))  # raises the "no spec, did you mean" error
    formulas = ev.quantities(op, variant or ev.variants(op)[0], kernel).derived()
    if quantity not in formulas:
        raise SpecError([SpecProblem("opdoc.api.formula", 0, "quantity",
                                     f"no quantity '{quantity}'; have {', '.join(formulas)}")])
    return formulas[quantity]


def ops(*, root: str | Path | None = None, specs: str | Path | None = None) -> list[dict]:
    """Every op with its family, scope, variants and examples."""
    catalog, _ = _load(root, specs)
    return listing(catalog)
