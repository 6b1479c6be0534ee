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
from pathlib import Path

import sympy

from opdoc.catalog import Catalog, ParsedSpec
from opdoc.escape import escape_prose
from opdoc.evaluate import Evaluator
from opdoc.formula import engineering, exact_number, minimum, plain_text
from opdoc.hardware import (
    HARDWARE_FILE, RUNTIME_FILE, GpuPeaks, Hardware, Runtime, load_hardware, load_runtime,
)
from opdoc.spec import SpecError, SpecProblem

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
    binding: dict[sympy.Symbol, sympy.Expr]


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
        return self.ev.binding(self.spec(op).scope, example, overrides)

    def operations(self, op: str) -> list[tuple[str, str, sympy.Expr]]:
        """(name, unit, counted FLOPs) of the op's own operations that run with the model's kernel."""
        item = self.catalog.specs[op]
        return [(o.name, o.unit, item.exprs[f"operations.{i}.flops"]) for i, o in enumerate(item.spec.operations)
                if o.kernel in (None, self.kernel)]

    def operations_with_backward(self, op: str) -> list[tuple[str, str, sympy.Expr, sympy.Expr]]:
        """(name, unit, FLOPs, backward FLOPs) per own operation; the default backward is the evaluator's
        rule (2× forward: a gradient for each operand), stated in evaluate.py."""
        item = self.catalog.specs[op]
        rows = []
        for i, o in enumerate(item.spec.operations):
            if o.kernel in (None, self.kernel):
                flops = item.exprs[f"operations.{i}.flops"]
                rows.append((o.name, o.unit, flops, item.exprs.get(f"operations.{i}.backward", 2 * flops)))
        return rows

    def tensors(self, op: str) -> list[TensorCost]:
        item: ParsedSpec = self.catalog.specs[op]
        rows = []
        for i, t in enumerate(item.spec.tensors):
            if t.kernel not in (None, self.kernel):
                continue
            size = self.ev.dtype_bytes(t.dtype)
            active = item.exprs.get(f"tensors.{i}.active")
            rows.append(TensorCost(t.name, t.role, self.ev.tensor_numel(item, i), self.ev.tensor_bytes(item, i),
                                   size, active, t.from_child is not None))
        return rows

    def children(self, op: str, variant: str | None) -> list[ChildRef]:
        item = self.catalog.specs[op]
        return [ChildRef(c.name, c.op, c.variant, item.exprs[f"children.{i}.count"], self.ev.child_binding(item, i))
                for i, c in self.ev.active_children(item, variant)]

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


def walk(model: Model, op: str, variant: str | None, own: Callable[[str], sympy.Expr]) -> sympy.Expr:
    """own(op) + Σ children count × walk(child), each child's expression in the parent's symbols."""
    total = own(op)
    for child in model.children(op, variant):
        total += child.count * walk(model, child.op, child.variant, own).xreplace(child.binding)
    return total


