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

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Any

import sympy
from sympy.polys.rings import ring

from opdoc.catalog import Catalog, ParsedSpec
from opdoc.exact import exact_at, exact_sympy, exact_value, exact_values, numeric_binding
from opdoc.formula import FormulaError, exact_number, maximum, minimum, parse_formula, suggest
from opdoc.registry import ADDITIVE, DTYPES, FLOAT_DTYPES, KERNELS
from opdoc.spec import DTYPE_BYTES, Child, Formula, SpecError, SpecProblem, in_variant

ADAMW_STATE_BYTES = 8  # two fp32 moments per parameter
# Symbols whose growth the "dominant as it grows" term follows: context and image size.
GROWTH = ("S", "P", "H_p", "W_p", "H_img", "W_img")
STAGED = ("tensor_flops", "cuda_flops", "io_read_bytes", "io_write_bytes")  # what a stage reports


class Binding(dict):
    """Every symbol's value at one binding (symbol -> number), and the at_most limits it passes on
    purpose (--beyond-limits, or an example that asks to), each said plainly."""

    passed: tuple[str, ...] = ()


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
    output_bytes: sympy.Expr = sympy.Integer(0)  # bytes of the output tensors returned (for out(child))

    @property
    def forward_flops(self) -> sympy.Expr:
        return self.tensor_flops + self.cuda_flops

    def derived(self) -> dict[str, sympy.Expr]:
        """All quantities by name, including those that follow from the additive ones (built once: a
        whole model's sums are large, and every evaluation reads them; the caller gets its own dict)."""
        if "_derived" not in self.__dict__:
            self.__dict__["_derived"] = self._derive()
        return dict(self.__dict__["_derived"])

    def _derive(self) -> dict[str, sympy.Expr]:
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
        self._evaluated: dict[tuple, Evaluated] = {}
        self._totals_memo: dict[tuple, tuple[dict, dict]] = {}
        self._shares: dict[tuple, sympy.Expr] = {}  # a child's quantity as its parent counts it
        self._expanded: dict[sympy.Expr, sympy.Expr] = {}
        self._numeric: dict[frozenset, tuple[dict, dict]] = {}

    # ------------------------------------------------------------------ symbolic composition

    def expanded(self, expr: sympy.Expr) -> sympy.Expr:
        """sympy.expand(expr), once per expression: pages print, and search for dominant terms in,
        the expansion of the same large totals."""
        if expr not in self._expanded:
            self._expanded[expr] = expand(expr)
        return self._expanded[expr]

    def variants(self, op: str) -> list[str | None]:
        return list(self.catalog.specs[op].spec.variants) or [None]

    def quantities(self, op: str, variant: str | None = None, kernel: str | None = None) -> Quantities:
        key = (op, variant, kernel or self.kernel)
        if key not in self._memo:
            self._memo[key] = self._compose(self.catalog.specs[op], variant, key[2])
        return self._memo[key]

    def tensor_numel(self, item: ParsedSpec, index: int) -> sympy.Expr:
        key = ("numel", item.spec.op, index)
        if key not in self._memo:
            axes = range(len(item.spec.tensors[index].shape))
            self._memo[key] = sympy.Mul(*(item.exprs[f"tensors.{index}.shape.{axis}"] for axis in axes))
        return self._memo[key]

    def tensor_bytes(self, item: ParsedSpec, index: int) -> sympy.Expr:
        key = ("bytes", item.spec.op, index)
        if key not in self._memo:
            self._memo[key] = self.tensor_numel(item, index) * self.dtype_bytes(item.spec.tensors[index].dtype)
        return self._memo[key]

    def dtype_name(self, dtype: str) -> str:
        """A tensor's dtype, with "model" read as the model's own (weights and activations)."""
        return self.catalog.model.dtype if dtype == "model" else dtype

    def dtype_bytes(self, dtype: str) -> sympy.Expr:
        """Bytes per element: the model's dtype is the symbol dtype_bytes (a binding), others are fixed."""
        if dtype == "model":
            return self.symbols[DTYPE_BYTES]
        return sympy.Integer(DTYPES[dtype].bytes)

    def active_children(self, item: ParsedSpec, variant: str | None, kernel: str | None = None) -> list[tuple[int, Child]]:
        """Children present in this variant with this attention kernel (the model's unless told)."""
        kernel = kernel or self.kernel
        return [(i, c) for i, c in enumerate(item.spec.children)
                if in_variant(c.only, variant) and c.kernel in (None, kernel)]

    def child_binding(self, item: ParsedSpec, index: int) -> dict[sympy.Symbol, sympy.Expr]:
        """The child's symbols in the parent's: its `bind`, over the values its own scope's configuration
        gives when the child lives in an unrelated scope (SAM's h is not the language model's h)."""
        key = ("child binding", item.spec.op, index)
        if key not in self._bindings:
            child = item.spec.children[index]
            constants = self.scope_constants(self.catalog.specs[child.op].spec.scope, item.spec.scope)
            # In such a child's bind, names of its scope's configured symbols mean its values (SAM's p).
            binding = dict(constants)
            binding.update({self.symbols[name]: item.exprs[f"children.{index}.bind.{name}"].xreplace(constants)
                            for name in child.bind})
            self._bindings[key] = binding
        return dict(self._bindings[key])  # a copy: callers add to it

    def scope_constants(self, scope_name: str, from_scope: str) -> dict[sympy.Symbol, sympy.Expr]:
        """The values a scope's configuration and bind give, seen from another scope; none when the two
        scopes share their symbols' meanings (the same scope, or one inherits the other's)."""
        scopes = self.catalog.model.scopes
        related = {from_scope, scopes[from_scope].inherits}
        if scope_name in related or scopes[scope_name].inherits in related - {None}:
            return {}
        key = ("constants", scope_name)
        if key not in self._bindings:
            scope = scopes[scope_name]
            values = self.binding(scope_name, next(iter(scope.examples)))
            # dtype_bytes is the model's, not a scope's: an override of it reaches every child.
            self._bindings[key] = {s: v for s, v in values.items() if s.name in scope.bind and s.name != DTYPE_BYTES}
        return self._bindings[key]

    def _bound(self, item: ParsedSpec, index: int, expr: sympy.Expr) -> sympy.Expr:
        """expr.xreplace(child_binding(item, index)), in two steps when the child lives in another scope:
        its scope's values first, kept for every child of that op that sees the same values (SAM's
        encoder runs as the global view and as the tiles: its large formulas are bound once), then the
        child's own bind. The bind's values hold no symbol the first step replaces."""
        child = item.spec.children[index]
        binding = self.child_binding(item, index)
        bound = {self.symbols[name] for name in child.bind}
        constants = frozenset((s, v) for s, v in binding.items() if s not in bound)
        if not constants:
            return expr.xreplace(binding)
        key = ("constants", expr, constants)
        if key not in self._shares:
            self._shares[key] = expr.xreplace(dict(constants))
        return self._shares[key].xreplace({s: binding[s] for s in bound})

    def child_share(self, item: ParsedSpec, index: int, expr: sympy.Expr, quantity: str) -> sympy.Expr:
        key = ("share", item.spec.op, index, quantity, expr)
        if key not in self._shares:
            self._shares[key] = self._child_share(item, index, expr, quantity)
        return self._shares[key]

    def _child_share(self, item: ParsedSpec, index: int, expr: sympy.Expr, quantity: str) -> sympy.Expr:
        """One child quantity (an expression in the child's symbols) as it counts in the parent: bound,
        times the child's count (instances, for parameters), summed over its steps when it has any.
        Peak, cache and outputs are not summed: they are those of one instance at its last step."""
        child = item.spec.children[index]
        if quantity in ("peak", "kv", "out"):
            times = sympy.Integer(1)
        elif quantity in ("parameters", "parameter_bytes"):
            times = item.exprs.get(f"children.{index}.instances", item.exprs[f"children.{index}.count"])
        elif quantity == "active_parameters":
            times = item.exprs.get(f"children.{index}.active", item.exprs[f"children.{index}.count"])
        else:
            times = item.exprs[f"children.{index}.count"]
        if times == 0:  # a child this variant does not run (the vision path when decoding): nothing to bind
            return sympy.Integer(0)  # (sympy's 0 * value is 0 too, after asking whether value is finite)
        value = self._bound(item, index, expr)
        if child.steps is None:
            return times * value
        step = self.symbols[child.steps.symbol]
        first, last = (item.exprs[f"children.{index}.steps.{end}"] for end in ("first", "last"))
        if quantity in ("peak", "kv", "out") or quantity in ("parameters", "parameter_bytes", "active_parameters"):
            return times * value.xreplace({step: last})  # weights are shared by every step
        return sum_steps(times * value, step, first, last)

    def stage_totals(self, op: str, variant: str | None, kernel: str | None = None) -> dict[str, dict[str, sympy.Expr]]:
        """FLOPs and I/O of an op split by the stages its operations and children name (a child without a
        stage passes its own stages up). Empty when nothing in the op's tree names a stage."""
        kernel = kernel or self.kernel
        key = ("stages", op, variant, kernel)
        if key in self._memo:
            return self._memo[key]
        item, spec = self.catalog.specs[op], self.catalog.specs[op].spec
        totals: dict[str, dict[str, list[sympy.Expr]]] = {}

        def add(stage: str, name: str, expr: sympy.Expr) -> None:
            totals.setdefault(stage, {n: [] for n in STAGED})[name].append(expr)

        tensor_index = {t.name: i for i, t in enumerate(spec.tensors) if in_variant(t.only, variant)}
        for i, operation in enumerate(spec.operations):
            if operation.stage is None or operation.kernel not in (None, kernel) or not in_variant(operation.only, variant):
                continue
            add(operation.stage, "tensor_flops" if operation.unit == "tensor" else "cuda_flops",
                item.exprs[f"operations.{i}.flops"])
            for field_name, names in (("io_read_bytes", operation.reads), ("io_write_bytes", operation.writes)):
                for name in names:
                    tensor = spec.tensors[tensor_index[name]]
                    if tensor.kernel in (None, kernel):
                        add(operation.stage, field_name, self.tensor_bytes(item, tensor_index[name]))
        for i, child in self.active_children(item, variant, kernel):
            if child.stage is not None:
                sub = self.quantities(child.op, child.variant, kernel)
                for name in STAGED:
                    add(child.stage, name, self.child_share(item, i, getattr(sub, name), name))
                continue
            for stage, parts in self.stage_totals(child.op, child.variant, kernel).items():
                for name in STAGED:
                    add(stage, name, self.child_share(item, i, parts[name], name))
        result = {stage: {name: sympy.Add(*exprs) for name, exprs in parts.items()} for stage, parts in totals.items()}
        for parts in result.values():
            parts["forward_flops"] = parts["tensor_flops"] + parts["cuda_flops"]
        self._memo[key] = result
        return result

    def contribution(self, item: ParsedSpec, index: int, sub: Quantities, quantity: str) -> sympy.Expr:
        """A child's share of one additive quantity of the parent. A stepped child whose cache each step
        replaces holds only its last step's cache; the caches of the steps before count as activations."""
        share = self.child_share(item, index, getattr(sub, quantity), quantity)
        steps = item.spec.children[index].steps
        if steps is None or not steps.replaces_cache or quantity not in ("activation_bytes", "kv_cache_bytes"):
            return share
        count = item.exprs[f"children.{index}.count"]
        last = count * self.child_share(item, index, sub.kv_cache_bytes, "kv")  # each instance's last cache
        if quantity == "kv_cache_bytes":
            return last
        return share + self.child_share(item, index, sub.kv_cache_bytes, "kv_cache_bytes") - last

    def _compose(self, item: ParsedSpec, variant: str | None, kernel: str) -> Quantities:
        spec = item.spec
        # Terms are collected and each sum is built once: adding one term at a time grows as N^1.2.
        terms: dict[str, list[sympy.Expr]] = {name: [] for name in (*ADDITIVE, "active_parameters")}
        # A name may be declared once per variant: this variant's declaration is the one it means.
        tensor_index = {tensor.name: i for i, tensor in enumerate(spec.tensors) if in_variant(tensor.only, variant)}
        tensor_index.update({tensor.name: i for i, tensor in enumerate(spec.tensors)
                             if tensor.name not in tensor_index})  # other variants' names hold 0 bytes

        def present(tensor) -> bool:
            """A tensor of the other kernel or of another variant does not exist here."""
            return tensor.kernel in (None, kernel) and in_variant(tensor.only, variant)

        for i, operation in enumerate(spec.operations):
            if operation.kernel not in (None, kernel) or not in_variant(operation.only, variant):
                continue
            flops = item.exprs[f"operations.{i}.flops"]
            terms["tensor_flops" if operation.unit == "tensor" else "cuda_flops"].append(flops)
            terms["backward_flops"].append(item.exprs.get(f"operations.{i}.backward", 2 * flops))
            # A tensor that exists only with the other kernel is neither read nor written with this one.
            terms["io_read_bytes"] += [self.tensor_bytes(item, tensor_index[n]) for n in operation.reads
                                       if present(spec.tensors[tensor_index[n]])]
            terms["io_write_bytes"] += [self.tensor_bytes(item, tensor_index[n]) for n in operation.writes
                                        if present(spec.tensors[tensor_index[n]])]
        for i, tensor in enumerate(spec.tensors):
            if tensor.from_child or not present(tensor):
                continue
            if tensor.role == "parameter":
                terms["parameters"].append(self.tensor_numel(item, i))
                terms["parameter_bytes"].append(self.tensor_bytes(item, i))
                terms["active_parameters"].append(item.exprs.get(f"tensors.{i}.active", self.tensor_numel(item, i)))
            elif tensor.role in ("intermediate", "output"):
                terms["activation_bytes"].append(self.tensor_bytes(item, i))
            elif tensor.role == "cache":
                terms["kv_cache_bytes"].append(self.tensor_bytes(item, i))
        # A child absent from this variant or kernel runs nothing and holds nothing.
        zero = sympy.Integer(0)
        child_peaks: dict[str, sympy.Expr] = {f"{kind}[{child.ref}]": zero for child in spec.children
                                              for kind in ("peak", "kv", "out")}
        for i, child in self.active_children(item, variant, kernel):
            sub = self.quantities(child.op, child.variant, kernel)
            for name in (*ADDITIVE, "active_parameters"):
                terms[name].append(self.contribution(item, i, sub, name))
            key = child.ref
            child_peaks[f"peak[{key}]"] = self.child_share(item, i, sub.peak, "peak")
            child_peaks[f"kv[{key}]"] = self.child_share(item, i, sub.kv_cache_bytes, "kv")
            child_peaks[f"out[{key}]"] = self.child_share(item, i, sub.output_bytes, "out")
        replacing = [i for i, child in self.active_children(item, variant, kernel)
                     if child.steps is not None and child.steps.replaces_cache]
        if replacing:  # the steps' cache supersedes every other: those were transient
            last = sympy.Add(*(self.contribution(item, i, self.quantities(spec.children[i].op, spec.children[i].variant,
                                                                          kernel), "kv_cache_bytes") for i in replacing))
            terms["activation_bytes"] += [*terms["kv_cache_bytes"], -last]
            terms["kv_cache_bytes"] = [last]
        q = Quantities(**{name: sympy.Add(*parts) for name, parts in terms.items()})
        # What the op returns, wherever it was produced: a parent holding it reads out(child).
        q.output_bytes = sympy.Add(*(self.tensor_bytes(item, i) for i, tensor in enumerate(spec.tensors)
                                     if tensor.role == "output" and present(tensor)))
        q.peak = self._peak(item, variant, kernel, child_peaks, tensor_index)
        return q

    def _peak(self, item: ParsedSpec, variant: str | None, kernel: str, child_peaks: dict[str, sympy.Expr],
              tensor_index: dict[str, int]) -> sympy.Expr:
        key = item.spec.memory.key_for(variant, kernel)
        expr = item.exprs[f"memory.peak.{key}.formula"]
        # A tensor that exists only with the other kernel, or in another variant, holds nothing here.
        replace = {sympy.Symbol(f"bytes[{name}]"): self.tensor_bytes(item, i)
                   if item.spec.tensors[i].kernel in (None, kernel) and in_variant(item.spec.tensors[i].only, variant)
                   else sympy.Integer(0)
                   for name, i in tensor_index.items() if name.isidentifier()}
        replace.update({sympy.Symbol(name): value for name, value in child_peaks.items()})
        return expr.xreplace(replace)

    # ------------------------------------------------------------------ load-time checks

    def check_bindings(self) -> list[SpecProblem]:
        """Every example and check point of every scope binds cleanly: all problems, each with its line."""
        problems: list[SpecProblem] = []
        model, path = self.catalog.model, self.catalog.model_path
        for scope_name, scope in model.scopes.items():
            for example in scope.examples:
                at = ("scopes", scope_name, "examples", example, "only")
                for op in (op for op in scope.examples[example].only if op not in self.catalog.specs):
                    problems.append(SpecProblem(path, self.catalog.model_line(*at), ".".join(at),
                                                f"no spec for '{op}'{suggest(op, sorted(self.catalog.specs))}"))
                try:
                    self.binding(scope_name, example)
                except SpecError as exc:
                    problems += exc.problems
            for index, point in enumerate(scope.check):
                at = ("scopes", scope_name, "check", index)
                if point.example not in scope.examples:
                    problems.append(SpecProblem(path, self.catalog.model_line(*at, "example"), ".".join(map(str, at)) + ".example",
                                                f"no example '{point.example}'{suggest(point.example, sorted(scope.examples))}"))
                    continue
                unknown = [op for op in point.only if op not in self.catalog.specs]
                for op in unknown:
                    problems.append(SpecProblem(path, self.catalog.model_line(*at, "only"), ".".join(map(str, at)) + ".only",
                                                f"no spec for '{op}'{suggest(op, sorted(self.catalog.specs))}"))
                try:
                    self.binding(scope_name, point.example, point.set, point.config, origin=path,
                                 origin_line=self.catalog.model_line(*at))
                except SpecError as exc:
                    problems += exc.problems
        return problems

    def check_signs(self, ops: Iterable[str] | None = None) -> list[SpecProblem]:
        """Every quantity of every op is a finite number >= 0 at every example and check point of its
        scope (a formula such as -B*S*h, or one that divides by zero somewhere, is found here)."""
        problems: list[SpecProblem] = []
        for op, item in self._items(ops):
            scope = self.catalog.model.scopes[item.spec.scope]
            bindings = [(f"example '{e}'", self.binding(item.spec.scope, e)) for e in item.spec.examples]
            bindings += [(f"check point {i} ({p.example} {p.set or ''})".rstrip(),
                          self.binding(item.spec.scope, p.example, p.set, p.config))
                         for i, p in enumerate(scope.check) if not p.only or op in p.only]
            # Converted once per op, and one memo of subexpressions per binding for all of its expressions.
            exact = tuple(map(list, zip(*(self.numbers(binding) for _, binding in bindings))))
            # Each operation's FLOPs and each tensor extent on its own: a negative part can hide in a total.
            for key, expr in item.exprs.items():
                if not key.startswith(("operations.", "tensors.")) or key.endswith(".active"):
                    continue
                bad = _first_bad(expr, bindings, *exact)
                if bad is not None:
                    loc = tuple(int(part) if part.isdigit() else part for part in key.split("."))
                    problems.append(SpecProblem(item.path, item.line(*loc), key,
                                                f"is {bad[1]} at {bad[0]}; a count or size must be a finite "
                                                "number >= 0: fix the formula"))
            checked: set[sympy.Expr] = set()  # most quantities are the same with either kernel
            for variant in self.variants(op):
                for kernel in KERNELS:
                    for name, expr in self.quantities(op, variant, kernel).derived().items():
                        if expr in checked:
                            continue
                        checked.add(expr)
                        bad = _first_bad(expr, bindings, *exact)
                        if bad is not None:
                            problems.append(SpecProblem(
                                item.path, item.line("operations"), name,
                                f"is {bad[1]} at {bad[0]} ({kernel} kernel{', variant ' + variant if variant else ''}); "
                                "a count or size must be a finite number >= 0: fix the formula"))
        return problems

    def numbers(self, binding: Mapping[sympy.Symbol, sympy.Expr]) -> tuple[dict, dict]:
        """A binding as Python numbers, and its memo of computed subexpressions (opdoc.exact.run): one
        per binding, shared by every check and evaluation at it (the checks and the pages evaluate the
        same formulas at the same examples)."""
        key = frozenset(binding.items())
        if key not in self._numeric:
            self._numeric[key] = (numeric_binding(binding), {})
        return self._numeric[key]

    def _items(self, ops: Iterable[str] | None) -> list[tuple[str, ParsedSpec]]:
        """The specs of `ops` (all when None), in the catalog's order."""
        wanted = None if ops is None else set(ops)
        return [(op, item) for op, item in self.catalog.specs.items() if wanted is None or op in wanted]

    def tree(self, op: str) -> frozenset[str]:
        """The op and every op it is composed of, in any variant."""
        key = ("tree", op)
        if key not in self._memo:
            found = {op}
            for child in self.catalog.specs[op].spec.children:
                found |= self.tree(child.op)
            self._memo[key] = frozenset(found)
        return self._memo[key]

    # ------------------------------------------------------------------ proofs

    def prove_closed_forms(self, ops: Iterable[str] | None = None) -> list[SpecProblem]:
        """A stated closed form must equal the composed sum for every variant, or the build fails."""
        problems = []
        for _, item in self._items(ops):
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

    def binding(self, scope_name: str, example: str, overrides: Mapping[str, Formula] | None = None,
                config: Mapping[str, Any] | None = None, *, allow_beyond: bool = False,
                origin: str = "--set", origin_line: int = 0) -> dict[sympy.Symbol, sympy.Expr]:
        """Values of every symbol of a scope at one named example: the one binding function.

        Order: the scope's configuration (numbers; `config` replaces some), the scope's bind, then the
        example's bind. An override (a symbol or a configuration key, `origin` names where it came
        from) replaces that entry where it stands, so everything bound after it is re-derived from
        it: setting H_img re-derives H_p, W_p and S; setting B re-derives E_run = min(E, B·S·k).
        Every value must be a whole number at least the symbol's minimum, and the scope's limits
        must hold (a context past the trained one is refused unless `allow_beyond`).
        """
        overrides = dict(overrides or {})
        key = (scope_name, example, tuple(sorted((k, str(v)) for k, v in overrides.items())),
               tuple(sorted((k, repr(v)) for k, v in (config or {}).items())), allow_beyond, origin, origin_line)
        if key in self._bindings:
            return self._bindings[key]
        model, path = self.catalog.model, self.catalog.model_path
        scope = model.scopes[scope_name]
        scope_at = ("scopes", scope_name)
        problems: list[SpecProblem] = []

        def problem(at: tuple, message: str) -> None:
            problems.append(SpecProblem(path, self.catalog.model_line(*at), ".".join(map(str, at)), message))

        if "dtype" in overrides:  # a dtype by name sets its element size
            dtype = str(overrides.pop("dtype"))
            if dtype not in FLOAT_DTYPES:
                raise SpecError([SpecProblem(origin, origin_line, "dtype", f"dtype={dtype}: expected one of "
                                                                           f"{', '.join(FLOAT_DTYPES)}")])
            overrides[DTYPE_BYTES] = DTYPES[dtype].bytes
        unknown = [name for name in overrides if name not in self.symbols and name not in scope.config]
        for name in unknown:
            known = sorted([*self.symbols, *(k for k, v in scope.config.items() if _is_number(v))])
            raise SpecError([SpecProblem(origin, origin_line, name, f"'{name}' is neither a symbol nor a configuration key of "
                                                          f"scope '{scope_name}'{suggest(name, known)}")])
        names: dict[str, sympy.Expr] = {}
        values: dict[sympy.Symbol, sympy.Expr] = {}
        element = overrides.get(DTYPE_BYTES, DTYPES[model.dtype].bytes)
        values[self.symbols[DTYPE_BYTES]] = names[DTYPE_BYTES] = value_of_override(element, origin, origin_line)

        def value_of(text: Formula, at: tuple, user: str | None) -> sympy.Expr | None:
            try:
                return parse_formula(text, names)
            except FormulaError as exc:
                if user is not None:
                    raise SpecError([SpecProblem(origin, origin_line, user, f"{user}={text}: {exc}")]) from None
                problem(at, str(exc))
                return None

        for config_key, number in {**scope.config, **(config or {})}.items():
            if config_key in overrides:
                number = overrides[config_key]
            elif not _is_number(number):
                continue
            value = value_of(number, (*scope_at, "config", config_key), config_key if config_key in overrides else None)
            if value is not None:
                names[config_key] = value
        for symbol, other in scope.imports.items():
            if other not in model.scopes or other == scope_name:
                problem((*scope_at, "imports", symbol), f"'{other}' is not another scope of this model")
            elif symbol not in model.scopes[other].bind:
                problem((*scope_at, "imports", symbol), f"scope '{other}' does not bind {symbol}")
            else:
                values[self.symbols[symbol]] = names[symbol] = self.binding(
                    other, next(iter(model.scopes[other].examples)))[self.symbols[symbol]]
        example_bind = scope.examples[example].bind
        for at, bind in (((*scope_at, "bind"), scope.bind), ((*scope_at, "examples", example, "bind"), example_bind)):
            for symbol, text in bind.items():
                user = symbol if symbol in overrides else None
                value = value_of(overrides.get(symbol, text), (*at, symbol), user)
                if value is not None:
                    values[self.symbols[symbol]] = names[symbol] = value
        for symbol, text in overrides.items():  # symbols no bind mentions: set directly
            if symbol in self.symbols and self.symbols[symbol] not in values and symbol != DTYPE_BYTES:
                values[self.symbols[symbol]] = names[symbol] = value_of(text, (), symbol)
        if problems:
            raise SpecError(problems)
        passed: list[str] = []
        problems_found = self._validate(scope_name, example, values, names, overrides, origin, origin_line,
                                        allow_beyond or scope.examples[example].beyond_limits, passed)
        if problems_found:
            raise SpecError(problems_found)
        binding = Binding(values)
        binding.passed = tuple(passed)
        self._bindings[key] = binding
        return binding

    def _validate(self, scope_name: str, example: str, values: dict[sympy.Symbol, sympy.Expr],
                  names: dict[str, sympy.Expr], overrides: Mapping[str, Formula], origin: str,
                  origin_line: int, allow_beyond: bool, passed: list[str]) -> list[SpecProblem]:
        """Counts are whole numbers at least their minimum; the scope's limits hold (an at_most limit
        passed with `allow_beyond` is added to `passed` instead)."""
        model, path = self.catalog.model, self.catalog.model_path
        found = []
        where_example = ("scopes", scope_name, "examples", example, "bind")

        def report(symbol: str | None, message: str, at: tuple) -> None:
            if symbol is not None and symbol in overrides:
                found.append(SpecProblem(origin, origin_line, symbol, f"{symbol}={overrides[symbol]}: {message}"))
            elif overrides:
                given = ", ".join(f"{k}={v}" for k, v in overrides.items())
                found.append(SpecProblem(origin, origin_line, ", ".join(overrides), f"with {given}: {message}"))
            else:
                found.append(SpecProblem(path, self.catalog.model_line(*at), ".".join(map(str, at)), message))

        # The symbols a user set are checked first: what follows from a wrong value is noise.
        order = sorted(values, key=lambda symbol: symbol.name not in overrides)
        for symbol in order:
            value = values[symbol]
            info = model.symbol(symbol.name)
            at = (*where_example, symbol.name)
            wanted = f"{symbol.name} ({info.meaning}) must be a whole number >= {info.min}"
            if value.free_symbols:
                report(symbol.name, f"{symbol.name} depends on {', '.join(sorted(map(str, value.free_symbols)))}, "
                                    "which is not bound before it", at)
            elif value.is_finite is not True or value.is_real is not True:
                report(symbol.name, f"{wanted}; got no finite number (a division by zero?)", at)
            elif not value.is_integer:
                report(symbol.name, f"{wanted}; got {value}", at)
            elif value < info.min:
                report(symbol.name, f"{wanted}; got {value}", at)
            if found and symbol.name in overrides and not any(v.name in overrides for v in order[order.index(symbol) + 1:]):
                return found
        if found:
            return found
        scope = model.scopes[scope_name]
        for index, limit in enumerate(scope.limits):
            # An inherited limit is written in the scope it comes from: errors point there.
            at = (("scopes", scope.inherits, "limits", index - scope._own_limits) if scope.inherited_limit(index)
                  else ("scopes", scope_name, "limits", index))
            try:
                amount = parse_formula(limit.value, names)
                bound = parse_formula(limit.equals if limit.equals is not None else limit.at_most, names)
            except FormulaError as exc:
                if not model.scopes[scope_name].inherited_limit(index):
                    found.append(SpecProblem(path, self.catalog.model_line(*at), ".".join(map(str, at)), str(exc)))
                continue
            if amount.free_symbols or bound.free_symbols:
                continue
            if limit.equals is not None and amount != bound:
                report(None, f"{limit.value} = {amount} differs from {limit.equals} = {bound}: {limit.why}", at)
            elif limit.at_most is not None and amount > bound:
                if allow_beyond:  # said on pages: digits grouped as they print every number
                    passed.append(f"{limit.value} = {exact_number(amount)} exceeds {limit.at_most} = "
                                  f"{exact_number(bound)}: {limit.why}.")
                else:
                    report(None, f"{limit.value} = {amount} exceeds {limit.at_most} = {bound}: {limit.why}; "
                                 "pass --beyond-limits to evaluate it anyway", at)
        return found

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

    def totals(self, op: str, binding: Mapping[sympy.Symbol, sympy.Expr], variant: str | None = None,
               kernel: str | None = None, where: str = "") -> dict[str, sympy.Expr]:
        """`evaluate(...).totals` without the parts (a plot's sweep needs no more), memoised the same way."""
        frozen = tuple(sorted(((s.name, v) for s, v in binding.items()), key=lambda pair: pair[0]))
        return dict(self._totals(op, binding, variant, kernel or self.kernel, where, frozen)[0])

    def _totals(self, op: str, binding: Mapping[sympy.Symbol, sympy.Expr], variant: str | None, kernel: str,
                where: str, frozen: tuple) -> tuple[dict[str, sympy.Expr], dict[str, sympy.Expr]]:
        key = (op, variant, kernel, frozen)
        if key not in self._totals_memo:
            item = self.catalog.specs[op]
            formulas = self.quantities(op, variant, kernel).derived()
            for other in KERNELS:
                formulas[f"peak_{other}"] = self.quantities(op, variant, other).peak
            problems: list[SpecProblem] = []
            exact = self.numbers(binding)
            totals = {name: self._number(item, expr, binding, exact, frozen, where, name, ("examples",), problems)
                      for name, expr in formulas.items()}
            if problems:
                raise SpecError(problems)
            self._totals_memo[key] = (totals, formulas)
        return self._totals_memo[key]

    def _number(self, item: ParsedSpec, expr: sympy.Expr, binding: Mapping[sympy.Symbol, sympy.Expr],
                exact: tuple[dict, dict], frozen: tuple, where: str, what: str, at: tuple,
                problems: list[SpecProblem]) -> sympy.Expr:
        """expr at the binding (`exact`: its numbers and memo, Evaluator.numbers), exact; a value that is
        not a count (negative, fractional, infinite, not a number, or with a symbol left unbound) is
        added to `problems` and counts as 0."""
        numbers, values = exact
        # Exact arithmetic on Python numbers first (fast on a whole model's formulas); sympy when the
        # expression leaves it (a root, an unbound symbol), which also words the error.
        raw = exact_value(expr, numbers, values)
        if isinstance(raw, int) and raw >= 0:  # nearly every number: no sympy comparison needed
            return sympy.Integer(raw)
        value = exact_sympy(raw) if raw is not None else expr.xreplace(binding)
        if value.free_symbols:
            missing = ", ".join(sorted(map(str, value.free_symbols)))
            problems.append(SpecProblem(item.path, item.line(*at), ".".join(map(str, at)),
                                        f"{what} needs {missing}, which {where or 'this binding'} does not bind; "
                                        "bind it in model.yaml"))
            return sympy.Integer(0)
        if not (value.is_finite and value.is_real and value >= 0):
            problems.append(SpecProblem(item.path, item.line(*at), ".".join(map(str, at)),
                                        f"{what} is {value} at {where or _describe_binding(frozen)}; "
                                        "a count or size must be a finite number >= 0: fix the formula"))
            return sympy.Integer(0)
        return value

    def evaluate(self, op: str, binding: Mapping[sympy.Symbol, sympy.Expr], variant: str | None = None,
                 kernel: str | None = None, where: str = "") -> Evaluated:
        """Every quantity, operation, child contribution and tensor of one op at one binding, exact.

        Memoised per op x variant x kernel x binding; eval, export, the API, plots and the checker's
        expectations all read this. A value that is negative, fractional, infinite or not a number
        is an error of the spec (it names the quantity and the binding).
        """
        kernel = kernel or self.kernel
        frozen = tuple(sorted(((s.name, v) for s, v in binding.items()), key=lambda pair: pair[0]))
        key = (op, variant, kernel, frozen)
        if key in self._evaluated:
            return self._evaluated[key]
        item = self.catalog.specs[op]
        problems: list[SpecProblem] = []
        exact = self.numbers(binding)

        def number(expr: sympy.Expr, what: str, at: tuple = ("examples",)) -> sympy.Expr:
            return self._number(item, expr, binding, exact, frozen, where, what, at, problems)

        try:
            totals, formulas = self._totals(op, binding, variant, kernel, where, frozen)
        except SpecError as exc:  # reported with the parts' problems, all at once
            problems += exc.problems
            totals, formulas = {}, {}
        operations = []
        for index, operation in enumerate(item.spec.operations):
            if operation.kernel not in (None, kernel) or not in_variant(operation.only, variant):
                continue
            expr = item.exprs[f"operations.{index}.flops"]
            operations.append(Part(index, operation.name, operation.unit, expr,
                                   number(expr, f"operation '{operation.name}'", ("operations", index, "flops"))))
        children = []
        replacing = any(c.steps is not None and c.steps.replaces_cache for _, c in self.active_children(item, variant, kernel))
        for index, child in self.active_children(item, variant, kernel):
            sub = self.quantities(child.op, child.variant, kernel)
            count = item.exprs[f"children.{index}.count"]
            instances = item.exprs.get(f"children.{index}.instances", count)
            contribution = {}
            for name in ADDITIVE:
                expr = self.contribution(item, index, sub, name)
                contribution[name] = number(expr, f"child '{child.name}' {name}", ("children", index))
            if replacing and not (child.steps is not None and child.steps.replaces_cache):
                # a later step's cache supersedes this child's: it was transient, as in the totals
                contribution["activation_bytes"] += contribution["kv_cache_bytes"]
                contribution["kv_cache_bytes"] = sympy.Integer(0)
            children.append(ChildPart(index, child.name, child.op, child.variant, number(count, f"child '{child.name}' count"),
                                      number(instances, f"child '{child.name}' instances"), contribution))
        tensors = []
        for index, tensor in enumerate(item.spec.tensors):
            if tensor.kernel not in (None, kernel) or not in_variant(tensor.only, variant):
                continue
            shape = tuple(number(item.exprs[f"tensors.{index}.shape.{axis}"], f"tensor '{tensor.name}' shape",
                                 ("tensors", index, "shape", axis)) for axis in range(len(tensor.shape)))
            numel = sympy.Mul(*shape)
            size = number(numel * self.dtype_bytes(tensor.dtype), f"tensor '{tensor.name}' bytes", ("tensors", index))
            # With a cache-replacing stepped child, this op's own caches are transient like the children's.
            role = "intermediate" if replacing and tensor.role == "cache" else tensor.role
            tensors.append(TensorPart(index, tensor.name, role, self.dtype_name(tensor.dtype), shape, numel, size))
        if problems:
            raise SpecError(problems)
        stages = {stage: {name: number(expr, f"stage '{stage}' {name}") for name, expr in parts.items()}
                  for stage, parts in self.stage_totals(op, variant, kernel).items()}
        result = Evaluated(op, variant, kernel, frozen, totals, formulas, operations, children, tensors, stages,
                           getattr(binding, "passed", ()))
        self._evaluated[key] = result
        return result

    def evaluate_at(self, op: str, example: str, variant: str | None = None,
                    kernel: str | None = None) -> dict[str, sympy.Expr]:
        """Every quantity of one op at one named example (at the model's kernel unless told), exact."""
        scope = self.catalog.specs[op].spec.scope
        where = f"example '{example}' of scope '{scope}'"
        return dict(self.evaluate(op, self.binding(scope, example), variant, kernel, where).totals)


