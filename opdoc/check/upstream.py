"""Check stage, upstream: `opdoc check --upstream DIR` proves the formulas against the vendor's own classes.

The reference check measures opdoc's reference modules; this one measures the classes of a model
checkout (the vendor code a user downloads), built and called as the vendor's model builds and calls
them, at the same points, with the same counter and the same tolerances (exact), and compares every
quantity with the spec's formulas. What is vendor-specific (importing the checkout, its configuration,
the stand-ins a CPU run needs) lives in the model package's ``upstream`` module
(``opdoc/models/<model>/upstream.py``), which registers one builder per op.

Two more things are checked, without running anything:

* locations: each spec's ``upstream.file`` and ``lines`` must name the first line of the class
  (its decorators included) and its last line, in the checkout or, for a path starting with
  ``transformers/``, in the installed transformers of the version the spec names;
* staleness: each spec records ``upstream.sha256``, a hash of its class's source; a class whose
  source no longer hashes the same has changed since the page was written, and its page is listed.

For every mismatch the report gives the op, the point, the quantity, both numbers, and the aten ops
whose counts differ between the vendor's class and the reference module at that point.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import json
import re
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

PAGE = "site/op-{op}.md"
_TRANSFORMERS_FILE = re.compile(r"^(transformers/\S+)\s+\(transformers\s+([\w.]+)\)$")
# A file of another installed library, named with the version the spec was written against:
# "torch/nn/modules/linear.py (torch 2.13.0)".
_LIBRARY_FILE = re.compile(r"^((\w+)/\S+)\s+\((\w+)\s+([\w.]+)\)$")

# ------------------------------------------------------------------------------ locations and hashes


def source_hash(lines: list[str]) -> str:
    """First 16 hex digits of the sha256 of a class's source lines (line endings normalised)."""
    text = "\n".join(line.rstrip("\r\n") for line in lines) + "\n"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def find_class(path: Path, name: str) -> tuple[int, int, str] | None:
    """(first line with decorators, last line, hash) of the top-level class ``name`` in ``path``, or of
    the top-level function of that name (a helper such as get_rel_pos, documented like a class), or of
    the top-level assignment that binds it (torch's builtins: ``scaled_dot_product_attention = _add_docstr(...)``)."""
    text = path.read_text(encoding="utf-8")
    for node in ast.parse(text, filename=str(path)).body:
        bound = isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
        if bound or isinstance(node, ast.ClassDef | ast.FunctionDef) and node.name == name:
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            lines = text.splitlines()[first - 1:node.end_lineno]
            return first, node.end_lineno, source_hash(lines)
    return None


@dataclass
class Location:
    """One spec's upstream pointer checked against the files."""

    op: str
    spec: str  # the spec file
    file: str  # as the spec writes it
    lines: tuple[int, int]  # as the spec writes them
    recorded: str | None  # the spec's sha256
    found: tuple[int, int] | None = None
    current: str | None = None  # the class's hash now
    problem: str = ""  # the location cannot be verified or is wrong

    @property
    def page(self) -> str:
        return PAGE.format(op=self.op)

    @property
    def stale(self) -> bool:
        return bool(self.recorded and self.current and self.recorded != self.current)


def resolve(upstream_file: str, checkout: Path, transformers: tuple[Path, str] | None) -> tuple[Path | None, str]:
    """The file a spec's ``upstream.file`` names, or None and why not."""
    match = _TRANSFORMERS_FILE.match(upstream_file)
    if match:
        relative, version = match.groups()
        if transformers is None:
            return None, f"transformers {version} is not installed here (run `make check-upstream`)"
        root, installed = transformers
        if installed != version:
            return None, f"the spec names transformers {version}, this environment has {installed}"
        return root / relative, ""
    match = _LIBRARY_FILE.match(upstream_file)
    if match and match.group(2) == match.group(3):
        return _library_file(match.group(2), match.group(1), match.group(4))
    return checkout / upstream_file, ""


def _library_file(library: str, relative: str, version: str) -> tuple[Path | None, str]:
    """A file inside an installed library, found without importing it; its version must be the spec's."""
    import importlib.metadata
    import importlib.util

    spec = importlib.util.find_spec(library)
    if spec is None or spec.origin is None:
        return None, f"{library} {version} is not installed here"
    installed = importlib.metadata.version(library).split("+")[0]
    if installed != version:
        return None, f"the spec names {library} {version}, this environment has {installed}"
    return Path(spec.origin).parent.parent / relative, ""


