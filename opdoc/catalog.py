"""Stage 1, load (continued): read a model folder of specs, cross-check them and parse every formula.

The result, a `Catalog`, is the spine every later stage reads; no later stage re-reads YAML or
re-parses a formula. All problems of the run are collected before anything is raised.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sympy

from opdoc.formula import FormulaError, parse_formula, suggest
from opdoc.parallel import map_forked
from opdoc.placeholders import check_placeholder
from opdoc.spec import (
    DTYPE_BYTES,
    Located, ModelConfig, OpSpec, SpecError, SpecProblem, in_variant, read_yaml, validate, variant_names,
)

PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
# A magnitude typed into prose: a number followed by a FLOP, byte or parameter unit. Names such as
# SAM-B, top-6 or DeepSeek-3B-MoE are not magnitudes: they are glued to letters or hyphens.
MAGNITUDE = re.compile(
    r"(?<![\w.-])\d[\d,]*(?:\.\d+)?\s?(?:[KMGTP]i?)?\s?"
    r"(?:FLOPs?|FLOP/s|bytes?|B|parameters|params)(?![\w-])"
)


@dataclass
class ParsedSpec:
    """An op spec with its formulas parsed to sympy, plus where each field came from."""

    spec: OpSpec
    path: str
    located: Located
    # formula key ("operations.2.flops", "tensors.0.shape.1", ...) -> expression in declared symbols
    exprs: dict[str, sympy.Expr] = field(default_factory=dict)

    def line(self, *loc) -> int:
        return self.located.line_of(tuple(loc))


@dataclass
class Catalog:
    model: ModelConfig
    model_path: str
    symbols: dict[str, sympy.Symbol]
    specs: dict[str, ParsedSpec]  # by op name, in topological order (children first)
    root: Path
    model_located: Located | None = None
    model_dir: Path | None = None

    def model_line(self, *loc) -> int:
        return self.model_located.line_of(tuple(loc)) if self.model_located else 0



def symbol_table(model: ModelConfig) -> dict[str, sympy.Symbol]:
    # positive=True lets sympy simplify sqrt(x**2) and compare totals; sorted for a stable order.
    # Every model has DTYPE_BYTES: the bytes per element of its dtype, bound like any other symbol.
    return {name: sympy.Symbol(name, positive=True) for name in sorted({*model.symbols, DTYPE_BYTES})}


def load_catalog(model_dir: Path, root: Path, jobs: int = 1) -> Catalog:
    """Load `model_dir/model.yaml` and every other `*.yaml` in it as an op spec.

    With `jobs` > 1 the files are read and validated in that many processes (opdoc/parallel.py), the
    largest first, each file by whichever process is free; what they found is put back in file order,
    so the result and its problems are the same as read one after another."""
    problems: list[SpecProblem] = []
    model_file = model_dir / "model.yaml"
    files = sorted(path for path in model_dir.glob("*.yaml") if path.name != "model.yaml")
    outcomes: dict[Path, _Read] = {}
    largest_first = sorted([model_file, *files], key=lambda path: (-_size(path), path))
    for part in map_forked(lambda paths: [(path, _read(path, root, model_file)) for path in paths],
                           [[] for _ in range(jobs)], shared=largest_first):
        outcomes.update(part)
    model_display, model_located, model, model_problems = outcomes[model_file]
    problems.extend(model_problems)
    parsed: dict[str, ParsedSpec] = {}
    failed: set[str] = set()  # specs that did not load: their own error is reported, not their absence
    for path in files:
        display, located, spec, read_problems = outcomes[path]
        if read_problems:
            problems.extend(read_problems)
            failed.add(path.stem)
            continue
        if spec.op != path.stem:
            problems.append(SpecProblem(display, located.line_of(("op",)), "op",
                                        f"class '{spec.op}' must live in {spec.op}.yaml; rename the file or fix the name"))
        if spec.op in parsed:
            problems.append(SpecProblem(display, 1, "op", f"'{spec.op}' is specified twice"))
            continue
        if not spec.examples and model is not None and spec.scope in model.scopes:
            spec = spec.model_copy(update={"examples": [name for name, example in model.scopes[spec.scope].examples.items()
                                                        if not example.only or spec.op in example.only]})
        parsed[spec.op] = ParsedSpec(spec, display, located)
    if model is None:
        raise SpecError(problems)
    symbols = symbol_table(model)
    for item in parsed.values():
        problems.extend(_check_spec(item, model, symbols, parsed, failed))
    order, cycle_problems = _topological(parsed)
    problems.extend(cycle_problems)
    problems.extend(_check_modes(model, model_display, model_located, symbols, parsed))
    if problems:
        raise SpecError(problems)
    return Catalog(model, model_display, symbols, {name: parsed[name] for name in order}, root,
                   model_located, model_dir)


# A file read and validated: (its display path, its YAML with lines, the model or spec, problems).
_Read = tuple[str, "Located | None", "ModelConfig | OpSpec | None", list[SpecProblem]]


def _read(path: Path, root: Path, model_file: Path) -> _Read:
    display = _display(path, root)
    try:
        located = read_yaml(path, display)
        return display, located, validate(located, ModelConfig if path == model_file else OpSpec, display), []
    except SpecError as exc:
        return display, None, None, exc.problems


def _size(path: Path) -> int:
    """A file's bytes: what validating it costs, about."""
    try:
        return path.stat().st_size
    except OSError:  # read_yaml reports it
        return 0


