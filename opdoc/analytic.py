"""The analytic layer API: any op of the specs as an object with FLOP, I/O and memory methods.

    from opdoc.analytic import layer
    mlp = layer("DeepseekV2MLP", B=1, S=8192)
    mlp.forward_tensor_core_flops()      # 430838906880 (FLOPs)
    mlp.forward_cal_io()                 # terabits

Every number comes from the same proven formulas as the op-doc pages (the specs, composed and checked
by opdoc), evaluated at the op's first named example with any dimension symbol overridden by keyword
(B, S, P, h, ...; a symbol the example derives from another, such as E_run from B, follows it).

Units, stated once here and again in each method's docstring:
- FLOPs: counts (int), 2 per multiply-add. Tensor-core FLOPs are GEMMs, convolutions and attention
  products; CUDA-core FLOPs everything else the code computes.
- I/O: terabits (10^12 bits) of the unfused upper bound: every operation reads its inputs and writes
  its outputs (bytes × 8 / 10^12).
- Memory: gigabytes (10^9 bytes). Weights in the checkpoint's dtype; activations are every tensor the
  forward produces, without reuse (what a backward pass keeps); the KV cache after the pass.
- Time: seconds, the roofline lower bound on one GPU of specs/hardware.yaml.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import sympy

from opdoc.exact import substituted
from opdoc.roofline import BLOCK, Model, Roofline, load_roofline, walk

REPO = Path(__file__).resolve().parent.parent
_LOADED: dict[Path, tuple] = {}


def _load(root: Path):
    """Catalog and evaluator of the specs under `root`, loaded once per process."""
    root = root.resolve()
    if root not in _LOADED:
        from opdoc.pipeline import Paths, load

        _LOADED[root] = load(Paths(root=root))
    return _LOADED[root]


def layer(op: str, *, example: str | None = None, variant: str | None = None, root: Path | None = None,
          **dims: int) -> AnalyticLayer:
    """An analytic layer for `op` at `example` (default: its first), with dimension symbols overridden.

    `variant` picks a named configuration (a decoder layer's "moe" or "dense"; default the first).
    Unknown ops, examples, variants or symbols raise ValueError naming what exists.
    """
    catalog, evaluator = _load(root or REPO)
    if op not in catalog.specs:
        raise ValueError(f"no op '{op}'; known: {', '.join(sorted(catalog.specs))}")
    spec = catalog.specs[op].spec
    example = example or spec.examples[0]
    if example not in spec.examples:
        raise ValueError(f"{op} has no example '{example}'; known: {', '.join(spec.examples)}")
    variants = evaluator.variants(op)
    variant = variant if variant is not None else variants[0]
    if variant not in variants:
        raise ValueError(f"{op} has no variant '{variant}'; known: {', '.join(map(str, variants))}")
    unknown = sorted(set(dims) - set(catalog.symbols))
    if unknown:
        raise ValueError(f"unknown dimension(s) {', '.join(unknown)}; known: {', '.join(sorted(catalog.symbols))}")
    return AnalyticLayer(op, variant, example, dict(dims), _roofline(catalog, evaluator))


_ROOFLINES: dict[int, Roofline] = {}


def _roofline(catalog, evaluator) -> Roofline:
    key = id(evaluator)
    if key not in _ROOFLINES:
        _ROOFLINES[key] = load_roofline(catalog, evaluator)
    return _ROOFLINES[key]


@dataclass
class AnalyticLayer:
    op: str
    variant: str | None
    example: str
    dims: dict[str, int]
    roofline: Roofline

    # -------------------------------------------------------------- evaluation

    @property
    def _model(self) -> Model:
        return self.roofline.model

    def _at(self, expr: sympy.Expr) -> sympy.Expr:
        binding = dict(self._model.binding(self.op, self.example, self.dims or None))
        binding[BLOCK] = sympy.Integer(self.roofline.block or 1)
        value = substituted(expr, binding)
        if value.free_symbols:
            names = ", ".join(sorted(map(str, value.free_symbols)))
            raise ValueError(f"{self.op} at '{self.example}' needs {names}; pass it as a keyword")
        return value

    def _counted(self, name: str) -> sympy.Expr:
        return self._at(self._model.counted(self.op, self.variant)[name])

    def _backward(self, unit: str) -> sympy.Expr:
        return self._at(walk(self._model, self.op, self.variant,
                             lambda o, v: sum((backward for _, kind, _, backward in self._model.operations_with_backward(o, v)
                                            if kind == unit), sympy.Integer(0))))

    @staticmethod
    def _count(value: sympy.Expr) -> int:
        if not value.is_Integer:  # a FLOP count is whole at every real example; a fraction is a spec bug
            raise ArithmeticError(f"expected a whole count, got {value}")
        return int(value)

    @staticmethod
    def _giga(value: sympy.Expr) -> float:
        return float(Fraction(int(value.p), int(value.q)) / 10**9)

    # -------------------------------------------------------------- forward

    def forward_tensor_core_flops(self, executed: bool = False) -> int:
        """Tensor-core FLOPs of one forward pass (count): GEMMs, convolutions, attention products.

        `executed=True`: what the kernel runs (the causal flash kernel skips tiles above the diagonal)
        instead of the counted, proven convention.
        """
        w = self.roofline.work(self.op, self.variant)
        return self._count(self._at(w.executed_tensor if executed else w.counted_tensor))

    def forward_cuda_core_flops(self, executed: bool = False) -> int:
        """CUDA-core FLOPs of one forward pass (count): elementwise, reductions, softmax, norms."""
        w = self.roofline.work(self.op, self.variant)
        return self._count(self._at(w.executed_cuda if executed else w.counted_cuda))

    def forward_flops(self) -> int:
        """All FLOPs of one forward pass (count), tensor-core plus CUDA-core, counted convention."""
        return self._count(self._counted("forward_flops"))

    def forward_cal_io(self) -> float:
        """Memory traffic of one forward pass in terabits (10^12 bits), unfused upper bound."""
        return float(Fraction(int(self._counted("io_bytes")) * 8, 10**12))

    def forward_memory_weight(self) -> float:
        """Weights in gigabytes (10^9 bytes), every parameter the module holds, checkpoint dtype."""
        return self._giga(self._counted("parameter_bytes"))

    def forward_memory_activation(self) -> float:
        """Activations in gigabytes: every intermediate and output tensor the forward produces, no reuse."""
        return self._giga(self._counted("activation_bytes"))

    def forward_memory_peak_activation(self) -> float:
        """Peak live activation memory in gigabytes, beyond parameters and inputs (the model's kernel)."""
        return self._giga(self._counted("peak"))

    def forward_memory_kvcache(self) -> float:
        """KV cache after the pass in gigabytes (P + S positions); 0 for modules without one."""
        return self._giga(self._counted("kv_cache_bytes"))

    # -------------------------------------------------------------- backward and training

    def backward_tensor_core_flops(self) -> int:
        """Tensor-core FLOPs of the backward pass (count): 2× each product's forward unless a spec says."""
        return self._count(self._backward("tensor"))

    def backward_cuda_core_flops(self) -> int:
        """CUDA-core FLOPs of the backward pass (count), by the same rule."""
        return self._count(self._backward("cuda"))

    def backward_memory_weight(self) -> float:
        """Parameter gradients in gigabytes (the parameters' dtype)."""
        return self._giga(self._counted("gradient_bytes"))

    def backward_memory_activation(self) -> float:
        """Activations kept for the backward pass in gigabytes (every produced tensor, no recomputation)."""
        return self._giga(self._counted("activation_bytes"))

    def training_flops(self) -> int:
        """FLOPs of one training step (count): forward plus backward."""
        return self._count(self._counted("training_step_flops"))

    def training_memory(self) -> float:
        """Training memory in gigabytes: weights, gradients, AdamW's two fp32 states, kept activations."""
        return self._giga(self._counted("training_bytes"))

    # -------------------------------------------------------------- time

    def forward_time_bound(self, gpu: str = "H100") -> float:
        """Lower bound on one forward pass in seconds on `gpu` (a key of specs/hardware.yaml)."""
        return float(self._times(gpu).bound)

    def bound_by(self, gpu: str = "H100") -> str:
        """The resource that binds on `gpu`: 'tensor cores', 'CUDA cores' or 'memory'."""
        return self._times(gpu).binds

    def _times(self, gpu: str):
        names = [g.name for g in self.roofline.hardware.gpus]
        if gpu not in names:
            raise ValueError(f"no GPU '{gpu}' in the hardware table; known: {', '.join(names)}")
        point = self.roofline.point(self.op, self.variant, self.example, self.dims or None)
        return self.roofline.times(point, self.roofline.hardware.gpu(gpu))


# ------------------------------------------------------------------ the model-level report

UNITS = (  # (method, unit): the conventions table of the report, in the order of the seed layout
    ("forward_tensor_core_flops()", "FLOPs (count); `executed=True` for the kernel's executed work"),
    ("forward_cuda_core_flops()", "FLOPs (count)"),
    ("forward_cal_io()", "terabits (10^12 bits), unfused upper bound"),
    ("forward_memory_weight()", "GB (10^9 bytes), checkpoint dtype"),
    ("forward_memory_activation()", "GB, every tensor the forward produces, no reuse"),
    ("forward_memory_peak_activation()", "GB, live peak with the model's attention kernel"),
    ("forward_memory_kvcache()", "GB, after the pass"),
    ("backward_tensor_core_flops(), backward_cuda_core_flops()", "FLOPs (count), 2× each product's forward"),
    ("backward_memory_weight(), backward_memory_activation()", "GB: gradients; activations kept for backward"),
    ("training_flops(), training_memory()", "FLOPs (count); GB with AdamW's two fp32 states"),
    ("forward_time_bound(gpu), bound_by(gpu)", "seconds; 'tensor cores', 'CUDA cores' or 'memory'"),
)


def report_rows(roofline: Roofline, ops: Iterable[str] | None = None) -> dict[str, list[dict[str, str]]]:
    """Per op (every op, unless told) and variant, the API's figures at the op's first example, printed
    in the API's units."""
    rows: dict[str, list[dict[str, str]]] = {}
    for op in (roofline.model.ops if ops is None else ops):
        example = roofline.model.examples(op)[0]
        rows[op] = []
        for variant in roofline.model.variants(op):
            a = AnalyticLayer(op, variant, example, {}, roofline)
            rows[op].append({
                "variant": variant or "", "example": roofline.model.example_title(op, example),
                "call": f'layer("{op}"' + (f', variant="{variant}"' if variant else "") + ")",
                "tensor": f"{a.forward_tensor_core_flops():,}", "cuda": f"{a.forward_cuda_core_flops():,}",
                "io": f"{a.forward_cal_io():.6g}", "weight": f"{a.forward_memory_weight():.6g}",
                "activation": f"{a.forward_memory_activation():.6g}", "kv": f"{a.forward_memory_kvcache():.6g}",
            })
    return rows


def report_context(catalog, views: list, roofline: Roofline, rows: dict[str, list[dict[str, str]]] | None = None) -> dict:
    """Everything templates/analytic.md.j2 shows: the op views of the pages plus the API's figures
    (`rows`, when the build's workers computed them already)."""
    from opdoc import __version__

    families = catalog.model.families
    by_family = {}
    for view in views:
        by_family.setdefault(view.family, []).append(view)
    scopes = [{"title": scope.title, "examples": list(scope.examples.values())}
              for name, scope in catalog.model.scopes.items()
              if any(catalog.specs[v.name].spec.scope == name for v in views)]
    return {
        "version": __version__, "model": catalog.model, "example_op": next(iter(catalog.specs)), "spec_dir": str(Path(catalog.model_path).parent),
        "scopes": scopes, "views": [v for key in families for v in by_family.get(key, [])],
        "rows": rows if rows is not None else report_rows(roofline), "units": UNITS,
        "inventory": [{"title": families[key], "ops": by_family[key]} for key in families if key in by_family],
    }