def check_locations(catalog, checkout: Path, transformers: tuple[Path, str] | None) -> list[Location]:
    """Every spec's upstream file, lines and hash, verified against the checkout and transformers."""
    found = []
    for op, parsed in catalog.specs.items():
        up = parsed.spec.upstream
        loc = Location(op, parsed.path, up.file, tuple(up.lines), up.sha256)
        path, why = resolve(up.file, checkout, transformers)
        if path is None:
            loc.problem = why
        elif not path.is_file():
            loc.problem = f"{up.file}: no such file in {checkout}"
        else:
            where = find_class(path, up.name or op)
            if where is None:
                loc.problem = f"{up.file}: defines no top-level class or function {up.name or op}"
            else:
                first, last, loc.current = where
                loc.found = (first, last)
                line = parsed.line("upstream", "lines")
                if loc.found != loc.lines:
                    loc.problem = (f"{parsed.path}:{line}: upstream.lines: {list(loc.lines)}, but class {up.name or op} spans "
                                   f"{first}-{last} of {up.file} (decorators included); write [{first}, {last}]")
                elif loc.recorded is None:
                    loc.problem = (f"{parsed.path}:{parsed.line('upstream')}: upstream.sha256: missing; the class's "
                                   f"source hashes to {loc.current}: record `sha256: {loc.current}`")
        found.append(loc)
    return found


def staleness(locations: list[Location]) -> list[str]:
    """One line per page whose upstream class changed since its spec recorded the hash."""
    return [f"{loc.page}: upstream class {loc.op} changed ({loc.file} lines {loc.found[0]}-{loc.found[1]}: "
            f"sha256 {loc.recorded} recorded, now {loc.current}); re-check the page, then record the new hash"
            for loc in locations if loc.stale]


# ------------------------------------------------------------------------------ the run


@dataclass
class UpstreamReport:
    report: Any  # runner.Report over the vendor's classes
    locations: list[Location]
    stale: list[str]
    undocumented: dict[str, list[str]]  # vendor file -> classes that have no spec yet
    sources: dict[str, str]
    diagnoses: dict[str, str] = field(default_factory=dict)  # task title -> differing aten ops
    known: tuple = ()  # the model's known deviations that showed
    skipped: dict[str, str] = field(default_factory=dict)  # op -> why its vendor class could not run here

    @property
    def ok(self) -> bool:
        return self.report.ok and not any(loc.problem for loc in self.locations) and not self.stale

    def to_json(self) -> dict[str, Any]:
        data = self.report.to_json()
        data.update(ok=self.ok, sources=self.sources, stale_pages=self.stale, undocumented=self.undocumented,
                    locations=[asdict(loc) for loc in self.locations], diagnoses=self.diagnoses,
                    known_deviations=[asdict(d) for d in self.known], not_compared=self.skipped)
        return data


class _VendorTask:
    """A runner Task whose full-size points run on fake tensors with either kernel: the vendor's Llama
    rotary embedding enters ``torch.autocast`` on its tensors' device, which the meta device refuses."""

    def __new__(cls, task):
        from opdoc.check.runner import Task

        class VendorTask(Task):
            @property
            def device(self) -> str:
                return "fake" if self.point.device == "full" else self.point.device
        return VendorTask(task.op, task.variant, task.kernel, task.point)


