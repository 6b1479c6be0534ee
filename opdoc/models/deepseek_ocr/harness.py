"""DeepSeek-OCR's harness builders: each documented op's reference module and inputs at one binding.

Registered in opdoc's harness registry on import (``opdoc.check.harness.load_model_harness``). What
cannot be declared lives here: KV caches, token ids, rotary tables, masks and routing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from opdoc.check.harness import Builder, Case, Context, HarnessError, harness


def language_config(ctx: Context):
    """The language model's configuration at this point; its values must give the formulas' symbols."""
    from opdoc.models.deepseek_ocr.config import DeepseekV2Config

    impl = "eager" if ctx.kernel == "eager" else "flash_attention_2"  # the two classes upstream can build
    cfg = DeepseekV2Config.from_scope(values=ctx.scope_config, **{**ctx.config, "_attn_implementation": impl})
    ctx.check(h=cfg.hidden_size, H=cfg.num_attention_heads, d_h=cfg.hidden_size // cfg.num_attention_heads,
              d_ff=cfg.intermediate_size, d_e=cfg.moe_intermediate_size, E=cfg.n_routed_experts,
              k=cfg.num_experts_per_tok, E_s=cfg.n_shared_experts, V=cfg.vocab_size,
              L=cfg.num_hidden_layers, L_dense=cfg.first_k_dense_replace, G_n=cfg.n_group, G_k=cfg.topk_group,
              H_kv=cfg.num_key_value_heads)
    return cfg


# ------------------------------------------------------------------------------ language model


def _position_ids(ctx: Context) -> Tensor:
    """Positions P .. P+S-1 in B_pos rows: one shared row, or one per sequence as generation passes them."""
    B_pos, S, P = ctx["B_pos"], ctx["S"], ctx["P"]
    with ctx.place():
        return torch.arange(P, P + S)[None].expand(B_pos, -1).contiguous()


def _attention_inputs(ctx: Context, cfg, kernel_class: str, tables_passed_in: bool = False) -> dict[str, Any]:
    """What a decoder layer hands its attention, built before the measured forward: position ids, the
    model's 4-D causal mask for the eager class (none for the flash class, and none for one query),
    a P-position (k, v) cache, and cos/sin only when the variant passes them in."""
    from opdoc.models.deepseek_ocr.deepseek_v2 import LlamaRotaryEmbedding, causal_mask_4d

    B, S, P, H, d_h = ctx["B"], ctx["S"], ctx["P"], ctx["H"], ctx["d_h"]
    x = ctx.tensor(B, S, ctx["h"])
    positions = _position_ids(ctx)
    mask, tables = None, None
    with ctx.place(), torch.no_grad():
        if kernel_class == "eager":
            mask = causal_mask_4d(B, S, P, ctx.dtype, x.device)
        if tables_passed_in:
            tables = LlamaRotaryEmbedding(cfg)(x, positions)
    # P = 0 gives zero-length tensors: prefill and decode both concatenate, as the spec assumes.
    past = (ctx.tensor(B, H, P, d_h), ctx.tensor(B, H, P, d_h))
    return {"hidden_states": x, "attention_mask": mask, "position_ids": positions, "past_key_value": past,
            "use_cache": True, "position_embeddings": tables}


def _tables_passed_in(ctx: Context) -> bool:
    """The attention variants: per_layer (upstream: the layer builds cos/sin) or shared_tables (passed in)."""
    if ctx.variant not in (None, "per_layer", "shared_tables"):
        raise HarnessError(f"{ctx.op}: variant must be per_layer or shared_tables, got {ctx.variant!r}")
    return ctx.variant == "shared_tables"


def _present(output: Any) -> list[Tensor]:
    return list(output[2]) if output[2] is not None else []


def _on_hidden_states(make: Callable[[Any], nn.Module]) -> Builder:
    """A builder for a language-model op called on one (B, S, h) tensor: `make(config)` builds it."""
    def builder(ctx: Context) -> Case:
        cfg = language_config(ctx)
        module = ctx.module(lambda: make(cfg))
        x = ctx.tensor(ctx["B"], ctx["S"], ctx["h"])
        return Case(module, lambda: module(x))
    return builder


def _reference(name: str) -> Any:
    from opdoc.models.deepseek_ocr import deepseek_v2

    return getattr(deepseek_v2, name)


harness("DeepseekV2MLP")(_on_hidden_states(lambda cfg: _reference("DeepseekV2MLP")(cfg)))


@harness("AddAuxiliaryLoss")
def _add_auxiliary_loss(ctx: Context) -> Case:
    """The MoE layer's output and a 0-dimensional fp32 loss, through the function's apply."""
    holder = ctx.module(nn.Module)
    x = ctx.tensor(ctx["B"], ctx["S"], ctx["h"])
    loss = ctx.tensor(1, dtype=torch.float32)[0]  # 0-dimensional, as the router returns it
    return Case(holder, lambda: _reference("AddAuxiliaryLoss").apply(x, loss))


@harness("repeat_kv")
def _repeat_kv(ctx: Context) -> Case:
    """One call on the keys as the eager attention makes it: the cache and the new positions, H_kv heads."""
    cfg = language_config(ctx)
    holder = ctx.module(nn.Module)
    keys = ctx.tensor(ctx["B"], ctx["H_kv"], ctx["P"] + ctx["S"], ctx["d_h"])
    n_rep = cfg.num_attention_heads // cfg.num_key_value_heads
    return Case(holder, lambda: _reference("repeat_kv")(keys, n_rep))
# MoEGate's variants: DeepSeek-OCR's greedy softmax routing, the vendor file's other methods and
# scoring, and the greedy router in training mode (where it also forms the load-balancing loss).
GATE_VARIANTS = {
    "greedy": {},
    "group_limited_greedy": {"topk_method": "group_limited_greedy"},
    "noaux_tc": {"topk_method": "noaux_tc"},
    "sigmoid": {"scoring_func": "sigmoid"},
    "training": {},
}


def gate_config(ctx: Context):
    if ctx.variant not in GATE_VARIANTS:
        raise HarnessError(f"MoEGate: variant must be one of {list(GATE_VARIANTS)}, got {ctx.variant!r}")
    return dataclasses.replace(language_config(ctx), **GATE_VARIANTS[ctx.variant])


@harness("MoEGate")
def _moe_gate(ctx: Context) -> Case:
    cfg = gate_config(ctx)
    module = ctx.module(lambda: _reference("MoEGate")(cfg))
    module.train(ctx.variant == "training")
    x = ctx.tensor(ctx["B"], ctx["S"], ctx["h"])
    return Case(module, lambda: module(x))


@harness("DeepseekV2MoE")
def _moe(ctx: Context) -> Case:
    from opdoc.models.deepseek_ocr.deepseek_v2 import DeepseekV2MoE

    cfg = language_config(ctx)
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


def _attention_class(name: str, kernel_class: str) -> Builder:
    """One attention class, whatever the checker's kernel: each class has a single path."""
    def builder(ctx: Context) -> Case:
        cfg = language_config(ctx)
        module = ctx.module(lambda: _reference(name)(cfg, layer_idx=0))
        inputs = _attention_inputs(ctx, cfg, kernel_class, _tables_passed_in(ctx))
        return Case(module, lambda: module(**inputs), _present)
    return builder


