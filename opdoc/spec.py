"""Stage 1, load: YAML op specs into pydantic models, keeping line numbers for every error.

Every problem found while loading is collected as a `SpecProblem` (`path:line: field: message`) so a
run reports all of them at once; nothing here evaluates formulas beyond parsing them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from opdoc.registry import DTYPES, FAMILIES, FLOAT_DTYPES, KERNELS

Formula = str | int | float
# Allowed values, from the registry's tables (a tensor's dtype "model" means the checkpoint's own).
KernelName = Literal[tuple(KERNELS)]  # type: ignore[valid-type]
ModelDtype = Literal[tuple(FLOAT_DTYPES)]  # type: ignore[valid-type]
TensorDtype = Literal[("model", *DTYPES)]  # type: ignore[valid-type]


@dataclass(frozen=True, order=True)
class SpecProblem:
    """One user-facing error: where it is and what to do."""

    path: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class SpecError(Exception):
    """Raised with every problem of a run; the CLI prints them and exits 1."""

    def __init__(self, problems: list[SpecProblem]):
        self.problems = sorted(set(problems))
        super().__init__("\n".join(map(str, self.problems)))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- model configuration


class Example(_Strict):
    title: str
    bind: dict[str, Formula]
    why: str
    # The ops whose pages show it unless a spec lists its examples (empty: every op of the scope); for an
    # example that rebinds a configuration symbol only some ops follow (e.g. grouped key/value heads).
    only: list[str] = []


class Sweep(_Strict):
    """The range a scope's plots cover: each symbol in `vary` takes each value in turn."""

    vary: list[str] = Field(min_length=1)
    values: list[int] = Field(min_length=2)
    label: str


class Limit(_Strict):
    """A bound the scope's values must keep: `value` <= `at_most` (e.g. the trained context; a user may
    pass it on purpose) or `value` == `equals` (e.g. heads splitting the width evenly; never waived)."""

    value: Formula
    at_most: Formula | None = None
    equals: Formula | None = None
    why: str

    @model_validator(mode="after")
    def _one_bound(self) -> "Limit":
        if (self.at_most is None) == (self.equals is None):
            raise ValueError("give exactly one of at_most or equals")
        return self


class CheckPoint(_Strict):
    """Where `opdoc check` compares formulas with a module: an example, some symbols set, a device."""

    example: str
    set: dict[str, int] = {}
    device: Literal["full", "cpu"] = "full"  # full size without allocating, or small real tensors
    config: dict[str, Any] = {}  # overrides of the scope's configuration (a small real module)
    quick: bool = False  # also in `opdoc check --quick`
    only: list[str] = []  # only for these ops (empty: every op of the scope)
    why: str = ""


class Scope(_Strict):
    title: str
    source: str
    config: dict[str, Any]
    bind: dict[str, Formula]
    examples: dict[str, Example] = Field(min_length=1)
    sweep: Sweep
    limits: list[Limit] = []
    check: list[CheckPoint] = []


# The symbol every model has: bytes per element of its dtype (weights and activations). It is bound from
# `dtype` (2 for bfloat16) and can be overridden like any symbol (`--set dtype=float32`).
DTYPE_BYTES = "dtype_bytes"


class SymbolInfo(_Strict):
    meaning: str
    min: int = 1  # the smallest value that makes sense (0 for a count that may be empty)


class Source(_Strict):
    """Where the model's facts come from, as a reader can find them."""

    repository: str
    commit: str
    files: dict[str, str]  # file in the repository -> what opdoc takes from it


class ModelConfig(_Strict):
    model: str
    title: str
    # The model's package under which its reference modules, harness builders and upstream loading
    # live (e.g. opdoc.models.deepseek_ocr); `package_path` (relative to the spec folder) is put on
    # sys.path first when the package ships beside the specs.
    package: str
    package_path: str | None = None
    source: Source | None = None
    dtype: ModelDtype
    attention_kernel: KernelName
    # Family key -> title, in the order the index and navigation list them.
    families: dict[str, str] = Field(default_factory=lambda: dict(FAMILIES))
    symbols: dict[str, str | SymbolInfo]
    scopes: dict[str, Scope]

    @field_validator("symbols")
    @classmethod
    def _identifiers(cls, symbols: dict[str, str | SymbolInfo]) -> dict[str, str | SymbolInfo]:
        for name in symbols:
            if not name.isidentifier():
                raise ValueError(f"symbol '{name}' is not a valid identifier")
        return symbols

    def symbol(self, name: str) -> SymbolInfo:
        if name == DTYPE_BYTES and name not in self.symbols:
            return SymbolInfo(meaning=f"bytes per element of the model's dtype ({self.dtype} unless overridden)")
        info = self.symbols[name]
        return SymbolInfo(meaning=info) if isinstance(info, str) else info

    def meaning(self, name: str) -> str:
        return self.symbol(name).meaning


