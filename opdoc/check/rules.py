"""Check stage, FLOP rules: the one table that maps each aten op to what it costs.

Every aten op the checker can meet is registered here exactly once, under one of four kinds:

``tensor-core``
    Matrix products (mm, addmm, bmm, baddbmm, mv, dot, convolution, the fused attention kernels).
    A multiply-add is **2 FLOPs**, as in ``torch.utils.flop_counter.FlopCounterMode``; where torch
    has a formula for the op, it is reused unchanged. A fused attention kernel counts its two
    products, Q·Kᵀ and P·V: ``4·B·H·S_q·S_k·d`` (``2·B·H·S_q·S_k·(d_qk + d_v)`` in general). A
    causal mask does not halve it: the count is always the full S_q×S_k product, as in torch.
    The elementwise part of these ops (adding a bias, scaling by alpha/beta, the softmax inside
    attention) is counted separately, as CUDA-core FLOPs, and said so in each rule.
``cuda-core``
    Everything else that computes. Elementwise ops count FLOPs per *output* element; a
    transcendental (exp, log, erf, tanh, sqrt, rsqrt, sin, cos, pow) is **1 FLOP**, and a composite
    activation counts the ops of its defining formula (sigmoid = 1/(1+exp(-x)) is 4, silu is 5).
    A reduction counts **1 FLOP per input element** (n-1 additions, rounded up to n, like torch's
    2·k instead of 2·k-1 for a dot product); ``mean`` adds one division per output element. A
    comparison or a select (max, where, topk, sort) counts as 1 FLOP. Fused norms and softmax count
    exactly what their decomposition into the ops above counts, so a module that writes RMSNorm as
    ``pow, mean, add, rsqrt, mul`` gets the same number as the fused kernel.
``move``
    No FLOPs, but data is read and written, so the bytes count as I/O: copies, **dtype casts**
    (``_to_copy``: a conversion, not arithmetic, so 0 FLOPs), cat/stack, padding, fills,
    gathers (index, index_select, gather, embedding), nearest-neighbour resampling.
``free``
    No FLOPs and no I/O: views and metadata (view, reshape-as-view, permute, transpose, expand,
    t, slice, select, squeeze, unsqueeze, detach, split, ...) and allocations that write nothing
    (empty, empty_strided).

An op missing from the table is never counted as 0: the counter reports it as *unknown* with its
number of calls, and the check fails until a rule is added here.

``CONVENTION`` is this text; ``convention_table()`` lists every registered op with its rule, read
from the same registry the counter uses, so the knowledge base prints what the checker applies.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch
from torch._ops import OpOverload, OpOverloadPacket
from torch.utils import flop_counter as _torch_flops
from torch.fx.experimental.symbolic_shapes import guard_or_false

aten = torch.ops.aten

CONVENTION: str = __doc__ or ""


class Kind(str, Enum):
    """Which unit an op's work runs on, or why it costs no FLOPs."""

    TENSOR_CORE = "tensor-core"
    CUDA_CORE = "cuda-core"
    MOVE = "move"
    FREE = "free"


@dataclass(frozen=True)
class Flops:
    """FLOPs of one op call, split by the unit that does them."""

    tensor: Any = 0
    cuda: Any = 0


# A FLOP rule sees the overload that ran, its arguments and its result (real, meta or fake
# tensors: only shapes, dtypes and scalar arguments are read).
FlopFn = Callable[[OpOverload, tuple, dict, Any], Flops]
# A read rule returns the bytes an op reads, when "every tensor input, once" is wrong.
ReadFn = Callable[[tuple, dict, Any], Any]


@dataclass(frozen=True)
class Rule:
    """How one aten op (all its overloads, e.g. ``add.Tensor`` and ``add.Scalar``) is counted."""

    op: OpOverloadPacket
    kind: Kind
    text: str
    flops: FlopFn | None = None
    reads: ReadFn | None = None

    @property
    def name(self) -> str:
        return op_name(self.op)

    def count(self, func: OpOverload, args: tuple, kwargs: dict, out: Any) -> Flops:
        if self.flops is None:
            return Flops()
        return self.flops(func, args, kwargs, out)


def op_name(op: OpOverloadPacket | OpOverload) -> str:
    """``aten.mm`` for both the packet ``torch.ops.aten.mm`` and its overload ``aten.mm.default``."""
    packet = op.overloadpacket if isinstance(op, OpOverload) else op
    return f"{packet._qualified_op_name.replace('::', '.')}"