def _check_modes(model: ModelConfig, display: str, located: Located, symbols: dict[str, sympy.Symbol],
                 parsed: dict[str, ParsedSpec]) -> list[SpecProblem]:
    """The mode pages name an op with the three variants, examples of its scope and formulas in symbols."""
    modes = model.modes
    if modes is None:
        return []
    problems: list[SpecProblem] = []

    def problem(loc: tuple, message: str) -> None:
        problems.append(SpecProblem(display, located.line_of(("modes", *loc)), ".".join(map(str, ("modes", *loc))), message))

    item = parsed.get(modes.op)
    if item is None:
        problem(("op",), f"no spec for '{modes.op}'{suggest(modes.op, sorted(parsed))}")
        return problems
    for key in ("job", "first", "step"):
        if getattr(modes, key) not in item.spec.variants:
            problem((key,), f"'{getattr(modes, key)}' is not a variant of {modes.op} ({', '.join(item.spec.variants) or 'none'})")
    if modes.job in item.spec.variants and not any(child.steps is not None and in_variant(child.only, modes.job)
                                                   for child in item.spec.children):
        problem(("job",), f"{modes.op}[{modes.job}] has no child with `steps`: a job is a first forward and its steps")
    named = _stages_named(item.spec.op, parsed, set())
    for stage in sorted(named - set(modes.stages)):
        problem(("stages",), f"stage '{stage}' (named under {modes.op}) is not listed; add it where pages should show it")
    for index, stage in enumerate(modes.stages):
        if stage not in named:
            problem(("stages", index), f"no child or operation under {modes.op} names stage '{stage}'"
                                       f"{suggest(stage, sorted(named))}")
    examples = model.scopes[item.spec.scope].examples if item.spec.scope in model.scopes else {}
    for name, page in modes.pages.items():
        if not re.fullmatch(r"[a-z0-9_]+", name):
            problem(("pages", name), "a page name is lower-case letters, digits and _ (it names mode-<name>.md)")
        for index, example in enumerate(page.examples):
            if example not in examples:
                problem(("pages", name, "examples", index), f"no example '{example}' in scope '{item.spec.scope}'"
                                                            f"{suggest(example, sorted(examples))}")
    for index, label in enumerate(modes.index_facts):
        if label not in modes.facts:
            problem(("index_facts", index), f"'{label}' is not one of the facts{suggest(label, list(modes.facts))}")
    for label, text in modes.facts.items():
        try:
            parse_formula(text, symbols)
        except FormulaError as exc:
            problem(("facts", label), str(exc))
    return problems


