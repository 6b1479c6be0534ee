"""`opdoc check`: measure every op's reference module and compare with every formula of its spec.

For each op (each variant, each attention kernel where the kernel matters) the runner evaluates the
spec's quantities at several points of its scope (``POINTS``), builds the reference module there
(``harness.build``), measures one forward (``opdoc.check.measure``) and compares, with the
tolerances of ``TOLERANCES`` (the only place they are stated; the report prints them):

* parameters and parameter bytes, from the module's ``named_parameters``;
* tensor-core and CUDA-core FLOPs, I/O read and write bytes (the convention of ``rules.py``);
* KV-cache bytes, read from the cache the forward returns;
* activation bytes (every storage the forward creates) and the peak of live activation bytes,
  with the attention kernel that ran written next to the peak.

An op that runs an aten op without a rule fails, naming the op. Independent implementations
(transformers, segment-anything) are measured the same way and compared with our formulas as extra
rows (the model package's ``independent`` module, e.g. ``opdoc.models.deepseek_ocr.independent``). ``--device cuda`` runs real bf16 tensors on a GPU instead and
writes ``site/measured/cuda-report.json``; the CPU run writes ``build/check-report.json``.

The CPU run forks one worker per available core after loading (``--jobs``; ``opdoc.check.workers``):
an op's tasks of one variant and kernel stay together (they reuse one module), the largest ops start
first, and the rows come back in plan order, the same as ``--jobs 1`` gives in one process. The
report records each task's seconds (``--timings`` prints them by op).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sympy

from opdoc.registry import QUANTITIES as QUANTITIES_REGISTRY

# ------------------------------------------------------------------------------ tolerances


@dataclass(frozen=True)
class Tolerance:
    relative: float  # 0: exact
    why: str


# The check's tolerances, from the quantity registry (the one place they are stated); row names are
# the checker's measurements.
TOLERANCES: dict[str, Tolerance] = {q.measured: Tolerance(q.tolerance, q.why)
                                    for q in QUANTITIES_REGISTRY.values() if q.measured}

# Rows about independent implementations compare only where the conventions are the same; the other
# quantities are printed for information with the reason they differ (see independent.py).
QUANTITIES = tuple(TOLERANCES)

# ------------------------------------------------------------------------------ points


@dataclass(frozen=True)
class Point:
    """Where one op is checked: a named example of its scope, some symbols set, a device."""

    example: str
    set: tuple[tuple[str, int], ...] = ()
    device: str = "full"  # full size without allocating (see full_size_device), or "cpu" for real tensors
    config: tuple[tuple[str, Any], ...] = ()  # overrides of the scope's config (small real modules)
    quick: bool = False  # also in `--quick`
    why: str = ""
    kernels: tuple[str, ...] = ()  # only with these attention kernels (empty: each kernel the op has)

    @staticmethod
    def at(example: str, device: str = "full", quick: bool = False, why: str = "",
           config: dict[str, Any] | None = None, **symbols: int) -> Point:
        return Point(example, tuple(symbols.items()), device, tuple((config or {}).items()), quick, why)


def full_size_device(kernel: str) -> str:
    """Where a full-size forward runs without allocating: under FakeTensorMode (CPU semantics), for
    either kernel. The eager kernel is selected by the harness (the math path of SDPA, or the
    model's eager attention). The meta device would be faster but is not CPU: some ops return other
    dtypes there (layer_norm's per-row statistics are fp32 on meta and a GPU, the input's dtype on
    CPU), and the upstream check runs the vendor's code on fake tensors too."""
    return "fake"


def points_for(ev, op: str, quick: bool) -> list[Point]:
    """The check points model.yaml lists for the op's scope (those naming other ops left out)."""
    scope = ev.catalog.model.scopes[ev.catalog.specs[op].spec.scope]
    points = [Point(p.example, tuple(p.set.items()), p.device, tuple(p.config.items()), p.quick, p.why,
                    tuple(p.kernels)) for p in scope.check if not p.only or op in p.only]
    return [p for p in points if p.quick] if quick else points


def point_binding(ev, scope_name: str, point: Point) -> dict[sympy.Symbol, sympy.Expr]:
    """Every symbol's value at a point, by the evaluator's one binding function."""
    return ev.binding(scope_name, point.example, dict(point.set), dict(point.config), origin="check point")


def point_label(ev, scope_name: str, point: Point) -> str:
    """The example's literal values (B, S, P; or B, H_img, W_img), as the point sets them."""
    bind = ev.catalog.model.scopes[scope_name].examples[point.example].bind
    values = {**{k: v for k, v in bind.items() if isinstance(v, int)}, **dict(point.set)}
    return " ".join(f"{k}={v}" for k, v in values.items())


# ------------------------------------------------------------------------------ rows


@dataclass
class Row:
    """One comparison: an op at one point, one quantity."""

    op: str  # the spec compared with
    label: str  # what was measured: the op, its variant, or an independent implementation
    variant: str | None
    kernel: str
    point: str
    device: str
    quantity: str
    expected: Any
    measured: Any
    rel_error: float | None
    tolerance: float | None
    status: str  # pass, FAIL, ERROR, info, skip
    note: str = ""

    @property
    def failed(self) -> bool:
        return self.status in ("FAIL", "ERROR")


def _number(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, sympy.Basic):
        value = sympy.nsimplify(value)
        if value.is_Integer:
            return int(value)
        if value.is_Rational:
            return float(value)
        if value.is_number:
            return float(value)
        return str(value)
    if hasattr(value, "node"):  # a SymInt that stayed symbolic
        return str(value)
    return int(value) if isinstance(value, int | bool) or float(value).is_integer() else float(value)


def compare(quantity: str, expected: Any, measured: Any, tolerance: Tolerance | None = None
            ) -> tuple[float | None, str]:
    """(relative error, status) of one quantity; a non-integer or symbolic value never passes."""
    tolerance = tolerance or TOLERANCES[quantity]
    e, m = _number(expected), _number(measured)
    if not isinstance(e, int | float) or not isinstance(m, int | float):
        return None, "FAIL"
    error = abs(m - e) / max(abs(e), 1)
    if tolerance.relative == 0:
        return error, "pass" if e == m else "FAIL"
    return error, "pass" if error <= tolerance.relative else "FAIL"


# ------------------------------------------------------------------------------ measuring one case


@dataclass
class Measured:
    """What the runner reads from one forward (plain numbers)."""

    values: dict[str, Any]
    unknown_ops: dict[str, int]
    attention_kernels: dict[str, int]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def parameter_counts(module) -> tuple[int, int]:
    params = list(module.named_parameters())
    return sum(p.numel() for _, p in params), sum(p.numel() * p.element_size() for _, p in params)


def measure_case(case) -> Measured:
    from opdoc.check import measure_totals

    start = time.perf_counter()
    with case.place(), case.context():
        m = measure_totals(case.run)
    kv = case.kv_cache(m.output)
    kv_bytes = sum(t.numel() * t.element_size() for t in kv)
    count, nbytes = parameter_counts(case.module)
    values = {
        "parameters": count, "parameter_bytes": nbytes,
        "tensor_flops": m.tensor_flops, "cuda_flops": m.cuda_flops,
        "io_read_bytes": m.io_read_bytes, "io_write_bytes": m.io_write_bytes,
        "kv_cache_bytes": kv_bytes,
        "activation_bytes": m.activation_total_bytes, "peak_bytes": m.activation_peak_bytes,
    }
    return Measured(values, dict(m.unknown_ops), dict(m.attention_kernels), case.notes(),
                    time.perf_counter() - start)


def expected_values(ev, op: str, variant: str | None, kernel: str,
                    binding: dict[sympy.Symbol, sympy.Expr]) -> dict[str, Any]:
    """The evaluated quantities under the checker's measurement names (see TOLERANCES)."""
    totals = ev.evaluate(op, binding, variant, kernel, where="this check point").totals
    expected = {q.measured: totals[name] for name, q in QUANTITIES_REGISTRY.items() if q.measured}
    # The forward also creates the KV cache it returns: the storages measured include it.
    expected["activation_bytes"] = totals["activation_bytes"] + totals["kv_cache_bytes"]
    return expected


def kernel_note(kernels: dict[str, int]) -> str:
    if not kernels:
        return "no attention"
    return "ran " + ", ".join(f"{name} ×{n}" for name, n in sorted(kernels.items()))


def kernels_of(ev, op: str) -> list[str]:
    """Both kernels where the op's quantities depend on the kernel, else the model's."""
    from opdoc.check.harness import harness

    variants = ev.variants(op)
    differs = any(ev.quantities(op, v, "eager").derived() != ev.quantities(op, v, "fused").derived()
                  for v in variants)
    return ["eager", "fused"] if differs or op in harness.attention else [ev.kernel]


# ------------------------------------------------------------------------------ the run


@dataclass
class Task:
    op: str
    variant: str | None
    kernel: str
    point: Point

    @property
    def device(self) -> str:
        return full_size_device(self.kernel) if self.point.device == "full" else self.point.device

    def title(self, label: str) -> str:
        parts = [self.op + (f"[{self.variant}]" if self.variant else ""), self.kernel, label]
        parts.append(f"({self.device}, real tensors)" if self.point.device != "full" else f"({self.device})")
        return " ".join(parts)


class Progress:
    def __init__(self, total: int, stream=None) -> None:
        self.total, self.done, self.stream = total, 0, stream or sys.stderr
        self.start = time.perf_counter()

    def step(self, text: str) -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.start
        print(f"[{self.done}/{self.total}] {text} ... ({elapsed:.0f} s)", file=self.stream, flush=True)


def plan(ev, ops: Sequence[str], quick: bool) -> list[Task]:
    tasks = []
    for op in ops:
        for variant in ev.variants(op):
            for kernel in kernels_of(ev, op):
                for point in points_for(ev, op, quick):
                    if point.device != "full" and kernel != ev.kernel:
                        continue  # real routing: once, with the model's kernel
                    if point.kernels and kernel not in point.kernels:
                        continue
                    tasks.append(Task(op, variant, kernel, point))
    return tasks


def check_task(ev, task: Task, modes: dict, build: Callable | None = None) -> tuple[list[Row], float]:
    """Rows of one task; a harness or measuring failure becomes ERROR rows, never an exception.
    ``build``: what makes the Case (default: the harness's reference modules; the upstream check
    passes one that builds the vendor's classes)."""
    if build is None:
        from opdoc.check.harness import build

    spec = ev.catalog.specs[task.op].spec
    label = point_label(ev, spec.scope, task.point)
    display = task.op + (f"[{task.variant}]" if task.variant else "")
    base = dict(op=task.op, label=display, variant=task.variant, kernel=task.kernel, point=label,
                device=task.device)
    start = time.perf_counter()
    try:
        binding = point_binding(ev, spec.scope, task.point)
        expected = expected_values(ev, task.op, task.variant, task.kernel, binding)
        mode = modules = None
        if task.point.device == "full":  # modules are reused between points, in one FakeTensorMode
            mode, modules = modes.setdefault((task.op, task.variant, task.kernel),
                                             (_fake_mode() if task.device == "fake" else None, {}))
        case = build(task.op, binding, task.kernel, task.device, _dtype(ev),
                     variant=task.variant, config=dict(task.point.config), mode=mode, modules=modules,
                     scope_config=ev.catalog.model.scopes[spec.scope].config,
                     scope_configs={name: scope.config for name, scope in ev.catalog.model.scopes.items()})
        measured = measure_case(case)
        observed = case.observed()
        if observed:  # e.g. how many experts the real router used: bind it, then compare
            binding = {**binding, **{ev.catalog.symbols[name]: value for name, value in observed.items()}}
            expected = expected_values(ev, task.op, task.variant, task.kernel, binding)
            measured.notes.append(", ".join(f"{name} = {value} observed" for name, value in observed.items()))
    except Exception as exc:  # noqa: BLE001 - reported as a failing row with its cause
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return [Row(**base, quantity="(run)", expected=None, measured=None, rel_error=None, tolerance=None,
                    status="ERROR", note=detail)], time.perf_counter() - start
    rows = []
    if measured.unknown_ops:
        listed = ", ".join(f"{name} ×{n}" for name, n in sorted(measured.unknown_ops.items()))
        rows.append(Row(**base, quantity="unknown ops", expected=0, measured=sum(measured.unknown_ops.values()),
                        rel_error=None, tolerance=None, status="ERROR",
                        note=f"aten ops without a rule in opdoc/check/rules.py: {listed}"))
    notes = "; ".join(measured.notes)
    for quantity in QUANTITIES:
        error, status = compare(quantity, expected[quantity], measured.values[quantity])
        note = kernel_note(measured.attention_kernels) if quantity == "peak_bytes" else ""
        if quantity in ("tensor_flops", "io_read_bytes") and notes:
            note = notes
        rows.append(Row(**base, quantity=quantity, expected=_number(expected[quantity]),
                        measured=_number(measured.values[quantity]), rel_error=error,
                        tolerance=TOLERANCES[quantity].relative, status=status, note=note))
    return rows, time.perf_counter() - start


def _fake_mode():
    from torch._subclasses.fake_tensor import FakeTensorMode

    return FakeTensorMode()


def _dtype(ev):
    from opdoc.check.harness import DTYPES

    return DTYPES[ev.catalog.model.dtype]


@dataclass
class Timing:
    op: str  # the op and variant, or the independent implementation's label
    title: str  # the task or comparison, as the progress line names it
    seconds: float


@dataclass
class Report:
    rows: list[Row]
    problems: list[str]  # ops with a spec and no harness, unknown op names asked for
    seconds: float
    device: str
    environment: dict[str, Any]
    timings: list[Timing] = field(default_factory=list)  # each task's own seconds, in plan order
    jobs: int = 1  # worker processes the run used

    @property
    def failed(self) -> list[Row]:
        return [r for r in self.rows if r.failed]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "device": self.device, "seconds": round(self.seconds, 2), "jobs": self.jobs, "ok": self.ok,
            "environment": self.environment,
            "tolerances": {k: asdict(v) for k, v in TOLERANCES.items()},
            "problems": self.problems,
            "rows": [asdict(r) for r in self.rows],
            "timings": [asdict(t) for t in self.timings],
        }