harness("LlamaAttention")(_attention_class("LlamaAttention", "eager"))
harness("LlamaFlashAttention2")(_attention_class("LlamaFlashAttention2", "flash_attention_2"))


@harness("LlamaRotaryEmbedding")
def _llama_rotary(ctx: Context) -> Case:
    cfg = language_config(ctx)
    module = ctx.module(lambda: _reference("LlamaRotaryEmbedding")(cfg))
    values = ctx.tensor(ctx["B"], ctx["H"], ctx["S"], ctx["d_h"])  # only its dtype and device are read
    positions = _position_ids(ctx)
    return Case(module, lambda: module(values, positions))


@harness("DeepseekV2DecoderLayer", attention=True)
def _decoder_layer(ctx: Context) -> Case:
    from opdoc.models.deepseek_ocr.deepseek_v2 import DeepseekV2DecoderLayer

    cfg = language_config(ctx)
    if ctx.variant not in ("dense", "moe"):
        raise HarnessError(f"DeepseekV2DecoderLayer: variant must be dense or moe, got {ctx.variant!r}")
    # Layers below first_k_dense_replace are dense; the first MoE layer is the next one.
    layer_idx = 0 if ctx.variant == "dense" else cfg.first_k_dense_replace
    module = ctx.module(lambda: DeepseekV2DecoderLayer(cfg, layer_idx))
    inputs = _attention_inputs(ctx, cfg, cfg._attn_implementation)  # upstream's layers build their own tables
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
        cfg = language_config(ctx)
        module = ctx.module(lambda: _reference(name)(cfg))
        ids = ctx.ids(ctx["B"], ctx["S"], high=cfg.vocab_size)
        cache = _seeded_cache(ctx, cfg)
        # B_pos = 1: the model makes one arange row itself; B_pos = B > 1: the caller passes a row per sequence.
        positions = _position_ids(ctx) if ctx["B_pos"] > 1 else None
        return Case(module, lambda: module(ids, position_ids=positions, past_key_values=cache(), use_cache=True),
                    lambda out: _cache_tensors(out[cache_at]), **_routing(ctx, module))
    return builder


harness("DeepseekV2Model", attention=True)(_on_token_ids("DeepseekV2Model", cache_at=1))
harness("DeepseekV2ForCausalLM", attention=True)(_on_token_ids("DeepseekV2ForCausalLM", cache_at=2))


def classifier_config(cfg):
    """DeepSeek-OCR's configuration sets no pad_token_id, with which the classifier refuses a batch of
    more than one sequence; the classifier is documented with the sequences padded with the end-of-text
    token, as transformers' generation pads when a model has no pad token."""
    return cfg if cfg.pad_token_id is not None else dataclasses.replace(cfg, pad_token_id=cfg.eos_token_id)


@harness("DeepseekV2ForSequenceClassification", attention=True)
def _sequence_classifier(ctx: Context) -> Case:
    cfg = classifier_config(language_config(ctx))
    ctx.check(N_c=cfg.num_labels)
    module = ctx.module(lambda: _reference("DeepseekV2ForSequenceClassification")(cfg))
    ids = ctx.ids(ctx["B"], ctx["S"], high=cfg.vocab_size)
    cache = _seeded_cache(ctx, cfg)
    positions = _position_ids(ctx) if ctx["B_pos"] > 1 else None
    return Case(module, lambda: module(ids, position_ids=positions, past_key_values=cache(), use_cache=True),
                lambda out: _cache_tensors(out[2]), **_routing(ctx, module))


