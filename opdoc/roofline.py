"""Stage 2b, time: from the proven counts to time bounds on each GPU of specs/hardware.yaml.

For every op, variant and example this module derives:
- executed work beside the counted (proven) FLOPs, where specs/runtime.yaml names a kernel model for an
  operation (the causal flash kernel skips tiles above the diagonal); time uses executed work;
- bytes under two bounds: the specs' unfused upper bound (`io_bytes`, every aten op reads its inputs
  and writes its outputs) and a fused lower bound defined here;
- per GPU the time each resource needs, which one binds, and the minimum time;
- the host's launch/sync floor of one forward pass, from the launches and syncs counted in runtime.yaml;
- closed-form answers (sympy.solve on the proven formulas), each fixed to an exact integer by searching
  the unrelaxed formulas around the solved root.

Conventions, stated once here and printed on every page:
- Time bound = max(tensor-core FLOPs / dense bf16 tensor peak, CUDA-core FLOPs / fp32 peak,
  fused bytes / bandwidth). Each resource must at least do its own share and they may overlap, so the
  largest share is a lower bound on the time; that resource "binds".
- Fused lower bound on bytes: the weights the pass reads, once (only the experts that run; an embedding
  only the rows of its B·S tokens), the op's own inputs and outputs once, the KV cache read (the P
  cached positions) and written (the S new ones). Inputs a fused kernel never reads are listed in
  runtime.yaml (`fused_io_skips`).
- Arithmetic intensity = (tensor-core + CUDA-core FLOPs, executed) / bytes.
- Launch/sync floor = launches × t_launch + host syncs × t_sync, host time that no GPU can hide.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import sympy
from markupsafe import Markup

from opdoc.catalog import Catalog, ParsedSpec
from opdoc.escape import escape_prose as _escape_prose
from opdoc.exact import exact_at, numeric_binding, substituted
from opdoc.evaluate import Evaluator
from opdoc.formula import engineering, exact_number, minimum, plain_text
from opdoc.hardware import (
    HARDWARE_FILE, RUNTIME_FILE, GpuPeaks, Hardware, Runtime, load_hardware, load_runtime,
)
from opdoc.spec import SpecError, SpecProblem, in_variant



def escape_prose(text: str) -> Markup:
    """Prose from the tables, escaped here and so marked safe for the page template."""
    return Markup(_escape_prose(text))


BLOCK = sympy.Symbol("b", positive=True, integer=True)  # side of the attention kernel's square tile
PEAK = sympy.Symbol("F_tc", positive=True)  # tensor-core peak, FLOP/s (closed forms only)
BANDWIDTH = sympy.Symbol("BW", positive=True)  # memory bandwidth, B/s (closed forms only)
CAPACITY = sympy.Symbol("C_mem", positive=True)  # memory capacity, B (closed forms only)
RESOURCES = ("tensor cores", "CUDA cores", "memory")


# ============================================================================ adapter
# Everything this module knows about the evaluated model goes through `Model`. When the evaluator
# changes shape, re-point these methods and nothing else.


@dataclass(frozen=True)
class TensorCost:
    name: str
    role: str
    numel: sympy.Expr
    bytes: sympy.Expr
    element_bytes: int
    active: sympy.Expr | None  # parameters read per token when fewer than all (an embedding row)
    from_child: bool


@dataclass(frozen=True)
class ChildRef:
    name: str
    op: str
    variant: str | None
    count: sympy.Expr  # instances that run in one pass
    binding: dict[sympy.Symbol, sympy.Expr]  # one instance's symbols in the parent's (a stepped child: its last step)
    share: Callable[[sympy.Expr], sympy.Expr]  # a child total as the parent counts it (times count, summed over steps)


class Model:
    """Read-only view of the catalog and evaluator: specs, symbols, counted quantities, children."""

    def __init__(self, catalog: Catalog, evaluator: Evaluator):
        self.catalog = catalog
        self.ev = evaluator
        self.symbols = catalog.symbols
        self.kernel = evaluator.kernel
        self.title = catalog.model.title
        self.name = catalog.model.model

    @property
    def ops(self) -> list[str]:
        return list(self.catalog.specs)

    def spec(self, op: str):
        return self.catalog.specs[op].spec

    def variants(self, op: str) -> list[str | None]:
        return self.ev.variants(op)

    def examples(self, op: str) -> list[str]:
        return list(self.spec(op).examples)

    def example_title(self, op: str, example: str) -> str:
        return self.catalog.model.scopes[self.spec(op).scope].examples[example].title

    def counted(self, op: str, variant: str | None) -> dict[str, sympy.Expr]:
        """The proven quantities (Quantities.derived()) at the model's attention kernel."""
        return self.ev.quantities(op, variant).derived()

    def binding(self, op: str, example: str, overrides: dict[str, int] | None = None) -> dict[sympy.Symbol, sympy.Expr]:
        # The answers' searches and degree probes may pass the trained context; they say where it lies.
        return self.ev.binding(self.spec(op).scope, example, overrides, allow_beyond=True)

    def operations(self, op: str, variant: str | None = None) -> list[tuple[str, str, sympy.Expr]]:
        """(name, unit, counted FLOPs) of the op's own operations that run in this variant with the model's kernel."""
        item = self.catalog.specs[op]
        return [(o.name, o.unit, item.exprs[f"operations.{i}.flops"]) for i, o in enumerate(item.spec.operations)
                if o.kernel in (None, self.kernel) and in_variant(o.only, variant)]

    def operations_with_backward(self, op: str, variant: str | None = None) -> list[tuple[str, str, sympy.Expr, sympy.Expr]]:
        """(name, unit, FLOPs, backward FLOPs) per own operation; the default backward is the evaluator's
        rule (2× forward: a gradient for each operand), stated in evaluate.py."""
        item = self.catalog.specs[op]
        rows = []
        for i, o in enumerate(item.spec.operations):
            if o.kernel in (None, self.kernel) and in_variant(o.only, variant):
                flops = item.exprs[f"operations.{i}.flops"]
                rows.append((o.name, o.unit, flops, item.exprs.get(f"operations.{i}.backward", 2 * flops)))
        return rows

    def tensors(self, op: str, variant: str | None = None) -> list[TensorCost]:
        """The op's tensors that exist in this variant with the model's kernel."""
        item: ParsedSpec = self.catalog.specs[op]
        rows = []
        for i, t in enumerate(item.spec.tensors):
            if t.kernel not in (None, self.kernel) or not in_variant(t.only, variant):
                continue
            size = self.ev.dtype_bytes(t.dtype)
            active = item.exprs.get(f"tensors.{i}.active")
            rows.append(TensorCost(t.name, t.role, self.ev.tensor_numel(item, i), self.ev.tensor_bytes(item, i),
                                   size, active, t.from_child is not None))
        return rows

    def children(self, op: str, variant: str | None) -> list[ChildRef]:
        item = self.catalog.specs[op]
        return [ChildRef(c.name, c.op, c.variant, item.exprs[f"children.{i}.count"], self._last_step(item, i),
                         partial(self.ev.child_share, item, i, quantity="flops"))
                for i, c in self.ev.active_children(item, variant)]

    def _last_step(self, item, index: int) -> dict[sympy.Symbol, sympy.Expr]:
        binding, steps = self.ev.child_binding(item, index), item.spec.children[index].steps
        if steps is None:
            return binding
        last = {self.ev.symbols[steps.symbol]: item.exprs[f"children.{index}.steps.last"]}
        return {symbol: value.xreplace(last) for symbol, value in binding.items()}

    def spec_root(self) -> Path:
        """The folder holding the model folder (specs/): hardware.yaml and runtime.yaml live there."""
        model_path = Path(self.catalog.model_path)
        if not model_path.is_absolute():
            model_path = self.catalog.root / model_path
        return model_path.parent.parent

    def display(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.catalog.root.resolve()))
        except ValueError:
            return str(path)