def environment() -> dict[str, Any]:
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine(),
           "threads": torch.get_num_threads()}
    try:
        import transformers

        env["transformers"] = transformers.__version__
    except ImportError:
        pass
    return env


def run(root: Path, ops: Sequence[str] = (), *, quick: bool = False, independent: bool = True,
        specs: Path | None = None, progress: bool = True, jobs: int = 1) -> Report:
    """Check the named ops (all with a spec when empty) on CPU at full size; returns the report.
    ``jobs``: worker processes (1: in this process); the rows are the same, in the same order."""
    from opdoc.check.harness import harness, load_model_harness
    from opdoc.pipeline import Paths, load

    start = time.perf_counter()
    catalog, ev = load(Paths(root=root, specs=specs))
    load_model_harness(catalog)
    problems = []
    names = list(ops) or list(catalog.specs)
    unknown = [op for op in names if op not in catalog.specs]
    problems += [f"{op}: no spec with this name (have: {', '.join(catalog.specs)})" for op in unknown]
    names = [op for op in names if op in catalog.specs]
    missing = [op for op in names if op not in harness]
    problems += [f"{op}: has a spec but no harness; register a builder with @harness({op!r}) in "
                 f"{catalog.model.package}.harness" for op in missing]
    names = [op for op in names if op in harness]
    items: list[Any] = plan(ev, names, quick)
    if independent:
        items += [c for c in independent_comparisons(catalog, quick) if not ops or c.op in ops]
    titles = [item_title(ev, item) for item in items]
    units = work_units(items)
    bar = Progress(len(items), sys.stderr if progress else _Null())
    results: list[tuple[list[Row], float]] = [([], 0.0)] * len(items)
    jobs = min(jobs, len(units))
    if jobs > 1 and _can_fork():
        from opdoc.check.workers import run_forked

        def done(index: int, unit_results: list[tuple[list[Row], float]]) -> None:
            for i, result in zip(units[index], unit_results):
                results[i] = result
                bar.step(f"{titles[i]} in {result[1]:.1f} s")

        order = sorted(range(len(units)), key=lambda u: (-unit_cost(ev, [items[i] for i in units[u]]), u))
        run_forked(lambda u: run_unit(ev, [items[i] for i in units[u]], {}), order, jobs, done)
    else:
        jobs = 1
        modes: dict = {}
        for unit in units:
            for i, result in zip(unit, run_unit(ev, [items[i] for i in unit], modes,
                                                before=lambda n, unit=unit: bar.step(titles[unit[n]]))):
                results[i] = result
    rows = [row for item_rows, _ in results for row in item_rows]
    timings = [Timing(item_op(item), title, seconds) for item, title, (_, seconds) in zip(items, titles, results)]
    return Report(rows, problems, time.perf_counter() - start, "cpu", environment(), timings, jobs)


