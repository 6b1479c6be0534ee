"""Check stage, independent implementations: code nobody here wrote, measured like our reference.

Our formulas were written from our reference modules; an implementation written elsewhere (and
measured with the same counter) tests that they describe the algorithm, not our code's habits:

* transformers' ``LlamaAttention`` at DeepSeek-OCR's dimensions (h = 1280, 10 heads of 128) with a
  seeded ``DynamicCache`` and rotary tables passed in: its "eager" interface against our
  ``LlamaAttention`` and its "sdpa" interface (the fused CPU kernel, causal flag, no mask) against our
  ``LlamaFlashAttention2``, both in their ``shared_tables`` variant;
* transformers' DeepseekV2 MoE block (``DeepseekV2Moe``: 64 experts, top-6, 2 shared, inner width
  896) with its ``grouped_mm`` and ``batched_mm`` expert kernels at full size, and its ``eager``
  expert loop on small real tensors (the loop branches on which experts were hit);
* transformers' CLIP vision encoder layer (``CLIPEncoderLayer``, with the "sdpa" and "eager" attention
  interfaces) and its ``CLIPMLP`` at CLIP-L's settings (pre-LN, quick_gelu);
* segment-anything's ``PatchEmbed``, ``Attention``, ``Block`` and ``ImageEncoderViT`` at SAM-B
  settings, imported from ``segment_anything/modeling/image_encoder.py`` alone (the package's
  ``__init__`` imports torchvision).

The rows compare with the specs' formulas: PatchEmbed, SAM's Attention, Block (per variant),
ImageEncoderViT (less DeepSeek-OCR's net_2 and net_3, which segment-anything does not have),
LlamaAttention, LlamaFlashAttention2, DeepseekV2MoE, and
DeepSeek-V2-Lite's DeepseekV2Attention, DeepseekV2FlashAttention2 and YaRN rotary table. Quantities listed in a comparison's ``gate`` must match
exactly (a mismatch fails the check); the others are printed as ``info`` with the reason the
conventions differ. A package that is not installed gives one ``skip`` row saying so.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import math
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from opdoc.check.harness import Case, Context
from opdoc.check.runner import (
    QUANTITIES, TOLERANCES, Point, Row, _number, compare, expected_values, full_size_device,
    kernel_note, measure_case, point_binding, point_label,
)

ALL = frozenset(QUANTITIES)
FLOPS_AND_PARAMETERS = frozenset({"parameters", "parameter_bytes", "tensor_flops"})


class Missing(Exception):
    """An optional package is not installed."""


@dataclass
class Comparison:
    """One independent module at one point, compared with our formulas or our reference."""

    op: str  # the spec (or, for "reference", the reference class) it is compared with
    source: str  # e.g. "transformers eager"
    point: Point
    kernel: str  # our formula's kernel
    make: Callable[[Context], Case]  # builds the independent module and its forward
    gate: frozenset[str] = FLOPS_AND_PARAMETERS
    reasons: dict[str, str] = field(default_factory=dict)  # quantity -> why it may differ
    against: str = "formula"  # or "reference": our reference module, built by `reference`
    reference: Callable[[Context], Case] | None = None
    device: str | None = None  # default: full size (fake for fused, meta for eager)
    quick: bool = False
    variant: str | None = None  # the spec's variant compared with
    # Operations and parameters of the spec that the independent module does not have (DeepSeek-OCR's
    # additions); their FLOPs and parameters are taken off the formula's totals before comparing.
    without: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.op}{f'[{self.variant}]' if self.variant else ''} [{self.source}]"

    @property
    def where(self) -> str:
        return self.device or full_size_device(self.kernel)

    @property
    def title(self) -> str:
        sets = " ".join(f"{k}={v}" for k, v in self.point.set)
        return f"{self.label} {self.kernel} {self.point.example} {sets} ({self.where})".replace("  ", " ")

    def _context(self, ev, op_for_binding: str) -> tuple[Context, dict]:
        from opdoc.check.harness import DTYPES
        from torch._subclasses.fake_tensor import FakeTensorMode

        scope = ev.catalog.specs[op_for_binding].spec.scope if op_for_binding in ev.catalog.specs \
            else SCOPE_OF[op_for_binding]
        binding = point_binding(ev, scope, self.point)
        values = {s.name: int(v) for s, v in binding.items()}
        mode = FakeTensorMode() if self.where == "fake" else None
        ctx = Context(self.op, values, self.kernel, self.where, DTYPES[ev.catalog.model.dtype], mode=mode)
        return ctx, binding

    def rows(self, ev) -> list[Row]:
        scope = ev.catalog.specs[self.op].spec.scope if self.op in ev.catalog.specs else SCOPE_OF[self.op]
        label = point_label(ev, scope, self.point)
        base = dict(op=self.op, label=self.label, variant=self.variant, kernel=self.kernel, point=label,
                    device=self.where)
        try:
            ctx, binding = self._context(ev, self.op)
            theirs = _measure(self.make, ctx)
            if self.against == "formula":
                expected = {k: _number(v) for k, v in
                            expected_values(ev, self.op, self.variant, self.kernel, binding).items()}
                basis = "formula"
                if self.without:
                    expected = _without(ev, self, binding, expected)
                    basis = f"formula without {', '.join(self.without)}"
            else:
                ctx_ours, _ = self._context(ev, self.op)
                expected = _measure(self.reference, ctx_ours).values
                basis = "our reference"
        except Missing as exc:
            return [Row(**base, quantity="(run)", expected=None, measured=None, rel_error=None, tolerance=None,
                        status="skip", note=str(exc))]
        except Exception as exc:  # noqa: BLE001 - a failing row, with the cause
            return [Row(**base, quantity="(run)", expected=None, measured=None, rel_error=None, tolerance=None,
                        status="ERROR", note=f"{type(exc).__name__}: {exc}")]
        rows = []
        if theirs.unknown_ops:
            listed = ", ".join(f"{name} ×{n}" for name, n in sorted(theirs.unknown_ops.items()))
            rows.append(Row(**base, quantity="unknown ops", expected=0, measured=sum(theirs.unknown_ops.values()),
                            rel_error=None, tolerance=None, status="ERROR",
                            note=f"aten ops without a rule in opdoc/check/rules.py: {listed}"))
        for quantity in QUANTITIES:
            error, status = compare(quantity, expected[quantity], theirs.values[quantity])
            notes = [f"vs {basis}"]
            if quantity == "peak_bytes":
                notes.append(kernel_note(theirs.attention_kernels))
            if quantity == "tensor_flops" and theirs.notes:
                notes += theirs.notes
            if quantity not in self.gate:
                if status == "FAIL":
                    status = "info"
                    notes.append(self.reasons.get(quantity, "not compared: conventions differ"))
                else:
                    notes.append("(matches, though not gated)")
            rows.append(Row(**base, quantity=quantity, expected=_number(expected[quantity]),
                            measured=_number(theirs.values[quantity]), rel_error=error,
                            tolerance=TOLERANCES[quantity].relative if quantity in self.gate else None,
                            status=status, note="; ".join(notes)))
        return rows


SCOPE_OF: dict[str, str] = {}


def _without(ev, comparison: Comparison, binding, expected: dict[str, Any]) -> dict[str, Any]:
    """The formula's FLOPs and parameters less the named operations and parameter tensors (and the
    parameter tensors named '<op>.weight'/'<op>.bias' of a named operation)."""
    evaluated = ev.evaluate(comparison.op, binding, comparison.variant, comparison.kernel)
    names = set(comparison.without)
    adjusted = dict(expected)
    for part in evaluated.operations:
        if part.name in names:
            key = "tensor_flops" if part.unit == "tensor" else "cuda_flops"
            adjusted[key] -= _number(part.flops)
    for tensor in evaluated.tensors:
        if tensor.role == "parameter" and (tensor.name in names or tensor.name.rsplit(".", 1)[0] in names):
            adjusted["parameters"] -= _number(tensor.numel)
            adjusted["parameter_bytes"] -= _number(tensor.bytes)
    return adjusted


def _measure(make: Callable[[Context], Case] | None, ctx: Context):
    assert make is not None
    case = make(ctx)
    case.place = ctx.place
    return measure_case(case)


# ------------------------------------------------------------------------------ imports


def _transformers(module: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise Missing(f"transformers is not installed ({exc}); pip install transformers to compare") from None


def segment_anything_image_encoder():
    """segment_anything/modeling/image_encoder.py alone, without the package __init__ (torchvision)."""
    spec = importlib.util.find_spec("segment_anything")
    if spec is None or not spec.submodule_search_locations:
        raise Missing("segment-anything is not installed; pip install segment-anything to compare")
    package = types.ModuleType("_opdoc_sam_modeling")
    package.__path__ = [str(Path(spec.submodule_search_locations[0]) / "modeling")]
    sys.modules["_opdoc_sam_modeling"] = package
    try:
        return importlib.import_module("_opdoc_sam_modeling.image_encoder")
    finally:
        for name in [n for n in sys.modules if n.startswith("_opdoc_sam_modeling")]:
            del sys.modules[name]


# ------------------------------------------------------------------------------ transformers: attention


def _llama_attention(interface: str) -> Callable[[Context], Case]:
    """transformers' own LlamaAttention at DeepSeek-OCR's dimensions, handed what DeepSeek-OCR's model
    hands its layers: the 4-D causal mask for eager attention at S > 1 (none for one query, none for
    the fused kernel), cos/sin for B_pos rows of positions (passed in: transformers >= 4.48 has no
    per-layer tables), and a seeded DynamicCache."""
    def make(ctx: Context) -> Case:
        modeling = _transformers("transformers.models.llama.modeling_llama")
        from transformers import DynamicCache, LlamaConfig

        from opdoc.models.deepseek_ocr.config import DeepseekV2Config
        from opdoc.models.deepseek_ocr.deepseek_v2 import LlamaRotaryEmbedding, causal_mask_4d

        ours = DeepseekV2Config.from_scope()
        cfg = LlamaConfig(hidden_size=ours.hidden_size, num_attention_heads=ours.num_attention_heads,
                          num_key_value_heads=ours.num_key_value_heads, head_dim=ctx["d_h"],
                          rope_theta=ours.rope_theta, attention_bias=ours.attention_bias,
                          max_position_embeddings=ours.max_position_embeddings, intermediate_size=ours.intermediate_size)
        cfg._attn_implementation = interface
        module = ctx.module(lambda: modeling.LlamaAttention(cfg, layer_idx=0))
        B, S, P = ctx["B"], ctx["S"], ctx["P"]
        x = ctx.tensor(B, S, ctx["h"])
        with ctx.place(), torch.no_grad():
            positions = torch.arange(P, P + S)[None].expand(ctx["B_pos"], -1)
            cos, sin = LlamaRotaryEmbedding(ours)(x, positions)
            mask = causal_mask_4d(B, S, P, ctx.dtype, x.device) if interface == "eager" else None
            cache = DynamicCache()
            # Seed P positions outside the measured forward; the forward's update concatenates.
            cache.update(ctx.tensor(B, ctx["H"], P, ctx["d_h"]), ctx.tensor(B, ctx["H"], P, ctx["d_h"]), 0)

        def kv(_output: Any) -> list[torch.Tensor]:
            return [cache.layers[0].keys, cache.layers[0].values]

        return Case(module, lambda: module(x, position_embeddings=(cos, sin), attention_mask=mask,
                                           past_key_values=cache), kv)
    return make


# ------------------------------------------------------------------------------ transformers: MoE


def _deepseek_moe(experts: str) -> Callable[[Context], Case]:
    def make(ctx: Context) -> Case:
        modeling = _transformers("transformers.models.deepseek_v2.modeling_deepseek_v2")
        from transformers import DeepseekV2Config as HFConfig

        from opdoc.models.deepseek_ocr.config import DeepseekV2Config

        ours = DeepseekV2Config.from_scope()
        cfg = HFConfig(hidden_size=ours.hidden_size, intermediate_size=ours.intermediate_size,
                       moe_intermediate_size=ours.moe_intermediate_size, n_routed_experts=ours.n_routed_experts,
                       num_experts_per_tok=ours.num_experts_per_tok, n_shared_experts=ours.n_shared_experts,
                       topk_method=ours.topk_method, n_group=ours.n_group, topk_group=ours.topk_group,
                       routed_scaling_factor=ours.routed_scaling_factor, hidden_act=ours.hidden_act,
                       experts_implementation=experts)

        def construct() -> nn.Module:
            moe = modeling.DeepseekV2Moe(cfg)
            if ctx.real:  # the 3-D expert weights and the router start as torch.empty / zeros
                for p in moe.parameters():
                    nn.init.normal_(p, std=0.02)
            return moe

        module = ctx.module(construct)
        x = ctx.tensor(ctx["B"], ctx["S"], ctx["h"])
        return Case(module, lambda: module(x))
    return make


# ------------------------------------------------------------------------------ transformers: CLIP


def _clip_layer(interface: str, part: str) -> Callable[[Context], Case]:
    """transformers' CLIP vision encoder layer at CLIP-L's settings (pre-LN, quick_gelu, eps 1e-5), or
    its attention or MLP alone; ``interface`` is the attention implementation ("sdpa" or "eager")."""
    def make(ctx: Context) -> Case:
        modeling = _transformers("transformers.models.clip.modeling_clip")
        from transformers import CLIPVisionConfig

        from opdoc.models.deepseek_ocr.config import ClipConfig

        ours = ClipConfig.from_scope()
        cfg = CLIPVisionConfig(hidden_size=ours.hidden_size, intermediate_size=ours.ffn_hidden_size,
                               num_attention_heads=ours.num_attention_heads, num_hidden_layers=ours.num_layers,
                               image_size=ours.image_size, patch_size=ours.patch_size, hidden_act=ours.hidden_act,
                               layer_norm_eps=ours.layernorm_epsilon, attention_dropout=0.0)
        cfg._attn_implementation = interface
        build = {"layer": modeling.CLIPEncoderLayer, "attention": modeling.CLIPAttention, "mlp": modeling.CLIPMLP}
        module = ctx.module(lambda: build[part](cfg))
        x = ctx.tensor(ctx["B"], ctx["S"], ctx["h"])
        if part == "mlp":
            return Case(module, lambda: module(x))
        return Case(module, lambda: module(x, None))
    return make


# ------------------------------------------------------------------------------ segment-anything


def _sam_settings():
    from opdoc.models.deepseek_ocr.config import SamConfig

    return SamConfig.from_scope()


def _sam_patch_embed(ctx: Context) -> Case:
    sam = segment_anything_image_encoder()
    cfg = _sam_settings()
    p = cfg.patch_size
    module = ctx.module(lambda: sam.PatchEmbed((p, p), (p, p), in_chans=cfg.in_chans, embed_dim=cfg.embed_dim))
    x = ctx.tensor(ctx["B"], ctx["C_in"], ctx["H_img"], ctx["W_img"])
    return Case(module, lambda: module(x))


def _sam_attention(ctx: Context) -> Case:
    """segment-anything's Attention called as the spec's binding says: a (B, H_p, W_p, h) grid with tables
    built for G_p (a view in a global block; a batch of 14 x 14 windows, G_p = 14, in a windowed one)."""
    cfg = _sam_settings()
    impl = segment_anything_image_encoder()
    side = ctx["G_p"]
    module = ctx.module(lambda: impl.Attention(cfg.embed_dim, cfg.num_heads, qkv_bias=cfg.qkv_bias,
                                               use_rel_pos=cfg.use_rel_pos, input_size=(side, side)))
    x = ctx.tensor(ctx["B"], ctx["H_p"], ctx["W_p"], cfg.embed_dim)
    return Case(module, lambda: module(x))


def _sam_block(windowed: bool) -> Callable[[Context], Case]:
    """segment-anything's Block as ImageEncoderViT builds it: windowed (window 14) or global (0)."""
    def make(ctx: Context) -> Case:
        cfg = _sam_settings()
        impl = segment_anything_image_encoder()
        grid = ctx["G_p"]
        module = ctx.module(lambda: impl.Block(
            cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias, partial(nn.LayerNorm, eps=cfg.layer_norm_eps),
            nn.GELU, cfg.use_rel_pos, True, cfg.window_size if windowed else 0, (grid, grid)))
        x = ctx.tensor(ctx["B"], ctx["H_p"], ctx["W_p"], cfg.embed_dim)
        return Case(module, lambda: module(x))
    return make