def run_upstream(root: Path, checkout: Path, ops: list[str] | tuple[str, ...] = (), *, quick: bool = False,
                 specs: Path | None = None, progress: bool = True) -> UpstreamReport:
    from opdoc.check import harness as harness_module
    from opdoc.check.runner import Progress, Report, _Null, check_task, environment, plan, point_label
    from opdoc.pipeline import Paths, load

    start = time.perf_counter()
    catalog, ev = load(Paths(root=root, specs=specs))
    harness_module.load_model_harness(catalog)
    vendor_module = importlib.import_module(catalog.model.package + ".upstream")
    vendor = vendor_module.load_checkout(checkout)
    import transformers

    locations = check_locations(catalog, vendor.path, (vendor_module.transformers_root(), transformers.__version__))
    problems = []  # location problems are listed with the locations
    names = list(ops) or list(catalog.specs)
    problems += [f"{op}: no spec with this name" for op in names if op not in catalog.specs]
    names = [op for op in names if op in catalog.specs]
    missing = [op for op in names if op not in vendor_module.upstream]
    problems += [f"{op}: has a spec but no upstream builder; register one with @upstream({op!r}) in "
                 f"{vendor_module.__name__.replace('.', '/')}.py" for op in missing]
    names = [op for op in names if op in vendor_module.upstream]
    # Ops whose vendor class cannot run in this environment are listed with the reason, not failed.
    skipped = {op: why for op, why in getattr(vendor_module, "not_comparable", lambda _: {})(vendor).items()
               if op in names}
    names = [op for op in names if op not in skipped]
    tasks = [_VendorTask(t) for t in plan(ev, names, quick)]
    bar = Progress(len(tasks), sys.stderr if progress else _Null())
    rows, modes, diagnoses, diagnosed = [], {}, {}, set()
    for task in tasks:
        spec = catalog.specs[task.op].spec
        title = task.title(point_label(ev, spec.scope, task.point))
        bar.step("upstream " + title)
        make = partial(vendor_module.upstream.get(task.op), vendor)
        task_rows, _ = check_task(ev, task, modes, build=partial(harness_module.build, builder=make))
        # The differing aten ops, at the first failing point of each op, variant and kernel (each
        # diagnosis measures the op twice more).
        key = (task.op, task.variant, task.kernel)
        if key not in diagnosed and any(r.failed and r.quantity not in ("(run)", "unknown ops") for r in task_rows):
            diagnosed.add(key)
            diagnoses[title] = diagnose(ev, task, make, task_rows)
        rows += task_rows
    problems += apply_known(rows, getattr(vendor_module, "KNOWN_DEVIATIONS", ()))
    documented = set(catalog.specs)
    undocumented = {file: [c for c in classes if c not in documented]
                    for file, classes in vendor_module.vendor_classes(vendor).items()}
    sources = {"checkout": str(vendor.path), "transformers": transformers.__version__,
               "torchvision": vendor.torchvision}
    report = Report(rows, problems, time.perf_counter() - start, "cpu", environment())
    shown = {r.op for r in rows if r.status == "known"}
    known = tuple(d for d in getattr(vendor_module, "KNOWN_DEVIATIONS", ()) if d.op in shown)
    return UpstreamReport(report, locations, staleness(locations), undocumented, sources, diagnoses, known, skipped)


def apply_known(rows: list, deviations) -> list[str]:
    """Mark the failing rows a known deviation covers as ``known`` (with its finding); return an error
    for each deviation that no longer shows (fixed: remove it from the list)."""
    problems = []
    for dev in deviations:
        hit = False
        for row in rows:
            if row.op == dev.op and row.kernel in dev.kernels and row.status == "FAIL":
                row.status, hit = "known", True
                row.note = (row.note + "; " if row.note else "") + "known deviation"
        if not hit and any(r.op == dev.op and r.kernel in dev.kernels for r in rows):
            problems.append(f"{dev.op} ({', '.join(dev.kernels)}): known deviation no longer shows; remove it "
                            "from KNOWN_DEVIATIONS")
    return problems


# ------------------------------------------------------------------------------ diagnosis


_STATS = {"tensor_flops": "tensor_flops", "cuda_flops": "cuda_flops", "io_read_bytes": "read_bytes",
          "io_write_bytes": "write_bytes", "activation_bytes": "write_bytes", "peak_bytes": "write_bytes"}


def _per_op(case) -> dict[str, Any]:
    from opdoc.check import measure

    with case.place(), case.context():
        return measure(case.run).per_op


def diagnose(ev, task, make, rows) -> str:
    """The aten ops whose calls or counts differ between the vendor's class and the reference module
    at the task's point (the explanation of each mismatch)."""
    from opdoc.check.harness import build
    from opdoc.check.runner import _dtype, point_binding

    spec = ev.catalog.specs[task.op].spec
    binding = point_binding(ev, spec.scope, task.point)
    args = dict(variant=task.variant, config=dict(task.point.config),
                scope_config=ev.catalog.model.scopes[spec.scope].config,
                scope_configs={name: scope.config for name, scope in ev.catalog.model.scopes.items()})
    try:
        theirs = _per_op(build(task.op, binding, task.kernel, task.device, _dtype(ev), builder=make, **args))
        ours = _per_op(build(task.op, binding, task.kernel, task.device, _dtype(ev), **args))
        parameters = _parameter_difference(build(task.op, binding, task.kernel, "meta", _dtype(ev), builder=make,
                                                 **args).module,
                                           build(task.op, binding, task.kernel, "meta", _dtype(ev), **args).module)
    except Exception as exc:  # noqa: BLE001 - the diagnosis is an aid; say why it is missing
        return "no diagnosis: " + "".join(traceback.format_exception_only(type(exc), exc)).strip()
    failed = {r.quantity for r in rows if r.failed}
    lines = []
    for op in sorted(set(theirs) | set(ours)):
        a, b = theirs.get(op), ours.get(op)
        fields = ["calls"] + [_STATS[q] for q in _STATS if q in failed]
        diffs = []
        for attr in dict.fromkeys(fields):
            va, vb = (getattr(a, attr) if a else 0), (getattr(b, attr) if b else 0)
            if va != vb:
                diffs.append(f"{attr} {_fmt(va)} vs {_fmt(vb)}")
        if diffs:
            lines.append(f"{op}: vendor vs reference: " + ", ".join(diffs))
    if parameters:
        lines.append(parameters)
    return "\n".join(lines) or "no aten op differs in count (the difference is in liveness or storage sharing)"


