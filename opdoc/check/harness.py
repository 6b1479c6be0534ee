"""Check stage, harness: build each op's reference module at its scope's configuration, with inputs
that match the spec's input tensors at one binding of the symbols.

One builder per op is registered with ``@harness("Op")``; a second builder for the same op is
refused, and an op with a spec but no builder is reported by the runner as an error.
``build(op, binding, kernel, device, dtype)`` returns a ``Case``: the module, a ``call`` that runs
one forward on the prepared inputs, and how to read the KV cache from what the forward returned.

Devices:

``fake``
    ``FakeTensorMode`` (no ShapeEnv): full size, nothing allocated, and ``scaled_dot_product_attention``
    reaches the fused CPU flash kernel, as on real tensors. The MoE sees no routing data and spreads
    token slots evenly over the experts (``tokens_per_expert``); totals are exact because an
    expert's cost is linear in its token count.
``meta``
    The meta device: full size, nothing allocated; SDPA runs its math path.
``cpu`` / ``cuda``
    Real tensors with seeded random weights and inputs: the router really routes, so experts get
    uneven token counts.

Kernels: for an op whose attention goes through ``config._attn_implementation`` (LlamaAttention and
the modules above it), ``eager`` selects the materialised-scores path and ``fused`` selects SDPA.
For a module that always calls ``F.scaled_dot_product_attention`` (CLIP's NoTPAttention), ``fused``
is the default dispatch (the flash kernel) and ``eager`` forces SDPA's math backend
(``sdpa_kernel(SDPBackend.MATH)``), the path meta tensors and unsupported inputs take.

Modules and activations are in the model dtype (bf16): modules are constructed with it as the
default dtype, as ``from_pretrained(torch_dtype=...)`` does, so buffers that the code creates as
fp32 on purpose (the rotary ``inv_freq``) stay fp32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

DEVICES = ("fake", "meta", "cpu", "cuda")
KERNELS = ("eager", "fused")
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


class HarnessError(RuntimeError):
    """An op cannot be built: no harness registered, or a binding that disagrees with the config."""


@dataclass
class Case:
    """One ready-to-run forward of an op's reference module."""

    module: nn.Module
    run: Callable[[], Any]  # the forward on the prepared inputs (mode and kernel already chosen)
    kv_cache: Callable[[Any], list[Tensor]] = lambda output: []  # cache tensors held after the forward
    context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    notes: Callable[[], list[str]] = lambda: []  # read after the forward (e.g. how the router routed)
    # Symbol values only the forward reveals (E_run under real routing), bound before comparing.
    observed: Callable[[], dict[str, Any]] = lambda: {}
    place: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext

    def call(self) -> Any:
        with self.place(), self.context():
            return self.run()

    def __iter__(self) -> Iterator[Any]:  # `module, call = build(...)`
        return iter((self.module, self.call))


Builder = Callable[["Context"], Case]


class HarnessRegistry:
    """op name -> builder; registering an op twice is an error."""

    def __init__(self) -> None:
        self._builders: dict[str, Builder] = {}
        self.attention: set[str] = set()

    def __call__(self, op: str, *, attention: bool = False) -> Callable[[Builder], Builder]:
        def register(fn: Builder) -> Builder:
            if op in self._builders:
                raise HarnessError(f"duplicate harness for {op}: already {self._builders[op].__qualname__}")
            self._builders[op] = fn
            if attention:
                self.attention.add(op)
            return fn
        return register

    def __contains__(self, op: object) -> bool:
        return op in self._builders

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._builders))

    def get(self, op: str) -> Builder:
        if op not in self._builders:
            raise HarnessError(f"no harness for {op}: register a builder with @harness({op!r}) in "
                               "opdoc/check/harness.py")
        return self._builders[op]


harness = HarnessRegistry()