def _first_bad(expr: sympy.Expr, bindings: list[tuple[str, dict]], numbers: list | None = None,
               memo: list[dict] | None = None) -> tuple[str, sympy.Expr] | None:
    """(where, value) of the first binding at which `expr` is negative or not a finite number, else None.

    All bindings are computed in one exact pass (opdoc.exact); only a suspect value is substituted again,
    to report it exactly. Values with unbound symbols are left to the page that evaluates them.
    """
    from opdoc.exact import values_at

    if expr.is_Number:
        return None if expr.is_finite and expr.is_real and expr >= 0 else ("every binding", expr)
    try:
        values = values_at(expr, [binding for _, binding in bindings], numbers=numbers, values=memo)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        values = [float("nan")] * len(bindings)
    for (where, binding), value in zip(bindings, values):
        if not (value >= 0 and value != float("inf")):
            exact = expr.xreplace(binding)
            if not exact.free_symbols and not (exact.is_finite and exact.is_real and exact >= 0):
                return where, exact
    return None


def value_of_override(text: Formula, origin: str, origin_line: int) -> sympy.Expr:
    """A number given directly (no symbols): the dtype's element size."""
    try:
        return parse_formula(text, {})
    except FormulaError as exc:
        raise SpecError([SpecProblem(origin, origin_line, DTYPE_BYTES, f"{DTYPE_BYTES}={text}: {exc}")]) from None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _describe_binding(frozen: tuple) -> str:
    return ", ".join(f"{name}={value}" for name, value in frozen)