def _can_fork() -> bool:
    from opdoc.check.workers import can_fork

    return can_fork()


def item_title(ev, item) -> str:
    """What the progress line and the timings call a task or an independent comparison."""
    if isinstance(item, Task):
        return item.title(point_label(ev, ev.catalog.specs[item.op].spec.scope, item.point))
    return item.title


def item_op(item) -> str:
    if isinstance(item, Task):
        return item.op + (f"[{item.variant}]" if item.variant else "")
    return item.label


def work_units(items: Sequence[Any]) -> list[list[int]]:
    """Items, by index, grouped into what one process runs at once: consecutive tasks of one op, variant
    and kernel (their full-size points reuse one module), and the independent comparisons together
    (one process imports their libraries once, as a serial run does)."""
    units: list[list[int]] = []
    previous: Any = None
    for index, item in enumerate(items):
        key = (item.op, item.variant, item.kernel) if isinstance(item, Task) else "independent"
        if key != previous:
            units.append([])
        units[-1].append(index)
        previous = key
    return units


def run_unit(ev, unit: Sequence[Any], modes: dict, before: Callable[[int], None] | None = None
             ) -> list[tuple[list[Row], float]]:
    """(rows, seconds) of each task or comparison of one unit; its reused modules are let go after."""
    results = []
    for n, item in enumerate(unit):
        if before is not None:
            before(n)
        if isinstance(item, Task):
            results.append(check_task(ev, item, modes))
        else:
            start = time.perf_counter()
            results.append((item.rows(ev), time.perf_counter() - start))
    for item in unit:
        if isinstance(item, Task):
            modes.pop((item.op, item.variant, item.kernel), None)
    return results