@dataclass
class Context:
    """What a builder needs: the symbol values, the kernel, where tensors live, and module/tensor factories."""

    op: str
    values: dict[str, int]  # every symbol of the scope at this point
    kernel: str
    device: str
    dtype: torch.dtype
    variant: str | None = None
    config: dict[str, Any] = field(default_factory=dict)  # overrides of the scope's config (small real checks)
    mode: Any = None  # the FakeTensorMode when device == "fake"
    seed: int = 0
    modules: dict | None = None  # reuse modules between points (same op, variant, kernel, device, config)

    def __getitem__(self, symbol: str) -> int:
        try:
            return int(self.values[symbol])
        except KeyError:
            raise HarnessError(f"{self.op}: symbol {symbol} is not bound at this point") from None

    # -- where tensors live -------------------------------------------------------------------
    def place(self) -> contextlib.AbstractContextManager:
        """Enter to create tensors where this case lives (fake mode, or a torch device)."""
        if self.device == "fake":
            return self.mode
        return torch.device(self.device)

    @property
    def real(self) -> bool:
        return self.device in ("cpu", "cuda")

    def tensor(self, *shape: int, dtype: torch.dtype | None = None) -> Tensor:
        dtype = dtype or self.dtype
        with self.place():
            if self.real:
                return torch.randn(*shape, dtype=torch.float32, generator=self._generator()).to(dtype)
            return torch.empty(*shape, dtype=dtype)

    def ids(self, *shape: int, high: int) -> Tensor:
        with self.place():
            if self.real:
                return torch.randint(0, high, shape, generator=self._generator())
            return torch.zeros(*shape, dtype=torch.long)

    def _generator(self) -> torch.Generator:
        if not hasattr(self, "_gen"):
            self._gen = torch.Generator(device=self.device).manual_seed(self.seed + 1)
        return self._gen

    def module(self, factory: Callable[[], nn.Module]) -> nn.Module:
        """Construct with the model dtype as default dtype, where the tensors live, in eval mode.

        With ``modules`` given, a module built earlier for the same op, variant, kernel, device,
        dtype and configuration is reused (its FakeTensorMode must be this context's ``mode``).
        """
        key = (self.op, self.variant, self.kernel, self.device, self.dtype, id(self.mode),
               tuple(sorted(self.config.items())))
        if self.modules is not None and key in self.modules:
            return self.modules[key]
        module = self._construct(factory)
        if self.modules is not None:
            self.modules[key] = module
        return module

    def _construct(self, factory: Callable[[], nn.Module]) -> nn.Module:
        previous = torch.get_default_dtype()
        if self.real:
            torch.manual_seed(self.seed)
        with self.place():
            torch.set_default_dtype(self.dtype)
            try:
                module = factory()
            finally:
                torch.set_default_dtype(previous)
        return module.eval()

    def check(self, **expected: int) -> None:
        """The module's configuration must give the symbol values the formulas use."""
        wrong = {s: (self[s], v) for s, v in expected.items() if self[s] != v}
        if wrong:
            listed = ", ".join(f"{s}: formula {a}, module {b}" for s, (a, b) in wrong.items())
            raise HarnessError(f"{self.op}: the binding disagrees with the module's configuration ({listed})")

    # -- configurations -------------------------------------------------------------------------
    def language_config(self):
        from opdoc.models.deepseek_ocr.config import DeepseekV2Config

        impl = "eager" if self.kernel == "eager" else "sdpa"
        cfg = DeepseekV2Config.from_scope(**{**self.config, "_attn_implementation": impl})
        self.check(h=cfg.hidden_size, H=cfg.num_attention_heads, d_h=cfg.hidden_size // cfg.num_attention_heads,
                   d_ff=cfg.intermediate_size, d_e=cfg.moe_intermediate_size, E=cfg.n_routed_experts,
                   k=cfg.num_experts_per_tok, E_s=cfg.n_shared_experts, V=cfg.vocab_size,
                   L=cfg.num_hidden_layers, L_dense=cfg.first_k_dense_replace)
        return cfg

    def sdpa_context(self) -> Callable[[], contextlib.AbstractContextManager]:
        """The attention backend of a module that always calls SDPA: math path for "eager"."""
        if self.kernel == "eager":
            from torch.nn.attention import SDPBackend, sdpa_kernel

            return lambda: sdpa_kernel(SDPBackend.MATH)
        return contextlib.nullcontext