@dataclass(frozen=True)
class Part:
    """One operation of an op: its FLOP formula and value."""

    index: int  # in the spec's operations
    name: str
    unit: str  # "tensor" or "cuda"
    formula: sympy.Expr
    flops: sympy.Expr


@dataclass(frozen=True)
class ChildPart:
    """What one child adds to its parent: every additive quantity times its count (instances for parameters)."""

    index: int  # in the spec's children
    name: str
    op: str
    variant: str | None
    count: sympy.Expr
    instances: sympy.Expr
    totals: dict[str, sympy.Expr]


@dataclass(frozen=True)
class TensorPart:
    index: int  # in the spec's tensors
    name: str
    role: str
    dtype: str
    shape: tuple[sympy.Expr, ...]
    numel: sympy.Expr
    bytes: sympy.Expr


@dataclass(frozen=True)
class Evaluated:
    """One op x variant x kernel x binding: every number exact, every total also as a formula."""

    op: str
    variant: str | None
    kernel: str
    binding: tuple[tuple[str, sympy.Expr], ...]
    totals: dict[str, sympy.Expr]
    formulas: dict[str, sympy.Expr]
    operations: list[Part]
    children: list[ChildPart]
    tensors: list[TensorPart]
    # Totals per stage of a larger job (e.g. SAM, CLIP, prefill, decode) for an op whose children or
    # operations name stages; FLOPs and I/O only (what splits cleanly); empty otherwise.
    stages: dict[str, dict[str, sympy.Expr]] = field(default_factory=dict)
    passed: tuple[str, ...] = ()  # the limits the binding passes on purpose (Binding.passed)