def walk(model: Model, op: str, variant: str | None, own: Callable[[str, str | None], sympy.Expr],
         memo: dict[tuple[str, str | None], sympy.Expr] | None = None) -> sympy.Expr:
    """own(op, variant) + Σ children count × walk(child), each child's expression in the parent's symbols.
    `memo` keeps each (op, variant)'s walk of this `own`: a parent's walk reuses its children's."""
    memo = {} if memo is None else memo
    key = (op, variant)
    if key not in memo:
        total = own(op, variant)
        for child in model.children(op, variant):
            total += child.share(walk(model, child.op, child.variant, own, memo))
        memo[key] = total
    return memo[key]


def tree_ops(model: Model, op: str, variant: str | None) -> set[str]:
    return {name for name, _ in tree_variants(model, op, variant)}


def tree_variants(model: Model, op: str, variant: str | None) -> set[tuple[str, str | None]]:
    """(op, variant) of the op and of every descendant that runs."""
    found = {(op, variant)}
    for child in model.children(op, variant):
        found |= tree_variants(model, child.op, child.variant)
    return found


# ============================================================================ kernel models

KERNEL_MODELS: dict[str, Callable[[sympy.Expr, sympy.Expr, sympy.Expr], sympy.Expr]] = {}


def kernel_model(name: str):
    """Register the fraction of an operation's counted work that a kernel executes, f(S, P, b)."""
    def register(function):
        if name in KERNEL_MODELS:
            raise ValueError(f"kernel model '{name}' is registered twice")
        KERNEL_MODELS[name] = function
        return function
    return register