def build(op: str, binding: dict[Any, Any], kernel: str = "fused", device: str = "fake",
          dtype: torch.dtype | str = torch.bfloat16, *, variant: str | None = None,
          config: dict[str, Any] | None = None, mode: Any = None, seed: int = 0,
          modules: dict | None = None, builder: Builder | None = None) -> Case:
    """The reference module of ``op`` and a forward on inputs shaped by ``binding``.

    ``binding`` maps symbols (sympy symbols or their names) to numbers, e.g. ``Evaluator.binding``.
    ``mode``: a FakeTensorMode to build in (a fresh one when None and device is "fake").
    ``modules``: a dict in which to keep and reuse modules between calls (with the same ``mode``).
    ``builder``: builds the Case instead of the op's registered harness (the upstream check's vendor classes).
    """
    if kernel not in KERNELS:
        raise HarnessError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if device not in DEVICES:
        raise HarnessError(f"device must be one of {DEVICES}, got {device!r}")
    if isinstance(dtype, str):
        dtype = DTYPES[dtype]
    values = {str(getattr(s, "name", s)): int(v) for s, v in binding.items()}
    if device == "fake" and mode is None:
        from torch._subclasses.fake_tensor import FakeTensorMode

        mode = FakeTensorMode()
    ctx = Context(op, values, kernel, device, dtype, variant, dict(config or {}), mode, seed, modules)
    case = (builder or harness.get(op))(ctx)
    case.place = ctx.place
    return case


# ------------------------------------------------------------------------------ language model


def _attention_inputs(ctx: Context, cfg) -> dict[str, Any]:
    """Rotary tables (computed as the model does), the (1, 1, S, P+S) mask and a P-position (k, v) cache."""
    from opdoc.models.deepseek_ocr.deepseek_v2 import LlamaRotaryEmbedding, causal_mask

    B, S, P, H, d_h = ctx["B"], ctx["S"], ctx["P"], ctx["H"], ctx["d_h"]
    x = ctx.tensor(B, S, ctx["h"])
    with ctx.place(), torch.no_grad():
        rotary = LlamaRotaryEmbedding(cfg)
        positions = torch.arange(P, P + S)[None].expand(B, -1)
        cos, sin = rotary(x, positions)
        mask = causal_mask(S, P + S, ctx.dtype, x.device)
    # P = 0 gives zero-length tensors: prefill and decode both concatenate, as the spec assumes.
    past = (ctx.tensor(B, H, P, d_h), ctx.tensor(B, H, P, d_h))
    return {"hidden_states": x, "attention_mask": mask, "past_key_value": past, "use_cache": True,
            "position_embeddings": (cos, sin)}


def _present(output: Any) -> list[Tensor]:
    return list(output[2]) if output[2] is not None else []


def _on_hidden_states(make: Callable[[Any], nn.Module]) -> Builder:
    """A builder for a language-model op called on one (B, S, h) tensor: `make(config)` builds it."""
    def builder(ctx: Context) -> Case:
        cfg = ctx.language_config()
        module = ctx.module(lambda: make(cfg))
        x = ctx.tensor(ctx["B"], ctx["S"], ctx["h"])
        return Case(module, lambda: module(x))
    return builder


def _reference(name: str) -> Any:
    from opdoc.models.deepseek_ocr import deepseek_v2

    return getattr(deepseek_v2, name)


harness("DeepseekV2RMSNorm")(_on_hidden_states(
    lambda cfg: _reference("DeepseekV2RMSNorm")(cfg.hidden_size, eps=cfg.rms_norm_eps)))