@dataclass
class Term:
    text: sympy.Expr
    value: sympy.Expr


def dominant_terms(expr: sympy.Expr, binding: dict[sympy.Symbol, sympy.Expr],
                   growth: tuple[str, ...] = GROWTH) -> tuple[Term, Term] | None:
    """(largest term at the example, term that dominates as the context grows) of a sum, or None.
    `expr` is expanded already (Evaluator.expanded)."""
    terms = sympy.Add.make_args(expr)
    if len(terms) < 1 or expr == 0:
        return None
    numbers, memo = numeric_binding(binding), {}
    valued = [(term, exact_at(term, numbers, memo)) for term in terms]
    valued = [(term, value if value is not None else term.xreplace(binding)) for term, value in valued]
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


@lru_cache(maxsize=None)
def _difference_weights(degree: int, n: int | sympy.Expr) -> tuple[int | sympy.Expr, ...]:
    """(w_0, ..., w_d) with f(a) + f(a+1) + ... + f(a+n-1) = w_0·f(a) + ... + w_d·f(a+d) for every
    polynomial f of this degree: Newton's forward differences, Δ^k f(a) summed against C(n, k+1).
    Integers for a whole n, polynomials in n for an expression."""
    choose = math.comb if isinstance(n, int) else (lambda top, k: sympy.expand_func(sympy.binomial(top, k)))
    weights = (sum((-1) ** (k - i) * math.comb(k, i) * choose(n, k + 1) for k in range(i, degree + 1))
               for i in range(degree + 1))
    return tuple(weights) if isinstance(n, int) else tuple(sympy.expand(weight) for weight in weights)


