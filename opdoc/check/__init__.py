"""Check stage: measure what a torch function really does (FLOPs, I/O bytes, activation memory).

``measure(fn, *args, **kwargs)`` runs ``fn`` once under the op counter and the activation
tracker and returns a ``Measurement``. Give it meta tensors or run it under ``FakeTensorMode`` to
measure full-size shapes without allocating. The FLOP convention is ``rules.CONVENTION``; the
table of every op's rule is ``convention_table()``. torch is imported only inside this package.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from opdoc.check.counting import GLOBAL, ModuleStack, OpCounter, OpStats, module_totals
from opdoc.check.memory import ActivationTracker, cuda_peak
from opdoc.check.rules import (
    CONVENTION, FUSED_ATTENTION_OPS, METADATA_OPS, RULES, Flops, Kind, Rule, RuleRegistry, convention_table,
    elementwise, footprint_bytes, op_name,
)

__all__ = [
    "CONVENTION", "FUSED_ATTENTION_OPS", "GLOBAL", "METADATA_OPS", "RULES", "ActivationTracker", "Flops", "Kind",
    "Measurement", "ModuleStack", "OpCounter", "OpStats", "Rule", "RuleRegistry",
    "UnknownOpsError", "convention_table", "cuda_peak", "elementwise", "footprint_bytes",
    "measure", "measure_totals", "module_totals", "op_name",
]


class UnknownOpsError(RuntimeError):
    """A measured function ran aten ops that have no rule in ``RULES``."""


@dataclass
class Measurement:
    """One forward's cost as the checker measured it. FLOPs follow ``CONVENTION``."""

    tensor_flops: Any
    cuda_flops: Any
    io_read_bytes: Any
    io_write_bytes: Any
    per_op: dict[str, OpStats]
    per_module: dict[str, dict[str, OpStats]]
    unknown_ops: dict[str, int]
    decomposed_ops: dict[str, int]
    activation_total_bytes: Any
    activation_peak_bytes: Any
    activation_live_at_exit_bytes: Any
    attention_kernels: dict[str, int]
    output: Any = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """True when every op had a rule: the counts are complete."""
        return not self.unknown_ops

    @property
    def io_bytes(self) -> Any:
        return self.io_read_bytes + self.io_write_bytes

    def module_totals(self) -> dict[str, OpStats]:
        return module_totals(self.per_module)

    def raise_for_unknown(self) -> Measurement:
        if self.unknown_ops:
            listed = ", ".join(f"{name} ×{count}" for name, count in sorted(self.unknown_ops.items()))
            raise UnknownOpsError(f"ops without a FLOP rule (add them to opdoc/check/rules.py): {listed}")
        return self


class _Measuring(TorchDispatchMode):
    """The counter and the tracker behind one dispatch mode: what ``with counter, tracker:`` does (the
    tracker sees each op around the counter), with one mode's overhead per aten op instead of two."""

    def __init__(self, counter: OpCounter, tracker: ActivationTracker) -> None:
        super().__init__()
        self.counter, self.tracker = counter, tracker

    def __enter__(self) -> _Measuring:
        self.counter.start()
        self.tracker.start()
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        try:
            super().__exit__(*exc)
        finally:
            self.tracker.stop()
            self.counter.stop(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        return self.tracker.dispatch(func, args, kwargs, lambda: self.counter.dispatch(func, args, kwargs))


def measure(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Measurement:
    """Run ``fn(*args, **kwargs)`` once without autograd and measure it.

    Autograd is off (``torch.no_grad``): the knowledge base documents inference forwards, and
    tensors saved for backward would otherwise stay live and raise the peak.
    """
    return _measure(fn, args, kwargs, by_module=True)


def measure_totals(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Measurement:
    """``measure`` without the breakdown by module (``per_module`` is empty): the same totals, per-op
    counts, activation bytes and peak, with no global module hooks. What the checker compares."""
    return _measure(fn, args, kwargs, by_module=False)


def _measure(fn: Callable[..., Any], args: tuple, kwargs: dict, by_module: bool) -> Measurement:
    counter = OpCounter(by_module=by_module)
    tracker = ActivationTracker()
    with torch.no_grad(), _Measuring(counter, tracker):
        output = fn(*args, **kwargs)
    return Measurement(
        tensor_flops=counter.tensor_flops,
        cuda_flops=counter.cuda_flops,
        io_read_bytes=counter.io_read_bytes,
        io_write_bytes=counter.io_write_bytes,
        per_op=counter.per_op,
        per_module=counter.per_module,
        unknown_ops=dict(counter.unknown),
        decomposed_ops=dict(counter.decomposed),
        activation_total_bytes=tracker.total_bytes,
        activation_peak_bytes=tracker.peak_bytes,
        activation_live_at_exit_bytes=tracker.live_at_exit_bytes,
        attention_kernels=dict(tracker.attention_kernels),
        output=output,
    )