def _sam_encoder(ctx: Context) -> Case:
    """segment-anything's ImageEncoderViT at SAM-B's settings (it has no net_2 and net_3)."""
    cfg = _sam_settings()
    impl = segment_anything_image_encoder()
    module = ctx.module(lambda: impl.ImageEncoderViT(
        img_size=cfg.img_size, patch_size=cfg.patch_size, in_chans=cfg.in_chans, embed_dim=cfg.embed_dim,
        depth=cfg.depth, num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio, out_chans=cfg.out_chans,
        qkv_bias=cfg.qkv_bias, norm_layer=partial(nn.LayerNorm, eps=cfg.layer_norm_eps), use_rel_pos=cfg.use_rel_pos,
        window_size=cfg.window_size, global_attn_indexes=tuple(cfg.global_attn_indexes)))
    x = ctx.tensor(ctx["B"], cfg.in_chans, ctx["H_img"], ctx["W_img"])
    return Case(module, lambda: module(x))


# ------------------------------------------------------------------------------ the list

_MOE_REASONS = {
    "cuda_flops": "transformers routes with histc/one-hot and combines per expert; our reference sorts slots "
                  "(argsort) and combines with index_add in fp32, so the bookkeeping differs",
    "io_read_bytes": "different dispatch: grouped_mm reads each expert's weights once; batched_mm gathers "
                     "a weight matrix per token slot; eager loops over the hit experts only",
    "io_write_bytes": "different dispatch and combine tensors",
    "activation_bytes": "different dispatch and combine tensors",
    "peak_bytes": "different dispatch and combine tensors",
}
_SAM_REASONS = {
    "cuda_flops": "segment-anything scales q, adds the bias terms to explicit scores and runs softmax itself; "
                  "DeepSeek-OCR's code adds them up into a dense mask inside scaled_dot_product_attention",
    "io_read_bytes": "explicit attention reads and writes the score matrices; the fused kernel does not",
    "io_write_bytes": "explicit attention writes the score matrices; the fused kernel does not",
    "activation_bytes": "explicit attention materialises the scores; the fused kernel does not",
    "peak_bytes": "explicit attention materialises the scores; the fused kernel does not",
}