def _degree(expr: sympy.Expr, step: sympy.Symbol, memo: dict) -> int | None:
    """The degree of expr as a polynomial in step, or None when step sits anywhere else (inside
    min(), floor(), a denominator)."""
    if expr in memo:
        return memo[expr]
    if expr.is_Symbol or expr.is_Number:
        degree = 1 if expr == step else 0
    elif expr.is_Add or expr.is_Mul:
        parts = [_degree(arg, step, memo) for arg in expr.args]
        degree = None if None in parts else (max(parts) if expr.is_Add else sum(parts))
    elif expr.is_Pow and expr.exp.is_Integer and expr.exp >= 0:
        base = _degree(expr.base, step, memo)
        degree = None if base is None else base * int(expr.exp)
    else:
        degree = 0 if all(_degree(arg, step, memo) == 0 for arg in expr.args) else None
    memo[expr] = degree
    return degree


def sum_steps(expr: sympy.Expr, step: sympy.Symbol, first: sympy.Expr, last: sympy.Expr) -> sympy.Expr:
    """Σ_{step=first}^{last} expr in closed form. The terms polynomial in the step (of degree d) are
    summed exactly from d + 1 copies of them at first, first + 1, ..., first + d (_difference_weights:
    no expansion of a whole model's expressions in the step); any other term (the step inside min()
    or floor()) step by step in exact arithmetic when the range is numbers, else by sympy."""
    first, last = (sympy.Integer(end) if isinstance(end, int) else end for end in (first, last))
    memo: dict = {}
    if first.is_Integer and last.is_Integer and expr.free_symbols == {step}:
        expr = _settled(expr, step, int(first), int(last))
    if _degree(expr, step, memo) is None:
        terms = sympy.Add.make_args(sympy.expand(expr, deep=False))
        polynomial = [term for term in terms if _degree(term, step, memo) is not None]
        others = [term for term in terms if _degree(term, step, memo) is None]
    else:
        polynomial, others = [expr], []
    total = []
    if polynomial:
        body = sympy.Add(*polynomial)
        degree = _degree(body, step, memo)
        count = last - first + 1
        points = ([exact_value(body, {step: int(first) + i}) for i in range(degree + 1)]
                  if count.is_Integer and count > 0 else [None])
        if all(isinstance(point, int | Fraction) for point in points):  # numbers only: summed on Python numbers
            weights = _difference_weights(degree, int(count))
            total.append(exact_sympy(sum(weight * point for weight, point in zip(weights, points))))
        else:
            total += [weight * body.xreplace({step: first + i})
                      for i, weight in enumerate(_difference_weights(degree, count))]
    for term in others:
        if first.is_Integer and last.is_Integer:
            values = exact_values(term, [{step: i} for i in range(int(first), int(last) + 1)])
            value = None if values is None else exact_sympy(sum(values))
            if value is not None:
                total.append(value)
                continue
        total.append(sympy.summation(term, (step, first, last)))
    return sympy.Add(*total)