def unit_cost(ev, unit: Sequence[Any]) -> int:
    """A guess of a unit's run time, to start the longest first: its points times the number of specs
    in its op's tree (a whole model runs every module below it at each point)."""
    return sum(len(ev.tree(item.op)) if item.op in ev.catalog.specs else 1 for item in unit)


def independent_comparisons(catalog, quick: bool) -> list:
    """The model package's comparisons with implementations nobody here wrote (none if it has none)."""
    import importlib
    import importlib.util

    name = f"{catalog.model.package}.independent"
    if importlib.util.find_spec(name) is None:
        return []
    return importlib.import_module(name).comparisons(quick)


class _Null:
    def write(self, *_: Any) -> None:
        pass

    def flush(self) -> None:
        pass


# ------------------------------------------------------------------------------ formatting


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.6g}"
    if isinstance(value, int | float):
        return f"{int(value):,}"
    return str(value)


def _fmt_error(error: float | None) -> str:
    if error is None:
        return "-"
    return "0" if error == 0 else f"{error:.2e}"


def format_table(report: Report) -> str:
    header = ("op", "kernel", "point", "quantity", "formula", "measured", "rel err", "status", "note")
    lines = [header]
    for r in report.rows:
        point = f"{r.point} ({r.device})"
        lines.append((r.label, r.kernel, point, r.quantity, _fmt(r.expected), _fmt(r.measured),
                      _fmt_error(r.rel_error), r.status, r.note))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    out = []
    for n, line in enumerate(lines):
        cells = [line[i].ljust(widths[i]) if i < 3 or i == 7 else line[i].rjust(widths[i])
                 for i in range(len(widths))]
        out.append("  ".join(cells) + ("  " + line[-1] if line[-1] else ""))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    out.append("")
    out.append("tolerances (relative; 0 = exact):")
    for name, tol in TOLERANCES.items():
        out.append(f"  {name:<17} {tol.relative:g}  {tol.why}")
    counts: dict[str, int] = {}
    for r in report.rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    out.append("")
    out.append("summary: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
               + f"; {report.seconds:.1f} s on {report.device}"
               + (f" in {report.jobs} processes" if report.jobs > 1 else ""))
    if report.problems:
        out.append("")
        out.append("problems:")
        out += [f"  {p}" for p in report.problems]
    if report.failed:
        out.append("")
        out.append("mismatches:")
        for r in report.failed:
            out.append(f"  {r.label} {r.kernel} {r.point}: {r.quantity}: formula {_fmt(r.expected)}, "
                       f"measured {_fmt(r.measured)}" + (f" ({r.note})" if r.note else ""))
    out.append("")
    out.append("all formulas match the modules" if report.ok else "CHECK FAILED")
    return "\n".join(out)