class RuleRegistry:
    """aten op packet -> Rule. Filled by decorators that refuse a second rule for the same op."""

    def __init__(self) -> None:
        self._rules: dict[OpOverloadPacket, Rule] = {}

    # -- registration -------------------------------------------------------------------------
    def _add(self, ops: Iterable[Any], kind: Kind, text: str, flops: FlopFn | None,
             reads: ReadFn | None) -> None:
        for op in ops:
            if isinstance(op, OpOverload):
                raise TypeError(
                    f"register the op packet {op_name(op)}, not the overload {op}: "
                    "a rule covers every overload of an op")
            if not isinstance(op, OpOverloadPacket):
                raise TypeError(f"expected an aten op packet such as torch.ops.aten.add, got {op!r}")
            if op in self._rules:
                raise RuntimeError(f"duplicate rule for {op_name(op)}: it is already "
                                   f"{self._rules[op].kind.value}: {self._rules[op].text}")
            self._rules[op] = Rule(op, kind, text, flops, reads)

    def tensor_core(self, *ops: Any, text: str, reads: ReadFn | None = None
                    ) -> Callable[[FlopFn], FlopFn]:
        """Decorator: the function's Flops (tensor part, plus any stated CUDA-core part)."""
        def register(fn: FlopFn) -> FlopFn:
            self._add(ops, Kind.TENSOR_CORE, text, fn, reads)
            return fn
        return register

    def cuda_core(self, *ops: Any, text: str, reads: ReadFn | None = None
                  ) -> Callable[[FlopFn], FlopFn]:
        """Decorator: the function's Flops (CUDA-core part only)."""
        def register(fn: FlopFn) -> FlopFn:
            self._add(ops, Kind.CUDA_CORE, text, fn, reads)
            return fn
        return register

    def move(self, *ops: Any, text: str, reads: ReadFn | None = None) -> None:
        """Ops with no FLOPs whose bytes count as I/O."""
        self._add(ops, Kind.MOVE, text, None, reads)

    def free(self, *ops: Any, text: str) -> None:
        """Ops with no FLOPs and no I/O."""
        self._add(ops, Kind.FREE, text, None, None)

    # -- lookup -------------------------------------------------------------------------------
    def get(self, op: OpOverloadPacket | OpOverload) -> Rule | None:
        packet = op.overloadpacket if isinstance(op, OpOverload) else op
        return self._rules.get(packet)

    def __contains__(self, op: object) -> bool:
        return isinstance(op, (OpOverload, OpOverloadPacket)) and self.get(op) is not None

    def __iter__(self) -> Iterator[Rule]:
        return iter(sorted(self._rules.values(), key=lambda r: (r.kind.value, r.name)))

    def __len__(self) -> int:
        return len(self._rules)

    def without(self, *ops: OpOverloadPacket) -> RuleRegistry:
        """A copy lacking the given ops, e.g. to register a different rule in a test."""
        copy = RuleRegistry()
        copy._rules = {op: rule for op, rule in self._rules.items() if op not in ops}
        return copy

    def table(self) -> list[tuple[str, str, str]]:
        """(op, kind, rule) for every registered op, ordered by kind then op."""
        return [(rule.name, rule.kind.value, rule.text) for rule in self]

    def grouped_table(self) -> list[tuple[str, list[str], str]]:
        """(kind, ops, rule): ops that share one rule on one row, in registration order."""
        groups: dict[tuple[Kind, str], list[str]] = {}
        for rule in self._rules.values():
            groups.setdefault((rule.kind, rule.text), []).append(rule.name)
        return [(kind.value, ops, text) for (kind, text), ops in groups.items()]


RULES = RuleRegistry()


def convention_table(registry: RuleRegistry = RULES) -> list[tuple[str, list[str], str]]:
    """(kind, ops, rule) rows of the registry the counter applies, for the knowledge base."""
    return registry.grouped_table()


