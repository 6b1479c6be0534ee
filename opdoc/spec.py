"""Stage 1, load: YAML op specs into pydantic models, keeping line numbers for every error.

Every problem found while loading is collected as a `SpecProblem` (`path:line: field: message`) so a
run reports all of them at once; nothing here evaluates formulas beyond parsing them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator, BaseModel, ConfigDict, Field, FiniteFloat, NonNegativeInt, PrivateAttr, StrictFloat, StrictInt,
    StrictStr, ValidationError, field_validator, model_validator,
)

from opdoc.formula import check_formula
from opdoc.problems import SpecError, SpecProblem  # noqa: F401 - re-exported: every stage imports them from here
from opdoc.registry import DTYPES, FAMILIES, FLOAT_DTYPES, KERNELS
from opdoc.yamlfile import Located, read_yaml  # noqa: F401 - re-exported: the stages read YAML from here

# A formula as YAML gives it; strict, so `true` is not taken for 1. Checked as it is validated, so a
# formula error has its line even where the formula is only parsed later (a model's bindings).
Formula = Annotated[StrictStr | StrictInt | StrictFloat, AfterValidator(check_formula)]
# Allowed values, from the registry's tables (a tensor's dtype "model" means the checkpoint's own).
KernelName = Literal[tuple(KERNELS)]  # type: ignore[valid-type]
ModelDtype = Literal[tuple(FLOAT_DTYPES)]  # type: ignore[valid-type]
TensorDtype = Literal[("model", *DTYPES)]  # type: ignore[valid-type]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    _located: Located | None = PrivateAttr(default=None)  # set by `validate`: where each field came from

    def line_of(self, *loc) -> int:
        """The YAML line of a field below this document's root, e.g. line_of("scopes", "language", "bind", "B")."""
        return self._located.line_of(tuple(loc)) if self._located is not None else 0


# --------------------------------------------------------------------------- model configuration


class Example(_Strict):
    title: str
    bind: dict[str, Formula]
    why: str
    # Asked for on purpose past a scope's at_most limits (e.g. a context longer than the trained one):
    # evaluated, and every page that shows it says which limit it passes.
    beyond_limits: bool = False
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
    # Only with these attention kernels (empty: each kernel the op has); e.g. a whole model at the kernel
    # it loads, its eager path checked at one point and in every op below it.
    kernels: list[KernelName] = []
    why: str = ""


class Scope(_Strict):
    title: str
    source: str
    # Another scope whose configuration, bind and limits this one starts from (the whole model reuses
    # the language model's): its own entries are added after them and replace those of the same name.
    inherits: str | None = None
    config: dict[str, Any] = {}
    # Symbols whose value another scope configures (symbol -> that scope), e.g. the projector's input
    # width seen from the whole model: bound before this scope's own bind.
    imports: dict[str, str] = {}
    bind: dict[str, Formula] = {}
    examples: dict[str, Example] = Field(min_length=1)
    sweep: Sweep
    limits: list[Limit] = []
    check: list[CheckPoint] = []
    # How many of `limits` are the scope's own (the rest are inherited and may name symbols that only
    # the scope it inherits from binds: such a limit is skipped here).
    _own_limits: int | None = PrivateAttr(default=None)

    def inherited_limit(self, index: int) -> bool:
        return self._own_limits is not None and index >= self._own_limits


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


class ModePage(_Strict):
    title: str
    examples: list[str] = Field(min_length=1)  # of the job op's scope, first first
    about: str = ""


class Modes(_Strict):
    """Pages that answer "what does one job cost", one per named configuration (DeepSeek-OCR: one per
    image mode), and a comparison of all of them (site/modes.md, site/mode-<name>.md)."""

    title: str
    about: str = ""  # what the examples assume (prompt, output length) and why; shown on every mode page
    op: str  # the op whose `job` variant is a whole job (its stepped child: the job's steps)
    job: str  # variant: the whole job, steps summed
    first: str  # variant: the job's first forward (the prompt's)
    step: str  # variant: one step at the job's last position
    # What each example's table lists besides costs: label -> formula in the scope's symbols.
    facts: dict[str, Formula] = {}
    index_facts: list[str] = []  # the facts the index's table shows (default: all)
    # The stages the job's children and operations name, in the order pages list them (each exactly once).
    stages: list[str] = Field(min_length=1)
    pages: dict[str, ModePage] = Field(min_length=1)