def format_timings(report: Report, slowest: int = 10) -> str:
    """Where the run's time went: seconds per op (all its points and kernels), then the slowest points.
    In several processes these are each task's own seconds, which add up to more than the wall time."""
    per_op: dict[str, float] = {}
    for t in report.timings:
        per_op[t.op] = per_op.get(t.op, 0.0) + t.seconds
    total = sum(per_op.values())
    out = [f"timings: {total:.1f} s in tasks, {report.seconds:.1f} s wall, {report.jobs} process(es)",
           "seconds per op (every point and kernel):"]
    out += [f"  {seconds:7.1f}  {op}" for op, seconds in sorted(per_op.items(), key=lambda kv: (-kv[1], kv[0]))]
    out.append(f"the {slowest} slowest points:")
    ranked = sorted(report.timings, key=lambda t: (-t.seconds, t.title))[:slowest]
    out += [f"  {t.seconds:7.1f}  {t.title}" for t in ranked]
    return "\n".join(out)


# ------------------------------------------------------------------------------ CUDA


def run_cuda(root: Path, ops: Sequence[str] = (), *, repeats: int = 20, warmup: int = 3,
             specs: Path | None = None, progress: bool = True, device: str = "cuda") -> dict[str, Any]:
    """Real bf16 tensors on the GPU at each op's documented examples: peak memory and median time.

    Per op, variant, kernel and example it records: the allocator's peak
    (``torch.cuda.max_memory_allocated`` above what was allocated before the forward, ``cuda_peak``:
    kernel workspaces and rounding included) beside the spec's peak formula and the tracker's peak
    on the same real tensors; the kernel that ran; the median time of ``repeats`` synchronised
    forwards after ``warmup`` ones, and the FLOP rate it implies. ``device`` exists for tests (the
    code path on CPU with the CUDA calls replaced).
    """
    import torch

    from opdoc.check import measure
    from opdoc.check import memory
    from opdoc.check.harness import build, harness, load_model_harness
    from opdoc.pipeline import Paths, load

    catalog, ev = load(Paths(root=root, specs=specs))
    load_model_harness(catalog)
    names = [op for op in (list(ops) or list(catalog.specs)) if op in catalog.specs and op in harness]
    results = []
    stream = sys.stderr if progress else _Null()
    for op in names:
        spec = catalog.specs[op].spec
        for variant in ev.variants(op):
            for kernel in kernels_of(ev, op):
                for example in spec.examples:
                    binding = point_binding(ev, spec.scope, Point.at(example))
                    label = point_label(ev, spec.scope, Point.at(example))
                    print(f"[cuda] {op}{f'[{variant}]' if variant else ''} {kernel} {label} ...",
                          file=stream, flush=True)
                    entry: dict[str, Any] = {"op": op, "variant": variant, "kernel": kernel,
                                             "example": example, "point": label}
                    try:
                        case = build(op, binding, kernel, device, _dtype(ev), variant=variant,
                                     scope_config=catalog.model.scopes[spec.scope].config,
                                     scope_configs={name: scope.config for name, scope in catalog.model.scopes.items()})
                        entry.update(_time_case(case, repeats, warmup, measure, memory.cuda_peak))
                        formula = _number(expected_values(ev, op, variant, kernel, binding)["peak_bytes"])
                        entry.update(formula_peak_bytes=formula,
                                     peak_ratio=entry["peak_bytes"] / formula if formula else None)
                    except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                        entry["error"] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                    torch.cuda.empty_cache()
                    results.append(entry)
    return {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "dtype": catalog.model.dtype, "repeats": repeats,
            "warmup": warmup, "results": results}


