"""Stage 3b, render and write: the one jinja2 Environment, and the atomic write of the knowledge base.

Everything is rendered in memory first; only a fully successful build touches `site/`, each file
replaced atomically. A manifest records what opdoc generated, so opdoc only ever removes its own files.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import jinja2

from opdoc import __version__, escape, plots
from opdoc.catalog import Catalog
from opdoc.analytic import report_context
from opdoc.evaluate import Evaluator
from opdoc.exact import values_at
from opdoc.roofline import build_pages
from opdoc.spec import SpecError, SpecProblem
from opdoc.view import OpView, ViewBuilder

MANIFEST = ".opdoc-manifest.json"


def escape_prose(text: str) -> str:
    return escape.escape_prose(text)


def escape_label(text: str) -> str:
    return escape.escape_mermaid_label(text)


def escape_step(text: str) -> str:
    return escape.escape_mermaid_sequence_step(text)


def environment(templates: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,  # a missing value fails the build instead of printing nothing
        autoescape=False,  # markdown, not HTML: prose is escaped explicitly by escape_prose
    )
    env.filters["page"] = lambda op: f"op-{op}.md"
    return env


@dataclass
class Rendered:
    files: dict[str, str]  # path relative to site/ -> content


def render_all(catalog: Catalog, evaluator: Evaluator, templates: Path, timings=None,
               gpu: dict | None = None, conventions: bool = False) -> Rendered:
    stage = timings.stage if timings is not None else (lambda name: contextlib.nullcontext())
    env = environment(templates)
    env.globals["conventions_page"] = "measured/conventions.md" if conventions else None
    builder = ViewBuilder(catalog, evaluator, escape_prose, escape_label, escape_step, gpu)
    with stage("render"):
        roofline = build_pages(catalog, evaluator)  # None without a hardware table beside the specs
        views: list[OpView] = []
        problems: list[SpecProblem] = []
        for op in sorted(catalog.specs):  # every op's problems are reported, not the first op's only
            try:
                views.append(builder.build(op))
            except SpecError as exc:
                problems += exc.problems
        if problems:
            raise SpecError(problems)
        page = env.get_template("op.md.j2")
        files = {f"op-{view.name}.md": page.render(op=view, roofline=roofline and roofline.get(view.name))
                 for view in views}
    families = catalog.model.families
    order = list(families)
    rows = sorted((view.index_row | {"family_key": view.family} for view in views),
                  key=lambda row: (order.index(row["family_key"]), row["op"]))
    with stage("plots"):
        files.update(plot_files(catalog, evaluator, views, roofline.plot_jobs if roofline else []))
    files["index.md"] = env.get_template("index.md.j2").render(
        rows=rows, model=catalog.model, version=__version__, families=families, gpu=gpu,
        spec_dir=str(Path(catalog.model_path).parent))
    if roofline:  # the model-level analytic report (seed layout), beside the index
        files["analytic.md"] = env.get_template("analytic.md.j2").render(**report_context(catalog, views, roofline.r))
    return Rendered(files)


def plot_files(catalog: Catalog, evaluator: Evaluator, views: list[OpView], extra_jobs: list = ()) -> dict[str, str]:
    """SVG plots computed from the formulas: each op against its scope's sweep, and the index overview.

    Every sweep point is evaluated exactly (opdoc.exact, one walk of each formula for all points);
    drawing is plain string building (opdoc.plots), so no worker processes are needed.
    """
    jobs: list[tuple[str, str, tuple, dict]] = []
    for view in views:
        item = catalog.specs[view.name]
        scope = catalog.model.scopes[item.spec.scope]
        primary = item.spec.examples[0]
        q = evaluator.quantities(view.name, evaluator.variants(view.name)[0])
        bindings = [evaluator.binding(item.spec.scope, primary, {name: value for name in scope.sweep.vary})
                    for value in scope.sweep.values]
        tensor, cuda, peak = (values_at(expr, bindings) for expr in (q.tensor_flops, q.cuda_flops, q.peak))
        example_x = float(evaluator.binding(item.spec.scope, primary)[catalog.symbols[scope.sweep.vary[0]]])
        jobs.append((f"plots/op-{view.name}.svg", "op_scaling_svg",
                     (view.name, [float(v) for v in scope.sweep.values], tensor, cuda, peak, example_x,
                      view.primary_title), {"x_label": scope.sweep.label}))
    overview = []
    for view in views:
        values = evaluator.evaluate_at(view.name, catalog.specs[view.name].spec.examples[0],
                                       evaluator.variants(view.name)[0])
        overview.append((view.name, float(values["forward_flops"]), float(values["parameters"])))
    jobs.append(("plots/overview.svg", "breakdown_svg", (overview,), {}))
    jobs.extend(extra_jobs)
    return dict(zip((job[0] for job in jobs), _draw_all(jobs)))


def _draw(job: tuple[str, str, tuple, dict]) -> str:
    _, function, args, kwargs = job
    return getattr(plots, function)(*args, **kwargs)


def _draw_all(jobs: list) -> list[str]:
    return [_draw(job) for job in jobs]


# ------------------------------------------------------------------ writing


def _manifest(site: Path) -> set[str]:
    path = site / MANIFEST
    if not path.exists():
        return set()
    try:
        return set(json.loads(path.read_text(encoding="utf-8"))["generated"])
    except (ValueError, KeyError, TypeError):
        return set()


def differences(rendered: Rendered, site: Path) -> list[str]:
    """What `build` would change: files that differ, are missing, or were generated before and are stale."""
    changes = []
    for name, content in sorted(rendered.files.items()):
        target = site / name
        if not target.exists():
            changes.append(f"missing   {target}")
        elif target.read_text(encoding="utf-8") != content:
            changes.append(f"differs   {target}")
    for name in sorted(_manifest(site) - set(rendered.files)):
        if (site / name).exists():
            changes.append(f"stale     {site / name} (generated earlier; its spec is gone)")
    return changes


def write(rendered: Rendered, site: Path) -> list[str]:
    """Write every changed file atomically; remove only stale files that the manifest says opdoc made."""
    site.mkdir(parents=True, exist_ok=True)
    previous = _manifest(site)
    written = []
    files = dict(rendered.files)
    files[MANIFEST] = json.dumps({"generator": f"opdoc {__version__}", "generated": sorted(rendered.files)},
                                 indent=2) + "\n"
    staged: list[tuple[Path, Path]] = []
    try:
        for name, content in sorted(files.items()):
            target = site / name
            if target.exists() and target.read_text(encoding="utf-8") == content:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, temp = tempfile.mkstemp(dir=target.parent, prefix=".opdoc-", suffix=".tmp")
            with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
                stream.write(content)
            staged.append((Path(temp), target))
    except BaseException:
        for temp, _ in staged:
            temp.unlink(missing_ok=True)
        raise
    for temp, target in staged:
        os.replace(temp, target)
        if target.name != MANIFEST:
            written.append(str(target))
    for name in sorted(previous - set(rendered.files)):
        stale = site / name
        if stale.is_file():  # listed in opdoc's own manifest: opdoc made it, so opdoc may remove it
            stale.unlink()
            written.append(f"removed {stale}")
    return written
