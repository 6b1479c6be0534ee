"""Reference modules of the parts of modeling_deepseekv2.py that DeepSeek-OCR never runs: multi-head
latent attention (MLA) in its eager and flash classes, and DeepSeek-V2's four rotary classes.

DeepSeek-OCR sets `use_mla: false`, so these are built at DeepSeek-V2-Lite's configuration (model.yaml
scope `v2_lite`). They follow the vendor classes operation by operation, because their cost is the
point: the eager class caches the normalised latent and one shared rotary key per position and
attends with the key/value up-projection absorbed into the query and the output; the flash class
expands keys and values for every head, pads the values to the query width and caches those. Like
the rest of the reference, everything runs on meta and fake tensors at full size.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import MlaConfig
from .deepseek_v2 import DeepseekV2RMSNorm, flash_attention, past_length, update_kv_cache


# ------------------------------------------------------------------------------ rotary tables


class DeepseekV2RotaryEmbedding(nn.Module):
    """A cos/sin table over positions 0 .. L-1 kept in buffers, rebuilt whole when a longer L is asked.

    As upstream: the constructor builds the table for `max_position_embeddings` positions and then marks
    it unusable (`max_seq_len_cached = None`), so the first forward rebuilds it for its own length; and
    every later forward that needs more positions than the table holds (each decode step, which needs
    one more) rebuilds all of it. The table is cast to the dtype of the first tensor it is asked for.
    Each subclass rebuilds with its own statements: locals live until the rebuild returns, as upstream's.
    """

    def __init__(self, dim: int, max_position_embeddings: int = 2048, base: float = 10000,
                 device: torch.device | None = None) -> None:
        super().__init__()
        self.dim, self.max_position_embeddings, self.base = dim, max_position_embeddings, base
        inv_freq = 1.0 / (self.base ** (torch.arange(0, dim, 2).float().to(device) / dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self._set_cos_sin_cache(max_position_embeddings, self.inv_freq.device, torch.get_default_dtype())
        self.max_seq_len_cached: int | None = None  # the table just built is never used

    def _set_cos_sin_cache(self, seq_len: int, device: Any, dtype: torch.dtype) -> None:
        self.max_seq_len_cached = seq_len
        positions = torch.arange(seq_len, device=device, dtype=self.inv_freq.dtype)
        freqs = torch.outer(positions, self.inv_freq.to(positions.device))  # (P+S, d_r/2) angles
        emb = torch.cat((freqs, freqs), dim=-1)  # (P+S, d_r): both halves of a pair group share the angles
        self.register_buffer("cos_cached", emb.cos().to(dtype), persistent=False)
        self.register_buffer("sin_cached", emb.sin().to(dtype), persistent=False)

    def forward(self, x: Tensor, seq_len: int | None = None) -> tuple[Tensor, Tensor]:
        """Rows 0 .. seq_len-1 of the table (views), rebuilding it first when it is too short."""
        if self.max_seq_len_cached is None or seq_len > self.max_seq_len_cached:
            self._set_cos_sin_cache(seq_len, x.device, x.dtype)
        return self.cos_cached[:seq_len].to(dtype=x.dtype), self.sin_cached[:seq_len].to(dtype=x.dtype)


class DeepseekV2LinearScalingRotaryEmbedding(DeepseekV2RotaryEmbedding):
    """Positions divided by `scaling_factor` before the angles are taken (position interpolation)."""

    def __init__(self, dim: int, max_position_embeddings: int = 2048, base: float = 10000,
                 device: torch.device | None = None, scaling_factor: float = 1.0) -> None:
        self.scaling_factor = scaling_factor
        super().__init__(dim, max_position_embeddings, base, device)

    def _set_cos_sin_cache(self, seq_len: int, device: Any, dtype: torch.dtype) -> None:
        self.max_seq_len_cached = seq_len
        positions = torch.arange(seq_len, device=device, dtype=self.inv_freq.dtype)
        positions = positions / self.scaling_factor  # interpolated positions replace the integers
        freqs = torch.outer(positions, self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("cos_cached", emb.cos().to(dtype), persistent=False)
        self.register_buffer("sin_cached", emb.sin().to(dtype), persistent=False)


class DeepseekV2DynamicNTKScalingRotaryEmbedding(DeepseekV2RotaryEmbedding):
    """Past `max_position_embeddings` positions, the base grows with the length (dynamic NTK scaling)
    and the inverse frequencies are recomputed; below it, the plain table."""

    def __init__(self, dim: int, max_position_embeddings: int = 2048, base: float = 10000,
                 device: torch.device | None = None, scaling_factor: float = 1.0) -> None:
        self.scaling_factor = scaling_factor
        super().__init__(dim, max_position_embeddings, base, device)

    def _set_cos_sin_cache(self, seq_len: int, device: Any, dtype: torch.dtype) -> None:
        self.max_seq_len_cached = seq_len
        if seq_len > self.max_position_embeddings:
            grown = self.scaling_factor * seq_len / self.max_position_embeddings - (self.scaling_factor - 1)
            base = self.base * grown ** (self.dim / (self.dim - 2))
            inv_freq = 1.0 / (base ** (torch.arange(0, self.dim, 2).float().to(device) / self.dim))
            self.register_buffer("inv_freq", inv_freq, persistent=False)
        positions = torch.arange(seq_len, device=device, dtype=self.inv_freq.dtype)
        freqs = torch.outer(positions, self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("cos_cached", emb.cos().to(dtype), persistent=False)
        self.register_buffer("sin_cached", emb.sin().to(dtype), persistent=False)


def yarn_correction_dim(rotations: float, dim: int, base: float, trained_positions: int) -> float:
    """The dimension (fractional) whose frequency completes `rotations` turns over the trained context."""
    return dim * math.log(trained_positions / (rotations * 2 * math.pi)) / (2 * math.log(base))


def yarn_correction_range(fast: float, slow: float, dim: int, base: float, trained_positions: int) -> tuple[int, int]:
    """The dimensions between which YaRN blends interpolated and original frequencies (clamped)."""
    low = math.floor(yarn_correction_dim(fast, dim, base, trained_positions))
    high = math.ceil(yarn_correction_dim(slow, dim, base, trained_positions))
    return max(low, 0), min(high, dim - 1)


def yarn_mscale(scale: float = 1, mscale: float = 1) -> float:
    """YaRN's attention temperature: 0.1 * mscale * ln(scale) + 1, or 1 when not scaled."""
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def yarn_ramp(low: float, high: float, dim: int) -> Tensor:
    """0 below `low`, 1 above `high`, linear between, over `dim` dimension pairs (fp32)."""
    if low == high:
        high += 0.001  # a ramp needs some width
    return torch.clamp((torch.arange(dim, dtype=torch.float32) - low) / (high - low), 0, 1)