def _time_case(case, repeats: int, warmup: int, measure: Callable, cuda_peak: Callable) -> dict[str, Any]:
    import torch

    with torch.no_grad():
        for _ in range(warmup):
            case.call()
        peak = cuda_peak(case.call)
        tracked = measure(case.call)
        times = []
        for _ in range(repeats):
            torch.cuda.synchronize()
            start = time.perf_counter()
            case.call()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    flops = _number(tracked.tensor_flops + tracked.cuda_flops)
    return {"peak_bytes": int(peak), "tracked_peak_bytes": _number(tracked.activation_peak_bytes),
            "attention_kernels": dict(tracked.attention_kernels), "unknown_ops": dict(tracked.unknown_ops),
            "median_seconds": median, "min_seconds": min(times), "repeats": repeats,
            "forward_flops": flops, "flops_per_second": flops / median if median else None}


# ------------------------------------------------------------------------------ command line


def parser() -> argparse.ArgumentParser:
    from opdoc.cli import positive_int  # the one check of a count given on the command line

    p = argparse.ArgumentParser(prog="opdoc check", description=__doc__.split("\n\n")[0])
    p.add_argument("ops", nargs="*", metavar="OP", help="ops to check (default: every op with a spec)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="cpu: full-size fake tensors plus small real ones (default); cuda: real bf16 on a GPU")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--quick", action="store_true", help="only the documented examples (development)")
    p.add_argument("--no-independent", action="store_true",
                   help="skip the comparisons with transformers and segment-anything")
    p.add_argument("--jobs", type=positive_int, metavar="N",
                   help="worker processes of the CPU check (default: one per available core; 1 runs everything in "
                        "this process; --upstream and --device cuda always run in one)")
    p.add_argument("--timings", action="store_true",
                   help="print the seconds each op and the slowest points took (to stderr)")
    p.add_argument("--root", default=".", help="repository root (default: current folder)")
    p.add_argument("--specs", help="model spec folder (default: the one folder under specs/)")
    p.add_argument("--conventions", action="store_true",
                   help="write the counting-rule page site/measured/conventions.md from the rule registry and exit")
    p.add_argument("--report", help="where to write the JSON report (default: build/check-report.json, "
                                    "or site/measured/cuda-report.json with --device cuda)")
    p.add_argument("--upstream", metavar="DIR",
                   help="measure the vendor's own classes from a model checkout instead of the reference "
                        "modules, verify each spec's upstream location and list pages whose class changed "
                        "(needs the vendor's transformers: `make check-upstream`)")
    return p