class ModelConfig(_Strict):
    model: str
    title: str
    # The model's package under which its reference modules, harness builders and upstream loading
    # live (e.g. opdoc.models.deepseek_ocr); `package_path` (relative to the spec folder) is put on
    # sys.path first when the package ships beside the specs.
    package: str
    package_path: str | None = None
    # Other packages whose classes a spec may name in `implementation` (e.g. torch.nn for nn.Linear):
    # the build reads their source files, never imports them; only the checker does.
    libraries: list[str] = []
    source: Source | None = None
    dtype: ModelDtype
    attention_kernel: KernelName
    # Family key -> title, in the order the index and navigation list them.
    families: dict[str, str] = Field(default_factory=lambda: dict(FAMILIES))
    symbols: dict[str, str | SymbolInfo]
    scopes: dict[str, Scope]
    modes: Modes | None = None
    _infos: dict[str, SymbolInfo] = PrivateAttr(default_factory=dict)  # symbol(): each built once

    @field_validator("symbols")
    @classmethod
    def _identifiers(cls, symbols: dict[str, str | SymbolInfo]) -> dict[str, str | SymbolInfo]:
        for name in symbols:
            if not name.isidentifier():
                raise ValueError(f"symbol '{name}' is not a valid identifier")
        return symbols

    @model_validator(mode="after")
    def _inherit(self) -> "ModelConfig":
        for name, scope in self.scopes.items():
            if scope.inherits is None:
                continue
            base = self.scopes.get(scope.inherits)
            if base is None or base.inherits is not None:
                raise ValueError(f"scopes.{name}.inherits: '{scope.inherits}' is not a scope that inherits nothing "
                                 f"(one of {', '.join(n for n, s in self.scopes.items() if s.inherits is None)})")
            # Own limits first: their index (and so their line in errors) stays as written.
            self.scopes[name] = scope.model_copy(update={
                "config": {**base.config, **scope.config}, "bind": {**base.bind, **scope.bind},
                "limits": [*scope.limits, *base.limits]})
            self.scopes[name]._own_limits = len(scope.limits)
        return self

    def symbol(self, name: str) -> SymbolInfo:
        known = self._infos.get(name)  # every binding checks every symbol: each info is built once
        if known is None:
            if name == DTYPE_BYTES and name not in self.symbols:
                known = SymbolInfo(meaning=f"bytes per element of the model's dtype ({self.dtype} unless overridden)")
            else:
                info = self.symbols[name]
                known = SymbolInfo(meaning=info) if isinstance(info, str) else info
            self._infos[name] = known
        return known

    def meaning(self, name: str) -> str:
        return self.symbol(name).meaning


# --------------------------------------------------------------------------- op spec


class Upstream(_Strict):
    file: str
    lines: tuple[int, int]
    # The name the file defines when it is not the op's own (a function an opdoc building block stands for).
    name: str | None = None
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
    # "view": another tensor's storage seen through a slice or broadcast; an operation may read it (its
    # bytes are what that operation reads), but it holds no memory of its own.
    role: Literal["input", "intermediate", "output", "cache", "parameter", "view"]
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
    stage: str | None = None  # the stage of a larger job this work belongs to (see Child.stage)


class Steps(_Strict):
    """A child that runs once per value of `symbol` from `first` to `last` (e.g. decode steps): its
    additive quantities are summed in closed form, its peak and cache are those of the last step."""

    symbol: str
    first: Formula
    last: Formula
    # Each step's cache supersedes the one before and the parent's other caches (generation appends to
    # one cache): the parent's KV cache is then the last step's, the earlier ones count as activations.
    replaces_cache: bool = False