# ------------------------------------------------------------------------------ transformers: MLA


def _v2_lite_hf_config(interface: str, variant: str):
    """transformers' own DeepseekV2Config at DeepSeek-V2-Lite's attention settings (model.yaml v2_lite)."""
    from transformers import DeepseekV2Config as HFConfig

    from opdoc.models.deepseek_ocr.config import MlaConfig

    ours = MlaConfig.from_scope()
    rope = {**ours.rope_scaling, "rope_type": ours.rope_scaling["type"], "rope_theta": ours.rope_theta}
    cfg = HFConfig(hidden_size=ours.hidden_size, num_attention_heads=ours.num_attention_heads,
                   num_key_value_heads=ours.num_key_value_heads, kv_lora_rank=ours.kv_lora_rank,
                   q_lora_rank=ours.v2_q_lora_rank if variant == "q_compressed" else None,
                   qk_nope_head_dim=ours.qk_nope_head_dim, qk_rope_head_dim=ours.qk_rope_head_dim,
                   v_head_dim=ours.v_head_dim, max_position_embeddings=ours.max_position_embeddings,
                   rope_parameters=rope, attention_bias=ours.attention_bias)
    cfg._attn_implementation = interface
    return cfg


def _hf_mla(interface: str, variant: str) -> Callable[[Context], Case]:
    """transformers' DeepseekV2Attention: it caches the normalised latent and the rotary key (as the
    vendor's eager class does) but expands every cached position to per-head keys and values in each
    call, and rotates with complex numbers from tables passed in (no cached table)."""
    def make(ctx: Context) -> Case:
        modeling = _transformers("transformers.models.deepseek_v2.modeling_deepseek_v2")
        from transformers import DynamicCache

        from opdoc.models.deepseek_ocr.deepseek_v2 import causal_mask_4d

        cfg = _v2_lite_hf_config(interface, variant)
        module = ctx.module(lambda: modeling.DeepseekV2Attention(cfg, layer_idx=0))
        B, S, P = ctx["B"], ctx["S"], ctx["P"]
        x = ctx.tensor(B, S, ctx["h"])
        with ctx.place(), torch.no_grad():
            positions = torch.arange(P, P + S)[None].expand(ctx["B_pos"], -1)
            tables = modeling.DeepseekV2RotaryEmbedding(cfg)(x, positions)
            mask = causal_mask_4d(B, S, P, ctx.dtype, x.device) if interface == "eager" else None
            cache = DynamicCache()
            cache.update(ctx.tensor(B, 1, P, ctx["d_c"]), ctx.tensor(B, 1, P, ctx["d_r"]), 0)

        def kv(_output: Any) -> list[torch.Tensor]:
            return [cache.layers[0].keys, cache.layers[0].values]
        return Case(module, lambda: module(x, attention_mask=mask, past_key_values=cache,
                                           position_embeddings=tables), kv)
    return make