@kernel_model("causal_tiles")
def causal_tiles(S: sympy.Expr, P: sympy.Expr, b: sympy.Expr) -> sympy.Expr:
    """Fraction of the S·(P+S) query-key pairs a causal kernel with b × b tiles computes.

    n = ceil(S/b) query blocks, r = S - (n-1)·b rows in the last; query block i < n-1 needs the key
    blocks up to its own, (i+1)·b keys, and the last block needs all S: Σ = b²·n(n-1)/2 + r·S pairs
    of the new S × S square, plus the full S × P rectangle of cached keys.
    """
    n = sympy.ceiling(S / b)
    r = S - (n - 1) * b
    return (S * P + b**2 * n * (n - 1) / 2 + r * S) / (S * (P + S))


# ============================================================================ symbolic work per op


@dataclass
class Work:
    """Symbolic work of one op (one variant) in the model's symbols and the tile side b."""

    counted_tensor: sympy.Expr
    counted_cuda: sympy.Expr
    executed_tensor: sympy.Expr
    executed_cuda: sympy.Expr
    weights_read: sympy.Expr
    kv_read: sympy.Expr
    kv_write: sympy.Expr
    fused_bytes: sympy.Expr
    unfused_bytes: sympy.Expr
    launches: sympy.Expr | None  # None: some op in the tree has no counts in runtime.yaml
    syncs: sympy.Expr | None
    loops: sympy.Expr | None
    kernel_models: list[str] = field(default_factory=list)  # models applied somewhere in the tree


@dataclass(frozen=True)
class Times:
    gpu: GpuPeaks
    tensor: sympy.Rational
    cuda: sympy.Rational
    memory: sympy.Rational
    memory_unfused: sympy.Rational
    floor: sympy.Rational | None

    @property
    def bound(self) -> sympy.Rational:
        return max(self.tensor, self.cuda, self.memory)

    @property
    def binds(self) -> str:
        shares = dict(zip(RESOURCES, (self.tensor, self.cuda, self.memory)))
        return max(RESOURCES, key=lambda name: shares[name])  # ties: the first listed