def _settled(expr: sympy.Expr, step: sympy.Symbol, first: int, last: int) -> sympy.Expr:
    """expr (in the step alone) with each min() or max() of arguments linear in the step replaced by the
    argument it picks at both first and last, if one does: two lines cross at most once, so the one
    that is smallest (largest) at both ends is so at every step between. A sum over thousands of
    decode steps of a launch count such as 24·min(1, j + 284) + 1161 is then a polynomial's sum."""

    def settle(node: sympy.Expr) -> sympy.Expr:
        memo: dict = {}
        if any(_degree(arg, step, memo) not in (0, 1) for arg in node.args):
            return node
        ends = [[exact_value(arg, {step: end}) for arg in node.args] for end in (first, last)]
        if any(value is None or isinstance(value, float) for values in ends for value in values):
            return node
        pick = min if isinstance(node, minimum | sympy.Min) else max
        for index, arg in enumerate(node.args):
            if all(values[index] == pick(values) for values in ends):
                return arg
        return node

    return expr.replace(lambda node: isinstance(node, minimum | maximum | sympy.Min | sympy.Max), settle)


def expand(expr: sympy.Expr) -> sympy.Expr:
    """sympy.expand(expr), the same expression, multiplied out in a polynomial ring: a whole model's
    total expands in half the time. Its generators are the symbols and the functions (floor(D_t/16)),
    whose arguments are expanded first, as sympy.expand does; anything a ring cannot hold (a root, a
    negative power) is left to sympy.expand."""
    functions = expr.atoms(sympy.Function)
    if functions:
        expr = expr.xreplace({function: function.func(*map(sympy.expand, function.args)) for function in functions})
    generators = sorted(expr.free_symbols | expr.atoms(sympy.Function), key=sympy.default_sort_key)
    if not generators:
        return sympy.expand(expr)
    try:
        return ring(generators, sympy.QQ)[0].from_expr(expr).as_expr()
    except ValueError:  # not a polynomial in the generators
        return sympy.expand(expr)