def _hf_yarn_rotary(ctx: Context) -> Case:
    """transformers' DeepseekV2RotaryEmbedding (YaRN inverse frequencies): cos and sin for exactly the
    positions given, as complex numbers, with no table kept between calls."""
    modeling = _transformers("transformers.models.deepseek_v2.modeling_deepseek_v2")
    cfg = _v2_lite_hf_config("eager", "lite")
    module = ctx.module(lambda: modeling.DeepseekV2RotaryEmbedding(cfg))
    x = ctx.tensor(ctx["B"], ctx["H"], ctx["S"], ctx["d_r"])
    with ctx.place():
        positions = torch.arange(ctx["P"], ctx["P"] + ctx["S"])[None].expand(ctx["B_pos"], -1)
    return Case(module, lambda: module(x, positions))


_MLA_REASONS = {
    **{q: "transformers expands the cached latent to per-head keys and values in every call (kv_b_proj over all "
          "P + S positions) and attends per head; the vendor's eager class absorbs kv_b_proj into the query and "
          "the output and scores against the latent; rotation is complex multiplication there, a regroup and "
          "rotate_half here, with the vendor's table rebuilt for P + S positions"
       for q in ("tensor_flops", "cuda_flops", "io_read_bytes", "io_write_bytes", "activation_bytes", "peak_bytes")},
}
_MLA_FLASH_REASONS = {
    **{q: "transformers caches the latent and expands it per call, and hands SDPA values d_v wide: with head "
          "widths that differ, torch's fused CPU kernel does not apply and SDPA materialises the scores (the "
          "reason the vendor pads the values); the vendor's flash class caches expanded keys and values padded "
          "to d_n + d_r and runs the fused kernel at that width"
       for q in ("tensor_flops", "cuda_flops", "io_read_bytes", "io_write_bytes", "activation_bytes", "peak_bytes",
                 "kv_cache_bytes")},
}
_YARN_REASONS = {
    **{q: "transformers computes cos and sin (as complex numbers) for the S positions of the call; the vendor class "
          "rebuilds its whole cached table for P + S positions, frequencies included"
       for q in ("cuda_flops", "io_read_bytes", "io_write_bytes", "activation_bytes", "peak_bytes")},
}
_STRUCTURE = frozenset({"parameters", "parameter_bytes", "kv_cache_bytes"})