@dataclass(frozen=True)
class Point:
    """Exact numbers of one op at one binding."""

    counted_tensor: sympy.Expr
    counted_cuda: sympy.Expr
    executed_tensor: sympy.Expr
    executed_cuda: sympy.Expr
    fused_bytes: sympy.Expr
    unfused_bytes: sympy.Expr
    launches: sympy.Expr | None
    syncs: sympy.Expr | None
    loops: sympy.Expr | None

    @property
    def executed(self) -> sympy.Expr:
        return self.executed_tensor + self.executed_cuda

    def intensity(self, fused: bool = True) -> sympy.Expr:
        return self.executed / (self.fused_bytes if fused else self.unfused_bytes)


class Roofline:
    def __init__(self, model: Model, hardware: Hardware, runtime: Runtime | None):
        self.model = model
        self.hardware = hardware
        self.runtime = runtime
        self.block = runtime.table.attention_block if runtime else None
        self._work: dict[tuple, Work] = {}
        self._points: dict[tuple, Point] = {}
        self._walks: dict[str, dict[tuple[str, str | None], sympy.Expr]] = {}  # kind -> (op, variant) -> walk

    # -------------------------------------------------------------- symbolic

    def _walk(self, kind: str, op: str, variant: str | None, own: Callable[[str, str | None], sympy.Expr]) -> sympy.Expr:
        """walk() of one kind of work (`own` is the same function for a kind), each subtree's once per
        Roofline: the whole model's walk reuses its decoder's, whose page walked it already."""
        return walk(self.model, op, variant, own, self._walks.setdefault(kind, {}))

    def _executed_delta(self, unit: str) -> Callable[[str, str | None], sympy.Expr]:
        S = self.model.symbols.get("S", sympy.Integer(1))
        P = self.model.symbols.get("P", sympy.Integer(0))

        def own(op: str, variant: str | None) -> sympy.Expr:
            counts = self.runtime.ops.get(op) if self.runtime else None
            delta = sympy.Integer(0)
            for name, kind, flops in self.model.operations(op, variant):
                if counts and name in counts.executed and kind == unit:
                    delta += flops * (KERNEL_MODELS[counts.executed[name]](S, P, BLOCK) - 1)
            return delta
        return own

    def _weights_read(self, op: str, variant: str | None) -> sympy.Expr:
        S = self.model.symbols.get("S", sympy.Integer(1))
        B = self.model.symbols.get("B", sympy.Integer(1))
        total = sympy.Integer(0)
        for t in self.model.tensors(op, variant):
            if t.role != "parameter" or t.from_child:
                continue
            total += t.bytes if t.active is None else minimum(t.numel, B * S * t.active) * t.element_bytes
        return total

    def _own_io(self, op: str, variant: str | None) -> sympy.Expr:
        skips = self.runtime.ops[op].fused_io_skips if self.runtime and op in self.runtime.ops else {}
        tensors = self.model.tensors(op, variant)
        inputs = [t for t in tensors if t.role == "input" and t.name not in skips]
        outputs = [t for t in tensors if t.role == "output" and not t.from_child]
        if not outputs:  # the op's result is produced by its last child (a final norm): still its output
            outputs = [t for t in tensors if t.role == "output"]
        return sum((t.bytes for t in inputs + outputs), sympy.Integer(0))

    def work(self, op: str, variant: str | None) -> Work:
        key = (op, variant)
        if key in self._work:
            return self._work[key]
        m = self.model
        q = m.counted(op, variant)
        executed_tensor = q["tensor_flops"] + self._walk("tensor", op, variant, self._executed_delta("tensor"))
        executed_cuda = q["cuda_flops"] + self._walk("cuda", op, variant, self._executed_delta("cuda"))
        weights = self._walk("weights", op, variant, self._weights_read)
        kv = q["kv_cache_bytes"]
        kv_read = kv.xreplace({m.symbols["S"]: 0}) if "S" in m.symbols else sympy.Integer(0)  # P positions
        kv_write = sympy.expand(kv - kv_read)
        fused = weights + self._own_io(op, variant) + kv_read + kv_write
        ops_in_tree = tree_ops(m, op, variant)
        counted = self.runtime is not None and all(o in self.runtime.ops and self.runtime.ops[o].describes(v)
                                                   for o, v in tree_variants(m, op, variant))
        counts = self.runtime.ops if counted else {}
        launches = self._walk("launches", op, variant, lambda o, v: counts[o].launches) if counted else None
        syncs = self._walk("syncs", op, variant, lambda o, v: counts[o].syncs) if counted else None
        loops = self._walk("loops", op, variant, lambda o, v: counts[o].loops) if counted else None
        models = sorted({name for o in ops_in_tree if self.runtime and o in self.runtime.ops
                         for name in self.runtime.ops[o].executed.values()})
        work = Work(q["tensor_flops"], q["cuda_flops"], executed_tensor, executed_cuda, weights, kv_read, kv_write,
                    fused, q["io_bytes"], launches, syncs, loops, models)
        self._work[key] = work
        return work

    # -------------------------------------------------------------- numbers

    def point(self, op: str, variant: str | None, example: str, overrides: dict[str, int] | None = None,
              block: int | None = None, child: ChildRef | None = None) -> Point:
        """Exact numbers of an op at one of its examples; with `child`, of one instance of that child
        as it runs inside `op` (its symbols bound by the parent's binding). An op's own points are kept:
        its page's table and chart show the same ones."""
        key = None if child else (op, variant, example, tuple(sorted((overrides or {}).items())), block)
        if key is not None and key in self._points:
            return self._points[key]
        point = self._point(op, variant, example, overrides, block, child)
        if key is not None:
            self._points[key] = point
        return point

    def _point(self, op: str, variant: str | None, example: str, overrides: dict[str, int] | None,
               block: int | None, child: ChildRef | None) -> Point:
        binding = dict(self.model.binding(op, example, overrides))
        binding[BLOCK] = sympy.Integer(block or self.block or 1)
        w = self.work(child.op, child.variant) if child else self.work(op, variant)

        # Exact values with Python numbers (opdoc.exact): the same numbers as substituting, far cheaper.
        numbers = numeric_binding(binding)
        if child:
            inner = {symbol: exact_at(expr, numbers) for symbol, expr in child.binding.items()}
            numbers = None if None in inner.values() else {**numbers, **numeric_binding(inner)}

        memo: dict = {}  # the nine figures share most of their subexpressions

        def value(expr: sympy.Expr | None) -> sympy.Expr | None:
            if expr is None:
                return None
            exact = exact_at(expr, numbers, memo) if numbers is not None else None
            if exact is not None:
                return exact
            result = (expr.xreplace(child.binding) if child else expr).xreplace(binding)
            if result.free_symbols:  # a spec bug the catalog should have caught: keep the traceback
                raise ValueError(f"{op} at '{example}' leaves {sorted(map(str, result.free_symbols))} unbound")
            return result

        return Point(*(value(getattr(w, name)) for name in (
            "counted_tensor", "counted_cuda", "executed_tensor", "executed_cuda", "fused_bytes", "unfused_bytes",
            "launches", "syncs", "loops")))

    def times(self, point: Point, gpu: GpuPeaks) -> Times:
        floor = None
        if point.launches is not None:
            floor = point.launches * self.hardware.launch_seconds + point.syncs * self.hardware.sync_seconds
        return Times(gpu, point.executed_tensor / gpu.tensor_flops, point.executed_cuda / gpu.cuda_flops,
                     point.fused_bytes / gpu.bandwidth, point.unfused_bytes / gpu.bandwidth, floor)