class Child(_Strict):
    name: str
    op: str
    key: str | None = None  # how formulas refer to it (peak(key), kv(key)); default: name with '.' as '_'

    count: Formula = 1  # instances that run in one forward pass
    instances: Formula | None = None  # instances built (their parameters); default: count
    active: Formula | None = None
    bind: dict[str, Formula] = {}
    variant: str | None = None  # which variant of the child op this is (e.g. a "moe" decoder layer)
    steps: Steps | None = None  # runs once per step, each with its own binding (summed in closed form)
    # Which stage of a larger job this child's cost belongs to (e.g. vision encoder, prefill, decode);
    # a parent reports its totals per stage. Default: the child's own stages, else none.
    stage: str | None = None
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


def _participant(participant: dict[str, str]) -> dict[str, str]:
    """A participant's id is mermaid syntax, not text: it must be a plain name (labels are escaped)."""
    if set(participant) - {"id", "label", "tensor"}:
        raise ValueError(f"unknown key(s) {sorted(set(participant) - {'id', 'label', 'tensor'})}; "
                         "a participant has id, label and tensor")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", participant.get("id", "")):
        raise ValueError(f"participant id {participant.get('id', '(missing)')!r} must be a name of letters, "
                         "digits and _; put the text to show in label")
    return participant


class Flow(_Strict):
    """The mermaid sequence diagram, as data: participants and steps in order."""

    participants: list[Annotated[dict[str, str], AfterValidator(_participant)]]
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
    # Per variant of the op: arguments that replace or add to `arguments` (e.g. bias=False).
    variants: dict[str, dict[str, Formula | bool | None]] = {}


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
            raise ValueError("expected a dotted import path in the model package or a declared library, such as "
                             f"package.module.ClassName, got '{path}'")
        return path

    def cross_check(self) -> list[tuple[tuple, str]]:
        """(field, message) for references between fields that rendering would otherwise trip over."""
        tensors = {tensor.name for tensor in self.tensors}
        return [(("flow", "participants", index, "tensor"), f"no tensor named '{participant['tensor']}'")
                for index, participant in enumerate(self.flow.participants)
                if "tensor" in participant and participant["tensor"] not in tensors]


# --------------------------------------------------------------------------- the committed GPU report


NonNegativeFloat = Annotated[FiniteFloat, Field(ge=0)]


class _Report(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)  # the report may carry more than pages show


class GpuResult(_Report):
    """One measured case of `opdoc check --device cuda`; the fields pages print must be there and sane."""

    op: str
    variant: str | None = None
    kernel: str = ""
    example: str = ""
    point: str = ""
    error: str | None = None
    peak_bytes: NonNegativeInt | None = None
    formula_peak_bytes: NonNegativeInt | NonNegativeFloat | None = None
    median_seconds: NonNegativeFloat | None = None
    flops_per_second: NonNegativeFloat | None = None

    @model_validator(mode="after")
    def _measured(self) -> "GpuResult":
        if self.error is None and None in (self.peak_bytes, self.formula_peak_bytes, self.median_seconds):
            raise ValueError("a result without an error needs peak_bytes, formula_peak_bytes and median_seconds")
        return self


class GpuReport(_Report):
    device: str
    torch: str
    results: list[GpuResult]


def validate(located: Located, model: type[BaseModel], display: str) -> BaseModel:
    """Build `model` from YAML data, turning every pydantic error into a located problem."""
    try:
        result = model.model_validate(located.data)
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
            elif error["type"] == "value_error":  # a validator's own words, without pydantic's prefix
                message = str(error["ctx"]["error"])
            problems.append(SpecProblem(display, located.line_of(loc), field, message))
        raise SpecError(problems) from None
    result._located = located
    cross_check = getattr(result, "cross_check", None)
    if cross_check is not None:
        problems = [SpecProblem(display, located.line_of(loc), ".".join(map(str, loc)), message)
                    for loc, message in cross_check()]
        if problems:
            raise SpecError(problems)
    return result