def _stages_named(op: str, parsed: dict[str, ParsedSpec], seen: set[str]) -> set[str]:
    """Every stage a child or operation names in op's tree."""
    if op in seen or op not in parsed:
        return set()
    seen.add(op)
    spec = parsed[op].spec
    named = {o.stage for o in spec.operations if o.stage} | {c.stage for c in spec.children if c.stage}
    for child in spec.children:
        named |= _stages_named(child.op, parsed, seen)
    return named


def _variants_text(names: list[str]) -> str:
    return f"variant {names[0]!r}" if len(names) == 1 else "variants " + ", ".join(map(repr, names))


def _display(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except (ValueError, OSError, RuntimeError):  # RuntimeError: a symbolic link loop (Python 3.11)
        return str(path)


def _check_spec(item: ParsedSpec, model: ModelConfig, symbols: dict[str, sympy.Symbol],
                catalog: dict[str, ParsedSpec], failed: set[str]) -> list[SpecProblem]:
    spec, problems = item.spec, []

    def problem(loc: tuple, message: str) -> None:
        problems.append(SpecProblem(item.path, item.line(*loc), ".".join(map(str, loc)), message))

    def parse(loc: tuple, text, names: dict | None = None,
              extra: dict[str, Callable[[str], sympy.Expr]] | None = None) -> None:
        try:
            item.exprs[".".join(map(str, loc))] = parse_formula(text, names or symbols, extra)
        except FormulaError as exc:
            problem(loc, str(exc))

    if spec.family not in model.families:
        problem(("family",), f"unknown family '{spec.family}'{suggest(spec.family, list(model.families))}; "
                             f"model.yaml declares {', '.join(model.families)}")
    # Scope and examples name things declared in model.yaml.
    scope = model.scopes.get(spec.scope)
    if scope is None:
        problem(("scope",), f"unknown scope '{spec.scope}'{suggest(spec.scope, sorted(model.scopes))}")
    else:
        for index, example in enumerate(spec.examples):
            if example not in scope.examples:
                problem(("examples", index), f"scope '{spec.scope}' has no example '{example}'"
                                             f"{suggest(example, sorted(scope.examples))}")

    # Tensors: shapes are formulas; names are unique (one declaration per variant when gated by `only`,
    # as a projector type's first layer is in each type); non-parameter names can be used in peak formulas.
    tensor_names: dict[str, int] = {}
    gated: dict[str, list[list[str] | None]] = {}
    for index, tensor in enumerate(spec.tensors):
        earlier = gated.setdefault(tensor.name, [])
        mine = variant_names(tensor.only)
        if earlier and (mine is None or None in earlier or any(set(mine) & set(other) for other in earlier)):
            problem(("tensors", index, "name"), f"tensor '{tensor.name}' is declared twice")
        earlier.append(mine)
        tensor_names[tensor.name] = index
        if tensor.role != "parameter" and not tensor.name.isidentifier():
            problem(("tensors", index, "name"), f"'{tensor.name}' must be an identifier (it can appear in formulas)")
        if tensor.name in symbols:
            problem(("tensors", index, "name"), f"'{tensor.name}' is a dimension symbol; give the tensor another name")
        for axis, extent in enumerate(tensor.shape):
            parse(("tensors", index, "shape", axis), extent)
        if tensor.active is not None:
            parse(("tensors", index, "active"), tensor.active)
        if tensor.from_child and tensor.from_child not in {child.name for child in spec.children} | {child.ref for child in spec.children}:
            problem(("tensors", index, "from_child"), f"no child named '{tensor.from_child}'")

    # `only` names variants; an operation reads and writes tensors that exist whenever it runs.
    def unknown_variants(only) -> list[str]:
        return [name for name in variant_names(only) or [] if name not in spec.variants]

    for kind, entries in (("tensors", spec.tensors), ("operations", spec.operations)):
        for index, entry in enumerate(entries):
            for name in unknown_variants(entry.only):
                problem((kind, index, "only"), f"'{name}' is not one of this op's variants "
                                               f"({', '.join(spec.variants) or 'none declared'})")
    for index, operation in enumerate(spec.operations):
        runs_in = variant_names(operation.only)
        for key in ("reads", "writes"):
            for position, name in enumerate(getattr(operation, key)):
                # A name may be declared once per variant: together its declarations must cover the op's.
                declared = [t for t in spec.tensors if t.name == name]
                exists = [variant_names(t.only) for t in declared]
                exists_in = None if not declared or None in exists else sorted({v for names in exists for v in names})
                if exists_in is not None and (runs_in is None or not set(runs_in) <= set(exists_in)):
                    problem(("operations", index, key, position),
                            f"tensor '{name}' exists only in {_variants_text(exists_in)}, but this operation runs "
                            f"{'in every variant' if runs_in is None else 'in ' + _variants_text(runs_in)}; "
                            "give the operation an `only` within the tensor's")
    for index, operation in enumerate(spec.operations):
        parse(("operations", index, "flops"), operation.flops)
        if operation.backward is not None:
            parse(("operations", index, "backward"), operation.backward)
        for key in ("reads", "writes"):
            for position, name in enumerate(getattr(operation, key)):
                if name not in tensor_names:
                    problem(("operations", index, key, position),
                            f"unknown tensor '{name}'{suggest(name, sorted(tensor_names))}")

    for index, child in enumerate(spec.children):
        if child.op not in catalog and child.op not in failed:
            problem(("children", index, "op"), f"no spec for child op '{child.op}'{suggest(child.op, sorted(catalog))}; "
                                               f"add specs/.../{child.op}.yaml or fix the name")
        for name in unknown_variants(child.only):
            problem(("children", index, "only"), f"'{name}' is not one of this op's variants "
                                                 f"({', '.join(spec.variants) or 'none declared'})")
        target = catalog.get(child.op)
        if target is not None and (child.variant or None) not in (set(target.spec.variants) or {None}):
            problem(("children", index, "variant"), f"'{child.op}' has variants "
                                                    f"{sorted(target.spec.variants) or 'none'}; name one of them"
                    if target.spec.variants else f"'{child.op}' has no variants; remove 'variant'")
        parse(("children", index, "count"), child.count)
        if child.steps is not None:
            if child.steps.symbol not in symbols:
                problem(("children", index, "steps", "symbol"), f"unknown symbol '{child.steps.symbol}'"
                                                                f"{suggest(child.steps.symbol, sorted(symbols))}")
            parse(("children", index, "steps", "first"), child.steps.first)
            parse(("children", index, "steps", "last"), child.steps.last)
        if child.active is not None:
            parse(("children", index, "active"), child.active)
        if child.instances is not None:
            parse(("children", index, "instances"), child.instances)
        for symbol, value in child.bind.items():
            if symbol not in symbols:
                problem(("children", index, "bind", symbol), f"unknown symbol '{symbol}'{suggest(symbol, sorted(symbols))}")
            parse(("children", index, "bind", symbol), value)

    if spec.harness is not None and scope is not None:
        config_names = {key: sympy.Symbol(key) for key, value in scope.config.items()
                        if isinstance(value, int | float) and not isinstance(value, bool)}
        for name, value in spec.harness.arguments.items():
            if isinstance(value, str) and value not in scope.config:
                parse(("harness", "arguments", name), value, {**symbols, **config_names})
        for variant, arguments in spec.harness.variants.items():
            if variant not in spec.variants:
                problem(("harness", "variants", variant), f"'{variant}' is not one of this op's variants "
                                                          f"({', '.join(spec.variants) or 'none declared'})")
            for name, value in arguments.items():
                if isinstance(value, str) and value not in scope.config:
                    parse(("harness", "variants", variant, name), value, {**symbols, **config_names})
        if not any(tensor.role == "input" for tensor in spec.tensors):
            problem(("harness",), "a declared harness calls the module with the input tensors; declare at least one")
    # Peak formulas may name this op's tensors (their bytes) and peak(child).
    names = dict(symbols)
    names.update({name: sympy.Symbol(f"bytes[{name}]") for name in tensor_names if name.isidentifier()})
    child_names = {child.ref: child for child in spec.children}

    def child_ref(kind: str):
        def resolve(name: str) -> sympy.Expr:
            if name not in child_names:
                raise FormulaError(f"{kind}() of unknown child '{name}'{suggest(name, sorted(child_names))}")
            return sympy.Symbol(f"{kind}[{name}]")
        return resolve

    # peak(child): the child's peak; kv(child): the KV cache one instance of the child holds;
    # out(child): the bytes of the output tensors one instance returns (what the parent then holds).
    # A child absent from a variant or kernel contributes 0 to each.
    references = {"peak": child_ref("peak"), "kv": child_ref("kv"), "out": child_ref("out")}
    for kernel, note in spec.memory.peak.items():
        parse(("memory", "peak", kernel, "formula"), note.formula, names, references)
    for key, value in spec.closed_forms.model_dump().items():
        if value is not None:
            parse(("closed_forms", key), value)

    if scope is not None:
        for index, key in enumerate(spec.prose.config_keys):
            if key not in scope.config:
                problem(("prose", "config_keys", index), f"scope '{spec.scope}' has no config key '{key}'"
                                                         f"{suggest(key, sorted(scope.config))}")
    problems.extend(_check_prose(item, symbols, {name: parsed.spec for name, parsed in catalog.items()}))
    problems.extend(_todos(item))
    for key in ("used_by", "uses", "inherits_from", "alternatives", "patterns"):
        for name, text in getattr(spec.related, key).items():
            _check_text(item, ("related", key, name), text, symbols, problems)
    return problems


def _check_prose(item: ParsedSpec, symbols: dict[str, sympy.Symbol], specs: dict | None = None) -> list[SpecProblem]:
    problems: list[SpecProblem] = []
    prose = item.spec.prose
    for key, value in prose.model_dump().items():
        texts = value if isinstance(value, list) else [value]
        for index, text in enumerate(texts):
            if text is not None:
                loc = ("prose", key, index) if isinstance(value, list) else ("prose", key)
                _check_text(item, loc, text, symbols, problems, specs)
    for name, param in item.spec.constructor.parameters.items():
        for key in ("description", "typical"):
            text = getattr(param, key)
            if text:
                _check_text(item, ("constructor", "parameters", name, key), text, symbols, problems)
    return problems


def _check_text(item: ParsedSpec, loc: tuple, text: str, symbols: dict, problems: list[SpecProblem],
                specs: dict | None = None) -> None:
    """Prose may not type a magnitude; placeholders must name something the renderer knows."""
    line = item.line(*loc)
    for match in MAGNITUDE.finditer(PLACEHOLDER.sub("", text)):
        problems.append(SpecProblem(item.path, line, ".".join(map(str, loc)),
                                    f"magnitude '{match.group(0)}' typed into prose; use a placeholder such as "
                                    "{{tensor_flops}} so the number is computed"))
    for match in PLACEHOLDER.finditer(text):
        error = check_placeholder(match.group(1), item.spec, symbols, specs)
        if error:
            problems.append(SpecProblem(item.path, line, ".".join(map(str, loc)), error))


def _todos(item: ParsedSpec) -> list[SpecProblem]:
    """A skeleton's TODO markers are the only thing that keeps it from building."""
    found = []

    def walk(value, at: tuple) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(sub, (*at, key))
        elif isinstance(value, list):
            for index, sub in enumerate(value):
                walk(sub, (*at, index))
        elif isinstance(value, str) and "TODO" in value:
            found.append(SpecProblem(item.path, item.line(*at), ".".join(map(str, at)),
                                     "still a TODO; replace it with the real content"))

    walk(item.located.data, ())
    return found


def _topological(parsed: dict[str, ParsedSpec]) -> tuple[list[str], list[SpecProblem]]:
    """Children before parents; a cycle is reported with its path."""
    order: list[str] = []
    state: dict[str, str] = {}
    problems: list[SpecProblem] = []

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "active":
            cycle = " -> ".join([*trail[trail.index(name):], name])
            item = parsed[name]
            problems.append(SpecProblem(item.path, item.line("children"), "children",
                                        f"composition cycle {cycle}; an op cannot contain itself"))
            return
        state[name] = "active"
        for child in parsed[name].spec.children:
            if child.op in parsed:
                visit(child.op, [*trail, name])
        state[name] = "done"
        order.append(name)

    for name in sorted(parsed):
        visit(name, [])
    return order, problems