# ============================================================================ closed-form answers


@dataclass
class Answer:
    """One question answered in closed form on an op's page, and exactly per case."""

    question: str
    setting: str
    closed_forms: list[tuple[str, str]]  # (label, 'symbol = formula')
    columns: list[str]
    rows: list[list[str]]
    values: dict[tuple[str, str], int]  # (row key, column key) -> exact integer answer, for tests
    note: str = ""


ANSWERS: dict[str, Callable[[Roofline], list[Answer]]] = {}


def answers_for(op: str):
    """Register the closed-form answers shown on one op's page."""
    def register(function):
        if op in ANSWERS:
            raise ValueError(f"answers for '{op}' are registered twice")
        ANSWERS[op] = function
        return function
    return register


def relax(expr: sympy.Expr, branches: dict[sympy.Symbol, sympy.Expr] | None = None) -> sympy.Expr:
    """A smooth stand-in for solving: ceil(x) -> x, and given symbols replaced by their branch."""
    expr = expr.xreplace(branches or {})
    return expr.replace(lambda e: isinstance(e, sympy.ceiling), lambda e: e.args[0])


def positive_root(equation: sympy.Expr, symbol: sympy.Symbol, sample: dict[sympy.Symbol, sympy.Expr],
                  factored: bool = True) -> sympy.Expr:
    """The largest positive root of a polynomial equation, as an exact expression in the other symbols.

    Roots are told apart at `sample`, values of the other symbols (the model's example and a GPU).
    `factor` gives the printed form; a caller that prints the root expanded asks for it unfactored
    (factoring takes longer than the rest). A bug if there is no positive root there.
    """
    valued = [(root, complex(root.xreplace(sample).evalf())) for root in solve_for(equation, symbol)]
    positive = [(root, z.real) for root, z in valued if abs(z.imag) < 1e-9 and z.real > 0]
    if not positive:
        raise ArithmeticError(f"no positive root of {equation} in {symbol}")
    root = max(positive, key=lambda pair: pair[1])[0]
    return sympy.factor(sympy.cancel(root)) if factored else root


