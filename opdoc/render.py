"""Stage 3b, render: every page and chart, from the evaluated model, through the one jinja2
Environment (opdoc/templating.py), where every value enters a page escaped. Writing the knowledge
base to disk is opdoc/write.py."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from markupsafe import Markup

from opdoc import __version__, escape, plots
from opdoc.catalog import Catalog
from opdoc.coverage import MODULES_FILE, coverage_rows, load_modules, summary
from opdoc.analytic import report_context, report_rows
from opdoc.evaluate import Evaluator
from opdoc.parallel import cores, map_forked, partition
from opdoc.modes import ModeCosts, comparison_rows, example_context, stage_chart_rows
from opdoc.roofline import build_pages
from opdoc.spec import SpecError, SpecProblem
from opdoc.templating import environment
from opdoc.source import implementation_path
from opdoc.view import OpView, ViewBuilder
from opdoc.write import differences, write  # noqa: F401 - moved to opdoc/write.py; old imports keep working


def _as_typed(text: str) -> str:
    """The view takes prose as typed: templates escape it where it enters a page (the `prose` filter)."""
    return text


@dataclass
class Rendered:
    files: dict[str, str]  # path relative to site/ -> content
    modules: dict[str, str] = field(default_factory=dict)  # op -> the module its implementation is in


@dataclass
class Made:
    """What one group of ops made, in this process or in a build worker (opdoc/parallel.py)."""

    signs: dict[str, list[SpecProblem]]  # op -> its negative or non-finite quantities
    proofs: dict[str, list[SpecProblem]]  # op -> its closed forms that disagree with the composed sums
    problems: dict[str, list[SpecProblem]]  # op -> what rendering its page found
    views: dict[str, OpView]
    files: dict[str, str]  # the ops' pages and charts (and the mode pages, with the modes' op)
    report_rows: dict[str, list[dict[str, str]]]  # the analytic report's figures of each op
    mode_table: dict | None = None  # what the index shows of the modes, from the group with the modes' op
    modules: dict[str, str] = field(default_factory=dict)  # op -> its implementation's module, for the stamp
    overview: dict[str, tuple[float, float]] = field(default_factory=dict)  # leaf op -> its point on the index chart


def render_all(catalog: Catalog, evaluator: Evaluator, templates: Path, timings=None,
               gpu: dict | None = None, conventions: bool = False, jobs: int | None = None) -> Rendered:
    """Every page and chart. The checks of the composed quantities (signs, closed forms) run here, op
    by op in the same workers as the pages, and fail the build before anything is written.

    Ops are split over `jobs` processes (the machine's cores unless told; opdoc/parallel.py): each
    group is checked, evaluated and rendered where it runs, and the groups are merged in op order."""
    stage = timings.stage if timings is not None else (lambda name: contextlib.nullcontext())
    jobs = jobs or cores()
    env = environment(templates)
    env.globals["conventions_page"] = Markup("measured/conventions.md") if conventions else None
    builder = ViewBuilder(catalog, evaluator, _as_typed, escape.escape_mermaid_label,
                          escape.escape_mermaid_sequence_step, gpu)
    roofline = build_pages(catalog, evaluator)  # None without a hardware table beside the specs
    modes_op = catalog.model.modes.op if catalog.model.modes else None

    def make(ops: Iterator[str]) -> Made:
        made = Made({}, {}, {}, {}, {}, {})
        page = env.get_template("op.md.j2")
        for op in ops:  # each op is checked, so that every problem is reported; pages stop at the first
            made.signs[op] = evaluator.check_signs([op])
            if any(made.signs.values()):
                continue
            made.proofs[op] = evaluator.prove_closed_forms([op])
            if any(made.proofs.values()):
                continue
            try:
                view = made.views[op] = builder.build(op)
            except SpecError as exc:
                made.problems[op] = exc.problems
                continue
            section = roofline and roofline.get(op)
            made.files[f"op-{op}.md"] = page.render(op=view, roofline=section)
            made.files.update(_draw_all([op_plot_job(catalog, evaluator, view)]))
            # Read here, where the op's class and numbers are at hand, rather than again by the parent.
            made.modules[op] = implementation_path(catalog.specs[op], catalog, view.source).rpartition(".")[0]
            if _leaf(catalog, op):
                made.overview[op] = overview_point(catalog, evaluator, op)
            # Everything of an op is made with its page, none of it after the last op: whichever process
            # takes it, the shared work then evens out what it costs.
            if roofline:
                made.files.update(_draw_all(roofline.plot_jobs))  # the chart of the op's roofline section
                roofline.plot_jobs.clear()
                made.report_rows.update(report_rows(roofline.r, [op]))
            if op == modes_op:
                modes, made.mode_table = mode_files(catalog, evaluator, env, roofline)
                made.files.update(modes)
        return made

    with stage("render"):
        # An op composed of nothing is cheap and needs nothing composed before it: such ops are taken by
        # whichever process is free first, which evens out what the split's estimate of the rest missed.
        # The largest group (partition's first) goes to a worker: what comes back through the pipe is
        # then its few large pages rather than the many others.
        groups = partition(catalog.specs, evaluator.tree, jobs)
        groups = groups[1:] + groups[:1]
        # The largest first (formulas × variants, about what a page costs), so that the last ones taken
        # are small and the processes end close together.
        shared = sorted((op for op in catalog.specs if _leaf(catalog, op)),
                        key=lambda op: -len(catalog.specs[op].exprs) * len(evaluator.variants(op)))
        parts = map_forked(make, [[op for op in group if op not in shared] for group in groups], shared)
    signs = [p for op in catalog.specs for part in parts for p in part.signs.get(op, [])]
    proofs = [p for op in catalog.specs for part in parts for p in part.proofs.get(op, [])]
    problems = [p for op in sorted(catalog.specs) for part in parts for p in part.problems.get(op, [])]
    if signs or proofs or problems:
        raise SpecError(signs or proofs or problems)
    views = sorted((view for part in parts for view in part.views.values()), key=lambda view: view.name)
    files = {name: text for part in parts for name, text in part.files.items()}
    mode_table = next((part.mode_table for part in parts if part.mode_table is not None), {})
    with stage("index"):
        families = catalog.model.families
        order = list(families)
        rows = sorted((view.index_row | {"family_key": view.family} for view in views),
                      key=lambda row: (order.index(row["family_key"]), row["op"]))
        points = {op: point for part in parts for op, point in part.overview.items()}
        files.update(_draw_all([overview_job(catalog, evaluator, views, points)]))
        modules = load_modules(catalog)
        coverage = coverage_rows(catalog, modules) if modules is not None else []
        files["index.md"] = env.get_template("index.md.j2").render(
            rows=rows, model=catalog.model, version=__version__, families=families, gpu=gpu,
            spec_dir=str(Path(catalog.model_path).parent), coverage=coverage, counts=summary(coverage),
            modules_file=(Path(catalog.model_path).parent / MODULES_FILE).as_posix(),
            overview_caption=OVERVIEW_CAPTION, modes=catalog.model.modes, **mode_table)
        if roofline:  # the model-level analytic report (seed layout), beside the index
            figures = {op: op_rows for part in parts for op, op_rows in part.report_rows.items()}
            files["analytic.md"] = env.get_template("analytic.md.j2").render(
                **report_context(catalog, views, roofline.r, figures))
    modules = {op: module for part in parts for op, module in part.modules.items()}
    return Rendered(dict(sorted(files.items())), modules)


def mode_files(catalog: Catalog, evaluator: Evaluator, env: jinja2.Environment, roofline) -> tuple[dict[str, str], dict]:
    """The mode pages (mode-<name>.md, modes.md, their charts) and the comparison the index shows."""
    modes = catalog.model.modes
    if modes is None:
        return {}, {}
    pages = ModeCosts(catalog, evaluator, roofline.r if roofline else None).pages()
    gpus = [gpu.name for gpu in roofline.r.hardware.gpus] if roofline else []
    common = {"version": __version__, "spec_dir": str(Path(catalog.model_path).parent), "model": catalog.model,
              "title": modes.title, "op": modes.op, "modes_about": modes.about}
    table = {"op": modes.op, "mode_rows": comparison_rows(pages, gpus, modes.index_facts),
             "gpus": [g.title for g in roofline.r.hardware.gpus] if roofline else [], "gpu_names": gpus,
             "fact_labels": list(modes.facts), "index_facts": modes.index_facts or list(modes.facts),
             "stages": modes.stages}
    files = {}
    for page in pages:
        examples = []
        for cost in page.examples:
            chart = f"plots/mode-{cost.name}.svg"
            files[chart] = plots.breakdown_svg(stage_chart_rows(cost), (("Forward FLOPs", "FLOPs"), ("Bytes moved (unfused)", "B")))
            examples.append(example_context(cost, chart))
        files[f"mode-{page.name}.md"] = env.get_template("mode.md.j2").render(page=page, examples=examples, **common)
    files["modes.md"] = env.get_template("modes.md.j2").render(**{**common, **table})
    return files, table


def op_plot_job(catalog: Catalog, evaluator: Evaluator, view: OpView) -> tuple[str, str, tuple, dict]:
    """The op's scaling chart: its FLOPs and peak memory against its scope's sweep, read from the
    evaluated model at each point; drawing is plain string building."""
    item = catalog.specs[view.name]
    scope = catalog.model.scopes[item.spec.scope]
    primary = item.spec.examples[0]
    variant = evaluator.variants(view.name)[0]
    points = [evaluator.totals(view.name, evaluator.binding(item.spec.scope, primary, {name: value for name in scope.sweep.vary}),
                               variant) for value in scope.sweep.values]
    tensor, cuda, peak = ([float(totals[name]) for totals in points] for name in ("tensor_flops", "cuda_flops", "peak"))
    example_x = float(evaluator.binding(item.spec.scope, primary)[catalog.symbols[scope.sweep.vary[0]]])
    return (f"plots/op-{view.name}.svg", "op_scaling_svg",
            (view.name, [float(v) for v in scope.sweep.values], tensor, cuda, peak, example_x, view.primary_title),
            {"x_label": scope.sweep.label})


def overview_point(catalog: Catalog, evaluator: Evaluator, op: str) -> tuple[float, float]:
    """A leaf op's FLOPs and parameters at its standard example: its bars on the index's chart."""
    values = evaluator.evaluate_at(op, catalog.specs[op].spec.examples[0], evaluator.variants(op)[0])
    return float(values["forward_flops"]), float(values["parameters"])


def overview_job(catalog: Catalog, evaluator: Evaluator, views: list[OpView],
                 points: dict[str, tuple[float, float]] | None = None) -> tuple[str, str, tuple, dict]:
    """The index's chart: each leaf op's FLOPs and parameters at its standard example (`points`, as
    the build workers read them, else evaluated here)."""
    points = points or {}
    overview = [(view.name, *(points.get(view.name) or overview_point(catalog, evaluator, view.name)))
                for view in overview_views(catalog, views)]
    return ("plots/overview.svg", "breakdown_svg", (overview,), {})


# What the index says under its FLOPs chart; overview_views decides what the chart holds.
OVERVIEW_CAPTION = (
    "Forward FLOPs and parameters of each leaf op (one with no child ops) at its standard example, one "
    "instance each. Ops made of other ops are left out, so no bar contains another: a parent's cost is "
    "on its own page, in its breakdown by child.")


def overview_views(catalog: Catalog, views: list[OpView]) -> list[OpView]:
    """The ops the index's chart plots: the leaves, so that no bar is the sum of others beside it."""
    return [view for view in views if _leaf(catalog, view.name)]


def _leaf(catalog: Catalog, op: str) -> bool:
    """An op composed of nothing: it needs no other op's numbers, and no bar on the index holds it."""
    return not catalog.specs[op].spec.children


def _draw(job: tuple[str, str, tuple, dict]) -> str:
    _, function, args, kwargs = job
    return getattr(plots, function)(*args, **kwargs)


def _draw_all(jobs: Iterable[tuple[str, str, tuple, dict]]) -> dict[str, str]:
    return {job[0]: _draw(job) for job in jobs}