harness("DeepseekV2MLP")(_on_hidden_states(lambda cfg: _reference("DeepseekV2MLP")(cfg)))
harness("MoEGate")(_on_hidden_states(lambda cfg: _reference("MoEGate")(cfg)))


@harness("DeepseekV2MoE")
def _moe(ctx: Context) -> Case:
    from opdoc.models.deepseek_ocr.deepseek_v2 import DeepseekV2MoE

    cfg = ctx.language_config()
    module = ctx.module(lambda: DeepseekV2MoE(cfg))
    x = ctx.tensor(ctx["B"], ctx["S"], ctx["h"])
    return Case(module, lambda: module(x), **_routing(ctx, module))


def _routing(ctx: Context, root: nn.Module, moe_type: type | None = None) -> dict[str, Callable]:
    """`notes` and `observed` for a Case: how the router(s) spread tokens, and the E_run it implies.
    ``moe_type``: the MoE class to look for (default: the reference's; the upstream check passes the vendor's)."""
    notes = _routing_notes(ctx, root, moe_type)
    seen = getattr(notes, "seen", None)

    def observed() -> dict[str, Any]:
        if not seen:
            return {}
        import sympy

        counts = seen[-getattr(notes, "layers", 1):]
        # The spec's expert I/O is linear in E_run per layer, so the mean over layers is exact in total.
        return {"E_run": sympy.Rational(sum(sum(1 for c in layer if c) for layer in counts), len(counts))}
    return {"notes": notes, "observed": observed}


def _routing_notes(ctx: Context, root: nn.Module, moe_type: type | None = None) -> Callable[[], list[str]]:
    """How the router(s) under ``root`` spread the token slots: evenly without data (fake, meta),
    unevenly with real tensors (it must not matter: the formulas are linear in each expert's tokens)."""
    from opdoc.models.deepseek_ocr.deepseek_v2 import DeepseekV2MoE

    moes = [m for m in root.modules() if isinstance(m, moe_type or DeepseekV2MoE)]
    if not moes:
        return lambda: []
    if not ctx.real:
        slots = ctx["B"] * ctx["S"] * ctx["k"]
        return lambda: [f"even split of {slots} slots over {ctx['E']} experts (no routing data)"]
    from torch.utils._python_dispatch import _disable_current_modes

    seen: list[list[int]] = []

    def record(_module: nn.Module, _args: Any, out: Any) -> None:
        with _disable_current_modes():  # not part of the measured forward, and keeps no tensor alive
            seen.append(torch.bincount(out[0].reshape(-1), minlength=ctx["E"]).tolist())

    for moe in moes:
        moe.gate.register_forward_hook(record)

    def notes() -> list[str]:
        if not seen:
            return []
        counts = seen[-len(moes):]  # the last forward's layers
        low, high = min(min(c) for c in counts), max(max(c) for c in counts)
        idle = sum(c.count(0) for c in counts)
        return [f"real routing: {low}..{high} slots per expert, {idle} of {ctx['E'] * len(counts)} "
                f"experts idle ({len(counts)} MoE layer{'s' if len(counts) > 1 else ''})"]
    notes.seen, notes.layers = seen, len(moes)
    return notes


@harness("LlamaAttention", attention=True)
def _attention(ctx: Context) -> Case:
    from opdoc.models.deepseek_ocr.deepseek_v2 import LlamaAttention

    cfg = ctx.language_config()
    module = ctx.module(lambda: LlamaAttention(cfg, layer_idx=0))
    inputs = _attention_inputs(ctx, cfg)
    return Case(module, lambda: module(**inputs), _present)