def solve_for(equation: sympy.Expr, symbol: sympy.Symbol) -> list[sympy.Expr]:
    """The roots `sympy.solve` finds (about 0.05 s a call). The questions asked so far are linear in
    `symbol`, or quadratic without a constant term (a·x² + b·x: roots 0 and -b/a): those are solved here."""
    slope = sympy.diff(equation, symbol)
    curvature = sympy.diff(slope, symbol)
    if curvature == 0:  # a·x + b
        return [] if slope == 0 else [-equation.xreplace({symbol: 0}) / slope]
    if not curvature.has(symbol) and equation.xreplace({symbol: 0}) == 0:  # a·x² + b·x
        return [sympy.Integer(0), -slope.xreplace({symbol: 0}) / curvature * 2]
    return sympy.solve(equation, symbol, simplify=False)


def first_integer(holds: Callable[[int], bool], guess: float, lowest: int = 1, limit: int = 100_000) -> int:
    """The smallest integer n >= lowest where `holds` becomes true, searched from a solved guess.

    `holds` must be false below the answer and true from it on (monotone); the guess only saves steps.
    """
    seen: dict[int, bool] = {}

    def test(n: int) -> bool:
        if n not in seen:
            seen[n] = holds(n)
        return seen[n]

    n = max(lowest, math.ceil(guess))
    for _ in range(limit):
        if test(n):
            if n == lowest or not test(n - 1):
                return n
            n -= 1
        else:
            n += 1
    raise ArithmeticError(f"no threshold found within {limit} steps of {guess}")


def along(model: Model, op: str, example: str, name: str, *exprs: sympy.Expr) -> Callable[[int], list[sympy.Expr]]:
    """Exact values of `exprs` at `example` with the symbol `name` set to n, as a function of n.

    Every symbol whose value does not move with `name` (the same at three far-apart values) is bound
    once up front, so each step of a search substitutes a few symbols into a small expression instead
    of binding a large one again.
    """
    samples = [model.binding(op, example, {name: n}) for n in (1, 2, 1_000_003)]
    fixed = {symbol: value for symbol, value in samples[0].items()
             if all(other.get(symbol) == value for other in samples[1:])}
    reduced = [expr.xreplace(fixed) for expr in exprs]

    def values(n: int) -> list[sympy.Expr]:
        binding = model.binding(op, example, {name: n})
        return [substituted(expr, binding) for expr in reduced]
    return values