def tree_ops(model: Model, op: str, variant: str | None) -> set[str]:
    found = {op}
    for child in model.children(op, variant):
        found |= tree_ops(model, child.op, child.variant)
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

    # -------------------------------------------------------------- symbolic

    def _executed_delta(self, unit: str) -> Callable[[str], sympy.Expr]:
        S = self.model.symbols.get("S", sympy.Integer(1))
        P = self.model.symbols.get("P", sympy.Integer(0))

        def own(op: str) -> sympy.Expr:
            counts = self.runtime.ops.get(op) if self.runtime else None
            delta = sympy.Integer(0)
            for name, kind, flops in self.model.operations(op):
                if counts and name in counts.executed and kind == unit:
                    delta += flops * (KERNEL_MODELS[counts.executed[name]](S, P, BLOCK) - 1)
            return delta
        return own

    def _weights_read(self, op: str) -> sympy.Expr:
        S = self.model.symbols.get("S", sympy.Integer(1))
        B = self.model.symbols.get("B", sympy.Integer(1))
        total = sympy.Integer(0)
        for t in self.model.tensors(op):
            if t.role != "parameter" or t.from_child:
                continue
            total += t.bytes if t.active is None else minimum(t.numel, B * S * t.active) * t.element_bytes
        return total

    def _own_io(self, op: str) -> sympy.Expr:
        skips = self.runtime.ops[op].fused_io_skips if self.runtime and op in self.runtime.ops else {}
        tensors = self.model.tensors(op)
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
        executed_tensor = q["tensor_flops"] + walk(m, op, variant, self._executed_delta("tensor"))
        executed_cuda = q["cuda_flops"] + walk(m, op, variant, self._executed_delta("cuda"))
        weights = walk(m, op, variant, self._weights_read)
        kv = q["kv_cache_bytes"]
        kv_read = kv.xreplace({m.symbols["S"]: 0}) if "S" in m.symbols else sympy.Integer(0)  # P positions
        kv_write = sympy.expand(kv - kv_read)
        fused = weights + self._own_io(op) + kv_read + kv_write
        ops_in_tree = tree_ops(m, op, variant)
        counted = self.runtime is not None and ops_in_tree <= set(self.runtime.ops)
        counts = self.runtime.ops if counted else {}
        launches = walk(m, op, variant, lambda o: counts[o].launches) if counted else None
        syncs = walk(m, op, variant, lambda o: counts[o].syncs) if counted else None
        loops = walk(m, op, variant, lambda o: counts[o].loops) if counted else None
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
        as it runs inside `op` (its symbols bound by the parent's binding)."""
        binding = dict(self.model.binding(op, example, overrides))
        binding[BLOCK] = sympy.Integer(block or self.block or 1)
        w = self.work(child.op, child.variant) if child else self.work(op, variant)

        def value(expr: sympy.Expr | None) -> sympy.Expr | None:
            if expr is None:
                return None
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


def positive_root(equation: sympy.Expr, symbol: sympy.Symbol, sample: dict[sympy.Symbol, sympy.Expr]) -> sympy.Expr:
    """The largest positive root of a polynomial equation, as an exact expression in the other symbols.

    Roots are told apart at `sample`, values of the other symbols (the model's example and a GPU);
    `factor` gives the printed form. A bug if there is no positive root there.
    """
    roots = [sympy.factor(sympy.cancel(root)) for root in sympy.solve(equation, symbol, simplify=False)]
    valued = [(root, complex(root.xreplace(sample).evalf())) for root in roots]
    positive = [(root, z.real) for root, z in valued if abs(z.imag) < 1e-9 and z.real > 0]
    if not positive:
        raise ArithmeticError(f"no positive root of {equation} in {symbol}")
    return max(positive, key=lambda pair: pair[1])[0]


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
        return [expr.xreplace(binding) for expr in reduced]
    return values


@answers_for("DeepseekV2MoE")
def moe_decode_stops_bandwidth_bound(r: Roofline) -> list[Answer]:
    op, m = "DeepseekV2MoE", r.model
    B, S, E_run, E = (m.symbols[n] for n in ("B", "S", "E_run", "E"))
    w = r.work(op, None)
    # Relaxed: one new token per sequence (S = 1) and every expert running (E_run = E, true once B·k >= E).
    tensor = relax(w.executed_tensor, {S: 1, E_run: E})
    memory = relax(w.fused_bytes, {S: 1, E_run: E})
    gpu0 = r.hardware.gpus[0]
    sample = {**m.binding(op, "decode"), PEAK: gpu0.tensor_flops, BANDWIDTH: gpu0.bandwidth}
    closed = positive_root(tensor / PEAK - memory / BANDWIDTH, B, sample)
    rows, values = [], {}
    work_at = along(m, op, "decode", "B", w.executed_tensor, w.executed_cuda, w.fused_bytes)
    for gpu in r.hardware.gpus:
        fixed = {k: v for k, v in m.binding(op, "decode").items() if k is not B}
        guess = float(closed.xreplace({**fixed, PEAK: gpu.tensor_flops, BANDWIDTH: gpu.bandwidth}))

        def shares(n: int, gpu=gpu) -> tuple[sympy.Expr, sympy.Expr, sympy.Expr]:
            tensor_flops, cuda_flops, fused = work_at(n)
            return tensor_flops / gpu.tensor_flops, cuda_flops / gpu.cuda_flops, fused / gpu.bandwidth

        def compute_binds(n: int) -> bool:
            tensor_s, cuda_s, memory_s = shares(n)
            return max(tensor_s, cuda_s) > memory_s

        n = first_integer(compute_binds, guess)
        values[(gpu.name, "B")] = n
        before, after = shares(n - 1), shares(n)
        rows.append([gpu.title, f"{n:,}", f"{float(before[0] / before[2]):.5f}", f"{float(after[0] / after[2]):.5f}"])
    return [Answer(
        question="At what batch size does an MoE decode step stop being bandwidth-bound?",
        setting="one new token per sequence (S = 1), executed FLOPs and fused lower-bound bytes; the smallest "
                "B whose tensor-core time exceeds its memory time",
        closed_forms=[("every expert running (B·k ≥ E)", f"B* = {plain_text(closed)}")],
        columns=["GPU", "B*", "tensor time / memory time at B* − 1", "at B*"],
        rows=rows, values=values,
        note="Below B = E/k not every expert runs and the weights read grow with B too; the exact threshold "
             "is searched on the unrelaxed formulas (E_run = min(E, B·S·k)), so it holds on both sides.")]


@answers_for("DeepseekV2DecoderLayer")
def attention_overtakes_feed_forward(r: Roofline) -> list[Answer]:
    op, m = "DeepseekV2DecoderLayer", r.model
    S, E_run, E = (m.symbols[n] for n in ("S", "E_run", "E"))
    rows, values, forms = [], {}, []
    for variant in m.variants(op):
        children = {c.name: c for c in m.children(op, variant)}
        attn, ffn = children["self_attn"], children["mlp"]
        fixed = {k: v for k, v in m.binding(op, "prefill").items() if k is not S}

        def tensor(child, executed: bool) -> sympy.Expr:
            w = r.work(child.op, child.variant)
            return (w.executed_tensor if executed else w.counted_tensor).xreplace(child.binding)

        results = []
        for executed in (False, True):
            difference = tensor(attn, executed) - tensor(ffn, executed)
            relaxed = relax(difference, {E_run: E}).xreplace({k: v for k, v in fixed.items()
                                                              if k.name in ("B", "P")})
            closed = positive_root(sympy.expand(relaxed), S, {**fixed, BLOCK: sympy.Integer(r.block or 1)})
            guess = float(closed.xreplace({**fixed, BLOCK: r.block or 1}))

            at = along(m, op, "prefill", "S", difference.xreplace({BLOCK: sympy.Integer(r.block or 1)}))

            def overtakes(n: int, at=at) -> bool:
                return at(n)[0] > 0

            n = first_integer(overtakes, guess)
            values[(variant, "executed" if executed else "counted")] = n
            results.append(n)
            label = f"{variant}, {'executed (causal tiles)' if executed else 'counted (proven)'}"
            forms.append((label, f"S* = {plain_text(sympy.expand(closed))}"))
        rows.append([f"{variant}: {ffn.op}", f"{results[0]:,}", f"{results[1]:,}"])
    return [Answer(
        question="At what sequence length do attention's FLOPs overtake the feed-forward block's?",
        setting="prefill, B = 1, P = 0; tensor-core FLOPs of self_attn against those of mlp in one layer; the "
                "smallest S where attention's are larger",
        closed_forms=forms,
        columns=["variant", "counted (proven) FLOPs", f"executed FLOPs (causal tiles, b = {r.block})"],
        rows=rows, values=values,
        note="The counted attention products grow with S²; the causal kernel executes about half of them, which "
             "moves the crossover out by roughly a factor of two.")]


@answers_for("DeepseekV2ForCausalLM")
def largest_batch_that_fits(r: Roofline) -> list[Answer]:
    op, m = "DeepseekV2ForCausalLM", r.model
    B = m.symbols["B"]
    q = m.counted(op, None)
    weights, kv, peak = q["parameter_bytes"], q["kv_cache_bytes"], q["peak"]
    W = sympy.Symbol("W", positive=True)  # the weights' bytes, printed as one name
    closed = sympy.solve(W + kv - CAPACITY, B, simplify=False)[0]
    rows, values = [], {}
    need = along(m, op, "decode", "B", weights, kv, peak)
    for gpu in r.hardware.gpus:
        decode = m.binding(op, "decode")
        guess = float(closed.xreplace({**decode, W: weights.xreplace(decode), CAPACITY: gpu.capacity}))

        kv_only = first_integer(lambda n, gpu=gpu: sum(need(n)[:2]) > gpu.capacity, guess + 1) - 1
        with_peak = first_integer(lambda n, gpu=gpu: need(n)[0] + need(n)[2] > gpu.capacity, guess + 1) - 1
        values[(gpu.name, "kv")] = kv_only
        values[(gpu.name, "peak")] = with_peak
        rows.append([gpu.title, engineering(gpu.capacity, "bytes"), f"{kv_only:,}", f"{with_peak:,}"])
    return [Answer(
        question="What is the largest batch whose KV cache fits one GPU at S = 8192?",
        setting="all weights resident plus the KV cache of B sequences holding 8192 positions (P + S at the "
                "decode example); the last column also keeps the decode step's peak live activations",
        closed_forms=[("weights W (the parameter bytes above) + KV cache = capacity C_mem",
                       f"B_max = floor({plain_text(sympy.factor(closed))})")],
        columns=["GPU", "capacity (datasheet)", "B_max (weights + KV cache)", "B_max (weights + decode peak)"],
        rows=rows, values=values,
        note="Capacity is the datasheet figure; the CUDA context and the allocator's reserve lower the usable "
             "part a little, so treat B_max as an upper limit.")]


# ============================================================================ page view


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
        self.pages = {op: self._page(op) for op in roofline.model.ops}

    def get(self, op: str) -> RooflinePage | None:
        return self.pages.get(op)

    # -------------------------------------------------------------- shared by every page

    def _gpu_row(self, gpu: GpuPeaks) -> dict:
        sources = self.r.hardware.table.sources
        figures = (gpu.table.tensor_tflops, gpu.table.cuda_tflops, gpu.table.bandwidth_tbs, gpu.table.memory_gb)
        return {"name": gpu.title, "tensor": f"{figures[0].value:g}", "cuda": f"{figures[1].value:g}",
                "bandwidth": f"{figures[2].value:g}", "memory": f"{figures[3].value:g}",
                "sources": sorted({f"[{sources[f.source].title}]({sources[f.source].url})" for f in figures})}

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
            counted_from=(f"[{escape_prose(runtime.table.source.title)}]({runtime.table.source.url}): "
                          f"{escape_prose(counted.explain)}" if counted else None),
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


def build_pages(catalog: Catalog, evaluator: Evaluator) -> Pages | None:
    """The roofline sections of every page, or None when the specs have no hardware table beside them."""
    roofline = load_roofline(catalog, evaluator, required=False)
    return Pages(roofline) if roofline else None
