"""Stage 3a, shape for rendering: turn an evaluated op into the plain values its page shows.

Templates hold layout only; every number, formula string and link is decided here.
"""

from __future__ import annotations

import ast
import json
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import sympy
from markupsafe import Markup

from opdoc import __version__
from opdoc.catalog import PLACEHOLDER, Catalog, ParsedSpec
from opdoc.escape import code_span, escape_text
from opdoc.evaluate import KERNELS, Evaluator, dominant_terms
from opdoc.formula import engineering, exact_number, plain_text, source_text, with_exact
from opdoc.placeholders import QUANTITY_UNITS, parse_placeholder
from opdoc.spec import DTYPE_BYTES, FAMILIES, SpecError, SpecProblem

DTYPE_SHORT = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32", "int64": "int64", "int32": "int32",
               "bool": "bool", "uint8": "uint8"}


@dataclass
class ClassSource:
    file: str
    first: int
    last: int
    source: str
    signature: str
    params: list[tuple[str, str | None]]  # (name, default as written)


def class_source(item: ParsedSpec, root: Path) -> ClassSource:
    """The reference implementation's class, read with `ast` from its file: rendering needs no torch."""
    module, _, name = item.spec.implementation.rpartition(".")
    problem = SpecProblem(item.path, item.line("implementation"), "implementation", "")
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    if found is None or not found.origin:
        raise SpecError([SpecProblem(**{**problem.__dict__, "message": f"module '{module}' not found; write it or fix the path"})])
    path = Path(found.origin)
    text = path.read_text(encoding="utf-8")
    for node in ast.parse(text).body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            lines = text.splitlines()[first - 1:node.end_lineno]
            init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
            signature, params = _signature(init)
            shown = _relative(path, root)
            return ClassSource(shown, first, node.end_lineno, "\n".join(lines), signature, params)
    raise SpecError([SpecProblem(**{**problem.__dict__, "message": f"class '{name}' not found in {path.name}"})])


def _relative(path: Path, root: Path) -> str:
    """The file as the reader finds it: relative to the repository being built, else to opdoc's own."""
    for base in (root, Path(__file__).resolve().parent.parent):
        try:
            return str(path.resolve().relative_to(base.resolve()))
        except ValueError:
            continue
    return path.name