def duration(seconds: sympy.Expr | float) -> str:
    """1.234e-3 -> '1.234 ms': four significant figures in the unit that keeps them above one."""
    value = float(seconds)
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")):
        if value >= scale or unit == "ns":
            return f"{value / scale:.4g} {unit}"
    return f"{value:.4g} s"


def intensity_text(value: sympy.Expr) -> str:
    return f"{float(value):,.1f}"


def flops_pair(counted: sympy.Expr, executed: sympy.Expr) -> str:
    if counted == executed:
        return engineering(counted, "flops")
    return f"{engineering(counted, 'flops')} → {engineering(executed, 'flops')}"


@dataclass
class RooflinePage:
    """Plain values for templates/roofline.md.j2 and the chart; layout lives in the template."""

    variants: list[dict]
    gpus: list[dict]
    precision: str
    kernel_notes: list[str]
    block: int | None
    answers: list[Answer]
    host: dict
    chart: str
    counted_from: str | None
    not_counted: str | None


class Pages:
    """The roofline section of every op's page, and the chart jobs for the plot stage."""

    def __init__(self, roofline: Roofline):
        self.r = roofline
        self.plot_jobs: list[tuple[str, str, tuple, dict]] = []
        self.gpus = [self._gpu_row(g) for g in roofline.hardware.gpus]
        self.host = self._host()
        self._pages: dict[str, RooflinePage] = {}

    def get(self, op: str) -> RooflinePage | None:
        """One op's section, made when first asked for (a build worker makes only its own ops')."""
        if op not in self._pages:
            if op not in self.r.model.ops:
                return None
            self._pages[op] = self._page(op)
        return self._pages[op]

    # -------------------------------------------------------------- shared by every page

    def _gpu_row(self, gpu: GpuPeaks) -> dict:
        sources = self.r.hardware.table.sources
        figures = (gpu.table.tensor_tflops, gpu.table.cuda_tflops, gpu.table.bandwidth_tbs, gpu.table.memory_gb)
        return {"name": gpu.title, "tensor": f"{figures[0].value:g}", "cuda": f"{figures[1].value:g}",
                "bandwidth": f"{figures[2].value:g}", "memory": f"{figures[3].value:g}",
                "sources": [{"title": sources[name].title, "url": sources[name].url}
                            for name in sorted({f.source for f in figures})]}

    def _host(self) -> dict:
        host = self.r.hardware.table.host
        return {"launch": f"{host.launch_us.value:g} µs", "sync": f"{host.sync_us.value:g} µs",
                "launch_basis": escape_prose(host.launch_us.basis), "sync_basis": escape_prose(host.sync_us.basis)}

    # -------------------------------------------------------------- one page

    def _example(self, title: str, p: Point) -> dict:
        rows, host_bound = [], p.launches is not None
        for gpu in self.r.hardware.gpus:
            t = self.r.times(p, gpu)
            host_bound = host_bound and t.floor > t.bound
            rows.append({
                "gpu": gpu.title, "tensor": duration(t.tensor), "cuda": duration(t.cuda),
                "memory": duration(t.memory), "memory_unfused": duration(t.memory_unfused),
                "binds": t.binds, "bound": duration(t.bound),
                "floor": duration(t.floor) if t.floor is not None else "not counted",
                "floor_ratio": f"{float(t.floor / t.bound):,.1f}×" if t.floor is not None and t.bound else "",
            })
        counts = {name: exact_number(getattr(p, name)) if getattr(p, name) is not None else None
                  for name in ("launches", "syncs", "loops")}
        return {"title": title, "host_bound": host_bound, "rows": rows, **counts,
                "tensor": flops_pair(p.counted_tensor, p.executed_tensor),
                "cuda": flops_pair(p.counted_cuda, p.executed_cuda),
                "fused_bytes": engineering(p.fused_bytes, "bytes"), "unfused_bytes": engineering(p.unfused_bytes, "bytes"),
                "intensity_fused": intensity_text(p.intensity(True)), "intensity_unfused": intensity_text(p.intensity(False))}

    def _chart(self, op: str, variant: str | None) -> str:
        """Queue the page's chart: the op and one instance of each child, as it runs inside the op."""
        r, m = self.r, self.r.model
        points = [(op, example, r.point(op, variant, example)) for example in m.examples(op)]
        seen = set()
        for child in m.children(op, variant):
            label = f"{child.name} ({child.op}{', ' + child.variant if child.variant else ''})"
            if label not in seen:
                seen.add(label)
                points += [(label, example, r.point(op, variant, example, child=child)) for example in m.examples(op)]
        reference = r.hardware.gpus[0]
        chart = f"plots/roofline-{op}.svg"
        self.plot_jobs.append((chart, "roofline_svg", (
            op, [(g.title, float(g.tensor_flops), float(g.bandwidth)) for g in r.hardware.gpus],
            [(name, example, float(p.intensity(True)), float(p.executed / r.times(p, reference).bound))
             for name, example, p in points if p.executed > 0],
            reference.title), {}))
        return chart

    def _page(self, op: str) -> RooflinePage:
        r, m, runtime = self.r, self.r.model, self.r.runtime
        variants = []
        for variant in m.variants(op):
            work = r.work(op, variant)
            formulas = {f"{name}_formula": plain_text(sympy.expand(getattr(work, name)))
                        if getattr(work, name) is not None else None for name in ("launches", "syncs", "loops")}
            variants.append({"name": variant, **formulas, "examples": [
                self._example(m.example_title(op, example), r.point(op, variant, example)) for example in m.examples(op)]})
        first = m.variants(op)[0]
        notes = [escape_prose(runtime.table.kernel_models[name]) for name in r.work(op, first).kernel_models] if runtime else []
        counted = runtime.ops.get(op) if runtime else None
        return RooflinePage(
            variants=variants, gpus=self.gpus, precision=escape_prose(runtime.table.precision) if runtime else "",
            kernel_notes=notes, block=r.block, answers=ANSWERS[op](r) if op in ANSWERS else [], host=self.host,
            chart=self._chart(op, first),
            counted_from=({"title": runtime.table.source.title, "url": runtime.table.source.url,
                           "what": escape_prose(counted.explain)} if counted else None),
            not_counted=escape_prose(runtime.table.not_counted) if runtime else None)


