"""Stage 3a, shape for rendering: turn an evaluated op into the plain values its page shows.

Templates hold layout only; every number, formula string and link is decided here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import sympy
from markupsafe import Markup

from opdoc import __version__
from opdoc.catalog import PLACEHOLDER, Catalog, ParsedSpec
from opdoc.escape import code_span, escape_text
from opdoc.evaluate import Evaluated, Evaluator, dominant_terms
from opdoc.exact import free_symbols
from opdoc.source import ClassSource, class_source
from opdoc.formula import engineering, exact_number, latex, plain_text, source_text, with_exact
from opdoc.placeholders import QUANTITY_UNITS, parse_placeholder, placeholder_op
from opdoc.registry import DTYPES, KERNELS, UNITS
from opdoc.spec import SpecError, SpecProblem, in_variant, variant_names

DTYPE_SHORT = {name: dtype.short for name, dtype in DTYPES.items()}


@dataclass
class Row:
    """One line of a breakdown: a label, its formula and its value at the example."""

    name: str
    kind: str
    formula: str
    value: str
    explain: str
    link: str | None = None


@dataclass
class VariantView:
    name: str | None
    title: str
    operations: list[Row]
    totals: dict[str, str]  # quantity -> formatted value at the primary example
    total_formulas: dict[str, str]
    total_latex: str
    dominant_largest: str
    dominant_growth: str
    by_example: list[dict[str, str]]
    parameters: list[Row]
    activations: list[Row]
    caches: list[Row]
    peaks: list[Row]


@dataclass
class OpView:
    name: str
    family: str
    family_title: str
    family_order: int
    spec_path: str
    version: str
    summary: str
    what_it_is: str
    source: ClassSource
    upstream: str
    upstream_source: str
    params: list[dict[str, str]]
    components: list[dict[str, str]]
    behavior: list[str]
    mermaid: str
    pseudo_code: str
    math: str | None
    implementation_notes: list[str]
    assume: list[dict[str, str]]
    primary_title: str
    examples: list[dict[str, str]]
    variants: list[VariantView]
    model_kernel: str
    model_title: str
    dtype: str
    related: list[dict[str, object]]
    usage: str
    config_example: str | None
    performance: str
    references: list[str]
    index_row: dict[str, str] = field(default_factory=dict)
    gpu_device: str | None = None
    gpu_rows: list[dict[str, str]] = field(default_factory=list)


class ViewBuilder:
    def __init__(self, catalog: Catalog, evaluator: Evaluator, escape_prose, escape_label, escape_step,
                 gpu: dict | None = None):
        self.gpu = gpu
        self.catalog = catalog
        self.ev = evaluator
        self.escape_prose = escape_prose
        self.escape_label = escape_label
        self.escape_step = escape_step
        self.dtype = catalog.model.dtype
        self.parents = self._parents()

    def _parents(self) -> dict[str, list[str]]:
        parents: dict[str, list[str]] = {}
        for item in self.catalog.specs.values():
            for child in item.spec.children:
                parents.setdefault(child.op, [])
                if item.spec.op not in parents[child.op]:
                    parents[child.op].append(item.spec.op)
        return parents

    # ------------------------------------------------------------------ text

    def fill(self, item: ParsedSpec, text: str, example: str | None = None, code: bool = False) -> str:
        """Replace {{placeholders}} with computed values; escape raw HTML unless the text is a code block."""
        def value(match) -> str:
            name, at, variant = parse_placeholder(match.group(1))
            at = at or example or item.spec.examples[0]
            if name in self.catalog.symbols:  # a dimension reads as a plain integer, in prose and code alike
                return str(self.ev.at(item, self.catalog.symbols[name], at, name))
            op = placeholder_op(match.group(1)) or item.spec.op  # a sibling op of the same scope, or this one
            variant = variant or self.ev.variants(op)[0]
            return engineering(self.ev.evaluate_at(op, at, variant)[name], QUANTITY_UNITS[name])
        return PLACEHOLDER.sub(value, text if code else self.escape_prose(text))

    def fmt(self, expr: sympy.Expr, unit: str, item: ParsedSpec, example: str, what: str) -> str:
        return with_exact(self.ev.at(item, expr, example, what), unit)

    # ------------------------------------------------------------------ page

    def build(self, op: str) -> OpView:
        item = self.catalog.specs[op]
        spec = item.spec
        scope = self.catalog.model.scopes[spec.scope]
        primary = spec.examples[0]
        source = class_source(item, self.catalog)
        params = self._params(item, source)
        variants = [self._variant(item, variant) for variant in self.ev.variants(op)]
        headline = self.ev.evaluate_at(op, primary, self.ev.variants(op)[0])
        index_row = {  # short figures keep the overview table narrow; pages carry the exact integers
            "op": op, "family": self.catalog.model.families[spec.family], "example": scope.examples[primary].title,
            "parameters": engineering(headline["parameters"], "params"),
            "flops": engineering(headline["forward_flops"], "flops"),
            "peak": engineering(headline["peak"], "bytes"),
        }
        return OpView(
            name=op, family=spec.family, family_title=self.catalog.model.families[spec.family],
            family_order=list(self.catalog.model.families).index(spec.family), spec_path=item.path,
            version=__version__, summary=self.fill(item, spec.summary),
            what_it_is=self.fill(item, spec.prose.what_it_is), source=source,
            upstream=f"{spec.upstream.file}:{spec.upstream.lines[0]}-{spec.upstream.lines[1]}",
            upstream_source=self._upstream_source(item), params=params,
            components=self._components(item), behavior=[self.fill(item, b) for b in spec.constructor.behavior],
            mermaid=self._mermaid(item), pseudo_code=self.fill(item, spec.prose.pseudo_code, code=True),
            math=self.fill(item, spec.prose.math, code=True) if spec.prose.math else None,
            implementation_notes=[self.fill(item, n) for n in spec.prose.implementation_notes],
            assume=self._assume(item), primary_title=scope.examples[primary].title,
            examples=[{"name": e, "title": scope.examples[e].title, "why": scope.examples[e].why} for e in spec.examples],
            variants=variants, model_kernel=self.catalog.model.attention_kernel, model_title=self.catalog.model.title, dtype=DTYPE_SHORT[self.dtype],
            related=self._related(item), usage=self.fill(item, spec.prose.usage, code=True),
            config_example=json.dumps({k: scope.config[k] for k in spec.prose.config_keys}, indent=2) if spec.prose.config_keys else None, performance=self.fill(item, spec.prose.performance),
            references=[self.fill(item, r) for r in spec.prose.references], index_row=index_row,
            **self._gpu(item),
        )

    def _upstream_source(self, item: ParsedSpec) -> str:
        """Where a reader finds the upstream file: the spec's own word, else the model's repository."""
        if item.spec.upstream.source:
            return item.spec.upstream.source
        source = self.catalog.model.source
        return f"{source.repository}, commit {source.commit}" if source else "upstream source not recorded"

    def _gpu(self, item: ParsedSpec) -> dict:
        """Rows of the committed GPU report for this op: measured peak beside the formula, and time."""
        if not self.gpu:
            return {}
        titles = self.catalog.model.scopes[item.spec.scope].examples
        rows = []
        for entry in self.gpu.get("results", []):
            if entry.get("op") != item.spec.op or "error" in entry:
                continue
            example = titles[entry["example"]].title if entry.get("example") in titles else entry.get("point", "")
            rate = entry.get("flops_per_second")
            rows.append({
                "example": example + (f" ({entry['variant']})" if entry.get("variant") else ""),
                "kernel": entry.get("kernel", ""),
                "measured": engineering(entry["peak_bytes"], "bytes"),
                "formula": engineering(entry["formula_peak_bytes"], "bytes"),
                "time": f"{entry['median_seconds'] * 1e3:.3f} ms",
                "rate": engineering(round(rate), "flops") + "/s" if rate else "n/a",
            })
        return {"gpu_device": self.gpu.get("device"), "gpu_rows": rows}

    def _params(self, item: ParsedSpec, source: ClassSource) -> list[dict[str, str]]:
        documented = item.spec.constructor.parameters
        problems, rows = [], []
        if source.params is None:  # a library's own class: its parameters as the spec documents them
            return [{"name": name, "default": None, "description": self.fill(item, doc.description),
                     "typical": self.fill(item, doc.typical) if doc.typical else None}
                    for name, doc in documented.items()]
        for name, default in source.params:
            if name not in documented:
                problems.append(SpecProblem(item.path, item.line("constructor", "parameters"),
                                            "constructor.parameters",
                                            f"signature parameter '{name}' of {source.file} is not documented; add it"))
                continue
            doc = documented[name]
            rows.append({"name": name, "default": default, "description": self.fill(item, doc.description),
                         "typical": self.fill(item, doc.typical) if doc.typical else None})
        for name in documented:
            if name not in dict(source.params):
                problems.append(SpecProblem(item.path, item.line("constructor", "parameters", name),
                                            f"constructor.parameters.{name}",
                                            f"'{name}' is not a parameter of {item.spec.op}.__init__ in {source.file}"))
        if problems:
            raise SpecError(problems)
        return rows

    def _shape(self, item: ParsedSpec, index: int) -> str:
        tensor = item.spec.tensors[index]
        return "(" + ", ".join(plain_text(item.exprs[f"tensors.{index}.shape.{a}"]) for a in range(len(tensor.shape))) + ")"

    def _components(self, item: ParsedSpec) -> list[dict[str, str]]:
        spec, primary = item.spec, item.spec.examples[0]
        rows = []
        first = next(iter(spec.variants), None)  # components are described for the first variant
        for name, component in spec.constructor.components.items():
            # Already Markdown (a code span per tensor name), so marked safe for the template.
            shapes = [Markup(f"{code_span(t.name)} {escape_text(self._shape(item, i))}") for i, t in enumerate(spec.tensors)
                      if t.role == "parameter" and (t.name == name or t.name.startswith(name + "."))
                      and in_variant(t.only, first)]
            rows.append({"name": name, "type": component.type, "purpose": self.fill(item, component.purpose),
                         "shapes": Markup(", ").join(shapes), "link": None})
        for index, child in enumerate(spec.children):
            count = item.exprs.get(f"children.{index}.instances", item.exprs[f"children.{index}.count"])
            params = self.ev.quantities(child.op, child.variant).parameters.xreplace(
                self.ev.child_binding(item, index))
            rows.append({"name": child.name, "type": child.op + (f" ({child.variant})" if child.variant else ""),
                         "purpose": self.fill(item, child.why),
                         "shapes": f"× {plain_text(count)}, {self.fmt(count * params, 'params', item, primary, 'parameters')}"
                                   + (f" (only in the {' and '.join(variant_names(child.only))} variant"
                                      f"{'s' if len(variant_names(child.only)) > 1 else ''})" if child.only else "")
                                   + (f" (only with the {child.kernel} kernel)" if child.kernel else ""),
                         "link": child.op})
        return rows

    def _mermaid(self, item: ParsedSpec) -> str:
        spec = item.spec
        tensors = {t.name: i for i, t in enumerate(spec.tensors)}
        lines = ["sequenceDiagram"]
        for participant in spec.flow.participants:
            label = participant.get("label", participant["id"])
            if "tensor" in participant:
                index = tensors[participant["tensor"]]
                dtype = DTYPE_SHORT.get(spec.tensors[index].dtype, DTYPE_SHORT[self.dtype])
                label = f"{label}<br/>{self._shape(item, index)} {dtype}"
            lines.append(f"    participant {participant['id']} as {self.escape_label(label)}")
        lines.append("")
        for step in spec.flow.steps:
            indent = "    " * (1 + max(0, len(step) - len(step.lstrip(" "))) // 4)
            lines.append(indent + self.escape_step(step.strip()))
        return "\n".join(lines)

    def _symbols_used(self, item: ParsedSpec) -> list[sympy.Symbol]:
        used: set[sympy.Symbol] = set()
        for variant in self.ev.variants(item.spec.op):
            for expr in self.ev.quantities(item.spec.op, variant).derived().values():
                used |= free_symbols(expr)
        for key, expr in item.exprs.items():
            if key.startswith("children.") and ".bind." in key:  # a child's scope may set some of its names
                child = item.spec.children[int(key.split(".")[1])]
                expr = expr.xreplace(self.ev.scope_constants(self.catalog.specs[child.op].spec.scope, item.spec.scope))
            used |= expr.free_symbols
        summed = {child.steps.symbol for child in item.spec.children if child.steps is not None}  # bound by the sum
        return sorted((s for s in used if s.name in self.catalog.symbols and s.name not in summed), key=lambda s: s.name)

    def _assume(self, item: ParsedSpec) -> list[dict[str, str]]:
        rows = []
        for symbol in self._symbols_used(item):
            values = [exact_number(self.ev.at(item, symbol, e, symbol.name)) for e in item.spec.examples]
            rows.append({"symbol": symbol.name, "meaning": self.catalog.model.meaning(symbol.name),
                         "examples": " / ".join(dict.fromkeys(values))})
        return rows

    def _variant(self, item: ParsedSpec, variant: str | None) -> VariantView:
        """One variant's tables, every number read from the evaluated model at the primary example."""
        spec, ev = item.spec, self.ev
        primary = spec.examples[0]
        binding = ev.binding(spec.scope, primary)
        result = ev.evaluate(spec.op, binding, variant, where=f"example '{primary}'")
        operations = []
        for part in result.operations:
            operation = spec.operations[part.index]
            kind = "tensor-core" if operation.unit == "tensor" else "CUDA-core"
            if operation.kernel:
                kind += f", {operation.kernel} kernel only"
            operations.append(Row(operation.name, kind, source_text(operation.flops), with_exact(part.flops, "flops"),
                                  self.fill(item, operation.explain)))
        for part in result.children:
            child = spec.children[part.index]
            flops = part.totals["tensor_flops"] + part.totals["cuda_flops"]
            bind = ", ".join(f"{k} → {source_text(v)}" for k, v in child.bind.items())
            formula = f"{_times(child)} × FLOPs({child.op}{', ' + bind if bind else ''})"
            operations.append(Row(child.name, "child", formula, with_exact(flops, "flops"),
                                  self.fill(item, child.why), link=child.op))
        totals = {name: with_exact(value, UNITS[name]) for name, value in result.totals.items()}
        expanded = {name: ev.expanded(result.formulas[name]) for name in ("tensor_flops", "cuda_flops")}
        # The sum of two expansions is expanded: sympy only gathers like terms.
        forward = expanded["forward_flops"] = expanded["tensor_flops"] + expanded["cuda_flops"]
        formulas = {name: plain_text(expanded[name]) for name in ("forward_flops", "tensor_flops", "cuda_flops")}
        terms = dominant_terms(forward, binding)
        total_value = result.totals["forward_flops"]
        if terms:
            largest, growing = terms
            share = f"{float(largest.value / total_value) * 100:.1f}%" if total_value else "n/a"
            dominant_largest = f"{plain_text(largest.text)} = {with_exact(largest.value, 'flops')} ({share} of the total)"
            dominant_growth = plain_text(growing.text)
        else:
            dominant_largest = dominant_growth = "none (no FLOPs)"
        by_example = []
        for example in spec.examples:
            values = ev.evaluate_at(spec.op, example, variant)
            by_example.append({"title": self.catalog.model.scopes[spec.scope].examples[example].title,
                               **{name: engineering(values[name], UNITS[name]) for name in values}})
        title = spec.variants.get(variant, "") if variant else ""
        return VariantView(
            name=variant, title=title, operations=operations, totals=totals, total_formulas=formulas,
            total_latex=latex(forward), dominant_largest=dominant_largest,
            dominant_growth=dominant_growth, by_example=by_example,
            parameters=self._tensor_rows(item, result, ("parameter",)),
            activations=self._tensor_rows(item, result, ("intermediate", "output")),
            caches=self._tensor_rows(item, result, ("cache",)), peaks=self._peaks(item, result),
        )

    def _tensor_rows(self, item: ParsedSpec, result: Evaluated, roles: tuple[str, ...]) -> list[Row]:
        spec = item.spec
        rows = []
        for part in result.tensors:
            tensor = spec.tensors[part.index]
            if tensor.role not in roles or tensor.from_child:
                continue
            short = DTYPE_SHORT[part.dtype]
            shape = shape_product([item.exprs[f"tensors.{part.index}.shape.{a}"] for a in range(len(tensor.shape))])
            if tensor.role == "parameter":
                formula, value = shape, f"{with_exact(part.numel, 'params')}; {with_exact(part.bytes, 'bytes')} at {short}"
            else:
                formula = f"{shape} × {DTYPES[part.dtype].bytes} B ({short})"
                value = with_exact(part.bytes, "bytes")
            rows.append(Row(tensor.name, short, formula, value, self.fill(item, tensor.note)))
        field = {"parameter": "parameters", "intermediate": "activation_bytes", "cache": "kv_cache_bytes"}[roles[0]]
        unit = "params" if field == "parameters" else "bytes"
        for part in result.children:
            child = spec.children[part.index]
            if self.ev.quantities(child.op, child.variant, result.kernel).__dict__[field] == 0:
                continue
            if field == "parameters":  # weights are built once per instance, whatever the steps
                times = _factor(source_text(child.instances if child.instances is not None else child.count))
            elif field == "kv_cache_bytes" and child.steps is not None and child.steps.replaces_cache:
                times = f"last of {_times(child)}"
            else:
                times = _times(child)
            # Bytes name the model dtype they follow (the child's page lists any tensor of another dtype).
            dtype = "" if field == "parameters" else f" ({DTYPE_SHORT[self.dtype]} model dtype)"
            rows.append(Row(child.name, "child", f"{times} × {child.op}{dtype}",
                            with_exact(part.totals[field], unit), "", link=child.op))
        return rows

    def _peaks(self, item: ParsedSpec, result: Evaluated) -> list[Row]:
        spec = item.spec
        keys = {kernel: spec.memory.key_for(result.variant, kernel) for kernel in KERNELS}
        # One row when every kernel reads the same formula, one per kernel otherwise.
        kernels = ["any"] if len(set(keys.values())) == 1 else list(KERNELS)
        rows = []
        for kernel in kernels:
            value = result.totals["peak" if kernel == "any" else f"peak_{kernel}"]
            note = spec.memory.peak[keys[result.kernel if kernel == "any" else kernel]]
            # The author's phase-by-phase formula reads better than its expansion into nested maxima.
            rows.append(Row(kernel, KERNELS.get(kernel, "any attention kernel"), source_text(note.formula),
                            with_exact(value, "bytes"), self.fill(item, note.explain)))
        return rows

    def _related(self, item: ParsedSpec) -> list[dict[str, object]]:
        spec = item.spec
        groups = []

        def entries(names: dict[str, str], auto: list[str]) -> list[dict[str, str]]:
            rows = {name: self.fill(item, text) for name, text in names.items()}
            for name in auto:
                rows.setdefault(name, "")
            return [{"name": n, "text": t, "link": n if n in self.catalog.specs else None} for n, t in rows.items()]

        children = list(dict.fromkeys(child.op for child in spec.children))
        for title, names, auto in (
            ("Used by", spec.related.used_by, self.parents.get(spec.op, [])),
            ("Uses / Depends on", spec.related.uses, children),
            ("Inherits from", spec.related.inherits_from, []),
            ("Alternative implementations", spec.related.alternatives, []),
            ("Related patterns", spec.related.patterns, []),
        ):
            rows = entries(names, auto)
            if rows:
                groups.append({"title": title, "rows": rows})
        return groups


def shape_product(axes: list[sympy.Expr]) -> str:
    """A tensor's element count as printed: its axes multiplied; a 0-dimensional tensor holds 1 element."""
    return " × ".join(_factor(axis) for axis in axes) or "1"


def _factor(axis: sympy.Expr | str) -> str:
    """An axis or count printed as one factor of a product: a sum keeps its brackets (B × H × (P + S))."""
    text = axis if isinstance(axis, str) else plain_text(axis)
    is_sum = axis.is_Add if isinstance(axis, sympy.Expr) else any(op in text.strip("()") for op in (" + ", " - "))
    return f"({text})" if is_sum and not (text.startswith("(") and text.endswith(")")) else text


def _times(child) -> str:
    """How often a child runs: its count, or a sum over its steps (Σ j = 1 … N_out - 1)."""
    count = _factor(source_text(child.count))
    if child.steps is None:
        return count
    steps = f"Σ {child.steps.symbol} = {source_text(child.steps.first)} … {source_text(child.steps.last)}"
    return steps if str(child.count) == "1" else f"{steps} of {count}"
