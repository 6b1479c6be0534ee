"""The one jinja2 Environment, where every value enters a page.

Values are escaped at that one door: the Environment's `finalize` turns every value a template
prints into plain text (escape.escape_text) unless it was marked safe (markupsafe.Markup) by a filter
that escaped it for its own context: `prose` (Markdown written by a spec's author), `code` (an inline
code span), `comment` (inside an HTML comment), `tex` (display math), `page` (a link to an op page).
Code blocks are written with `{% fence "python" %}...{% endfence %}`: inside, values are printed as
typed, and the fence is chosen longer than any backtick run they hold.

Imports nothing heavy (no sympy), so that a build's helper process can compile the templates while
the main process imports sympy (opdoc/prefetch.py): `compile_all` returns them compiled, and
`use_compiled` hands them to every Environment made afterwards. jinja2 compares each template's
source with the checksum compiled with it, so a template edited in between is compiled again.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
import jinja2.ext
from jinja2 import nodes
from jinja2.bccache import Bucket, BytecodeCache
from markupsafe import Markup

from opdoc import escape


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


def environment(templates: Path, compiled: BytecodeCache | None = None) -> jinja2.Environment:
    """The Environment of every page (`compiled`: where its compiled templates come from and go;
    by default, those `use_compiled` was given)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,  # a missing value fails the build instead of printing nothing
        autoescape=True,  # with `_finalize`: Markdown escaping of every value, not jinja's HTML escaping
        finalize=_finalize,
        extensions=[FenceExtension],
        bytecode_cache=compiled if compiled is not None else _Compiled(dict(_HANDED)) if _HANDED else None,
    )
    env.filters.update(FILTERS)
    return env


class _Compiled(BytecodeCache):
    """Compiled templates held in memory, by jinja2's key for each (nothing is written anywhere)."""

    def __init__(self, compiled: dict[str, bytes]):
        self.compiled = compiled

    def load_bytecode(self, bucket: Bucket) -> None:
        if bucket.key in self.compiled:
            bucket.bytecode_from_string(self.compiled[bucket.key])  # checks the source's checksum

    def dump_bytecode(self, bucket: Bucket) -> None:
        self.compiled[bucket.key] = bucket.bytecode_to_string()


_HANDED: dict[str, bytes] = {}  # what the helper compiled (use_compiled), for every Environment made later


def compile_all(templates: Path) -> dict[str, bytes]:
    """Every template under `templates` compiled as `environment` compiles it; a template that does not
    compile is left out (the build compiles it again, and reports its error with its line)."""
    compiled: dict[str, bytes] = {}
    env = environment(templates, _Compiled(compiled))
    for name in env.list_templates(extensions=["j2"]):
        try:
            env.get_template(name)
        except jinja2.TemplateError:
            continue
    return compiled


def use_compiled(compiled: dict[str, bytes]) -> None:
    """What this build's helper compiled, in place of what an earlier build's helper did."""
    _HANDED.clear()
    _HANDED.update(compiled)
