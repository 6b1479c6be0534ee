"""Mode pages: what one whole job costs, per named configuration (DeepSeek-OCR: per image mode).

model.yaml's `modes` names an op whose `job` variant is a first forward plus a child that runs once per
step (the decode steps, summed in closed form), its `first` and `step` variants, and groups of the op's
examples, one page each. Every number comes from the evaluated model: the job's totals and its stage
split, the first forward's and the last step's peaks, and time bounds on each GPU of the hardware table:

- the first forward's bound is the roofline bound of the `first` variant;
- the steps' bound is the sum over steps of each step's bound. A step's work is linear in its step
  index, so a resource that binds at the first and at the last step binds at every step, and the sum is
  that resource's closed-form total; otherwise the steps are summed one by one;
- the crossover answer is the smallest job length whose steps take at least as long as the first
  forward (bounds against bounds), found on the closed form and checked at the integer either side.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy
from markupsafe import Markup

from opdoc.catalog import Catalog
from opdoc.evaluate import Evaluator, sum_steps
from opdoc.exact import substituted
from opdoc.formula import engineering, exact_number, maximum, minimum, parse_formula, with_exact
from opdoc.hardware import GpuPeaks
from opdoc.roofline import BLOCK, Roofline, duration


@dataclass
class StageRow:
    stage: str
    tensor_flops: sympy.Expr
    cuda_flops: sympy.Expr
    forward_flops: sympy.Expr
    io_bytes: sympy.Expr
    share: str  # of the job's forward FLOPs


@dataclass
class StepWork:
    """Per-step work of the job's steps as expressions in the step symbol, and the step range."""

    symbol: sympy.Symbol
    first: sympy.Expr
    last: sympy.Expr
    tensor: sympy.Expr
    cuda: sympy.Expr
    memory: sympy.Expr
    launches: sympy.Expr | None  # per step, when the runtime counts cover the step's ops
    syncs: sympy.Expr | None


@dataclass
class TimeRow:
    gpu: GpuPeaks
    first: sympy.Expr
    first_binds: str
    steps: sympy.Expr
    steps_binds: str
    floor: sympy.Expr | None  # the steps' launch/sync floor, when the runtime counts cover the step
    crossover: int | None  # smallest job length whose steps outlast the first forward

    @property
    def total(self) -> sympy.Expr:
        return self.first + self.steps

    @property
    def total_with_floor(self) -> sympy.Expr:
        """The steps bounded by the larger of their roofline time and their host floor."""
        return self.first + (self.steps if self.floor is None else max(self.steps, self.floor))


@dataclass
class PartCost:
    """One piece of the first forward that does a stage's work (an encoder over some views, the decoder)."""

    path: str  # e.g. model.sam_tiles
    op: str
    stage: str
    runs: str  # the child's own bindings, e.g. "B = 6, H_img = 640, W_img = 640"
    count: sympy.Expr
    forward_flops: sympy.Expr
    parameters: sympy.Expr
    peak: sympy.Expr


@dataclass
class ExampleCost:
    name: str
    title: str
    why: str
    facts: list[tuple[str, str]]
    totals: dict[str, sympy.Expr]  # of the job
    first: dict[str, sympy.Expr]  # of its first forward
    step: dict[str, sympy.Expr]  # of its last step
    stages: list[StageRow]
    stage_peaks: dict[str, sympy.Expr]
    parts: list[PartCost] = field(default_factory=list)
    times: list[TimeRow] = field(default_factory=list)
    steps_symbol: str = ""
    length_symbol: str = ""
    beyond: list[str] = field(default_factory=list)  # the job's limits it passes (allowed, marked)


@dataclass
class ModePage:
    name: str
    title: str
    about: str
    examples: list[ExampleCost]