def _signature(init: ast.FunctionDef | None) -> tuple[str, list[tuple[str, str | None]]]:
    if init is None:
        return "def __init__(self)", []
    args = init.args
    positional = [*args.posonlyargs, *args.args]
    defaults = [None] * (len(positional) - len(args.defaults)) + [ast.unparse(d) for d in args.defaults]
    params = [(a.arg, d) for a, d in zip(positional, defaults) if a.arg != "self"]
    params += [(a.arg, ast.unparse(d) if d is not None else None) for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    header = f"def __init__({ast.unparse(args)})"
    return header, params


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
            variant = variant or self.ev.variants(item.spec.op)[0]
            return engineering(self.ev.evaluate_at(item.spec.op, at, variant)[name], QUANTITY_UNITS[name])
        return PLACEHOLDER.sub(value, text if code else self.escape_prose(text))

    def fmt(self, expr: sympy.Expr, unit: str, item: ParsedSpec, example: str, what: str) -> str:
        return with_exact(self.ev.at(item, expr, example, what), unit)

    # ------------------------------------------------------------------ page

    def build(self, op: str) -> OpView:
        item = self.catalog.specs[op]
        spec = item.spec
        scope = self.catalog.model.scopes[spec.scope]
        primary = spec.examples[0]
        source = class_source(item, self.catalog.root)
        params = self._params(item, source)
        variants = [self._variant(item, variant) for variant in self.ev.variants(op)]
        headline = self.ev.evaluate_at(op, primary, self.ev.variants(op)[0])
        index_row = {  # short figures keep the overview table narrow; pages carry the exact integers
            "op": op, "family": FAMILIES[spec.family], "example": scope.examples[primary].title,
            "parameters": engineering(headline["parameters"], "params"),
            "flops": engineering(headline["forward_flops"], "flops"),
            "peak": engineering(headline["peak"], "bytes"),
        }
        return OpView(
            name=op, family=spec.family, family_title=FAMILIES[spec.family], spec_path=item.path,
            version=__version__, summary=self.fill(item, spec.summary),
            what_it_is=self.fill(item, spec.prose.what_it_is), source=source,
            upstream=f"{spec.upstream.file}:{spec.upstream.lines[0]}-{spec.upstream.lines[1]}",
            upstream_source=spec.upstream.source, params=params,
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
        for name, component in spec.constructor.components.items():
            # Already Markdown (a code span per tensor name), so marked safe for the template.
            shapes = [Markup(f"{code_span(t.name)} {escape_text(self._shape(item, i))}") for i, t in enumerate(spec.tensors)
                      if t.role == "parameter" and (t.name == name or t.name.startswith(name + "."))]
            rows.append({"name": name, "type": component.type, "purpose": self.fill(item, component.purpose),
                         "shapes": Markup(", ").join(shapes), "link": None})
        for index, child in enumerate(spec.children):
            count = item.exprs.get(f"children.{index}.instances", item.exprs[f"children.{index}.count"])
            params = self.ev.quantities(child.op, child.variant).parameters.xreplace(
                self.ev.child_binding(item, index))
            rows.append({"name": child.name, "type": child.op + (f" ({child.variant})" if child.variant else ""),
                         "purpose": self.fill(item, child.why),
                         "shapes": f"× {plain_text(count)}, {self.fmt(count * params, 'params', item, primary, 'parameters')}"
                                   + (f" (only in the {child.only} variant)" if child.only else ""),
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
                used |= expr.free_symbols
        for expr in item.exprs.values():
            used |= expr.free_symbols
        return sorted((s for s in used if s.name in self.catalog.symbols), key=lambda s: s.name)

    def _assume(self, item: ParsedSpec) -> list[dict[str, str]]:
        rows = []
        for symbol in self._symbols_used(item):
            values = [exact_number(self.ev.at(item, symbol, e, symbol.name)) for e in item.spec.examples]
            rows.append({"symbol": symbol.name, "meaning": self.catalog.model.symbols[symbol.name],
                         "examples": " / ".join(dict.fromkeys(values))})
        return rows

    def _variant(self, item: ParsedSpec, variant: str | None) -> VariantView:
        spec, ev = item.spec, self.ev
        primary = spec.examples[0]
        q = ev.quantities(spec.op, variant)
        derived = q.derived()
        for kernel in KERNELS:
            derived[f"peak_{kernel}"] = ev.quantities(spec.op, variant, kernel).peak
        binding = ev.binding(spec.scope, primary)
        operations = []
        for i, operation in enumerate(spec.operations):
            expr = item.exprs[f"operations.{i}.flops"]
            if operation.kernel not in (None, self.ev.kernel):
                continue  # the other kernel's operations are summarised in the comparison table
            kind = "tensor-core" if operation.unit == "tensor" else "CUDA-core"
            if operation.kernel:
                kind += f", {operation.kernel} kernel only"
            operations.append(Row(operation.name, kind,
                                  source_text(operation.flops),
                                  self.fmt(expr, "flops", item, primary, operation.name),
                                  self.fill(item, operation.explain)))
        for i, child in ev.active_children(item, variant):
            sub = ev.quantities(child.op, child.variant)
            count = item.exprs[f"children.{i}.count"]
            flops = count * sub.forward_flops.xreplace(ev.child_binding(item, i))
            bind = ", ".join(f"{k} → {source_text(v)}" for k, v in child.bind.items())
            formula = f"{source_text(child.count)} × FLOPs({child.op}{', ' + bind if bind else ''})"
            operations.append(Row(child.name, "child", formula,
                                  self.fmt(flops, "flops", item, primary, child.name),
                                  self.fill(item, child.why), link=child.op))
        units = {"tensor_flops": "flops", "cuda_flops": "flops", "forward_flops": "flops", "backward_flops": "flops",
                 "training_step_flops": "flops", "parameters": "params", "active_parameters": "params",
                 "parameter_bytes": "bytes", "gradient_bytes": "bytes", "adamw_bytes": "bytes",
                 "training_bytes": "bytes", "activation_bytes": "bytes", "kv_cache_bytes": "bytes",
                 "io_read_bytes": "bytes", "io_write_bytes": "bytes", "io_bytes": "bytes",
                 "peak_eager": "bytes", "peak_fused": "bytes", "peak": "bytes"}
        totals = {name: self.fmt(expr, units[name], item, primary, name) for name, expr in derived.items()}
        formulas = {name: plain_text(sympy.expand(derived[name])) for name in ("forward_flops", "tensor_flops", "cuda_flops")}
        terms = dominant_terms(q.forward_flops, binding)
        total_value = ev.at(item, q.forward_flops, primary, "forward_flops")
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
                               **{name: engineering(values[name], units[name]) for name in values}})
        title = spec.variants.get(variant, "") if variant else ""
        return VariantView(
            name=variant, title=title, operations=operations, totals=totals, total_formulas=formulas,
            total_latex=sympy.latex(sympy.expand(q.forward_flops)), dominant_largest=dominant_largest,
            dominant_growth=dominant_growth, by_example=by_example,
            parameters=self._tensor_rows(item, variant, ("parameter",)),
            activations=self._tensor_rows(item, variant, ("intermediate", "output")),
            caches=self._tensor_rows(item, variant, ("cache",)), peaks=self._peaks(item, variant),
        )

    def _tensor_rows(self, item: ParsedSpec, variant: str | None, roles: tuple[str, ...]) -> list[Row]:
        spec, ev, primary = item.spec, self.ev, item.spec.examples[0]
        rows = []
        for i, tensor in enumerate(spec.tensors):
            if tensor.role not in roles or tensor.from_child or tensor.kernel not in (None, ev.kernel):
                continue
            dtype = self.dtype if tensor.dtype == "model" else tensor.dtype
            size = DTYPE_BYTES[dtype]
            shape = " × ".join(plain_text(item.exprs[f"tensors.{i}.shape.{a}"]) for a in range(len(tensor.shape)))
            unit = "params" if tensor.role == "parameter" else "bytes"
            value = ev.tensor_numel(item, i) if tensor.role == "parameter" else ev.tensor_bytes(item, i)
            formula = shape if tensor.role == "parameter" else f"{shape} × {size} B ({DTYPE_SHORT[dtype]})"
            extra = (f"; {self.fmt(ev.tensor_bytes(item, i), 'bytes', item, primary, tensor.name)} at {DTYPE_SHORT[dtype]}"
                     if tensor.role == "parameter" else "")
            rows.append(Row(tensor.name, DTYPE_SHORT[dtype], formula, self.fmt(value, unit, item, primary, tensor.name) + extra,
                            self.fill(item, tensor.note)))
        field = {"parameter": "parameters", "intermediate": "activation_bytes", "cache": "kv_cache_bytes"}[roles[0]]
        unit = "params" if field == "parameters" else "bytes"
        for i, child in ev.active_children(item, variant):
            sub = getattr(ev.quantities(child.op, child.variant), field)
            if sub == 0:
                continue
            count = item.exprs[f"children.{i}.count"]
            if field == "parameters":
                count = item.exprs.get(f"children.{i}.instances", count)
            value = count * sub.xreplace(ev.child_binding(item, i))
            rows.append(Row(child.name, "child", f"{source_text(child.count)} × {child.op}",
                            self.fmt(value, unit, item, primary, child.name), "", link=child.op))
        return rows

    def _peaks(self, item: ParsedSpec, variant: str | None) -> list[Row]:
        spec, primary = item.spec, item.spec.examples[0]
        labels = {"eager": "eager attention (scores materialised)", "fused": "fused attention kernel"}
        kernels = ["any"] if set(spec.memory.peak) == {"any"} else list(KERNELS)
        rows = []
        for kernel in kernels:
            expr = self.ev.quantities(spec.op, variant, None if kernel == "any" else kernel).peak
            note = spec.memory.peak.get(kernel) or spec.memory.peak["any"]
            # The author's phase-by-phase formula reads better than its expansion into nested maxima.
            rows.append(Row(kernel, labels.get(kernel, "any attention kernel"), source_text(note.formula), self.fmt(expr, "bytes", item, primary, f"peak {kernel}"),
                            self.fill(item, note.explain)))
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