def _parameter_difference(theirs, ours) -> str:
    a = {n: tuple(p.shape) for n, p in theirs.named_parameters()}
    b = {n: tuple(p.shape) for n, p in ours.named_parameters()}
    only_a = sorted(set(a) - set(b))
    only_b = sorted(set(b) - set(a))
    shape = sorted(n for n in set(a) & set(b) if a[n] != b[n])
    parts = []
    if only_a:
        parts.append("parameters only the vendor has: " + ", ".join(f"{n} {a[n]}" for n in only_a[:8]))
    if only_b:
        parts.append("parameters only the reference has: " + ", ".join(f"{n} {b[n]}" for n in only_b[:8]))
    if shape:
        parts.append("parameters of another shape: " + ", ".join(f"{n} {a[n]} vs {b[n]}" for n in shape[:8]))
    return "; ".join(parts)


def _fmt(value: Any) -> str:
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)


# ------------------------------------------------------------------------------ report and command line


def format_upstream(result: UpstreamReport) -> str:
    from opdoc.check.runner import format_table

    out = [format_table(result.report), "", "upstream sources: " + ", ".join(f"{k} {v}" for k, v in result.sources.items())]
    out.append("")
    out.append("locations (spec upstream.file and lines, verified; sha256 of the class source):")
    for loc in result.locations:
        state = loc.problem or ("CHANGED" if loc.stale else "ok")
        out.append(f"  {loc.op:<24} {loc.file} {loc.lines[0]}-{loc.lines[1]}  sha256 {loc.current or '-'}  {state}")
    if result.stale:
        out.append("")
        out.append("pages whose upstream class changed since their spec was written:")
        out += [f"  {line}" for line in result.stale]
    known = getattr(result, "known", ())
    if known:
        out.append("")
        out.append("known deviations (rows marked known; the vendor is right, the spec is not yet):")
        for dev in known:
            out.append(f"  {dev.op} ({', '.join(dev.kernels)}): {dev.finding}. Resolution: {dev.resolution}.")
    if result.skipped:
        out.append("")
        out.append("not compared in this environment (the reference check covers them):")
        out += [f"  {op}: {why}" for op, why in result.skipped.items()]
    if result.diagnoses:
        out.append("")
        out.append("aten ops that differ between the vendor's class and the reference module:")
        for title, text in result.diagnoses.items():
            out.append(f"  {title}")
            out += [f"    {line}" for line in text.splitlines()]
    out.append("")
    out.append("vendor classes with no spec yet (not checked):")
    for file, classes in result.undocumented.items():
        out.append(f"  {file}: {', '.join(classes) if classes else '(none)'}")
    out.append("")
    out.append("the knowledge base matches the vendor's classes" if result.ok else "UPSTREAM CHECK FAILED")
    return "\n".join(out)


def run_upstream_check(args) -> int:
    """`opdoc check --upstream DIR [OP ...]` (arguments parsed by the runner's parser)."""
    from opdoc.check.runner import _write_json
    from opdoc.spec import SpecError

    root = Path(args.root)
    try:
        result = run_upstream(root, Path(args.upstream), args.ops, quick=args.quick,
                              specs=Path(args.specs) if args.specs else None)
    except SpecError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except Exception as exc:
        vendor_error = type(exc).__name__ == "UpstreamError"
        if not vendor_error:
            raise
        print(f"opdoc check --upstream: {exc}", file=sys.stderr)
        return 1
    target = Path(args.report) if args.report else root / "build" / "upstream-report.json"
    _write_json(target, result.to_json())
    if args.format == "json":
        print(json.dumps(result.to_json(), indent=2, default=str))
    else:
        print(format_upstream(result))
    return 0 if result.ok else 1