class DeepseekV2YarnRotaryEmbedding(DeepseekV2RotaryEmbedding):
    """YaRN: low-frequency pairs interpolated by `scaling_factor`, high-frequency pairs kept, a ramp
    between; the tables are multiplied by the ratio of two attention temperatures (1 when
    mscale == mscale_all_dim, as in DeepSeek-V2-Lite; the multiply still runs)."""

    def __init__(self, dim: int, max_position_embeddings: int = 2048, base: float = 10000,
                 device: torch.device | None = None, scaling_factor: float = 1.0,
                 original_max_position_embeddings: int = 4096, beta_fast: float = 32, beta_slow: float = 1,
                 mscale: float = 1, mscale_all_dim: float = 0) -> None:
        self.scaling_factor = scaling_factor
        self.original_max_position_embeddings = original_max_position_embeddings
        self.beta_fast, self.beta_slow = beta_fast, beta_slow
        self.mscale, self.mscale_all_dim = mscale, mscale_all_dim
        super().__init__(dim, max_position_embeddings, base, device)

    def _set_cos_sin_cache(self, seq_len: int, device: Any, dtype: torch.dtype) -> None:
        self.max_seq_len_cached = seq_len
        dim = self.dim
        # The original and the interpolated inverse frequencies, both recomputed on every rebuild.
        original = 1.0 / (self.base ** (torch.arange(0, dim, 2, dtype=torch.float32, device=device) / dim))
        interpolated = 1.0 / (self.scaling_factor
                              * self.base ** (torch.arange(0, dim, 2, dtype=torch.float32, device=device) / dim))
        low, high = yarn_correction_range(self.beta_fast, self.beta_slow, dim, self.base,
                                          self.original_max_position_embeddings)
        keep = 1.0 - yarn_ramp(low, high, dim // 2).to(device=device, dtype=torch.float32)
        inv_freq = interpolated * (1 - keep) + original * keep
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        positions = torch.arange(seq_len, device=device, dtype=torch.float32)
        freqs = torch.outer(positions, inv_freq)
        temperature = float(yarn_mscale(self.scaling_factor, self.mscale)
                            / yarn_mscale(self.scaling_factor, self.mscale_all_dim))
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("cos_cached", (emb.cos() * temperature).to(dtype), persistent=False)
        self.register_buffer("sin_cached", (emb.sin() * temperature).to(dtype), persistent=False)


def rotary_class(config: MlaConfig, dim: int) -> DeepseekV2RotaryEmbedding:
    """The rotary class DeepseekV2Attention builds for `config.rope_scaling` (none, linear, dynamic, yarn)."""
    common = dict(max_position_embeddings=config.max_position_embeddings, base=config.rope_theta)
    scaling = config.rope_scaling
    if scaling is None:
        return DeepseekV2RotaryEmbedding(dim, **common)
    kind, factor = scaling["type"], scaling["factor"]
    if kind == "linear":
        return DeepseekV2LinearScalingRotaryEmbedding(dim, scaling_factor=factor, **common)
    if kind == "dynamic":
        return DeepseekV2DynamicNTKScalingRotaryEmbedding(dim, scaling_factor=factor, **common)
    if kind == "yarn":
        extra = {key: scaling[key] for key in ("original_max_position_embeddings", "beta_fast", "beta_slow",
                                              "mscale", "mscale_all_dim") if key in scaling}
        return DeepseekV2YarnRotaryEmbedding(dim, scaling_factor=factor, **common, **extra)
    raise ValueError(f"rope_scaling type {kind!r}: DeepSeek-V2 knows linear, dynamic and yarn")


def rotate_half(x: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rotary_interleaved(q: Tensor, k: Tensor, cos: Tensor, sin: Tensor,
                             position_ids: Tensor) -> tuple[Tensor, Tensor]:
    """Rotate q (B, H, S, d_r) and k (B, 1, S, d_r) by the table rows of their positions.

    The checkpoint stores each rotary pair side by side (x0, x1, x2, x3, ...); the vendor code regroups
    them as (x0, x2, ..., x1, x3, ...) before the half-split rotation, a copy of q and of k. The rows of
    the table are gathered per position (B_pos rows).
    """
    cos, sin = cos[position_ids].unsqueeze(1), sin[position_ids].unsqueeze(1)
    b, h, s, d = q.shape
    q = q.view(b, h, s, d // 2, 2).transpose(4, 3).reshape(b, h, s, d)
    b, h, s, d = k.shape
    k = k.view(b, h, s, d // 2, 2).transpose(4, 3).reshape(b, h, s, d)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


# ------------------------------------------------------------------------------ attention


class DeepseekV2Attention(nn.Module):
    """Multi-head latent attention, eager, with the up-projection absorbed (modeling_deepseekv2.py).

    Keys and values come from one latent of kv_lora_rank values per position (RMS-normalised) plus one
    rotary key of qk_rope_head_dim values shared by all heads; the cache holds exactly those. Scores are
    q_rope·k_rope plus (q_nope·W_uk)·latent, and the context is (probabilities·latent)·W_uv, so keys and
    values are never expanded per head. It requires an additive mask (B, 1, S, P+S), even for one query.
    """

    def __init__(self, config: MlaConfig, layer_idx: int | None = None) -> None:
        super().__init__()
        self.config, self.layer_idx = config, layer_idx
        self.attention_dropout = config.attention_dropout
        self.hidden_size = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.q_lora_rank, self.kv_lora_rank = config.q_lora_rank, config.kv_lora_rank
        self.qk_rope_head_dim, self.qk_nope_head_dim = config.qk_rope_head_dim, config.qk_nope_head_dim
        self.v_head_dim = config.v_head_dim
        self.q_head_dim = config.qk_nope_head_dim + config.qk_rope_head_dim
        self.is_causal = True
        if self.q_lora_rank is None:
            self.q_proj = nn.Linear(self.hidden_size, self.num_heads * self.q_head_dim, bias=False)
        else:  # DeepSeek-V2: queries through a normalised low-rank latent too
            self.q_a_proj = nn.Linear(self.hidden_size, self.q_lora_rank, bias=config.attention_bias)
            self.q_a_layernorm = DeepseekV2RMSNorm(self.q_lora_rank)
            self.q_b_proj = nn.Linear(self.q_lora_rank, self.num_heads * self.q_head_dim, bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(self.hidden_size, self.kv_lora_rank + self.qk_rope_head_dim,
                                            bias=config.attention_bias)
        self.kv_a_layernorm = DeepseekV2RMSNorm(self.kv_lora_rank)
        self.kv_b_proj = nn.Linear(self.kv_lora_rank, self.num_heads * (self.qk_nope_head_dim + self.v_head_dim),
                                   bias=False)
        self.o_proj = nn.Linear(self.num_heads * self.v_head_dim, self.hidden_size, bias=config.attention_bias)
        self.rotary_emb = rotary_class(config, self.qk_rope_head_dim)
        self.softmax_scale = self.q_head_dim ** (-0.5)
        if config.rope_scaling is not None and config.rope_scaling.get("mscale_all_dim", 0):
            temperature = yarn_mscale(config.rope_scaling["factor"], config.rope_scaling["mscale_all_dim"])
            self.softmax_scale *= temperature * temperature  # YaRN's temperature, on the scores

    def _queries(self, hidden_states: Tensor) -> Tensor:
        """(B, H, S, d_n + d_r) queries, a view of the (B, S, H·(d_n + d_r)) projection."""
        bsz, q_len, _ = hidden_states.shape
        if self.q_lora_rank is None:
            q = self.q_proj(hidden_states)
        else:
            q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(hidden_states)))
        return q.view(bsz, q_len, self.num_heads, self.q_head_dim).transpose(1, 2)

    def forward(
        self,
        hidden_states: Tensor,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        past_key_value: Any = None,
        output_attentions: bool = False,
        use_cache: bool = False,
    ) -> tuple[Tensor, Tensor | None, Any]:
        bsz, q_len, _ = hidden_states.shape
        q = self._queries(hidden_states)
        q_nope, q_pe = torch.split(q, [self.qk_nope_head_dim, self.qk_rope_head_dim], dim=-1)
        latent = self.kv_a_proj_with_mqa(hidden_states)
        latent, k_pe = torch.split(latent, [self.kv_lora_rank, self.qk_rope_head_dim], dim=-1)
        latent = self.kv_a_layernorm(latent)
        k_pe = k_pe.view(bsz, q_len, 1, self.qk_rope_head_dim).transpose(1, 2)  # one rotary key for all heads
        kv_seq_len = q_len + past_length(past_key_value, self.layer_idx)
        cos, sin = self.rotary_emb(q_pe, seq_len=kv_seq_len)
        q_pe, k_pe = apply_rotary_interleaved(q_pe, k_pe, cos, sin, position_ids)
        # The cache: rotary keys (B, 1, L, d_r) in the key slot, the normalised latent (B, 1, L, d_c) in the value slot.
        k_pe, latent, present = update_kv_cache(past_key_value, k_pe, latent.unsqueeze(1), self.layer_idx, use_cache)
        latent = latent.squeeze(1)
        w_kv = self.kv_b_proj.weight.view(self.num_heads, -1, self.kv_lora_rank)  # (H, d_n + d_v, d_c)
        q_absorb, out_absorb = w_kv[:, :self.qk_nope_head_dim, :], w_kv[:, self.qk_nope_head_dim:, :]
        q_nope = torch.matmul(q_nope, q_absorb)  # (B, H, S, d_c): the key up-projection folded into the query
        weights = (torch.matmul(q_pe, k_pe.mT) + torch.matmul(q_nope, latent.unsqueeze(-3).mT)) * self.softmax_scale
        if attention_mask is None:
            raise ValueError("DeepseekV2Attention needs an additive mask (B, 1, S, P+S), even for one query")
        expected = (bsz, 1, q_len, kv_seq_len)  # (B, 1, S, P+S)
        if attention_mask.size() != expected:
            raise ValueError(f"attention mask of size {tuple(attention_mask.size())}, expected {expected}")
        weights = weights + attention_mask
        weights = F.softmax(weights, dim=-1, dtype=torch.float32).to(q_pe.dtype)
        weights = F.dropout(weights, p=self.attention_dropout, training=self.training)
        out = torch.einsum("bhql,blc->bhqc", weights, latent)  # (B, H, S, d_c): probabilities times latents
        out = torch.matmul(out, out_absorb.mT)  # (B, H, S, d_v): the value up-projection, after the fact
        out = out.transpose(1, 2).contiguous().reshape(bsz, q_len, self.num_heads * self.v_head_dim)
        out = self.o_proj(out)
        return out, weights if output_attentions else None, present


class DeepseekV2FlashAttention2(DeepseekV2Attention):
    """The same weights through flash-attn: keys and values expanded per head (d_n + d_r wide), values
    zero-padded from d_v to that width, and those expanded tensors are what the cache keeps."""

    def __init__(self, config: MlaConfig, layer_idx: int | None = None) -> None:
        super().__init__(config, layer_idx)  # no parameter is added
        # flash-attn 2.1 and later align the causal mask bottom-right.
        self._flash_attn_uses_top_left_mask = False

    def forward(
        self,
        hidden_states: Tensor,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        past_key_value: Any = None,
        output_attentions: bool = False,
        use_cache: bool = False,
    ) -> tuple[Tensor, Tensor | None, Any]:
        bsz, q_len, _ = hidden_states.shape
        q = self._queries(hidden_states)
        q_nope, q_pe = torch.split(q, [self.qk_nope_head_dim, self.qk_rope_head_dim], dim=-1)
        latent = self.kv_a_proj_with_mqa(hidden_states)
        latent, k_pe = torch.split(latent, [self.kv_lora_rank, self.qk_rope_head_dim], dim=-1)
        k_pe = k_pe.view(bsz, q_len, 1, self.qk_rope_head_dim).transpose(1, 2)
        kv = (self.kv_b_proj(self.kv_a_layernorm(latent))  # every head's keys and values, expanded
              .view(bsz, q_len, self.num_heads, self.qk_nope_head_dim + self.v_head_dim).transpose(1, 2))
        k_nope, values = torch.split(kv, [self.qk_nope_head_dim, self.v_head_dim], dim=-1)
        kv_seq_len = values.shape[-2] + past_length(past_key_value, self.layer_idx)
        cos, sin = self.rotary_emb(values, seq_len=kv_seq_len)
        q_pe, k_pe = apply_rotary_interleaved(q_pe, k_pe, cos, sin, position_ids)
        # Full-width queries and keys: the non-rotary part, then the rotary part (the key's shared by all heads).
        queries = k_pe.new_empty(bsz, self.num_heads, q_len, self.q_head_dim)
        queries[:, :, :, : self.qk_nope_head_dim] = q_nope
        queries[:, :, :, self.qk_nope_head_dim:] = q_pe
        keys = k_pe.new_empty(bsz, self.num_heads, q_len, self.q_head_dim)
        keys[:, :, :, : self.qk_nope_head_dim] = k_nope
        keys[:, :, :, self.qk_nope_head_dim:] = k_pe
        if self.q_head_dim != self.v_head_dim:  # flash-attn wants one head width for q, k and v
            values = F.pad(values, [0, self.q_head_dim - self.v_head_dim])
        keys, values, present = update_kv_cache(past_key_value, keys, values, self.layer_idx, use_cache)
        queries, keys, values = queries.transpose(1, 2), keys.transpose(1, 2), values.transpose(1, 2)
        if attention_mask is not None:
            raise NotImplementedError("DeepseekV2FlashAttention2 reference: padded batches take flash-attn's "
                                      "variable-length kernel, which is not implemented here")
        out = flash_attention(queries, keys, values, causal=self.is_causal, scale=self.softmax_scale)
        if self.q_head_dim != self.v_head_dim:
            out = out[:, :, :, : self.v_head_dim]  # drop the padded part of each head
        # A copy (the slice is not contiguous); the kernel's padded output is freed before o_proj runs.
        out = out.reshape(bsz, q_len, self.num_heads * self.v_head_dim).contiguous()
        out = self.o_proj(out)
        return out, None, present