# What LlamaFlashAttention2's check that position ids ascend (before a prefill) adds: 3 ops over B_pos·(S-1).
_ORDER_CHECK = frozenset({"cuda_flops", "io_read_bytes", "io_write_bytes", "activation_bytes"})
_ORDER_REASONS = {q: "transformers' sdpa path makes no position-order check; LlamaFlashAttention2 (4.46.3) runs "
                     "diff, >= 0 and all() over the B_pos·(S-1) position differences before a prefill"
                  for q in _ORDER_CHECK}


def comparisons(quick: bool = False) -> list[Comparison]:
    prefill, decode = Point.at("prefill"), Point.at("decode")
    base, tile = Point.at("base_view"), Point.at("gundam_tile")
    out = []
    for point in (prefill, decode, Point.at("prefill", B=2, S=13, P=100, B_pos=2)):
        # transformers' eager code does, op for op, what the spec says (tables passed in): all must match.
        out.append(Comparison("LlamaAttention", "transformers eager", point, "eager", _llama_attention("eager"),
                              gate=ALL, quick=point is prefill, variant="shared_tables"))
        # Its sdpa path runs the fused CPU kernel with the causal flag and no mask, as flash_attn does;
        # it makes no position-order check, which 4.46.3's LlamaFlashAttention2 makes before a prefill.
        # A chunk over a cache is not comparable: without a mask it keeps only the first S keys (it
        # assumes an empty static cache), where flash_attn aligns the causal mask to the last key.
        if point.set:
            continue
        single = point.example == "decode"  # one query: no order check, every quantity must match
        out.append(Comparison("LlamaFlashAttention2", "transformers sdpa", point, "fused", _llama_attention("sdpa"),
                              gate=ALL if single else ALL - _ORDER_CHECK, reasons=_ORDER_REASONS,
                              quick=point is prefill, variant="shared_tables"))
    # Multi-head latent attention at DeepSeek-V2-Lite's configuration: the same weights and, for the eager
    # class, the same cache (latent + rotary key), but transformers runs a third algorithm.
    for point in (prefill, decode):
        for variant in ("lite", "q_compressed"):
            out.append(Comparison("DeepseekV2Attention", "transformers eager", point, "fused", _hf_mla("eager", variant),
                                  gate=_STRUCTURE, reasons=_MLA_REASONS, quick=point is prefill, variant=variant))
        out.append(Comparison("DeepseekV2FlashAttention2", "transformers sdpa", point, "fused", _hf_mla("sdpa", "lite"),
                              gate=frozenset({"parameters", "parameter_bytes"}), reasons=_MLA_FLASH_REASONS,
                              quick=point is prefill, variant="lite"))
        out.append(Comparison("DeepseekV2YarnRotaryEmbedding", "transformers", point, "fused", _hf_yarn_rotary,
                              gate=frozenset({"parameters", "parameter_bytes", "kv_cache_bytes", "tensor_flops"}),
                              reasons=_YARN_REASONS, quick=point is prefill))
    for experts in ("grouped_mm", "batched_mm"):
        out.append(Comparison("DeepseekV2MoE", f"transformers {experts}", prefill, "fused", _deepseek_moe(experts),
                              reasons=_MOE_REASONS, quick=experts == "grouped_mm"))
    out.append(Comparison("DeepseekV2MoE", "transformers eager experts", Point.at("prefill", B=2, S=13), "fused",
                          _deepseek_moe("eager"), reasons=_MOE_REASONS, device="cpu"))
    clip_reasons = {  # what differs from DeepSeek-OCR's block by construction
        "cuda_flops": "transformers' eager attention scales the S x S scores and softmaxes them itself; the SDPA "
                      "math path that the eager formula describes scales q and k and upcasts to fp32",
        "io_read_bytes": "transformers projects q, k and v with three GEMMs, reading the input three times, where "
                         "DeepSeek-OCR's fused qkv projection reads it once",
        "io_write_bytes": "explicit bf16 scores and probabilities (transformers eager) against fp32 copies on the "
                          "SDPA math path",
        "activation_bytes": "explicit bf16 scores and probabilities (transformers eager) against fp32 copies on the "
                            "SDPA math path",
        "peak_bytes": "DeepSeek-OCR keeps the attention output referenced through the MLP half (its `residual` "
                      "variable); transformers frees it after the residual add",
    }
    for point in (base, tile, Point.at("gundam_tiles_2")):
        for interface, kernel in (("sdpa", "fused"), ("eager", "eager")):
            out.append(Comparison("NoTPTransformerBlock", f"transformers CLIPEncoderLayer, {interface}", point, kernel,
                                  _clip_layer(interface, "layer"), reasons=clip_reasons,
                                  quick=point is base and kernel == "fused"))
        out.append(Comparison("NoTPFeedForward", "transformers CLIPMLP", point, "fused", _clip_layer("sdpa", "mlp"),
                              gate=ALL, quick=point is base))
    for point in (base, tile, Point.at("base_view", B=2)):
        out.append(Comparison("PatchEmbed", "segment-anything", point, "fused", _sam_patch_embed, gate=ALL,
                              quick=point is base))
    for name, windowed in (("windowed", True), ("global", False)):
        # A windowed block calls Attention on its windows: the spec's window-call example.
        call = Point.at("base_windows") if windowed else base
        out.append(Comparison("Attention", f"segment-anything, {name}", call, "fused", _sam_attention,
                              reasons=_SAM_REASONS))
        out.append(Comparison("Block", "segment-anything", base, "fused", _sam_block(windowed), reasons=_SAM_REASONS,
                              variant=name))
    out.append(Comparison("ImageEncoderViT", "segment-anything", base, "fused", _sam_encoder, reasons=_SAM_REASONS,
                          without=("net_2", "clone", "net_3")))
    return [c for c in out if c.quick] if quick else out