# ------------------------------------------------------------------------------ DeepSeek-V2-Lite (multi-head latent attention)


MLA_VARIANTS = ("lite", "q_compressed")  # queries projected directly (V2-Lite), or through a latent (V2)


def mla_config(ctx: Context):
    """V2-Lite's attention configuration; the q_compressed variant sets DeepSeek-V2's q_lora_rank."""
    from opdoc.models.deepseek_ocr.config import MlaConfig

    if ctx.variant not in (None, *MLA_VARIANTS):
        raise HarnessError(f"{ctx.op}: variant must be one of {MLA_VARIANTS}, got {ctx.variant!r}")
    cfg = MlaConfig.from_scope(values=ctx.scope_config, **ctx.config)
    if ctx.variant == "q_compressed":
        cfg.q_lora_rank = cfg.v2_q_lora_rank
        ctx.check(d_cq=cfg.q_lora_rank)
    ctx.check(h=cfg.hidden_size, H=cfg.num_attention_heads, d_c=cfg.kv_lora_rank, d_r=cfg.qk_rope_head_dim,
              d_n=cfg.qk_nope_head_dim, d_v=cfg.v_head_dim)
    return cfg


def _rebuild_on_call(rotary: nn.Module, past: int) -> None:
    """Put a DeepSeek-V2 rotary table in the state the call meets in use: never used (a fresh model at
    prefill, whose constructor-built table is marked stale) or holding the previous step's P positions.
    Either way the call needs more positions than the table holds and rebuilds it, as in generation."""
    rotary.max_seq_len_cached = past or None


def _mla(name: str) -> Builder:
    def builder(ctx: Context) -> Case:
        cfg = mla_config(ctx)
        module = ctx.module(lambda: _mla_reference(name)(cfg, layer_idx=0))
        B, S, P, H = ctx["B"], ctx["S"], ctx["P"], ctx["H"]
        x = ctx.tensor(B, S, ctx["h"])
        positions = _position_ids(ctx)
        if name == "DeepseekV2Attention":
            # The cache holds the rotary keys (key slot) and the normalised latents (value slot); the class
            # needs an additive mask even for one query (all zeros then: one query sees every key).
            past = (ctx.tensor(B, 1, P, ctx["d_r"]), ctx.tensor(B, 1, P, ctx["d_c"]))
            with ctx.place(), torch.no_grad():
                from opdoc.models.deepseek_ocr.deepseek_v2 import causal_mask_4d

                mask = causal_mask_4d(B, S, P, ctx.dtype, x.device)
                if mask is None:
                    mask = torch.zeros(1, 1, 1, P + S, dtype=ctx.dtype).expand(B, 1, 1, P + S)
        else:
            width = ctx["d_n"] + ctx["d_r"]  # keys and zero-padded values, per head
            past = (ctx.tensor(B, H, P, width), ctx.tensor(B, H, P, width))
            mask = None

        def call() -> Any:
            _rebuild_on_call(module.rotary_emb, P)
            return module(x, mask, positions, past, use_cache=True)
        return Case(module, call, _present)
    return builder


def _mla_reference(name: str) -> Any:
    from opdoc.models.deepseek_ocr import mla

    return getattr(mla, name)


def rotary_kwargs(name: str, cfg) -> dict[str, Any]:
    """Constructor arguments of each DeepSeek-V2 rotary class at V2-Lite's settings: its rope dimension,
    context and base, and the scaling factor (40) for the scaled classes; YaRN takes every key of the
    config's rope_scaling, the others only the factor."""
    kwargs: dict[str, Any] = dict(dim=cfg.qk_rope_head_dim, max_position_embeddings=cfg.max_position_embeddings,
                                  base=cfg.rope_theta)
    scaling = cfg.rope_scaling or {}
    if name != "DeepseekV2RotaryEmbedding":
        kwargs["scaling_factor"] = scaling["factor"]
    if name == "DeepseekV2YarnRotaryEmbedding":
        kwargs.update({key: scaling[key] for key in ("original_max_position_embeddings", "beta_fast", "beta_slow",
                                                     "mscale", "mscale_all_dim")})
    return kwargs


def _v2_rotary(name: str) -> Builder:
    """One call of a DeepSeek-V2 rotary class for P + S positions, in the state generation leaves it."""
    def builder(ctx: Context) -> Case:
        cfg = mla_config(ctx)
        module = ctx.module(lambda: _mla_reference(name)(**rotary_kwargs(name, cfg)))
        x = ctx.tensor(ctx["B"], ctx["H"], ctx["S"], ctx["d_r"])  # the rotary queries: dtype and device only
        length = ctx["P"] + ctx["S"]

        def call() -> Any:
            _rebuild_on_call(module, ctx["P"])
            return module(x, seq_len=length)
        return Case(module, call)
    return builder


# DeepSeek-V2's four rotary classes (one builder shape; the upstream check registers the vendor's the same way)
V2_ROTARY_CLASSES = ("DeepseekV2RotaryEmbedding", "DeepseekV2LinearScalingRotaryEmbedding",
                     "DeepseekV2DynamicNTKScalingRotaryEmbedding", "DeepseekV2YarnRotaryEmbedding")
