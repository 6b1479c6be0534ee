"""Stage 1 (beside the specs), load: the GPU table and the vendor runtime's counts, validated like specs.

`specs/hardware.yaml` gives each GPU's dense bf16 tensor-core peak, fp32 CUDA-core peak, memory
bandwidth and capacity, every figure with its public source; `specs/runtime.yaml` gives, per op, what
the vendor's inference code executes beyond the counted work (kernel models, launches, host syncs,
Python loops). Problems are collected and raised together as located `SpecProblem`s, like spec errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sympy
from pydantic import Field, field_validator

from opdoc.formula import FormulaError, parse_formula
from opdoc.spec import Formula, Located, SpecError, SpecProblem, _Strict, read_yaml, validate

HARDWARE_FILE = "hardware.yaml"
RUNTIME_FILE = "runtime.yaml"


# --------------------------------------------------------------------------- hardware.yaml


class Source(_Strict):
    title: str
    url: str

    @field_validator("url")
    @classmethod
    def _public(cls, url: str) -> str:
        if not url.startswith("https://"):
            raise ValueError(f"expected a public https:// address, got '{url}'")
        return url


class Figure(_Strict):
    value: float = Field(gt=0)
    source: str  # a key of `sources`
    note: str = ""


class Gpu(_Strict):
    title: str
    tensor_tflops: Figure  # dense bf16 tensor-core peak, 10^12 FLOP/s
    cuda_tflops: Figure  # fp32 CUDA-core peak, 10^12 FLOP/s
    bandwidth_tbs: Figure  # memory bandwidth, 10^12 B/s
    memory_gb: Figure  # capacity, 10^9 B


class Assumption(_Strict):
    value: float = Field(gt=0)
    basis: str


class Host(_Strict):
    launch_us: Assumption  # host time to issue one kernel from eager PyTorch, microseconds
    sync_us: Assumption  # one device-to-host wait, microseconds


class HardwareTable(_Strict):
    units: dict[str, str]
    sources: dict[str, Source]
    gpus: dict[str, Gpu] = Field(min_length=1)
    host: Host


@dataclass(frozen=True)
class GpuPeaks:
    """One GPU in SI units as exact rationals, so solved thresholds are exact too."""

    name: str
    title: str
    tensor_flops: sympy.Rational  # FLOP/s
    cuda_flops: sympy.Rational  # FLOP/s
    bandwidth: sympy.Rational  # B/s
    capacity: sympy.Rational  # B
    table: Gpu


@dataclass(frozen=True)
class Hardware:
    path: str
    table: HardwareTable
    gpus: tuple[GpuPeaks, ...]
    launch_seconds: sympy.Rational
    sync_seconds: sympy.Rational

    def gpu(self, name: str) -> GpuPeaks:
        return next(g for g in self.gpus if g.name == name)


def _exact(value: float, scale: int) -> sympy.Rational:
    # 989.5 TFLOP/s is 989_500_000_000_000 exactly: go through the decimal text, never through binary.
    return sympy.Rational(repr(value)) * scale


def load_hardware(path: Path, display: str) -> Hardware:
    located = read_yaml(path, display)
    table = validate(located, HardwareTable, display)
    problems = []
    for name, gpu in table.gpus.items():
        for field in ("tensor_tflops", "cuda_tflops", "bandwidth_tbs", "memory_gb"):
            source = getattr(gpu, field).source
            if source not in table.sources:
                known = ", ".join(sorted(table.sources))
                problems.append(SpecProblem(display, located.line_of(("gpus", name, field, "source")),
                                            f"gpus.{name}.{field}.source",
                                            f"unknown source '{source}'; add it under `sources` or use one of: {known}"))
    if problems:
        raise SpecError(problems)
    peaks = tuple(GpuPeaks(name, gpu.title, _exact(gpu.tensor_tflops.value, 10**12), _exact(gpu.cuda_tflops.value, 10**12),
                           _exact(gpu.bandwidth_tbs.value, 10**12), _exact(gpu.memory_gb.value, 10**9), gpu)
                  for name, gpu in table.gpus.items())
    return Hardware(display, table, peaks, _exact(table.host.launch_us.value, 1) / 10**6,
                    _exact(table.host.sync_us.value, 1) / 10**6)


# --------------------------------------------------------------------------- runtime.yaml


class OpRuntime(_Strict):
    # operation name -> kernel model (a key of `kernel_models`): the executed work differs from the counted
    executed: dict[str, str] = {}
    # input tensors a fused kernel does not read from memory, with why
    fused_io_skips: dict[str, str] = {}
    # the op's variants these counts describe (empty: every variant); another variant is not counted
    variants: list[str] = []
    launches: Formula
    syncs: Formula
    loops: Formula
    explain: str


class RuntimeTable(_Strict):
    model: str
    source: Source
    precision: str
    kernel_models: dict[str, str]
    attention_block: int = Field(gt=0)
    ops: dict[str, OpRuntime]
    not_counted: str


@dataclass(frozen=True)
class OpCounts:
    """Parsed per-op runtime facts: launches, syncs and loop iterations as expressions in model symbols."""

    launches: sympy.Expr
    syncs: sympy.Expr
    loops: sympy.Expr
    executed: dict[str, str]
    fused_io_skips: dict[str, str]
    explain: str
    variants: tuple[str, ...] = ()

    def describes(self, variant: str | None) -> bool:
        """Whether these counts are those of this variant of the op."""
        return not self.variants or variant in self.variants


@dataclass(frozen=True)
class Runtime:
    path: str
    table: RuntimeTable
    ops: dict[str, OpCounts]


def load_runtime(path: Path, display: str, symbols: dict[str, sympy.Symbol], specs: dict,
                 known_models: set[str], model_name: str) -> Runtime:
    """Validate runtime.yaml against the loaded specs: the model, its ops, operations, input tensors,
    and kernel models both described in the file and implemented in code (`known_models`)."""
    located: Located = read_yaml(path, display)
    table = validate(located, RuntimeTable, display)
    problems: list[SpecProblem] = []

    def problem(loc: tuple, message: str) -> None:
        problems.append(SpecProblem(display, located.line_of(loc), ".".join(map(str, loc)), message))

    if table.model != model_name:
        problem(("model",), f"written for model '{table.model}', but the specs are '{model_name}'")
    for name in table.kernel_models:
        if name not in known_models:
            problem(("kernel_models", name), f"no implementation of kernel model '{name}'; "
                                             f"implemented: {', '.join(sorted(known_models))}")

    ops: dict[str, OpCounts] = {}
    for op, entry in table.ops.items():
        if op not in specs:
            problem(("ops", op), f"no spec for op '{op}'; remove the entry or add specs/<model>/{op}.yaml")
            continue
        spec = specs[op].spec
        operations = {o.name for o in spec.operations}
        for name, model in entry.executed.items():
            if name not in operations:
                problem(("ops", op, "executed", name), f"'{name}' is not an operation of {op}")
            if model not in table.kernel_models:
                problem(("ops", op, "executed", name), f"unknown kernel model '{model}'; define it under `kernel_models`")
        for name in entry.variants:
            if name not in spec.variants:
                problem(("ops", op, "variants"), f"'{name}' is not a variant of {op} "
                                                 f"({', '.join(spec.variants) or 'none declared'})")
        inputs = {t.name for t in spec.tensors if t.role == "input"}
        for name in entry.fused_io_skips:
            if name not in inputs:
                problem(("ops", op, "fused_io_skips", name), f"'{name}' is not an input tensor of {op}")
        parsed = {}
        for field in ("launches", "syncs", "loops"):
            try:
                parsed[field] = parse_formula(getattr(entry, field), symbols)
            except FormulaError as exc:
                problem(("ops", op, field), str(exc))
        if len(parsed) == 3:
            ops[op] = OpCounts(parsed["launches"], parsed["syncs"], parsed["loops"], dict(entry.executed),
                               dict(entry.fused_io_skips), entry.explain, tuple(entry.variants))
    if problems:
        raise SpecError(problems)
    return Runtime(display, table, ops)