def load_roofline(catalog: Catalog, evaluator: Evaluator, required: bool = True) -> Roofline | None:
    """The Roofline of a loaded model, from the hardware table (and runtime counts) beside its specs.

    Without a hardware table: None, or a located error when `required`.
    """
    model = Model(catalog, evaluator)
    root = model.spec_root()
    hardware_path, runtime_path = root / HARDWARE_FILE, root / RUNTIME_FILE
    if not hardware_path.exists():
        if not required:
            return None
        raise SpecError([SpecProblem(model.display(hardware_path), 0, "",
                                     "no hardware table; add one (opdoc's own is specs/hardware.yaml)")])
    hardware = load_hardware(hardware_path, model.display(hardware_path))
    runtime = None
    if runtime_path.exists():
        runtime = load_runtime(runtime_path, model.display(runtime_path), model.symbols, catalog.specs,
                               known_models=set(KERNEL_MODELS), model_name=model.name)
    return Roofline(model, hardware, runtime)


def load_answers(catalog: Catalog) -> None:
    """Import the model package's `answers` module, which registers its closed-form answers, if it has one."""
    import importlib
    import importlib.util

    name = f"{catalog.model.package}.answers"
    if importlib.util.find_spec(name) is not None:
        importlib.import_module(name)


def build_pages(catalog: Catalog, evaluator: Evaluator) -> Pages | None:
    """The roofline sections of every page, or None when the specs have no hardware table beside them."""
    roofline = load_roofline(catalog, evaluator, required=False)
    if roofline is None:
        return None
    load_answers(catalog)
    return Pages(roofline)