class ModeCosts:
    """The mode pages' numbers, computed once per example."""

    def __init__(self, catalog: Catalog, evaluator: Evaluator, roofline: Roofline | None):
        self.catalog, self.ev, self.roofline = catalog, evaluator, roofline
        self.modes = catalog.model.modes
        self.item = catalog.specs[self.modes.op]
        self.scope = self.item.spec.scope
        self._cache: dict = {}

    def pages(self) -> list[ModePage]:
        return [ModePage(name, page.title, page.about, [self.example(e) for e in page.examples])
                for name, page in self.modes.pages.items()]

    def example(self, name: str) -> ExampleCost:
        modes, ev = self.modes, self.ev
        binding = ev.binding(self.scope, name)
        example = self.catalog.model.scopes[self.scope].examples[name]
        where = f"example '{name}'"
        job = ev.evaluate(modes.op, binding, modes.job, where=where)
        first = ev.evaluate(modes.op, binding, modes.first, where=where).totals
        step = ev.evaluate(modes.op, binding, modes.step, where=where).totals
        facts = [(label, exact_number(parse_formula(text, self.catalog.symbols).xreplace(binding)))
                 for label, text in modes.facts.items()]
        total = job.totals["forward_flops"]
        stages = [StageRow(stage, parts["tensor_flops"], parts["cuda_flops"], parts["forward_flops"],
                           parts["io_read_bytes"] + parts["io_write_bytes"], _percent(parts["forward_flops"], total))
                  for stage in modes.stages if (parts := job.stages.get(stage))]
        found = self.stage_peaks(modes.job)
        peaks = {stage: substituted(found[stage], binding) for stage in modes.stages if stage in found}
        steps = self.step_work()
        parts: list[PartCost] = []
        self._parts(modes.op, modes.first, binding, "", parts)
        cost = ExampleCost(name, example.title, example.why, facts, dict(job.totals), dict(first), dict(step),
                           stages, peaks, parts, steps_symbol=steps.symbol.name if steps else "",
                           beyond=list(job.passed))
        if self.roofline is not None and steps is not None:
            cost.length_symbol = self._length_symbol(steps)
            cost.times = [self.times(name, binding, steps, gpu) for gpu in self.roofline.hardware.gpus]
        return cost

    def _parts(self, op: str, variant: str | None, binding: dict, prefix: str, out: list[PartCost]) -> None:
        """The children with a stage under op, each with its exact work at this binding (children
        without a stage are opened up)."""
        ev, item = self.ev, self.catalog.specs[op]
        result = ev.evaluate(op, binding, variant)
        for part in result.children:
            child = item.spec.children[part.index]
            inner = {**binding, **{s: v.xreplace(binding) for s, v in ev.child_binding(item, part.index).items()}}
            path = f"{prefix}{child.name}"
            if child.stage is None:
                self._parts(child.op, child.variant, inner, path + ".", out)
                continue
            runs = ", ".join(f"{name} = {exact_number(inner[self.catalog.symbols[name]])}" for name in child.bind)
            peak = substituted(ev.quantities(child.op, child.variant).peak, inner) if part.count else sympy.Integer(0)
            out.append(PartCost(path, child.op, child.stage, runs, part.count,
                                part.totals["tensor_flops"] + part.totals["cuda_flops"], part.totals["parameters"], peak))

    # ------------------------------------------------------------------ memory by stage

    def stage_peaks(self, variant: str) -> dict[str, sympy.Expr]:
        """Each stage's own peak: the largest peak among the children that do its work (a child that may
        not run, count 0, holds nothing). Tensors other stages keep alive are not in it."""
        found: dict[str, list[sympy.Expr]] = {}
        self._collect_peaks(self.item.spec.op, variant, {}, found)
        return {stage: maximum(*values) for stage, values in found.items()}

    def _collect_peaks(self, op: str, variant: str | None, outer: dict, found: dict[str, list[sympy.Expr]]) -> None:
        ev, item = self.ev, self.catalog.specs[op]
        for index, child in ev.active_children(item, variant):
            sub = ev.quantities(child.op, child.variant)
            runs = minimum(1, item.exprs[f"children.{index}.count"])
            if child.stage is not None:
                peak = runs * ev.child_share(item, index, sub.peak, "peak")
                found.setdefault(child.stage, []).append(peak.xreplace(outer) if outer else peak)
            else:
                binding = {s: v.xreplace(outer) for s, v in ev.child_binding(item, index).items()} if outer \
                    else ev.child_binding(item, index)
                self._collect_peaks(child.op, child.variant, binding, found)

    # ------------------------------------------------------------------ time

    def step_work(self) -> StepWork | None:
        """The job's stepped child: its roofline work per step, in the step symbol and the job's symbols."""
        if self.roofline is None:
            return None
        for index, child in self.ev.active_children(self.item, self.modes.job):
            if child.steps is None:
                continue
            work = self.roofline.work(child.op, child.variant)
            bind = self.ev.child_binding(self.item, index)
            count = self.item.exprs[f"children.{index}.count"]
            return StepWork(self.catalog.symbols[child.steps.symbol],
                            self.item.exprs[f"children.{index}.steps.first"],
                            self.item.exprs[f"children.{index}.steps.last"],
                            count * work.executed_tensor.xreplace(bind), count * work.executed_cuda.xreplace(bind),
                            count * work.fused_bytes.xreplace(bind),
                            None if work.launches is None else count * work.launches.xreplace(bind),
                            None if work.syncs is None else count * work.syncs.xreplace(bind))
        return None

    def _length_symbol(self, steps: StepWork) -> str:
        """The symbol that sets how many steps a job runs (N_out), read off the last step's formula."""
        symbols = sorted(steps.last.free_symbols, key=lambda s: s.name)
        return symbols[0].name if len(symbols) == 1 else ""

    def times(self, example: str, binding: dict, steps: StepWork, gpu: GpuPeaks) -> TimeRow:
        r = self.roofline
        point, bound, per_step, lo, hi = self._example_work(example, binding, steps)
        first = r.times(point, gpu)
        rates = (gpu.tensor_flops, gpu.cuda_flops, gpu.bandwidth)
        steps_time, binds = self._steps_time(per_step, rates, steps.symbol, lo, hi)
        floor = None
        if steps.launches is not None and hi >= lo:  # host time per step no GPU can hide, summed
            launches, syncs = self._host_counts(example, steps, bound, lo, hi)
            floor = launches * r.hardware.launch_seconds + syncs * r.hardware.sync_seconds
        crossover = None
        if self.ev.catalog.symbols.get(self._length_symbol(steps)) is not None and binds != "mixed":
            crossover = self._crossover(per_step, rates, steps, bound, first.bound, binds)
        return TimeRow(gpu, first.bound, first.binds, steps_time, binds, floor, crossover)

    def _example_work(self, example: str, binding: dict, steps: StepWork) -> tuple:
        """What every GPU's row of one example starts from: the first forward's work, the binding with
        the tile size, each step's work in the step symbol, and the first and last step."""
        key = ("work", example)
        if key not in self._cache:
            r = self.roofline
            bound = {**binding, BLOCK: sympy.Integer(r.block or 1)}
            self._cache[key] = (r.point(self.modes.op, self.modes.first, example), bound,
                                [e.xreplace(bound) for e in (steps.tensor, steps.cuda, steps.memory)],
                                steps.first.xreplace(bound), steps.last.xreplace(bound))
        return self._cache[key]

    def _host_counts(self, example: str, steps: StepWork, bound: dict, lo, hi) -> tuple[sympy.Expr, sympy.Expr]:
        """Launches and host syncs of all the steps (the same on every GPU: computed once per example)."""
        key = ("host", example)
        if key not in self._cache:
            self._cache[key] = tuple(sum_steps(count.xreplace(bound), steps.symbol, lo, hi)
                                     for count in (steps.launches, steps.syncs))
        return self._cache[key]

    @staticmethod
    def _steps_time(per_step: list[sympy.Expr], rates, j: sympy.Symbol, lo, hi) -> tuple[sympy.Expr, str]:
        if hi < lo:
            return sympy.Integer(0), "none"
        from opdoc.roofline import RESOURCES

        def binding_at(step) -> int:
            shares = [e.xreplace({j: step}) / rate for e, rate in zip(per_step, rates)]
            return max(range(len(shares)), key=lambda i: shares[i])

        ends = {binding_at(lo), binding_at(hi)}
        if len(ends) == 1:  # linear in j: the same resource binds at every step
            which = ends.pop()
            return sum_steps(per_step[which], j, lo, hi) / rates[which], RESOURCES[which]
        total = sympy.Add(*(max(e.xreplace({j: step}) / rate for e, rate in zip(per_step, rates))
                            for step in range(int(lo), int(hi) + 1)))  # exact rationals, step by step
        return total, "mixed"

    def _crossover(self, per_step, rates, steps: StepWork, bound: dict, first_time, binds: str) -> int | None:
        """Smallest job length whose steps take at least the first forward's time (same binding resource)."""
        from opdoc.roofline import RESOURCES

        which = RESOURCES.index(binds)
        length = self.catalog.symbols[self._length_symbol(steps)]
        n = sympy.Symbol("n", positive=True, integer=True)
        lo = steps.first.xreplace(bound)
        last = steps.last.xreplace({**bound, length: n})
        total = sum_steps(per_step[which], steps.symbol, lo, last) / rates[which]

        def outlasts(value: int) -> bool:
            return bool(substituted(total, {n: sympy.Integer(value)}) >= first_time)

        low, high = 1, 2
        while not outlasts(high):
            low, high = high, high * 2
            if high > 10 ** 7:
                return None
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (low, middle) if outlasts(middle) else (middle, high)
        return high