def run_check(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    root = Path(args.root)
    specs = Path(args.specs) if args.specs else None
    if args.conventions:
        from opdoc.check.rules import conventions_markdown

        target = root / "site" / "measured" / "conventions.md"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(conventions_markdown(), encoding="utf-8")
        print(f"wrote {target}")
        return 0
    if args.upstream:
        from opdoc.check.upstream import run_upstream_check

        return run_upstream_check(args)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("opdoc check --device cuda: no CUDA device is available (torch "
                  f"{torch.__version__}, built {'with' if torch.version.cuda else 'without'} CUDA); "
                  "run it on a machine with a GPU, or use --device cpu", file=sys.stderr)
            return 2
        result = run_cuda(root, args.ops, specs=specs)
        target = Path(args.report) if args.report else root / "site" / "measured" / "cuda-report.json"
        _write_json(target, result)
        if args.format == "json":
            print(json.dumps(result, indent=2))
        else:
            for entry in result["results"]:
                print(json.dumps(entry))
            print(f"wrote {target}")
        return 1 if any("error" in e for e in result["results"]) else 0
    try:
        report = run(root, args.ops, quick=args.quick, independent=not args.no_independent, specs=specs,
                     jobs=default_jobs() if args.jobs is None else args.jobs)
    except Exception as exc:
        from opdoc.spec import SpecError

        if isinstance(exc, SpecError):
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            return 1
        raise
    target = Path(args.report) if args.report else root / "build" / "check-report.json"
    _write_json(target, report.to_json())
    if args.format == "json":
        print(json.dumps([asdict(r) for r in report.rows], indent=2))
    else:
        print(format_table(report))
    if args.timings:
        print(format_timings(report), file=sys.stderr)
    for problem in report.problems:
        print(f"error: {problem}", file=sys.stderr)
    return 0 if report.ok else 1


def default_jobs() -> int:
    from opdoc.parallel import cores  # the build's own count: one worker per core it may use

    return cores()


def _write_json(path: Path, data: Any) -> None:
    """Write atomically (a temporary file renamed over the target), except onto something that is
    not a regular file (a device such as /dev/stdout, a pipe), which is written in place."""
    text = json.dumps(data, indent=2, default=str) + "\n"
    if path.exists() and not path.is_file():
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