@harness("DeepseekV2DecoderLayer", attention=True)
def _decoder_layer(ctx: Context) -> Case:
    from opdoc.models.deepseek_ocr.deepseek_v2 import DeepseekV2DecoderLayer

    cfg = ctx.language_config()
    if ctx.variant not in ("dense", "moe"):
        raise HarnessError(f"DeepseekV2DecoderLayer: variant must be dense or moe, got {ctx.variant!r}")
    # Layers below first_k_dense_replace are dense; the first MoE layer is the next one.
    layer_idx = 0 if ctx.variant == "dense" else cfg.first_k_dense_replace
    module = ctx.module(lambda: DeepseekV2DecoderLayer(cfg, layer_idx))
    inputs = _attention_inputs(ctx, cfg)
    return Case(module, lambda: module(**inputs), _present, **_routing(ctx, module))


def _seeded_cache(ctx: Context, cfg) -> Callable[[], Any]:
    """A fresh KVCache per forward, holding the same P positions in every layer (made once, before
    any forward). P = 0 gives zero-length entries, so every layer's update concatenates (the spec's
    cache_append), at prefill as at decode. Fresh per call because ``update`` replaces the entries:
    repeated forwards (warm-up, timing) must not see the cache grow."""
    from opdoc.models.deepseek_ocr.deepseek_v2 import KVCache

    shape = (ctx["B"], ctx["H"], ctx["P"], ctx["d_h"])
    keys = [ctx.tensor(*shape) for _ in range(cfg.num_hidden_layers)]
    values = [ctx.tensor(*shape) for _ in range(cfg.num_hidden_layers)]

    def fresh() -> KVCache:
        cache = KVCache()
        cache.key_cache, cache.value_cache = list(keys), list(values)  # no tensor op: nothing measured
        return cache
    return fresh


def _cache_tensors(cache: Any) -> list[Tensor]:
    return [*cache.key_cache, *cache.value_cache]


def _on_token_ids(name: str, cache_at: int) -> Builder:
    """A builder for a whole language model called on token ids with a seeded cache; the forward
    returns the cache at position `cache_at` of its output tuple."""
    def builder(ctx: Context) -> Case:
        cfg = ctx.language_config()
        module = ctx.module(lambda: _reference(name)(cfg))
        ids = ctx.ids(ctx["B"], ctx["S"], high=cfg.vocab_size)
        cache = _seeded_cache(ctx, cfg)
        return Case(module, lambda: module(ids, past_key_values=cache(), use_cache=True),
                    lambda out: _cache_tensors(out[cache_at]), **_routing(ctx, module))
    return builder


harness("DeepseekV2Model", attention=True)(_on_token_ids("DeepseekV2Model", cache_at=1))
harness("DeepseekV2ForCausalLM", attention=True)(_on_token_ids("DeepseekV2ForCausalLM", cache_at=2))


# ------------------------------------------------------------------------------ vision


@harness("PatchEmbed")
def _patch_embed(ctx: Context) -> Case:
    from opdoc.models.deepseek_ocr.config import SamConfig
    from opdoc.models.deepseek_ocr.deepencoder import PatchEmbed

    cfg = SamConfig.from_scope(**ctx.config)
    ctx.check(p=cfg.patch_size, C_in=cfg.in_chans, h=cfg.embed_dim)
    p = cfg.patch_size
    module = ctx.module(lambda: PatchEmbed((p, p), (p, p), in_chans=cfg.in_chans, embed_dim=cfg.embed_dim))
    x = ctx.tensor(ctx["B"], ctx["C_in"], ctx["H_img"], ctx["W_img"])
    return Case(module, lambda: module(x))


@harness("NoTPAttention", attention=True)
def _clip_attention(ctx: Context) -> Case:
    from opdoc.models.deepseek_ocr.config import ClipConfig
    from opdoc.models.deepseek_ocr.deepencoder import NoTPAttention

    cfg = ClipConfig.from_scope(**ctx.config)
    ctx.check(h=cfg.hidden_size, H=cfg.num_attention_heads, d_h=cfg.hidden_size // cfg.num_attention_heads)
    module = ctx.module(lambda: NoTPAttention(cfg))
    x = ctx.tensor(ctx["B"], ctx["S"], ctx["h"])
    return Case(module, lambda: module(x), context=ctx.sdpa_context())