# --------------------------------------------------------------------------- op spec


class Upstream(_Strict):
    file: str
    lines: tuple[int, int]
    source: str | None = None  # where the file is published; default: the model's source repository and commit
    # First 16 hex digits of the sha256 of the class's source lines (decorators included):
    # `opdoc check --upstream` lists the pages whose upstream class changed since.
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{16}$")

    @field_validator("lines")
    @classmethod
    def _ordered(cls, lines: tuple[int, int]) -> tuple[int, int]:
        if not 0 < lines[0] <= lines[1]:
            raise ValueError(f"expected [first, last] with 0 < first <= last, got {list(lines)}")
        return lines


class ConstructorParam(_Strict):
    description: str
    typical: str | None = None


class Component(_Strict):
    type: str
    purpose: str


class Constructor(_Strict):
    parameters: dict[str, ConstructorParam]
    components: dict[str, Component] = {}
    behavior: list[str] = []


# `only`: the variant, or the list of variants, in which a tensor, operation or child exists (None: all).
VariantSet = str | list[str] | None


def variant_names(only: VariantSet) -> list[str] | None:
    """The variants an `only` names, as a list; None when the entry exists in every variant."""
    return None if only is None else [only] if isinstance(only, str) else list(only)


def in_variant(only: VariantSet, variant: str | None) -> bool:
    """Whether an entry with this `only` exists in ``variant``."""
    names = variant_names(only)
    return names is None or variant in names


class Tensor(_Strict):
    name: str
    role: Literal["input", "intermediate", "output", "cache", "parameter"]
    shape: list[Formula]
    dtype: TensorDtype = "model"
    note: str = ""
    # A tensor produced inside a child is counted by that child, not again by the parent.
    from_child: str | None = None
    # Only with this attention kernel (eager materialises scores, fused does not); None: always.
    kernel: KernelName | None = None
    # Parameters touched per token when fewer than all (an embedding reads one row): for active counts.
    active: Formula | None = None
    only: VariantSet = None  # present only in this variant (or these) of the op (absent elsewhere: 0 bytes in peaks)


class Operation(_Strict):
    name: str
    unit: Literal["tensor", "cuda"]
    flops: Formula
    explain: str
    backward: Formula | None = None
    reads: list[str] = []
    writes: list[str] = []
    kernel: KernelName | None = None
    only: VariantSet = None  # runs only in this variant (or these) of the op


class Child(_Strict):
    name: str
    op: str
    key: str | None = None  # how formulas refer to it (peak(key), kv(key)); default: name with '.' as '_'

    count: Formula = 1  # instances that run in one forward pass
    instances: Formula | None = None  # instances built (their parameters); default: count
    active: Formula | None = None
    bind: dict[str, Formula] = {}
    variant: str | None = None  # which variant of the child op this is (e.g. a "moe" decoder layer)
    only: VariantSet = None  # present only in this variant (or these) of the parent
    # Present only with this attention kernel (a layer builds an eager or a flash attention class); None: always.
    kernel: KernelName | None = None
    why: str

    @property
    def ref(self) -> str:
        return self.key or self.name.replace(".", "_")


class FormulaNote(_Strict):
    formula: Formula
    explain: str


class Memory(_Strict):
    # Peak live activation bytes beyond parameters and inputs, keyed by attention kernel ("any" when the
    # kernel does not matter). An op with variants may key a formula by variant as well, "<variant>" or
    # "<variant>.<kernel>", when its variants run different children in different order.
    peak: dict[str, FormulaNote]

    def key_for(self, variant: str | None, kernel: str) -> str | None:
        """The formula that applies: the most specific key present, or None."""
        candidates = [f"{variant}.{kernel}", variant] if variant else []
        return next((key for key in (*candidates, kernel, "any") if key in self.peak), None)


class ClosedForms(_Strict):
    tensor_flops: Formula | None = None
    cuda_flops: Formula | None = None
    parameters: Formula | None = None
    activation_bytes: Formula | None = None
    kv_cache_bytes: Formula | None = None


class Flow(_Strict):
    """The mermaid sequence diagram, as data: participants and steps in order."""

    participants: list[dict[str, str]]
    steps: list[str]


class Related(_Strict):
    used_by: dict[str, str] = {}
    uses: dict[str, str] = {}
    inherits_from: dict[str, str] = {}
    alternatives: dict[str, str] = {}
    patterns: dict[str, str] = {}


class Prose(_Strict):
    what_it_is: str
    pseudo_code: str
    math: str | None = None
    implementation_notes: list[str] = []
    usage: str
    config_keys: list[str] = []  # configuration keys shown as JSON, values from model.yaml
    performance: str
    references: list[str]


