"""Stage 3b, render: the one jinja2 Environment, where every value enters a page.

Values are escaped at that one door: the Environment's `finalize` turns every value a template
prints into plain text (escape.escape_text) unless it was marked safe (markupsafe.Markup) by a filter
that escaped it for its own context: `prose` (Markdown written by a spec's author), `code` (an inline
code span), `comment` (inside an HTML comment), `tex` (display math), `page` (a link to an op page).
Code blocks are written with `{% fence "python" %}...{% endfence %}`: inside, values are printed as
typed, and the fence is chosen longer than any backtick run they hold. Writing the knowledge base
to disk is opdoc/write.py.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import jinja2
import jinja2.ext
from jinja2 import nodes
from markupsafe import Markup

from opdoc import __version__, escape
from opdoc.catalog import Catalog
from opdoc.evaluate import Evaluator
from opdoc.spec import FAMILIES
from opdoc.view import OpView, ViewBuilder
from opdoc.write import differences, write  # noqa: F401 - moved to opdoc/write.py; old imports keep working


@jinja2.pass_eval_context
def _finalize(eval_ctx, value):
    """Every value printed by a template: plain text unless marked safe, or as typed inside a fence."""
    if not eval_ctx.autoescape:  # only {% fence %} turns escaping off, and its fence holds anything
        return value
    if isinstance(value, Markup):
        return value
    return Markup(escape.escape_text(str(value)))


class FenceExtension(jinja2.ext.Extension):
    """`{% fence "python" %}...{% endfence %}` (optionally `{% fence "", "    " %}` to indent): a
    fenced code block whose body is printed as typed, fenced longer than any backtick run in it."""

    tags = {"fence"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        args = [parser.parse_expression()]
        if parser.stream.skip_if("comma"):
            args.append(parser.parse_expression())
        body = parser.parse_statements(("name:endfence",), drop_needle=True)
        block = nodes.CallBlock(self.call_method("_fence", args), [], [], body).set_lineno(lineno)
        return nodes.ScopedEvalContextModifier([nodes.Keyword("autoescape", nodes.Const(False))],
                                               [block]).set_lineno(lineno)

    def _fence(self, info: str, indent: str = "", caller=None) -> Markup:
        return Markup(escape.fence_block(str(caller()), info, indent))


def _page(op: str) -> Markup:
    # Op names are Python class names (spec.py checks), so the link needs no escaping; refuse otherwise.
    if not str(op).isidentifier():
        raise ValueError(f"not an op name: {op!r}")
    return Markup(f"op-{op}.md")


FILTERS = {
    "prose": lambda text: Markup(escape.escape_prose(str(text))),
    "code": lambda text: Markup(escape.code_span(str(text))),
    "comment": lambda text: Markup(escape.comment_text(str(text))),
    "tex": lambda text: Markup(escape.tex_text(str(text))),
    "page": _page,
}


def environment(templates: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,  # a missing value fails the build instead of printing nothing
        autoescape=True,  # with `_finalize`: Markdown escaping of every value, not jinja's HTML escaping
        finalize=_finalize,
        extensions=[FenceExtension],
    )
    env.filters.update(FILTERS)
    return env


def _as_typed(text: str) -> str:
    """The view takes prose as typed: templates escape it where it enters a page (the `prose` filter)."""
    return text


@dataclass
class Rendered:
    files: dict[str, str]  # path relative to site/ -> content


def render_all(catalog: Catalog, evaluator: Evaluator, templates: Path, timings=None,
               gpu: dict | None = None, conventions: bool = False) -> Rendered:
    stage = timings.stage if timings is not None else (lambda name: contextlib.nullcontext())
    env = environment(templates)
    env.globals["conventions_page"] = Markup("measured/conventions.md") if conventions else None
    builder = ViewBuilder(catalog, evaluator, _as_typed, escape.escape_mermaid_label,
                          escape.escape_mermaid_sequence_step, gpu)
    with stage("render"):
        views: list[OpView] = [builder.build(op) for op in sorted(catalog.specs)]
        page = env.get_template("op.md.j2")
        files = {f"op-{view.name}.md": page.render(op=view) for view in views}
    order = list(FAMILIES)
    rows = sorted((view.index_row | {"family_key": view.family} for view in views),
                  key=lambda row: (order.index(row["family_key"]), row["op"]))
    with stage("plots"):
        files.update(plot_files(catalog, evaluator, views))
    files["index.md"] = env.get_template("index.md.j2").render(
        rows=rows, model=catalog.model, version=__version__, families=FAMILIES, gpu=gpu,
        spec_dir=str(Path(catalog.model_path).parent))
    return Rendered(files)


def plot_files(catalog: Catalog, evaluator: Evaluator, views: list[OpView]) -> dict[str, str]:
    """SVG plots computed from the formulas: each op against its scope's sweep, and the index overview.

    The numbers are computed here; drawing (matplotlib, the slow part) runs in worker processes, one
    plot per task, so the output is the same bytes whatever the number of workers.
    """
    jobs: list[tuple[str, str, tuple, dict]] = []
    for view in views:
        item = catalog.specs[view.name]
        scope = catalog.model.scopes[item.spec.scope]
        primary = item.spec.examples[0]
        q = evaluator.quantities(view.name, evaluator.variants(view.name)[0])
        series = {"tensor": [], "cuda": [], "peak": []}
        for value in scope.sweep.values:
            binding = evaluator.binding(item.spec.scope, primary, {name: value for name in scope.sweep.vary})
            for key, expr in (("tensor", q.tensor_flops), ("cuda", q.cuda_flops), ("peak", q.peak)):
                series[key].append(float(expr.xreplace(binding)))
        example_x = float(evaluator.binding(item.spec.scope, primary)[catalog.symbols[scope.sweep.vary[0]]])
        jobs.append((f"plots/op-{view.name}.svg", "op_scaling_svg",
                     (view.name, [float(v) for v in scope.sweep.values], series["tensor"], series["cuda"],
                      series["peak"], example_x, view.primary_title), {"x_label": scope.sweep.label}))
    overview = []
    for view in views:
        values = evaluator.evaluate_at(view.name, catalog.specs[view.name].spec.examples[0],
                                       evaluator.variants(view.name)[0])
        overview.append((view.name, float(values["forward_flops"]), float(values["parameters"])))
    jobs.append(("plots/overview.svg", "breakdown_svg", (overview,), {}))
    return dict(zip((job[0] for job in jobs), _draw_all(jobs)))


def _draw(job: tuple[str, str, tuple, dict]) -> str:
    from opdoc import plots

    _, function, args, kwargs = job
    return getattr(plots, function)(*args, **kwargs)


def _draw_all(jobs: list) -> list[str]:
    import multiprocessing

    from opdoc import plots  # noqa: F401 - matplotlib loads once, before the workers fork

    workers = min(len(jobs), os.cpu_count() or 1)
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [_draw(job) for job in jobs]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return pool.map(_draw, jobs, chunksize=1)
