"""Stage 2, evaluate: compose each op's totals from its operations and children, prove stated closed
forms equal those sums, and evaluate every quantity at the model's named examples.

Conventions stated once here and printed on every page:
- FLOPs count 2 per multiply-add; tensor-core = GEMM, convolution and attention products; CUDA-core =
  elementwise, reductions, softmax, norms and activations, counted as the reference code performs them.
- Backward FLOPs default to 2x the forward FLOPs of each operation (gradient w.r.t. each operand of a
  product); a spec overrides this per operation with `backward`.
- Training memory: gradients in the parameters' dtype, AdamW keeps two fp32 states per parameter.
- Bytes use decimal prefixes (1 MB = 10^6 B).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from opdoc.catalog import Catalog, ParsedSpec
from opdoc.formula import FormulaError, parse_formula
from opdoc.spec import DTYPE_BYTES, Child, SpecError, SpecProblem

KERNELS = ("eager", "fused")
ADAMW_STATE_BYTES = 8  # two fp32 moments per parameter
ADDITIVE = ("tensor_flops", "cuda_flops", "backward_flops", "parameters", "parameter_bytes",
            "activation_bytes", "kv_cache_bytes", "io_read_bytes", "io_write_bytes")
# Symbols whose growth the "dominant as it grows" term follows: context and image size.
GROWTH = ("S", "P", "H_p", "W_p", "H_img", "W_img")


@dataclass
class Quantities:
    """Every quantity of one op (one variant, one attention kernel) as sympy expressions in the symbols."""

    tensor_flops: sympy.Expr = sympy.Integer(0)
    cuda_flops: sympy.Expr = sympy.Integer(0)
    backward_flops: sympy.Expr = sympy.Integer(0)
    parameters: sympy.Expr = sympy.Integer(0)
    parameter_bytes: sympy.Expr = sympy.Integer(0)
    active_parameters: sympy.Expr = sympy.Integer(0)
    activation_bytes: sympy.Expr = sympy.Integer(0)
    kv_cache_bytes: sympy.Expr = sympy.Integer(0)
    io_read_bytes: sympy.Expr = sympy.Integer(0)
    io_write_bytes: sympy.Expr = sympy.Integer(0)
    peak: sympy.Expr = sympy.Integer(0)

    @property
    def forward_flops(self) -> sympy.Expr:
        return self.tensor_flops + self.cuda_flops

    def derived(self) -> dict[str, sympy.Expr]:
        """All quantities by name, including those that follow from the additive ones."""
        values = {name: getattr(self, name) for name in ADDITIVE}
        values["active_parameters"] = self.active_parameters
        values["forward_flops"] = self.forward_flops
        values["training_step_flops"] = self.forward_flops + self.backward_flops
        values["gradient_bytes"] = self.parameter_bytes
        values["adamw_bytes"] = ADAMW_STATE_BYTES * self.parameters
        values["training_bytes"] = 2 * self.parameter_bytes + ADAMW_STATE_BYTES * self.parameters + self.activation_bytes
        values["io_bytes"] = self.io_read_bytes + self.io_write_bytes
        values["peak"] = self.peak
        return values


class Evaluator:
    """Symbolic quantities of every op in a catalog, memoised per (op, variant, kernel)."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self.symbols = catalog.symbols
        self.kernel = catalog.model.attention_kernel  # the kernel the model loads: the headline numbers
        self._memo: dict[tuple[str, str | None, str], Quantities] = {}
        self._bindings: dict[tuple, dict[sympy.Symbol, sympy.Expr]] = {}
        self._values: dict[tuple, sympy.Expr] = {}  # (expression, scope, example) -> exact number
        self._evaluated: dict[tuple, dict[str, sympy.Expr]] = {}

    # ------------------------------------------------------------------ symbolic composition

    def variants(self, op: str) -> list[str | None]:
        return list(self.catalog.specs[op].spec.variants) or [None]

    def quantities(self, op: str, variant: str | None = None, kernel: str | None = None) -> Quantities:
        key = (op, variant, kernel or self.kernel)
        if key not in self._memo:
            self._memo[key] = self._compose(self.catalog.specs[op], variant, key[2])
        return self._memo[key]

    def tensor_numel(self, item: ParsedSpec, index: int) -> sympy.Expr:
        tensor = item.spec.tensors[index]
        return sympy.Mul(*(item.exprs[f"tensors.{index}.shape.{axis}"] for axis in range(len(tensor.shape))))

    def tensor_bytes(self, item: ParsedSpec, index: int) -> sympy.Expr:
        return self.tensor_numel(item, index) * self.dtype_bytes(item.spec.tensors[index].dtype)

    def dtype_bytes(self, dtype: str) -> int:
        return DTYPE_BYTES[self.catalog.model.dtype if dtype == "model" else dtype]

    def active_children(self, item: ParsedSpec, variant: str | None) -> list[tuple[int, Child]]:
        return [(i, c) for i, c in enumerate(item.spec.children) if c.only in (None, variant)]

    def child_binding(self, item: ParsedSpec, index: int) -> dict[sympy.Symbol, sympy.Expr]:
        child = item.spec.children[index]
        return {self.symbols[name]: item.exprs[f"children.{index}.bind.{name}"] for name in child.bind}

    def _compose(self, item: ParsedSpec, variant: str | None, kernel: str) -> Quantities:
        spec = item.spec
        q = Quantities()
        tensor_index = {tensor.name: i for i, tensor in enumerate(spec.tensors)}
        zero = sympy.Integer(0)
        for i, operation in enumerate(spec.operations):
            if operation.kernel not in (None, kernel):
                continue
            flops = item.exprs[f"operations.{i}.flops"]
            if operation.unit == "tensor":
                q.tensor_flops += flops
            else:
                q.cuda_flops += flops
            q.backward_flops += item.exprs.get(f"operations.{i}.backward", 2 * flops)
            q.io_read_bytes += sum((self.tensor_bytes(item, tensor_index[n]) for n in operation.reads), zero)
            q.io_write_bytes += sum((self.tensor_bytes(item, tensor_index[n]) for n in operation.writes), zero)
        for i, tensor in enumerate(spec.tensors):
            if tensor.from_child or tensor.kernel not in (None, kernel):
                continue
            if tensor.role == "parameter":
                q.parameters += self.tensor_numel(item, i)
                q.parameter_bytes += self.tensor_bytes(item, i)
                q.active_parameters += item.exprs.get(f"tensors.{i}.active", self.tensor_numel(item, i))
            elif tensor.role in ("intermediate", "output"):
                q.activation_bytes += self.tensor_bytes(item, i)
            elif tensor.role == "cache":
                q.kv_cache_bytes += self.tensor_bytes(item, i)
        child_peaks: dict[str, sympy.Expr] = {}
        for i, child in self.active_children(item, variant):
            sub = self.quantities(child.op, child.variant, kernel)
            binding = self.child_binding(item, i)
            count = item.exprs[f"children.{i}.count"]
            instances = item.exprs.get(f"children.{i}.instances", count)
            active = item.exprs.get(f"children.{i}.active", count)
            for name in ADDITIVE:
                times = instances if name in ("parameters", "parameter_bytes") else count
                setattr(q, name, getattr(q, name) + times * getattr(sub, name).xreplace(binding))
            q.active_parameters += active * sub.active_parameters.xreplace(binding)
            key = child.ref
            child_peaks[f"peak[{key}]"] = sub.peak.xreplace(binding)
            child_peaks[f"kv[{key}]"] = sub.kv_cache_bytes.xreplace(binding)
        q.peak = self._peak(item, kernel, child_peaks, tensor_index)
        return q

    def _peak(self, item: ParsedSpec, kernel: str, child_peaks: dict[str, sympy.Expr],
              tensor_index: dict[str, int]) -> sympy.Expr:
        key = kernel if kernel in item.spec.memory.peak else "any"
        expr = item.exprs[f"memory.peak.{key}.formula"]
        replace = {sympy.Symbol(f"bytes[{name}]"): self.tensor_bytes(item, i)
                   for name, i in tensor_index.items() if name.isidentifier()}
        replace.update({sympy.Symbol(name): value for name, value in child_peaks.items()})
        return expr.xreplace(replace)

    # ------------------------------------------------------------------ proofs

    def prove_closed_forms(self) -> list[SpecProblem]:
        """A stated closed form must equal the composed sum for every variant, or the build fails."""
        problems = []
        for item in self.catalog.specs.values():
            for key, text in item.spec.closed_forms.model_dump().items():
                if text is None:
                    continue
                stated = item.exprs[f"closed_forms.{key}"]
                mismatches: dict[sympy.Expr, list[str]] = {}
                for variant, kernel in ((v, k) for v in self.variants(item.spec.op) for k in KERNELS):
                    composed = getattr(self.quantities(item.spec.op, variant, kernel), key)
                    difference = sympy.expand(stated - composed)
                    if difference != 0 and sympy.simplify(difference) != 0:
                        where = f"variant {variant}, {kernel} kernel" if variant else f"{kernel} kernel"
                        mismatches.setdefault(difference, []).append(where)
                for difference, places in mismatches.items():
                    every = len(places) == len(self.variants(item.spec.op)) * len(KERNELS)
                    where = "" if every else f" ({'; '.join(places)})"
                    problems.append(SpecProblem(
                        item.path, item.line("closed_forms", key), f"closed_forms.{key}",
                        f"stated closed form disagrees with the sum of operations and children{where}: "
                        f"stated - composed = {sympy.sstr(difference)}; fix the closed form or the parts"))
        return problems

    # ------------------------------------------------------------------ numbers at examples

    def binding(self, scope_name: str, example: str,
                overrides: dict[str, int] | None = None) -> dict[sympy.Symbol, sympy.Expr]:
        """Values of every symbol in a scope at one named example (config bind, then example bind).

        `overrides` replaces example entries before later entries are derived from them, so setting
        H_img re-derives H_p, W_p and S the way the example defines them.
        """
        key = (scope_name, example, tuple(sorted((overrides or {}).items())))
        if key in self._bindings:
            return self._bindings[key]
        scope = self.catalog.model.scopes[scope_name]
        names: dict[str, sympy.Expr] = {}
        for config_key, value in scope.config.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                names[config_key] = parse_formula(value, {})
        values: dict[sympy.Symbol, sympy.Expr] = {}
        path = self.catalog.model_path
        example_bind = {**scope.examples[example].bind, **{k: v for k, v in (overrides or {}).items()}}
        for origin, bind in ((f"scopes.{scope_name}.bind", scope.bind),
                             (f"scopes.{scope_name}.examples.{example}.bind", example_bind)):
            for symbol, text in bind.items():
                if symbol not in self.symbols:
                    raise SpecError([SpecProblem(path, 0, f"{origin}.{symbol}", f"'{symbol}' is not a declared symbol")])
                try:
                    value = parse_formula(text, names)
                except FormulaError as exc:
                    raise SpecError([SpecProblem(path, 0, f"{origin}.{symbol}", str(exc))]) from None
                values[self.symbols[symbol]] = value
                names[symbol] = value
        self._bindings[key] = values
        return values

    def at(self, item: ParsedSpec, expr: sympy.Expr, example: str, what: str) -> sympy.Expr:
        key = (expr, item.spec.scope, example)
        if key in self._values:
            return self._values[key]
        value = expr.xreplace(self.binding(item.spec.scope, example))
        if value.free_symbols:
            missing = ", ".join(sorted(map(str, value.free_symbols)))
            raise SpecError([SpecProblem(item.path, item.line("examples"), "examples",
                                         f"{what} needs {missing}, which example '{example}' of scope "
                                         f"'{item.spec.scope}' does not bind; bind it in model.yaml")])
        self._values[key] = value
        return value

    def evaluate_at(self, op: str, example: str, variant: str | None = None,
                    kernel: str | None = None) -> dict[str, sympy.Expr]:
        """Every derived quantity of one op at one example (at the model's kernel unless told), exact,
        plus the peak under each kernel as peak_eager and peak_fused."""
        key = (op, example, variant, kernel)
        if key not in self._evaluated:
            item = self.catalog.specs[op]
            values = {name: self.at(item, expr, example, name)
                      for name, expr in self.quantities(op, variant, kernel).derived().items()}
            for other in KERNELS:
                values[f"peak_{other}"] = self.at(item, self.quantities(op, variant, other).peak, example, "peak")
            self._evaluated[key] = values
        return dict(self._evaluated[key])


@dataclass
class Term:
    text: sympy.Expr
    value: sympy.Expr


def dominant_terms(expr: sympy.Expr, binding: dict[sympy.Symbol, sympy.Expr],
                   growth: tuple[str, ...] = GROWTH) -> tuple[Term, Term] | None:
    """(largest term at the example, term that dominates as the context grows) of a sum, or None."""
    terms = sympy.Add.make_args(sympy.expand(expr))
    if len(terms) < 1 or expr == 0:
        return None
    valued = [(term, term.xreplace(binding)) for term in terms]
    valued = [(term, value) for term, value in valued if not value.free_symbols]
    if not valued:
        return None
    largest = max(valued, key=lambda pair: (pair[1], sympy.default_sort_key(pair[0])))

    def degree(term: sympy.Expr) -> int:
        # Terms of an expanded sum are monomials: add up the exponents of the growing symbols.
        powers = term.as_powers_dict()
        return sum(int(e) for b, e in powers.items() if isinstance(b, sympy.Symbol) and b.name in growth
                   and e.is_Integer)

    growing = max(valued, key=lambda pair: (degree(pair[0]), pair[1], sympy.default_sort_key(pair[0])))
    return Term(largest[0], largest[1]), Term(growing[0], growing[1])