class Harness(_Strict):
    """How the checker builds and calls the module when no builder is registered for it.

    `arguments`: the constructor's keyword arguments. A value that names a configuration key of the
    scope takes that key's value as it is (e.g. an epsilon); any other string is a formula in the
    symbols and configuration keys (e.g. `h`, `hidden_size // 2`); booleans, numbers and null pass
    as they are. The forward is called with the spec's input tensors, in their order, shaped and
    typed as the spec declares them.
    """

    arguments: dict[str, Formula | bool | None] = {}


class OpSpec(_Strict):
    op: str
    family: str  # one of the model's families (model.yaml `families`)
    scope: str
    examples: list[str] = []  # which of the scope's examples the page shows, first first; default: all
    # Named configurations of one class (a decoder layer with a dense MLP or an MoE); first is shown first.
    variants: dict[str, str] = {}
    summary: str
    upstream: Upstream
    # The class in the model's package; default: the class named `op` found in the package's modules.
    implementation: str | None = None
    constructor: Constructor
    tensors: list[Tensor]
    operations: list[Operation] = []
    children: list[Child] = []
    memory: Memory
    closed_forms: ClosedForms = ClosedForms()
    flow: Flow
    related: Related = Related()
    prose: Prose
    harness: Harness | None = None

    @field_validator("op")
    @classmethod
    def _class_name(cls, op: str) -> str:
        if not op.isidentifier():
            raise ValueError(f"'{op}' is not a Python class name")
        return op

    @model_validator(mode="after")
    def _peak_keys(self) -> "OpSpec":
        variants = list(self.variants) or [None]
        allowed = {"any", *KERNELS, *self.variants, *(f"{v}.{k}" for v in self.variants for k in KERNELS)}
        unknown = sorted(set(self.memory.peak) - allowed)
        if unknown:
            raise ValueError(f"memory.peak: unknown key(s) {unknown}; use any, a kernel ({', '.join(KERNELS)}), "
                             "a variant of this op, or variant.kernel")
        missing = [f"{v + ', ' if v else ''}{k} kernel" for v in variants for k in KERNELS
                   if self.memory.key_for(v, k) is None]
        if missing:
            raise ValueError(f"memory.peak: no formula for {'; '.join(missing)}; add an 'any' formula or one per kernel")
        return self

    @field_validator("implementation")
    @classmethod
    def _import_path(cls, path: str | None) -> str | None:
        if path is not None and not re.fullmatch(r"[a-z_][\w.]*\.[A-Za-z_]\w*", path):
            raise ValueError(f"expected a dotted import path in the model package, such as package.module.ClassName, got '{path}'")
        return path


# --------------------------------------------------------------------------- YAML with line numbers


@dataclass
class Located:
    """A YAML document as plain data plus the line of every key path in it."""

    path: Path
    data: Any
    lines: dict[tuple, int]

    def line_of(self, loc: tuple) -> int:
        """Line of the deepest known prefix of `loc` (pydantic locations may go past what YAML had)."""
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return 1


# libyaml's parser when PyYAML was built with it (same safe constructors, same line marks), else Python's.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path, display: str) -> Located:
    """Parse YAML keeping the line of every mapping key and sequence item; raise SpecError on bad YAML."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([SpecProblem(display, 0, "", f"cannot read the file: {exc}")]) from None
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError([SpecProblem(display, 1, "", "the file is empty; see specs/README.md for the fields a spec needs")])
        lines: dict[tuple, int] = {(): node.start_mark.line + 1}
        data = _construct(loader, node, (), lines, display)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise SpecError([SpecProblem(display, line, "", f"YAML syntax: {exc.problem or exc.context}")]) from None
    finally:
        loader.dispose()
    return Located(path, data, lines)


def _construct(loader, node: yaml.Node, at: tuple, lines: dict, display: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in result:
                raise SpecError([SpecProblem(display, key_node.start_mark.line + 1, ".".join(map(str, (*at, key))),
                                             "duplicate key; keep one of them")])
            lines[(*at, key)] = key_node.start_mark.line + 1
            result[key] = _construct(loader, value_node, (*at, key), lines, display)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            lines[(*at, index)] = item.start_mark.line + 1
            items.append(_construct(loader, item, (*at, index), lines, display))
        return items
    return loader.construct_object(node, deep=True)


def validate(located: Located, model: type[BaseModel], display: str) -> BaseModel:
    """Build `model` from YAML data, turning every pydantic error into a located problem."""
    try:
        return model.model_validate(located.data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            field = ".".join(str(part) for part in loc) or "(top level)"
            message = error["msg"]
            if error["type"] == "extra_forbidden":
                message = "unknown key; remove it or check its spelling"
                if not str(loc[-1]).isidentifier():  # text cut at a comma inside {...}: the rest became a "key"
                    message = ("this looks like text cut at a comma inside a {...} mapping; "
                               "quote the value that contains commas or colons")
            elif error["type"] == "missing":
                message = "required field is missing"
            problems.append(SpecProblem(display, located.line_of(loc), field, message))
        raise SpecError(problems) from None