for _name in V2_ROTARY_CLASSES:
    harness(_name)(_v2_rotary(_name))


harness("DeepseekV2Attention")(_mla("DeepseekV2Attention"))
harness("DeepseekV2FlashAttention2")(_mla("DeepseekV2FlashAttention2"))


# ------------------------------------------------------------------------------ vision


@harness("PatchEmbed")
def _patch_embed(ctx: Context) -> Case:
    from opdoc.models.deepseek_ocr.config import SamConfig
    from opdoc.models.deepseek_ocr.deepencoder import PatchEmbed

    cfg = SamConfig.from_scope(values=ctx.scope_config, **ctx.config)
    ctx.check(p=cfg.patch_size, C_in=cfg.in_chans, h=cfg.embed_dim)
    p = cfg.patch_size
    module = ctx.module(lambda: PatchEmbed((p, p), (p, p), in_chans=cfg.in_chans, embed_dim=cfg.embed_dim))
    x = ctx.tensor(ctx["B"], ctx["C_in"], ctx["H_img"], ctx["W_img"])
    return Case(module, lambda: module(x))


@harness("NoTPAttention", attention=True)
def _clip_attention(ctx: Context) -> Case:
    from opdoc.models.deepseek_ocr.config import ClipConfig
    from opdoc.models.deepseek_ocr.deepencoder import NoTPAttention

    cfg = ClipConfig.from_scope(values=ctx.scope_config, **ctx.config)
    ctx.check(h=cfg.hidden_size, H=cfg.num_attention_heads, d_h=cfg.hidden_size // cfg.num_attention_heads)
    module = ctx.module(lambda: NoTPAttention(cfg))
    x = ctx.tensor(ctx["B"], ctx["S"], ctx["h"])
    return Case(module, lambda: module(x), context=ctx.sdpa_context())



def sam_config(ctx: Context):
    """SAM-B's configuration at this point; its values must give the formulas' symbols."""
    from opdoc.models.deepseek_ocr.config import SamConfig

    cfg = SamConfig.from_scope(values=ctx.scope_config, **ctx.config)
    ctx.check(h=cfg.embed_dim, H=cfg.num_heads, d_h=cfg.embed_dim // cfg.num_heads, p=cfg.patch_size,
              C_in=cfg.in_chans, C=cfg.out_chans, w=cfg.window_size, C_2=cfg.net_2_channels,
              C_3=cfg.net_3_channels, L_v=cfg.depth, L_g=len(cfg.global_attn_indexes))
    return cfg


@harness("LayerNorm2d")
def _layer_norm_2d(ctx: Context) -> Case:
    from opdoc.models.deepseek_ocr.deepencoder import LayerNorm2d

    cfg = sam_config(ctx)
    module = ctx.module(lambda: LayerNorm2d(cfg.out_chans))  # the neck keeps the default eps
    x = ctx.tensor(ctx["B"], ctx["C"], ctx["H_p"], ctx["W_p"])
    return Case(module, lambda: module(x))


def _sam_grid(ctx: Context) -> Tensor:
    """SAM's channels-last (B, H_p, W_p, h) token grid."""
    return ctx.tensor(ctx["B"], ctx["H_p"], ctx["W_p"], ctx["h"])


@harness("MLPBlock")
def _sam_mlp(ctx: Context) -> Case:
    from opdoc.models.deepseek_ocr.deepencoder import MLPBlock

    cfg = sam_config(ctx)
    ctx.check(d_ff=int(cfg.embed_dim * cfg.mlp_ratio))
    module = ctx.module(lambda: MLPBlock(cfg.embed_dim, int(cfg.embed_dim * cfg.mlp_ratio)))
    x = _sam_grid(ctx)
    return Case(module, lambda: module(x))


@harness("get_rel_pos")
def _get_rel_pos(ctx: Context) -> Case:
    """One axis of a global block: a table built for G_p patches, called with the view's grid side."""
    from opdoc.models.deepseek_ocr.deepencoder import get_rel_pos

    sam_config(ctx)
    holder = ctx.module(nn.Module)  # a function: no parameters of its own (the table is an Attention's)
    table = ctx.tensor(2 * ctx["G_p"] - 1, ctx["d_h"])
    side = ctx["H_p"]
    return Case(holder, lambda: get_rel_pos(side, side, table))


def _folded_queries(ctx: Context) -> Tensor:
    """q as Attention hands it on: a head-folded slice of the qkv projection, made before the
    measured forward (strided for one image, a contiguous copy's slice for several)."""
    B, S, H, d_h = ctx["B"], ctx["S"], ctx["H"], ctx["d_h"]
    qkv = ctx.tensor(B, S, 3 * H * d_h)
    with ctx.place():
        return qkv.reshape(B, S, 3, H, d_h).permute(2, 0, 3, 1, 4).reshape(3, B * H, S, d_h).unbind(0)[0]


@harness("add_decomposed_rel_pos")
def _add_decomposed_rel_pos(ctx: Context) -> Case:
    from opdoc.models.deepseek_ocr.deepencoder import add_decomposed_rel_pos

    sam_config(ctx)
    holder = ctx.module(nn.Module)  # a function: the tables are an Attention's parameters
    q = _folded_queries(ctx)
    rows, cols = ctx.tensor(2 * ctx["G_p"] - 1, ctx["d_h"]), ctx.tensor(2 * ctx["G_p"] - 1, ctx["d_h"])
    grid = (ctx["H_p"], ctx["W_p"])
    return Case(holder, lambda: add_decomposed_rel_pos(q, rows, cols, grid, grid))


def _windows_per_image(ctx: Context) -> tuple[int, int]:
    """Windows along each side of the padded grid: ceil(H_p / w), ceil(W_p / w)."""
    w = ctx["w"]
    return -(-ctx["H_p"] // w), -(-ctx["W_p"] // w)


@harness("window_partition")
def _window_partition(ctx: Context) -> Case:
    from opdoc.models.deepseek_ocr.deepencoder import window_partition

    cfg = sam_config(ctx)
    holder = ctx.module(nn.Module)
    x = _sam_grid(ctx)
    return Case(holder, lambda: window_partition(x, cfg.window_size))


@harness("window_unpartition")
def _window_unpartition(ctx: Context) -> Case:
    from opdoc.models.deepseek_ocr.deepencoder import window_unpartition

    cfg = sam_config(ctx)
    holder = ctx.module(nn.Module)
    rows, cols = _windows_per_image(ctx)
    w = cfg.window_size
    windows = ctx.tensor(ctx["B"] * rows * cols, w, w, ctx["h"])
    padded, grid = (rows * w, cols * w), (ctx["H_p"], ctx["W_p"])
    return Case(holder, lambda: window_unpartition(windows, w, padded, grid))


@harness("Attention", attention=True)
def _sam_attention(ctx: Context) -> Case:
    """One call of SAM's attention on a (B, H_p, W_p, h) grid, tables built for G_p: a view in a global
    block, or a batch of windows (G_p = H_p = w) in a windowed one."""
    from opdoc.models.deepseek_ocr.deepencoder import Attention

    cfg = sam_config(ctx)
    side = ctx["G_p"]
    module = ctx.module(lambda: Attention(cfg.embed_dim, cfg.num_heads, cfg.qkv_bias, cfg.use_rel_pos,
                                          input_size=(side, side)), built_for=(side,))
    x = _sam_grid(ctx)
    return Case(module, lambda: module(x), context=ctx.sdpa_context())


@harness("Block", attention=True)
def _sam_block(ctx: Context) -> Case:
    """A windowed block (window_size w) or a global one (0), built as ImageEncoderViT builds it."""
    from functools import partial

    from opdoc.models.deepseek_ocr.deepencoder import Block

    cfg = sam_config(ctx)
    if ctx.variant not in ("windowed", "global"):
        raise HarnessError(f"Block: variant must be windowed or global, got {ctx.variant!r}")
    window = cfg.window_size if ctx.variant == "windowed" else 0
    grid = ctx["G_p"]
    module = ctx.module(lambda: Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias,
                                      partial(nn.LayerNorm, eps=cfg.layer_norm_eps), nn.GELU, cfg.use_rel_pos,
                                      window_size=window, input_size=(grid, grid)), built_for=(grid,))
    x = _sam_grid(ctx)
    return Case(module, lambda: module(x), context=ctx.sdpa_context())


@harness("get_abs_pos_sam")
def _get_abs_pos_sam(ctx: Context) -> Case:
    """ImageEncoderViT's call: its (1, G_p, G_p, h) table for the grid side H_p."""
    from opdoc.models.deepseek_ocr.deepencoder import get_abs_pos_sam

    sam_config(ctx)
    holder = ctx.module(nn.Module)  # a function: the table is ImageEncoderViT's parameter
    table = ctx.tensor(1, ctx["G_p"], ctx["G_p"], ctx["h"])
    side = ctx["H_p"]
    return Case(holder, lambda: get_abs_pos_sam(table, side))


@harness("ImageEncoderViT", attention=True)
def _sam_encoder(ctx: Context) -> Case:
    from opdoc.models.deepseek_ocr.deepencoder import build_sam_vit_b

    cfg = sam_config(ctx)
    ctx.check(G_p=cfg.img_size // cfg.patch_size)
    module = ctx.module(lambda: build_sam_vit_b(cfg))
    x = ctx.tensor(ctx["B"], ctx["C_in"], ctx["H_img"], ctx["W_img"])
    return Case(module, lambda: module(x), context=ctx.sdpa_context())


# ------------------------------------------------------------------------------ CLIP-L


def clip_config(ctx: Context):
    """CLIP-L's configuration at this point; its values must give the formulas' symbols."""
    from opdoc.models.deepseek_ocr.config import ClipConfig

    cfg = ClipConfig.from_scope(values=ctx.scope_config, **ctx.config)
    ctx.check(h=cfg.hidden_size, H=cfg.num_attention_heads, d_h=cfg.hidden_size // cfg.num_attention_heads,
              d_ff=cfg.ffn_hidden_size, p=cfg.patch_size, C_in=cfg.num_channels,
              G_p=cfg.image_size // cfg.patch_size, L_v=cfg.num_layers)
    return cfg


@harness("get_abs_pos")
def _get_abs_pos(ctx: Context) -> Case:
    """CLIPVisionEmbeddings' call: the looked-up (1, G_p² + 1, h) table for a sequence of S tokens."""
    from opdoc.models.deepseek_ocr.deepencoder import get_abs_pos

    clip_config(ctx)
    holder = ctx.module(nn.Module)
    table = ctx.tensor(1, ctx["G_p"] ** 2 + 1, ctx["h"])
    tokens = ctx["S"]
    return Case(holder, lambda: get_abs_pos(table, tokens))


def _view_and_features(ctx: Context) -> tuple[Tensor, Tensor]:
    """What DeepSeek-OCR hands CLIP-L: the view itself and SAM's (B, h, H_p, W_p) features."""
    return (ctx.tensor(ctx["B"], ctx["C_in"], ctx["H_img"], ctx["W_img"]),
            ctx.tensor(ctx["B"], ctx["h"], ctx["H_p"], ctx["W_p"]))


@harness("CLIPVisionEmbeddings")
def _clip_embeddings(ctx: Context) -> Case:
    from opdoc.models.deepseek_ocr.deepencoder import CLIPVisionEmbeddings

    cfg = clip_config(ctx)
    module = ctx.module(lambda: CLIPVisionEmbeddings(cfg.hidden_size, cfg.image_size, cfg.patch_size,
                                                     cfg.num_channels))
    view, features = _view_and_features(ctx)
    return Case(module, lambda: module(view, features))


def _clip_tokens(ctx: Context) -> Tensor:
    """CLIP-L's (B, S, h) token sequence: the class token and one token per SAM feature."""
    return ctx.tensor(ctx["B"], ctx["S"], ctx["h"])


@harness("NoTPFeedForward")
def _clip_mlp(ctx: Context) -> Case:
    from opdoc.models.deepseek_ocr.deepencoder import NoTPFeedForward

    cfg = clip_config(ctx)
    module = ctx.module(lambda: NoTPFeedForward(cfg, dim=cfg.hidden_size, hidden_dim=cfg.ffn_hidden_size))
    x = _clip_tokens(ctx)
    return Case(module, lambda: module(x))


@harness("NoTPTransformerBlock", attention=True)
def _clip_block(ctx: Context) -> Case:
    from opdoc.models.deepseek_ocr.deepencoder import NoTPTransformerBlock

    cfg = clip_config(ctx)
    module = ctx.module(lambda: NoTPTransformerBlock(cfg, layer_id=1))
    x = _clip_tokens(ctx)
    return Case(module, lambda: module(x), context=ctx.sdpa_context())


@harness("NoTPTransformer", attention=True)
def _clip_stack(ctx: Context) -> Case:
    from opdoc.models.deepseek_ocr.deepencoder import NoTPTransformer

    cfg = clip_config(ctx)
    module = ctx.module(lambda: NoTPTransformer(cfg))
    x = _clip_tokens(ctx)
    return Case(module, lambda: module(x), context=ctx.sdpa_context())


@harness("VitModel", attention=True)
def _clip_model(ctx: Context) -> Case:
    from opdoc.models.deepseek_ocr.deepencoder import VitModel

    cfg = clip_config(ctx)
    module = ctx.module(lambda: VitModel(cfg))
    view, features = _view_and_features(ctx)
    return Case(module, lambda: module(view, features), context=ctx.sdpa_context())


@harness("LayerNormfp32")
def _layer_norm_fp32(ctx: Context) -> Case:
    """At the configuration that would use it (fp32norm): fp32 weight and bias, bf16 tokens."""
    from opdoc.models.deepseek_ocr.deepencoder import LayerNormfp32

    cfg = clip_config(ctx)
    module = ctx.module(lambda: LayerNormfp32(cfg.hidden_size, eps=cfg.layernorm_epsilon, dtype=torch.float32))
    x = _clip_tokens(ctx)
    return Case(module, lambda: module(x))


# ------------------------------------------------------------------------------ projector


@harness("MlpProjector")
def _projector(ctx: Context) -> Case:
    """The projector type named by the variant, at the projector scope's configuration (OCR: linear)."""
    from opdoc.models.deepseek_ocr.config import ProjectorConfig
    from opdoc.models.deepseek_ocr.deepencoder import MlpProjector

    cfg = ProjectorConfig.from_scope(values=ctx.scope_config, **{**ctx.config, "projector_type": ctx.variant})
    ctx.check(h=cfg.n_embed, d_in=cfg.input_dim, r_d=cfg.downsample_ratio)
    if ctx.variant in ("mlp_gelu", "downsample_mlp_gelu") and (cfg.depth, cfg.mlp_ratio) != (2, 1):
        raise HarnessError(f"MlpProjector[{ctx.variant}]: the spec documents depth 2 and mlp_ratio 1, the "
                           f"configuration has depth {cfg.depth} and mlp_ratio {cfg.mlp_ratio}")
    module = ctx.module(lambda: MlpProjector(cfg))
    x = ctx.tensor(ctx["B"], ctx["S"], ctx["d_in"])
    return Case(module, lambda: module(x))


# ------------------------------------------------------------------------------ the whole model


def ocr_configs(ctx: Context):
    """The whole model's parts, each configured from its own scope (the language model's from this one)."""
    from opdoc.models.deepseek_ocr.config import ClipConfig, DeepseekV2Config, ProjectorConfig, SamConfig

    fields = {f.name for f in dataclasses.fields(DeepseekV2Config)}
    language = language_config(dataclasses.replace(
        ctx, scope_config={k: v for k, v in (ctx.scope_config or {}).items() if k in fields}))
    scopes = ctx.scope_configs or {}
    return (language, SamConfig.from_scope(values=scopes.get("sam")), ClipConfig.from_scope(values=scopes.get("clip")),
            ProjectorConfig.from_scope(values=scopes.get("projector")))


def _ocr_prompt(ctx: Context) -> dict[str, Any]:
    """A request's prompt as the processor hands it over: BOS, then the image's S_v positions, then the
    rest of the S_t text positions; the global view and the tiles (one blank placeholder when not cropped)."""
    B, S_v, S_t, D_g, D_t, c_w, c_h = (ctx[s] for s in ("B", "S_v", "S_t", "D_g", "D_t", "c_w", "c_h"))
    ids = ctx.ids(B, S_v + S_t, high=1000)
    with ctx.place():
        mask = torch.zeros(B, S_v + S_t, dtype=torch.bool)
        mask[:, 1:1 + S_v] = True
    tiles = [ctx.tensor(c_w * c_h, ctx["C_in"], D_t, D_t) if c_w * c_h else ctx.tensor(1, ctx["C_in"], D_g, D_g)
             for _ in range(B)]
    images = [(tile, ctx.tensor(1, ctx["C_in"], D_g, D_g)) for tile in tiles]
    crop = [(c_w, c_h) if c_w * c_h else (1, 1) for _ in range(B)]
    return {"input_ids": ids, "images": images, "images_seq_mask": mask, "images_spatial_crop": crop}


def _ocr(cls_name: str) -> Builder:
    """DeepseekOCRModel or DeepseekOCRForCausalLM: a prefill over the prompt and its image, the request's
    last decode step (S_v + S_t + N_out - 2 positions cached), or the whole request (generation)."""
    def builder(ctx: Context) -> Case:
        from opdoc.models.deepseek_ocr import ocr

        cfg, sam, clip, projector = ocr_configs(ctx)
        module = ctx.module(lambda: getattr(ocr, cls_name)(cfg, sam, clip, projector))
        cache_at = 1
        if ctx.variant == "decode":
            past = ctx["S_v"] + ctx["S_t"] + ctx["N_out"] - 2
            cache = _seeded_cache(dataclasses.replace(ctx, values={**ctx.values, "P": past}), cfg)
            token = ctx.ids(ctx["B"], 1, high=1000)
            run = lambda: module(token, past_key_values=cache(), use_cache=True)  # noqa: E731
        elif ctx.variant == "prefill":
            # A cache of zero-length entries, as the decoder's pages assume (each layer's append copies).
            prompt, cache = _ocr_prompt(ctx), _seeded_cache(dataclasses.replace(ctx, values={**ctx.values, "P": 0}), cfg)
            run = lambda: module(**prompt, past_key_values=cache(), use_cache=True)  # noqa: E731
        elif ctx.variant == "request" and cls_name == "DeepseekOCRForCausalLM":
            prompt, cache = _ocr_prompt(ctx), _seeded_cache(dataclasses.replace(ctx, values={**ctx.values, "P": 0}), cfg)
            ids = prompt.pop("input_ids")
            held: dict[str, Any] = {}

            def run() -> Any:
                held["tokens"] = module.generate(ids, ctx["N_out"], cache=held, past_key_values=cache(), **prompt)
                return held
            cache_at = "cache"
        else:
            raise HarnessError(f"{ctx.op}: no variant {ctx.variant!r}")
        # SAM and CLIP always call scaled-dot-product attention: the eager kernel means its math path.
        return Case(module, run, lambda out: _cache_tensors(out[cache_at]), context=ctx.sdpa_context())
    return builder


harness("DeepseekOCRModel", attention=True)(_ocr("DeepseekOCRModel"))
harness("DeepseekOCRForCausalLM", attention=True)(_ocr("DeepseekOCRForCausalLM"))


# ------------------------------------------------------------------------------ preprocessing (host side)


def _preprocessing_config(ctx: Context) -> dict[str, Any]:
    config = {**(ctx.scope_config or {}), **ctx.config}
    ctx.check(C_in=config["num_channels"])
    return config


@harness("BasicImageTransform")
def _basic_image_transform(ctx: Context) -> Case:
    """One view's uint8 pixel array (H_img, W_img, C_in), as infer()'s transform receives a PIL view."""
    from opdoc.models.deepseek_ocr.preprocessing import BasicImageTransform

    config = _preprocessing_config(ctx)
    holder = ctx.module(nn.Module)  # the transform has no parameters and is not an nn.Module
    transform = BasicImageTransform(tuple(config["image_mean"]), tuple(config["image_std"]), config["normalize"])
    with ctx.place():
        if ctx.real:
            pixels = torch.randint(0, 256, (ctx["H_img"], ctx["W_img"], ctx["C_in"]), dtype=torch.uint8,
                                   generator=ctx._generator())
        else:
            pixels = torch.empty(ctx["H_img"], ctx["W_img"], ctx["C_in"], dtype=torch.uint8)
    return Case(holder, lambda: transform(pixels))


@harness("BaseTransform")
def _base_transform(ctx: Context) -> Case:
    """The interface called on a view: it returns None and does no tensor work."""
    from opdoc.models.deepseek_ocr.preprocessing import BaseTransform

    holder = ctx.module(nn.Module)
    pixels = ctx.tensor(ctx["H_img"], ctx["W_img"], ctx["C_in"], dtype=torch.uint8)
    return Case(holder, lambda: BaseTransform()(pixels))


@harness("dynamic_preprocess")
def _dynamic_preprocess(ctx: Context) -> Case:
    """A PIL page of W_img x H_img cut into tiles: PIL work only, no aten op."""
    from PIL import Image

    from opdoc.models.deepseek_ocr.preprocessing import dynamic_preprocess

    config = _preprocessing_config(ctx)
    holder = ctx.module(nn.Module)
    page = Image.new("RGB", (ctx["W_img"], ctx["H_img"]))
    return Case(holder, lambda: dynamic_preprocess(page, config["min_num"], config["max_num"], config["image_size"]))


@harness("DeepseekOCRConfig")
def _ocr_config(ctx: Context) -> Case:
    """Building the configuration object from the language scope: plain Python, no tensor."""
    from opdoc.models.deepseek_ocr.config import DeepseekOCRConfig

    language_config(ctx)  # the binding must agree with the configuration the page lists
    holder = ctx.module(nn.Module)
    return Case(holder, lambda: DeepseekOCRConfig.from_scope(values=ctx.scope_config, **ctx.config))


class _Tokenizer:
    """Just what the streamer asks of a tokenizer: the end-of-sequence id and decode()."""

    eos_token_id = 1

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return "".join("<eos>" if i == self.eos_token_id else f"<{i}>" for i in ids)


@harness("NoEOSTextStreamer")
def _streamer(ctx: Context) -> Case:
    """One finalised piece of text printed (to a buffer): string work, no tensor."""
    import contextlib
    import io

    from opdoc.models.deepseek_ocr.streaming import NoEOSTextStreamer

    holder = ctx.module(nn.Module)
    streamer = NoEOSTextStreamer(_Tokenizer(), skip_prompt=True, skip_special_tokens=False)

    def run() -> str:
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            streamer.on_finalized_text("a line<eos>", stream_end=True)
        return printed.getvalue()
    return Case(holder, run)


# ------------------------------------------------------------------------------ building blocks


@harness("Activation")
def _activation(ctx: Context) -> Case:
    """The variant names the activation; the input is N rows of F_in features."""
    from opdoc.models.deepseek_ocr.blocks import Activation

    module = ctx.module(lambda: Activation(ctx.variant or "silu"))
    x = ctx.tensor(ctx["N"], ctx["F_in"])
    return Case(module, lambda: module(x))


@harness("apply_rotary_pos_emb")
def _apply_rotary(ctx: Context) -> Case:
    """Queries (B, H, S, d_h) and keys (B, H_kv, S, d_h) with B_pos rows of cos and sin tables."""
    from opdoc.models.deepseek_ocr.deepseek_v2 import apply_rotary_pos_emb

    holder = ctx.module(nn.Module)  # a function: no parameters
    B, S, d_h = ctx["B"], ctx["S"], ctx["d_h"]
    q, k = ctx.tensor(B, ctx["H"], S, d_h), ctx.tensor(B, ctx["H_kv"], S, d_h)
    cos, sin = ctx.tensor(ctx["B_pos"], S, d_h), ctx.tensor(ctx["B_pos"], S, d_h)
    return Case(holder, lambda: apply_rotary_pos_emb(q, k, cos, sin))


@harness("scaled_dot_product_attention")
def _sdpa(ctx: Context) -> Case:
    """torch's own function under the point's kernel (sdpa_kernel(MATH) for "eager"), fed as its callers
    feed it: packed_qkv gives strided views of token-major projections (q from a (B, S, H, d_h) tensor,
    k and v from one (B, S_k, 2, H, d_h) tensor), bias_mask gives head-major q, k, v and a dense float mask."""
    holder = ctx.module(nn.Module)  # a function: no parameters
    B, H, S, S_k, d_h = ctx["B"], ctx["H"], ctx["S"], ctx["S_k"], ctx["d_h"]
    return Case(holder, sdpa_call(ctx, ctx.variant, B, H, S, S_k, d_h), context=ctx.sdpa_context())


def sdpa_call(ctx: Context, variant: str | None, B: int, H: int, S: int, S_k: int, d_h: int) -> Callable[[], Tensor]:
    """The call of F.scaled_dot_product_attention on the inputs of one variant (shared with the upstream check)."""
    if variant == "packed_qkv":
        q = ctx.tensor(B, S, H, d_h).transpose(1, 2)
        k, v = ctx.tensor(B, S_k, 2, H, d_h).permute(2, 0, 3, 1, 4).unbind(0)
        return lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v)
    if variant == "bias_mask":
        q, k, v = ctx.tensor(B, H, S, d_h), ctx.tensor(B, H, S_k, d_h), ctx.tensor(B, H, S_k, d_h)
        mask = ctx.tensor(B, H, S, S_k)
        return lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    raise HarnessError(f"scaled_dot_product_attention: variant must be packed_qkv or bias_mask, got {variant!r}")