def conventions_markdown(registry: RuleRegistry = RULES) -> str:
    """The knowledge base's page of counting rules, written from the registry itself (`opdoc check --conventions`)."""
    lines = ["<!-- written by `opdoc check --conventions` from opdoc/check/rules.py; do not edit -->",
             "# FLOP counting conventions", "",
             "How `opdoc check` counts every aten operation a reference module runs, and so how every",
             "formula in this knowledge base counts. The same table drives the checker; this page is written",
             "from it.", "", "| kind | aten ops | rule |", "|---|---|---|"]
    for kind, ops, rule in convention_table(registry):
        names = ", ".join(f"`{op}`" for op in ops)
        lines.append(f"| {kind} | {names} | {rule.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


# -- shapes and sizes ---------------------------------------------------------------------------
def tensors_in(tree: Any) -> list[torch.Tensor]:
    """The tensors in an op's arguments or results (nested tuples, lists and dicts), in order.

    What ``tree_leaves`` keeps of them, walked directly: the counter and the tracker call this several
    times per aten op, and aten passes nothing else that holds tensors."""
    found: list[torch.Tensor] = []
    _collect(tree, found)
    return found


def _collect(tree: Any, found: list[torch.Tensor]) -> None:
    if isinstance(tree, torch.Tensor):
        found.append(tree)
    elif isinstance(tree, list | tuple):
        for item in tree:
            _collect(item, found)
    elif isinstance(tree, dict):
        for item in tree.values():
            _collect(item, found)


def _first(out: Any) -> torch.Tensor:
    return tensors_in(out)[0]


def _numel(out: Any) -> Any:
    return _first(out).numel()


def footprint_bytes(t: torch.Tensor) -> Any:
    """Bytes a tensor addresses: an expanded (stride-0) dimension is read once, not per copy.

    Sizes may be symbolic (``FakeTensorMode`` with a ``ShapeEnv``); a stride that is not known
    to be 0 counts as a real one, so the result stays an upper bound and never guards.
    """
    elements = math.prod(size for size, stride in zip(t.shape, t.stride())
                         if not guard_or_false(stride == 0))
    return elements * t.element_size()


def _arg(args: tuple, kwargs: dict, index: int, name: str, default: Any = None) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _reads_after_first(args: tuple, kwargs: dict, out: Any) -> Any:
    """For ops that overwrite their first argument (copy_, fill_): the rest is what they read."""
    return sum(footprint_bytes(t) for t in tensors_in((args[1:], kwargs)))


def _reads_gathered(args: tuple, kwargs: dict, out: Any) -> Any:
    """A gather reads its indices and the rows it copies out, not the whole source table."""
    indices = sum(footprint_bytes(t) for t in tensors_in((args[1:], kwargs)))
    return indices + sum(footprint_bytes(t) for t in tensors_in(out))


# -- tensor-core: matrix products -----------------------------------------------------------------
def _torch_formula(packet: OpOverloadPacket) -> Callable[..., Any]:
    return _torch_flops.flop_registry[packet]


def _torch_tensor_flops(packet: OpOverloadPacket) -> FlopFn:
    formula = _torch_formula(packet)

    def count(func: OpOverload, args: tuple, kwargs: dict, out: Any) -> Flops:
        return Flops(tensor=formula(*args, **kwargs, out_val=out))
    return count


def _scaled_add_flops(n_out: Any, beta: Any, alpha: Any) -> Any:
    """CUDA-core work of ``beta·input + alpha·product``: one add, one more per scale ≠ 1."""
    if beta == 0:  # the input is ignored
        return n_out if alpha != 1 else 0
    return n_out * (1 + (beta != 1) + (alpha != 1))


RULES.tensor_core(aten.mm, text="2·M·N·K (torch's formula)")(_torch_tensor_flops(aten.mm))
RULES.tensor_core(aten._scaled_mm, text="2·M·N·K (torch's formula; scaling not counted)")(
    _torch_tensor_flops(aten._scaled_mm))
RULES.tensor_core(aten.bmm, text="2·b·M·N·K (torch's formula)")(_torch_tensor_flops(aten.bmm))


@RULES.tensor_core(aten.addmm, text="2·M·N·K (torch's formula); cuda-core: M·N to add the input "
                                    "(bias), plus M·N per scale (beta, alpha) that is not 1")
def _addmm(func, args, kwargs, out):
    tensor = _torch_formula(aten.addmm)(*args, **kwargs, out_val=out)
    cuda = _scaled_add_flops(_numel(out), kwargs.get("beta", 1), kwargs.get("alpha", 1))
    return Flops(tensor=tensor, cuda=cuda)


@RULES.tensor_core(aten.baddbmm, text="2·b·M·N·K (torch's formula); cuda-core: b·M·N to add the "
                                      "input, plus b·M·N per scale (beta, alpha) that is not 1")
def _baddbmm(func, args, kwargs, out):
    tensor = _torch_formula(aten.baddbmm)(*args, **kwargs, out_val=out)
    cuda = _scaled_add_flops(_numel(out), kwargs.get("beta", 1), kwargs.get("alpha", 1))
    return Flops(tensor=tensor, cuda=cuda)


@RULES.tensor_core(aten._grouped_mm,
                   text="2·(output elements)·K: each output row or column belongs to one group "
                        "(2-D × 2-D, grouped along K: 2·M·N·K_total); cuda-core: one add per "
                        "output element for a bias")
def _grouped_mm(func, args, kwargs, out):
    # (self, mat2, offs=None, bias=None, out_dtype=None); the offsets' values are not read, so
    # it counts the same on fake tensors. Rows past the last offset count as computed.
    a, b, y = args[0], args[1], _first(out)
    if a.dim() == 2 and b.dim() == 2:
        tensor = 2 * (y.numel() // y.shape[0]) * a.shape[1]
    else:
        tensor = 2 * y.numel() * a.shape[-1]
    bias = _arg(args, kwargs, 3, "bias")
    return Flops(tensor=tensor, cuda=y.numel() if bias is not None else 0)


@RULES.tensor_core(aten.mv, text="2·M·K")
def _mv(func, args, kwargs, out):
    m, k = args[0].shape
    return Flops(tensor=2 * m * k)


@RULES.tensor_core(aten.addmv, text="2·M·K; cuda-core: M to add the input, plus M per scale ≠ 1")
def _addmv(func, args, kwargs, out):
    m, k = args[1].shape
    cuda = _scaled_add_flops(m, kwargs.get("beta", 1), kwargs.get("alpha", 1))
    return Flops(tensor=2 * m * k, cuda=cuda)


@RULES.tensor_core(aten.dot, aten.vdot, text="2·K")
def _dot(func, args, kwargs, out):
    return Flops(tensor=2 * args[0].numel())


@RULES.tensor_core(aten.convolution, aten._convolution, aten.convolution_overrideable,
                   text="2·(output elements)·(C_in/groups)·(kernel elements) (torch's formula; "
                        "transposed convolutions by input elements); cuda-core: one add per "
                        "output element for the bias")
def _convolution(func, args, kwargs, out):
    tensor = _torch_formula(aten.convolution)(*args, **kwargs, out_val=out)
    bias = _arg(args, kwargs, 2, "bias")
    return Flops(tensor=tensor, cuda=_numel(out) if bias is not None else 0)


# -- tensor-core: fused attention -----------------------------------------------------------------
def _attention_cuda(tensor_flops: Any, q: torch.Tensor, v: torch.Tensor, masked: bool) -> Any:
    """Elementwise work on the S_q×S_k scores: scale (1) and softmax (5), plus 1 for a mask."""
    # tensor_flops = 2·B·H·S_q·S_k·(d_qk + d_v), so the number of scores is:
    scores = tensor_flops // (2 * (q.shape[-1] + v.shape[-1]))
    return scores * (1 + SOFTMAX_PER_ELEMENT + (1 if masked else 0))


ATTENTION_TEXT = ("4·B·H·S_q·S_k·d (Q·Kᵀ and P·V, 2·B·H·S_q·S_k·(d_qk + d_v) in general; a causal "
                  "mask does not halve it); cuda-core: 6 per score, B·H·S_q·S_k·(1 scale + 5 "
                  "softmax), plus 1 per score when a mask or bias tensor is passed")


@RULES.tensor_core(aten._scaled_dot_product_flash_attention_for_cpu, text=ATTENTION_TEXT)
def _sdpa_flash_cpu(func, args, kwargs, out):
    # (query, key, value, dropout_p=0.0, is_causal=False, *, attn_mask=None, scale=None);
    # torch's FlopCounterMode has no formula for this kernel and counts it 0.
    q, k, v = args[:3]
    tensor = _torch_flops.sdpa_flop_count(q.shape, k.shape, v.shape)
    return Flops(tensor=tensor, cuda=_attention_cuda(tensor, q, v, kwargs.get("attn_mask") is not None))


def _sdpa_with_bias(bias_index: int | None) -> FlopFn:
    def count(func, args, kwargs, out):
        q, k, v = args[:3]
        tensor = _torch_flops.sdpa_flop_count(q.shape, k.shape, v.shape)
        bias = _arg(args, kwargs, bias_index, "attn_bias") if bias_index is not None else None
        return Flops(tensor=tensor, cuda=_attention_cuda(tensor, q, v, bias is not None))
    return count


RULES.tensor_core(aten._scaled_dot_product_flash_attention, text=ATTENTION_TEXT)(_sdpa_with_bias(None))
RULES.tensor_core(aten._scaled_dot_product_efficient_attention,
                  aten._scaled_dot_product_cudnn_attention, text=ATTENTION_TEXT)(_sdpa_with_bias(3))


def _raw_attention(packet: OpOverloadPacket, bias_name: str | None) -> FlopFn:
    formula = _torch_formula(packet)  # layout [B, S, H, d], possibly variable-length

    def count(func, args, kwargs, out):
        q, _, v = args[:3]
        tensor = formula(*args, **kwargs, out_val=out)
        masked = bias_name is not None and _arg(args, kwargs, 3, bias_name) is not None
        return Flops(tensor=tensor, cuda=_attention_cuda(tensor, q, v, masked))
    return count


RULES.tensor_core(aten._flash_attention_forward, text=ATTENTION_TEXT)(
    _raw_attention(aten._flash_attention_forward, None))
RULES.tensor_core(aten._efficient_attention_forward, text=ATTENTION_TEXT)(
    _raw_attention(aten._efficient_attention_forward, "bias"))

FUSED_ATTENTION_OPS: frozenset[OpOverloadPacket] = frozenset({
    aten._scaled_dot_product_flash_attention_for_cpu,
    aten._scaled_dot_product_flash_attention,
    aten._scaled_dot_product_efficient_attention,
    aten._scaled_dot_product_cudnn_attention,
    aten._flash_attention_forward,
    aten._efficient_attention_forward,
})


# -- cuda-core: elementwise -------------------------------------------------------------------
def _with_inplace(*names: str) -> list[OpOverloadPacket]:
    """The packets ``aten.<name>`` and, where it exists, the in-place ``aten.<name>_``."""
    packets = []
    for name in names:
        packets.append(getattr(aten, name))
        try:
            packets.append(getattr(aten, name + "_"))
        except (AttributeError, RuntimeError):
            pass
    return packets


def elementwise(per_element: int) -> FlopFn:
    """A rule of ``per_element`` FLOPs for every output element (fvcore's factory, in spirit)."""
    def count(func, args, kwargs, out):
        return Flops(cuda=per_element * _numel(out))
    return count


RULES.cuda_core(
    *_with_inplace("neg", "abs", "reciprocal", "rsqrt", "sqrt", "exp", "exp2",
                   "expm1", "log", "log1p", "log2", "sin", "cos", "tanh", "erf", "pow", "clamp",
                   "clamp_min", "clamp_max", "relu", "sign", "floor", "ceil", "round", "trunc",
                   "remainder", "fmod", "eq", "ne", "lt", "le", "gt", "ge", "logical_not",
                   "logical_and", "logical_or", "bitwise_and", "bitwise_or", "bitwise_not",
                   "masked_fill", "nan_to_num", "floor_divide", "logical_xor",
                   "bitwise_xor", "atan2"),
    aten.maximum, aten.minimum, aten.where, aten.isnan, aten.isinf,
    text="1 per output element (a transcendental, a comparison or a select is 1)",
)(elementwise(1))


def _is_complex(out: Any) -> bool:
    return _first(out).is_complex()


@RULES.cuda_core(*_with_inplace("add", "sub", "rsub"),
                 text="1 per output element, 2 when alpha ≠ 1 (scale, then add); a complex "
                      "output counts 2 real FLOPs per add")
def _add(func, args, kwargs, out):
    alpha = kwargs.get("alpha", 1)
    return Flops(cuda=(2 if alpha != 1 else 1) * (2 if _is_complex(out) else 1) * _numel(out))


@RULES.cuda_core(*_with_inplace("mul"),
                 text="1 per output element; a complex output counts 6 (4 multiplies, 2 adds)")
def _mul(func, args, kwargs, out):
    return Flops(cuda=(6 if _is_complex(out) else 1) * _numel(out))


@RULES.cuda_core(*_with_inplace("div"),
                 text="1 per output element; a complex output counts 11 (|c|²: 3, two "
                      "numerators: 6, two divides: 2)")
def _div(func, args, kwargs, out):
    return Flops(cuda=(11 if _is_complex(out) else 1) * _numel(out))


RULES.cuda_core(aten.polar, text="4 per output element: r·cos θ, r·sin θ")(elementwise(4))


@RULES.cuda_core(*_with_inplace("addcmul", "addcdiv"),
                 text="2 per output element (multiply or divide, then add), 3 when value ≠ 1")
def _addcmul(func, args, kwargs, out):
    value = kwargs.get("value", 1)
    return Flops(cuda=(3 if value != 1 else 2) * _numel(out))


RULES.cuda_core(*_with_inplace("lerp"), text="3 per output element: a + w·(b - a)")(elementwise(3))
RULES.cuda_core(*_with_inplace("sigmoid"),
                text="4 per output element: 1/(1 + exp(-x)) is neg, exp, add, divide")(elementwise(4))
RULES.cuda_core(*_with_inplace("silu"), text="5 per output element: x·sigmoid(x)")(elementwise(5))
RULES.cuda_core(*_with_inplace("leaky_relu"),
                text="2 per output element: compare, multiply")(elementwise(2))
RULES.cuda_core(aten.softplus,
                text="2 per output element: log1p(exp(x)) (scaling by beta ≠ 1 not counted)"
                )(elementwise(2))


@RULES.cuda_core(*_with_inplace("gelu"),
                 text="5 per output element for the exact form x·0.5·(1 + erf(x/√2)); 9 for "
                      "approximate='tanh': x·0.5·(1 + tanh(√(2/π)·(x + 0.044715·x³)))")
def _gelu(func, args, kwargs, out):
    approximate = _arg(args, kwargs, 1, "approximate", "none")
    return Flops(cuda=(9 if approximate == "tanh" else 5) * _numel(out))


# -- cuda-core: reductions, softmax, norms -----------------------------------------------------
RULES.cuda_core(aten.sum, aten.amax, aten.amin, aten.argmax, aten.argmin, aten.prod, aten.any,
                aten.all, aten.nansum,
                text="1 per input element")(
    lambda func, args, kwargs, out: Flops(cuda=args[0].numel()))
RULES.cuda_core(aten.aminmax, text="2 per input element: a min and a max reduction in one pass")(
    lambda func, args, kwargs, out: Flops(cuda=2 * args[0].numel()))


@RULES.cuda_core(aten.max, aten.min,
                 text="1 per input element as a reduction; 1 per output element for the binary "
                      "(elementwise) overload")
def _max(func, args, kwargs, out):
    if len(args) > 1 and isinstance(args[1], torch.Tensor):
        return Flops(cuda=_numel(out))
    return Flops(cuda=args[0].numel())


@RULES.cuda_core(aten.mean, text="1 per input element (sum), plus 1 per output element (divide by n)")
def _mean(func, args, kwargs, out):
    return Flops(cuda=args[0].numel() + _numel(out))


@RULES.cuda_core(aten.var, aten.std, aten.var_mean, aten.std_mean,
                 text="4 per input element (sum, subtract the mean, square, sum) plus 2 per "
                      "output element (two divides by n); std adds 1 per output element (root)")
def _var(func, args, kwargs, out):
    n_out = _numel(out)
    root = n_out if func.overloadpacket in (aten.std, aten.std_mean) else 0
    return Flops(cuda=4 * args[0].numel() + 2 * n_out + root)


@RULES.cuda_core(aten.linalg_vector_norm, aten.norm,
                 text="2 per input element (square, sum) plus 1 per output element (root)")
def _vector_norm(func, args, kwargs, out):
    return Flops(cuda=2 * args[0].numel() + _numel(out))


RULES.cuda_core(aten.cumsum, aten.cumsum_, aten.cumprod, aten.logcumsumexp,
                text="1 per element")(elementwise(1))

SOFTMAX_PER_ELEMENT = 5


RULES.cuda_core(aten._softmax, aten._safe_softmax,
                text=f"{SOFTMAX_PER_ELEMENT} per element: max, subtract, exp, sum, divide")(
    elementwise(SOFTMAX_PER_ELEMENT))


@RULES.cuda_core(aten._log_softmax,
                 text="5 per element (max, subtract, exp, sum, subtract) plus 1 per row (log)")
def _log_softmax(func, args, kwargs, out):
    x, dim = args[0], args[1]
    rows = x.numel() // x.shape[dim] if x.dim() else 1
    return Flops(cuda=5 * x.numel() + rows)


def _norm_rows(x: torch.Tensor, normalized: Any) -> Any:
    return x.numel() // math.prod(normalized) if len(normalized) else x.numel()


@RULES.cuda_core(aten.native_layer_norm,
                 text="5 per element (sum, subtract the mean, square, sum, multiply by 1/σ) "
                      "plus 4 per row (two divides by n, add eps, rsqrt), plus 1 per element "
                      "each for weight and bias; equals mean, sub, pow, mean, add, rsqrt, mul, "
                      "mul, add written out")
def _layer_norm(func, args, kwargs, out):
    x, normalized, weight, bias = args[0], args[1], _arg(args, kwargs, 2, "weight"), _arg(args, kwargs, 3, "bias")
    n, rows = x.numel(), _norm_rows(x, normalized)
    return Flops(cuda=5 * n + 4 * rows + n * ((weight is not None) + (bias is not None)))


@RULES.cuda_core(aten._fused_rms_norm,
                 text="3 per element (square, sum, multiply by 1/rms) plus 3 per row (divide by "
                      "n, add eps, rsqrt), plus 1 per element for the weight; equals pow, mean, "
                      "add, rsqrt, mul, mul written out")
def _rms_norm(func, args, kwargs, out):
    x, normalized, weight = args[0], args[1], _arg(args, kwargs, 2, "weight")
    n, rows = x.numel(), _norm_rows(x, normalized)
    return Flops(cuda=3 * n + 3 * rows + (n if weight is not None else 0))


@RULES.cuda_core(aten.native_group_norm,
                 text="5 per element plus 4 per group (as layer_norm), plus 1 per element each "
                      "for weight and bias")
def _group_norm(func, args, kwargs, out):
    x, weight, bias = args[0], args[1], args[2]
    n, groups = x.numel(), args[3] * args[6]  # N·group
    return Flops(cuda=5 * n + 4 * groups + n * ((weight is not None) + (bias is not None)))


@RULES.cuda_core(aten._native_batch_norm_legit_no_training,
                 text="inference batch norm: 2 per element (subtract mean, multiply by 1/σ) plus "
                      "1 per element each for weight and bias; per-channel rsqrt not counted")
def _batch_norm_eval(func, args, kwargs, out):
    x, weight, bias = args[0], args[1], args[2]
    n = x.numel()
    return Flops(cuda=2 * n + n * ((weight is not None) + (bias is not None)))


# -- cuda-core: selection, sorting, scatter, histogram ---------------------------------------------
RULES.cuda_core(aten.topk, text="1 comparison per input element (selection, independent of k)")(
    lambda func, args, kwargs, out: Flops(cuda=args[0].numel()))


@RULES.cuda_core(aten.sort, aten.argsort,
                 text="n·⌈log2 n⌉ comparisons per sorted row of length n, i.e. N·⌈log2 n⌉")
def _sort(func, args, kwargs, out):
    x = args[0]
    if x.dim() == 0:
        return Flops()
    positional_dim = len(args) > 1 and isinstance(args[1], int) and not isinstance(args[1], bool)
    dim = kwargs.get("dim", args[1] if positional_dim else -1)
    n = x.shape[dim]
    return Flops(cuda=x.numel() * max(1, math.ceil(math.log2(n))) if n > 1 else 0)


@RULES.cuda_core(*_with_inplace("scatter_add", "index_add", "scatter_reduce"),
                 text="1 per source element (each is added, or reduced, into the output)")
def _scatter_add(func, args, kwargs, out):
    source = tensors_in((args[1:], kwargs))[-1]
    return Flops(cuda=source.numel())


@RULES.cuda_core(aten.scatter, aten.scatter_,
                 text="1 per source element with reduce='add' or 'multiply'; 0 otherwise (a copy)")
def _scatter(func, args, kwargs, out):
    reduce = _arg(args, kwargs, 4, "reduce")
    return Flops(cuda=tensors_in((args[1:], kwargs))[-1].numel() if reduce is not None else 0)


@RULES.cuda_core(aten.index_put, aten.index_put_, aten._index_put_impl_,
                 text="1 per written value with accumulate=True (an addition); 0 otherwise (a copy)")
def _index_put(func, args, kwargs, out):
    accumulate = _arg(args, kwargs, 3, "accumulate", False)
    return Flops(cuda=args[2].numel() if accumulate else 0)


RULES.cuda_core(aten.bincount, aten.histc,
                text="1 per input element (one increment each)")(
    lambda func, args, kwargs, out: Flops(cuda=args[0].numel()))


# -- cuda-core: resampling -----------------------------------------------------------------------
def _resample(taps_per_dim: int, antialias: bool) -> FlopFn:
    """2 FLOPs (multiply, add) per tap; antialiased downscaling widens the filter by in/out."""
    def count(func, args, kwargs, out):
        x, y = args[0], _first(out)
        taps = 1
        for size_in, size_out in zip(x.shape[2:], y.shape[2:]):
            scale = max(1.0, size_in / size_out) if antialias else 1.0
            taps *= math.ceil(taps_per_dim * scale)
        return Flops(cuda=2 * taps * y.numel())
    return count


RULES.cuda_core(aten.upsample_bicubic2d,
                text="32 per output element: a weighted sum of 4×4 inputs, 2 per tap")(_resample(4, False))
RULES.cuda_core(aten._upsample_bicubic2d_aa,
                text="2·t_h·t_w per output element, t = ⌈4·max(1, in/out)⌉ taps per dimension "
                     "(direct 2-D form; filter weights not counted)")(_resample(4, True))
RULES.cuda_core(aten.upsample_bilinear2d, aten.upsample_linear1d, aten.upsample_trilinear3d,
                text="2 per tap per output element: 2 taps per dimension (8 for bilinear)"
                )(_resample(2, False))
RULES.cuda_core(aten._upsample_bilinear2d_aa,
                text="2·t_h·t_w per output element, t = ⌈2·max(1, in/out)⌉ taps per dimension"
                )(_resample(2, True))

# -- move: no FLOPs, bytes counted ----------------------------------------------------------------
RULES.move(aten.clone, aten._to_copy, aten.copy, aten._copy_from, aten._copy_from_and_resize,
           aten.lift_fresh_copy, aten.contiguous,
           text="0: a copy; a dtype cast converts, it does not compute")
RULES.move(aten.copy_, aten.fill_, aten.zero_, aten.masked_scatter_,
           text="0: writes into its first argument, reads the rest", reads=_reads_after_first)
RULES.move(aten.cat, aten.stack, aten.hstack, aten.vstack, aten.constant_pad_nd,
           aten.reflection_pad1d, aten.reflection_pad2d, aten.replication_pad1d,
           aten.replication_pad2d, aten.repeat, aten.repeat_interleave, aten.roll, aten.flip,
           aten.tril, aten.triu, aten.tril_, aten.triu_, aten.masked_scatter, aten.masked_select,
           aten.nonzero, aten.im2col, aten.col2im,
           aten._local_scalar_dense, aten.upsample_nearest1d, aten.upsample_nearest2d,
           aten.upsample_nearest3d, aten._upsample_nearest_exact2d, aten.pixel_shuffle,
           aten.pixel_unshuffle,
           text="0: data movement or a copy by position")
RULES.move(aten.zeros, aten.ones, aten.full, aten.zeros_like, aten.ones_like, aten.full_like,
           aten.new_zeros, aten.new_ones, aten.new_full, aten.fill, aten.scalar_tensor,
           aten.arange, aten.linspace,
           text="0: writes constants (index arithmetic of arange not counted)")
RULES.move(aten.index, aten._unsafe_index, aten.index_select, aten.gather, aten.embedding,
           text="0: a gather; reads its indices and the gathered rows, not the whole source",
           reads=_reads_gathered)

# -- free: no FLOPs, no I/O --------------------------------------------------------------------------
RULES.free(aten.view, aten._unsafe_view, aten.reshape, aten._reshape_alias, aten.permute,
           aten.transpose, aten.t, aten.expand, aten.expand_as, aten.slice, aten.select,
           aten.squeeze, aten.unsqueeze, aten.alias, aten.as_strided, aten.detach, aten.split,
           aten.split_with_sizes, aten.chunk, aten.unbind, aten.narrow, aten.diagonal,
           aten.unfold, aten.view_as_real, aten.view_as_complex, aten.lift_fresh, aten.movedim,
           aten.flatten, aten.unflatten, aten.squeeze_, aten.unsqueeze_, aten.transpose_,
           aten.t_, aten.real, aten.imag, aten.conj, aten.resolve_conj, aten.resolve_neg,
           text="0: a view of existing memory")
RULES.free(aten.empty, aten.empty_like, aten.empty_strided, aten.new_empty,
           aten.new_empty_strided,
           text="0: allocates without writing (its memory is tracked, its bytes are not I/O)")
# Queries about a tensor, not work on it. The counter passes them through unrecorded: how often
# they run depends on the tensor type (fake tensors ask for prim.device, real ones do not).
METADATA_OPS: frozenset[OpOverloadPacket] = frozenset({
    aten.size, aten.sym_size, aten.stride, aten.sym_stride, aten.numel, aten.sym_numel, aten.dim,
    aten.storage_offset, aten.sym_storage_offset, aten.is_contiguous, aten.sym_is_contiguous,
    aten.is_strides_like_format, aten.is_non_overlapping_and_dense, aten._assert_tensor_metadata,
    aten._assert_async, aten.sym_constrain_range, aten.sym_constrain_range_for_size,
    torch.ops.prim.device, torch.ops.prim.layout,
})
RULES.free(*sorted(METADATA_OPS, key=op_name),
           text="0: a metadata query or an assertion (not listed in the breakdown)")