def _percent(part: sympy.Expr, whole: sympy.Expr) -> str:
    if whole == 0:
        return "0 %"
    value = float(part / whole) * 100
    return f"{value:.1f} %" if value >= 0.1 or value == 0 else "< 0.1 %"


# ---------------------------------------------------------------------- pages


def _link(name: str) -> Markup:
    """mode-<name>.md; names are checked at load time to be [a-z0-9_]+."""
    return Markup(f"mode-{name}.md")


def _gpu_times(t: TimeRow) -> dict[str, str]:
    return {"gpu": t.gpu.title, "first": duration(t.first), "first_binds": t.first_binds,
            "steps": duration(t.steps), "steps_binds": t.steps_binds, "total": duration(t.total),
            "floor": duration(t.floor) if t.floor is not None else "not counted",
            "total_with_floor": duration(t.total_with_floor),
            "crossover": exact_number(t.crossover) if t.crossover is not None else "never"}


def example_context(cost: ExampleCost, chart: str) -> dict:
    """One example's section of a mode page, every value formatted."""
    totals = cost.totals
    last = dict(cost.facts).get("last position", "")
    return {
        "title": cost.title, "why": cost.why, "facts": cost.facts, "beyond": cost.beyond, "chart": Markup(chart),
        "stages": [{"stage": s.stage, "tensor_flops": engineering(s.tensor_flops, "flops"),
                    "cuda_flops": engineering(s.cuda_flops, "flops"), "forward_flops": with_exact(s.forward_flops, "flops"),
                    "share": s.share, "io_bytes": engineering(s.io_bytes, "bytes")} for s in cost.stages],
        "total_tensor": engineering(totals["tensor_flops"], "flops"), "total_cuda": engineering(totals["cuda_flops"], "flops"),
        "total_forward": with_exact(totals["forward_flops"], "flops"), "total_io": engineering(totals["io_bytes"], "bytes"),
        "weights": engineering(totals["parameter_bytes"], "bytes") + f" ({engineering(totals['parameters'], 'params')})",
        "kv_end": with_exact(totals["kv_cache_bytes"], "bytes"), "last_position": last,
        "peak": engineering(totals["peak"], "bytes"), "peak_first": engineering(cost.first["peak"], "bytes"),
        "peak_step": engineering(cost.step["peak"], "bytes"),
        "active_step": engineering(cost.step["active_parameters"], "params"),
        "stage_peaks": [(stage, engineering(value, "bytes")) for stage, value in cost.stage_peaks.items()],
        "parts": [{"path": p.path, "op": p.op, "stage": p.stage, "runs": p.runs if p.count else "does not run",
                   "flops": engineering(p.forward_flops, "flops"), "parameters": exact_number(p.parameters),
                   "peak": engineering(p.peak, "bytes")} for p in cost.parts],
        "times": [_gpu_times(t) for t in cost.times],
        "steps_label": f"decode steps ({cost.steps_symbol} summed)", "length_symbol": cost.length_symbol,
    }


def comparison_rows(pages: list[ModePage], gpus: list[str], index_facts: list[str]) -> list[dict]:
    """One row per example of every mode page, for modes.md and the index."""
    rows = []
    for page in pages:
        for cost in page.examples:
            facts = dict(cost.facts)
            times = {t.gpu.name: duration(t.total) for t in cost.times}
            rows.append({
                "mode": page.title, "page": _link(page.name),
                "example": cost.name + (" (past the trained context)" if cost.beyond else ""),
                "facts": [facts[label] for label in facts],
                "index_facts": [facts[label] for label in index_facts or facts],
                "stages": {s.stage: engineering(s.forward_flops, "flops") for s in cost.stages},
                "total": engineering(cost.totals["forward_flops"], "flops"),
                "kv": engineering(cost.totals["kv_cache_bytes"], "bytes"),
                "peak": engineering(cost.totals["peak"], "bytes"),
                "times": [times.get(gpu, "") for gpu in gpus]})
    return rows


def stage_chart_rows(cost: ExampleCost) -> list[tuple[str, float, float]]:
    return [(s.stage, float(s.forward_flops), float(s.io_bytes)) for s in cost.stages]
