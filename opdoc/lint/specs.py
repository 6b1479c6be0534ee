"""The lint's one door into opdoc's evaluated specs (the evaluator may change; only this file knows it).

The spec comparison asks four things of an op: its scope's configuration, the values the scope binds
to its symbols, its children, and its quantities at a batch and sequence length a page states.
Loading is lazy (a page whose class has no spec file never loads anything) and never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Child", "Specs", "open_specs"]


@dataclass(frozen=True)
class Child:
    name: str  # attribute name, e.g. self_attn
    op: str
    only: str | None  # the parent's variant it belongs to
    variant: str | None  # which variant of the child op it is
    rebound: bool  # the parent binds its symbols differently (its own values would not apply)


class Specs:
    def __init__(self, root: Path):
        self.root = root
        self._names = {p.stem for p in root.glob("specs/*/*.yaml") if p.name != "model.yaml"}
        self._loaded: tuple[Any, Any] | None = None
        self._values: dict[tuple, dict[str, int]] = {}
        self.problem: str | None = None

    def has(self, op: str) -> bool:
        return op in self._names and self._load() is not None

    def _load(self) -> tuple[Any, Any] | None:
        if self._loaded is None and self.problem is None:
            from opdoc.pipeline import Paths, load
            from opdoc.spec import SpecError

            try:
                self._loaded = load(Paths(root=self.root))
            except SpecError as exc:  # broken specs: no comparison, said once by the caller
                self.problem = str(exc).splitlines()[0] if str(exc) else "the specs do not load"
        return self._loaded

    def _spec(self, op: str) -> Any:
        catalog, _ = self._load()  # type: ignore[misc]
        return catalog.specs[op].spec

    def scope(self, op: str) -> str:
        return self._spec(op).scope

    def model_title(self) -> str:
        catalog, _ = self._load()  # type: ignore[misc]
        return str(getattr(catalog.model, "title", "") or "the model")

    def config(self, op: str) -> dict[str, Any]:
        catalog, _ = self._load()  # type: ignore[misc]
        return dict(catalog.model.scopes[self.scope(op)].config)

    def bound(self, op: str) -> dict[str, int]:
        """Symbol values the scope fixes (h, H, d_h, L, ...) at the op's first example."""
        catalog, evaluator = self._load()  # type: ignore[misc]
        spec = self._spec(op)
        fixed = set(catalog.model.scopes[spec.scope].bind)  # bound by the configuration, not the example
        binding = evaluator.binding(spec.scope, spec.examples[0])
        return {str(symbol): int(value) for symbol, value in binding.items() if value.is_Integer and str(symbol) in fixed}

    def variants(self, op: str) -> list[str | None]:
        _, evaluator = self._load()  # type: ignore[misc]
        return evaluator.variants(op)

    def children(self, op: str) -> list[Child]:
        return [Child(c.name, c.op, c.only, c.variant, bool(c.bind)) for c in self._spec(op).children]

    def quantities(self, op: str, B: int | None = None, S: int | None = None, P: int | None = None,
                   variant: str | None = None) -> dict[str, int]:
        """Every quantity of ``op`` (parameters, tensor_flops, forward_flops, kv_cache_bytes, ...) at
        the op's first example, with B, S and P replaced by the given values; quantities that still
        depend on something unbound are left out."""
        key = (op, B, S, P, variant)
        if key not in self._values:
            self._values[key] = self._quantities(op, B, S, P, variant)
        return dict(self._values[key])

    def _quantities(self, op: str, B: int | None, S: int | None, P: int | None, variant: str | None) -> dict[str, int]:
        _, evaluator = self._load()  # type: ignore[misc]
        spec = self._spec(op)
        overrides = {name: value for name, value in (("B", B), ("S", S), ("P", P)) if value is not None}
        example = spec.examples[0]
        if P is not None and P > 0 and len(spec.examples) > 1:
            example = spec.examples[1]  # a decode-like example binds the cached context
        try:  # a page may describe a context past the trained one; the comparison still holds
            binding = evaluator.binding(spec.scope, example, overrides=overrides, allow_beyond=True)
        except SpecError:
            return {}  # values the model cannot take (e.g. heads that do not split the width): nothing to compare
        values = {}
        for name, expr in evaluator.quantities(op, variant).derived().items():
            value = expr.xreplace(binding)
            if value.is_Integer:
                values[name] = int(value)
            elif value.is_Rational:
                values[name] = int(round(value))
        return values


_OPENED: dict[Path, Specs] = {}


def open_specs(root: Path | None) -> Specs | None:
    """The specs under ``root`` (cached per root), or None."""
    if root is None:
        return None
    root = root.resolve()
    if root not in _OPENED:
        _OPENED[root] = Specs(root)
    return _OPENED[root]
